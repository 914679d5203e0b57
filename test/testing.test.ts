// The README's trews/testing example, kept runnable.
import { expect, it } from 'vitest';
import { Client, Connection, Engine, Server } from '../src/index.js';
import { runFor } from '../src/testing.js';

// The protocol under test: a server that expects a PING at least every 30 s.
class Heartbeat extends Connection {
  override readDelimiter = '\n';
  override readTimeout = 30_000;
  override onTimeout() {
    this.write('TIMEOUT\n');
    void this.close();
  }
}

it('drops a client that stops sending PINGs after 30 s', async () => {
  const engine = new Engine({ clock: 'virtual' });
  await new Server(Heartbeat, { engine }).listen('memory:heartbeat');

  const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
  const lines: string[] = [];
  client.on('read', (line: string) => lines.push(line));
  await client.connect({ memory: 'heartbeat', latency: 5 }); // 5 ms each way

  client.write('PING\n');
  await runFor(engine, 29_000); // 29 virtual seconds, instantly
  expect(lines).toEqual([]);

  await runFor(engine, 2_000);
  expect(lines).toEqual(['TIMEOUT']);
  expect(client.closed).toBe(true);
  await engine.stop();
});
