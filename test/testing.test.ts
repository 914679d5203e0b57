// The README's trews/testing example, kept runnable.
import { describe, expect, it } from 'vitest';
import { Client, Connection, Engine, Server } from '../src/index.js';
import { memoryAddress, runFor } from '../src/testing.js';

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

// A close over a simulated link waits out the link's latency on the virtual clock.
describe('closing on a virtual clock', () => {
  const received: string[] = [];
  class Recorder extends Connection {
    override encoding = 'utf8';
    override onRead(data: string) {
      received.push(data);
    }
  }

  async function linked(latency: number) {
    const engine = new Engine({ clock: 'virtual' });
    const server = new Server(Recorder, { engine });
    const address = memoryAddress('close');
    await server.listen(address);
    const client = new Client({ engine });
    await client.connect({ memory: address.slice('memory:'.length), latency });
    received.length = 0;
    return { engine, server, client };
  }

  it('await close() lets the virtual time it needs pass: what was written before it arrives, nothing is forced', async () => {
    const { engine, client } = await linked(20);
    const start = engine.now();
    client.write('last words');
    await client.close();
    expect(received).toEqual(['last words']);
    expect(client.forced).toBe(false);
    // Our bytes and FIN take 20 ms, the server's FIN back 20 ms more.
    expect(engine.now() - start).toBe(40);
    expect((await engine.stop()).forced).toBe(0);
  });

  it('engine.stop() with open connections over a 50 ms link resolves by itself, closing every channel gracefully', async () => {
    const { engine, server, client } = await linked(50);
    client.write('x');
    const { forced } = await engine.stop();
    expect(forced).toBe(0);
    expect(client.closed).toBe(true);
    expect(server.closed).toBe(true);
    expect(engine.channels.size).toBe(0);
  });

  it('await server.close() with connections open over a 30 ms link resolves by itself: each connection closes gracefully', async () => {
    const { engine, server, client } = await linked(30);
    const { forced } = await server.close();
    expect(forced).toBe(0);
    expect(client.closed).toBe(true); // the server's FIN reached it; its own went back
    expect(engine.now()).toBe(60);
    await engine.stop();
  });

  it('a close nobody awaits leaves the clock alone; next to an awaited close, runFor() moves the clock', async () => {
    const { engine, client } = await linked(20);
    void client.close();
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(engine.now()).toBe(0);
    expect(client.closed).toBe(false);
    // runFor() moves the clock (and ends once nothing more is scheduled): the close takes 40 ms of it.
    await Promise.all([client.close(), runFor(engine, 1000)]);
    expect(engine.now()).toBe(40);
    expect(client.closed).toBe(true);
    await engine.stop();
  });
});
