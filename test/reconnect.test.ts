import { describe, expect, it } from 'vitest';
import { Client, Connection, Server } from '../src/index.js';
import { ConnectError } from '../src/errors.js';
import { deferred, portOf, testEngine } from './helpers.js';

class Echo extends Connection {
  override readDelimiter = '\n';
  override onRead(line: Buffer) {
    this.write(line);
    this.write('\n');
  }
}

/** A client that records its hooks and lets a test await the next one of a kind. */
class Recording extends Client {
  readonly log: string[] = [];
  #waiters: Array<{ hook: string; resolve: () => void }> = [];

  override onConnect() {
    this.#note('connect');
  }
  override onReconnecting(attempt: number, delay: number, reason: Error) {
    this.#note(`reconnecting ${attempt} ${delay} ${(reason as { code?: string }).code ?? 'closed'}`);
  }
  override onRead(line: string) {
    this.#note(`read ${line}`);
  }
  override onClose() {
    this.#note('close');
  }

  next(hook: string): Promise<void> {
    return new Promise((resolve) => this.#waiters.push({ hook, resolve }));
  }

  #note(entry: string) {
    this.log.push(entry);
    for (const w of this.#waiters.splice(0)) {
      if (entry.startsWith(w.hook)) w.resolve();
      else this.#waiters.push(w);
    }
  }
}

async function serveOn(engine: ReturnType<typeof testEngine>, port: number): Promise<Server> {
  const server = new Server(Echo, { engine });
  await server.listen(['127.0.0.1', port]);
  return server;
}

describe('reconnecting clients', () => {
  it('backs off on the virtual clock while the server is down and reconnects when it returns', async () => {
    const engine = testEngine({ clock: 'virtual' });
    let server = await serveOn(engine, 0);
    const port = portOf(server.localAddress);
    const client = new Recording({ engine, readDelimiter: '\n', encoding: 'utf8', reconnect: { initialDelay: 100, factor: 2, jitter: 0, maxDelay: 1000 } });
    await client.connect(['127.0.0.1', port]);

    // The server goes away: the client sees the FIN and schedules retry 1.
    const dropped = client.next('reconnecting 1');
    await server.close();
    await dropped;
    expect(client.connected).toBe(false);
    expect(client.connecting).toBe(true);

    // Retry 1 is refused: retry 2 after 200 ms.
    const refused = client.next('reconnecting 2');
    engine.advance(100);
    await refused;

    // The server is back; retry 2 succeeds and onConnect runs again.
    server = await serveOn(engine, port);
    const reconnected = client.next('connect');
    engine.advance(200);
    await reconnected;
    const echoed = client.next('read');
    client.write('after restart\n');
    await echoed;

    expect(client.log).toEqual(['connect', 'reconnecting 1 100 ERR_TREWS_CLOSED', 'reconnecting 2 200 ECONNREFUSED', 'connect', 'read after restart']);
    await client.close();
    expect(client.log.at(-1)).toBe('close');
  });

  it('writes made while disconnected are sent after the reconnect', async () => {
    const engine = testEngine({ clock: 'virtual' });
    let server = await serveOn(engine, 0);
    const port = portOf(server.localAddress);
    const client = new Recording({ engine, readDelimiter: '\n', encoding: 'utf8', reconnect: { initialDelay: 50, jitter: 0 } });
    await client.connect(['127.0.0.1', port]);
    const dropped = client.next('reconnecting 1');
    await server.close();
    await dropped;
    client.write('queued while away\n');
    server = await serveOn(engine, port);
    const echoed = client.next('read');
    engine.advance(50);
    await echoed;
    expect(client.log.at(-1)).toBe('read queued while away');
  });

  it('gives up after maxAttempts with onConnectError, then onClose', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const probe = await serveOn(engine, 0);
    const port = portOf(probe.localAddress);
    await probe.close();
    const seen = deferred<ConnectError>();
    class GiveUp extends Recording {
      override onConnectError(err: ConnectError) {
        seen.resolve(err);
      }
    }
    const client = new GiveUp({ engine, reconnect: { initialDelay: 10, factor: 1, jitter: 0, maxAttempts: 2 } });
    const connecting = client.connect(['127.0.0.1', port]).catch((e: unknown) => e);
    await client.next('reconnecting 1');
    const second = client.next('reconnecting 2');
    engine.advance(10);
    await second;
    engine.advance(10);
    const err = await seen.promise;
    expect(err.message).toMatch(/gave up reconnecting .* after 2 attempts: ECONNREFUSED/);
    expect(await connecting).toBe(err);
    await client.whenClosed();
    expect(client.log).toEqual(['reconnecting 1 10 ECONNREFUSED', 'reconnecting 2 10 ECONNREFUSED', 'close']);
  });

  it('close() stops a client waiting to reconnect', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const server = await serveOn(engine, 0);
    const client = new Recording({ engine, reconnect: { initialDelay: 1000, jitter: 0 } });
    await client.connect(['127.0.0.1', portOf(server.localAddress)]);
    const dropped = client.next('reconnecting 1');
    await server.close();
    await dropped;
    await client.close();
    engine.advance(5000);
    expect(client.log).toEqual(['connect', 'reconnecting 1 1000 ERR_TREWS_CLOSED', 'close']);
    expect(client.closed).toBe(true);
  });

  it('the delay grows by factor up to maxDelay, with jitter inside its bounds', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const probe = await serveOn(engine, 0);
    const port = portOf(probe.localAddress);
    await probe.close();
    const delays: number[] = [];
    const client = new Client({ engine, reconnect: { initialDelay: 100, factor: 3, maxDelay: 1000, jitter: 0.1, maxAttempts: 5 } });
    client.onConnectError = () => {};
    const done = deferred();
    client.on('reconnecting', (_attempt, delay) => {
      delays.push(delay);
      if (delays.length === 5) done.resolve();
      else setImmediate(() => engine.advance(delay));
    });
    void client.connect(['127.0.0.1', port]);
    await done.promise;
    const nominal = [100, 300, 900, 1000, 1000];
    delays.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(nominal[i]! * 0.9);
      expect(d).toBeLessThanOrEqual(nominal[i]! * 1.1);
    });
  });

  it('rejects bad reconnect options at connect()', () => {
    const engine = testEngine();
    const client = new Client({ engine, reconnect: { initialDelay: 0 } });
    expect(() => client.connect(1234)).toThrow(/initialDelay/);
  });
});
