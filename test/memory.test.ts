import { describe, expect, it } from 'vitest';
import { Client, Connection, Engine, Server } from '../src/index.js';
import { ConnectError, ListenError } from '../src/errors.js';
import { memoryAddress, runFor, settle } from '../src/testing.js';
import { deferred, testEngine } from './helpers.js';

/** A memory server whose connections stop reading at once; `accepted` gets the first. */
async function pausedServer(engine: Engine, name: string) {
  const accepted = deferred<Connection>();
  class Paused extends Connection {
    override onConnect() {
      this.pauseReading();
      accepted.resolve(this);
    }
  }
  const address = memoryAddress(name);
  await new Server(Paused, { engine }).listen(address);
  return { accepted: accepted.promise, address };
}

class Echo extends Connection {
  override readDelimiter = '\n';
  override onRead(line: Buffer) {
    this.write(line);
    this.write('\n');
  }
}

describe('in-memory transport', () => {
  it('accepts { memory: name } and memory:name; addresses are the name', async () => {
    const engine = testEngine();
    const server = new Server(Echo, { engine });
    await server.listen({ memory: 'svc-a' });
    expect(server.localAddress).toBe('memory:svc-a');
    const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
    await client.connect('memory:svc-a');
    expect(client.remoteAddress).toBe('memory:svc-a');
    expect([...server.connections][0]!.localAddress).toBe('memory:svc-a');
    client.write('hi\n');
    expect(await new Promise((r) => client.once('read', r))).toBe('hi');
  });

  it('connecting where nobody listens is ECONNREFUSED; listening twice is EADDRINUSE', async () => {
    const engine = testEngine();
    const client = new Client({ engine });
    const refused = await client.connect(memoryAddress('nobody')).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).systemCode).toBe('ECONNREFUSED');
    const address = memoryAddress('twice');
    await new Server(Echo, { engine }).listen(address);
    const second = await new Server(Echo, { engine }).listen(address).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(ListenError);
    expect((second as ListenError).systemCode).toBe('EADDRINUSE');
  });

  it('names are per engine; a closed server frees its name', async () => {
    const a = testEngine();
    const b = testEngine();
    const address = memoryAddress('shared');
    const first = new Server(Echo, { engine: a });
    await first.listen(address);
    await new Server(Echo, { engine: b }).listen(address);
    await first.close();
    await new Server(Echo, { engine: a }).listen(address);
  });

  it('is asynchronous and copying: a write arrives on a later turn, as other bytes than were written', async () => {
    const engine = testEngine();
    const received: Buffer[] = [];
    const got = deferred();
    class Keep extends Connection {
      override onRead(data: Buffer) {
        received.push(data);
        got.resolve();
      }
    }
    const address = memoryAddress('copy');
    await new Server(Keep, { engine }).listen(address);
    const client = new Client({ engine });
    await client.connect(address);
    const buffer = Buffer.from('original');
    client.write(buffer);
    client.flush();
    expect(received).toEqual([]);
    buffer.write('mutated!');
    await got.promise;
    expect(received[0]!.toString()).toBe('original');
  });

  it('latency and bandwidth play out on the virtual clock', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const arrivals: Array<[string, number]> = [];
    class Stamp extends Connection {
      override readDelimiter = '\n';
      override encoding = 'utf8' as const;
      override onRead(line: string) {
        arrivals.push([line, engine.now()]);
      }
    }
    const address = memoryAddress('link');
    await new Server(Stamp, { engine }).listen(address);
    const client = new Client({ engine });
    const connected = client.connect({ memory: address.slice('memory:'.length), latency: 50, bandwidth: 1000 });
    await settle(engine);
    await connected;
    client.write(`${'a'.repeat(99)}\n`); // 100 bytes at 1000 B/s: 100 ms on the wire, then 50 ms latency
    client.flush();
    client.write(`${'b'.repeat(99)}\n`);
    client.flush();
    await settle(engine);
    expect(arrivals.map(([line, t]) => [line[0], t])).toEqual([
      ['a', 150],
      ['b', 250],
    ]);
  });

  it('a protocol timeout is tested in milliseconds of real time', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const address = memoryAddress('timeout');
    const server = new Server(Echo, { engine, connectionOptions: { idleTimeout: 60_000 } });
    await server.listen(address);
    const client = new Client({ engine });
    const closed = deferred<number>();
    client.on('close', () => closed.resolve(engine.now()));
    const started = performance.now();
    await client.connect(address);
    await runFor(engine, 120_000);
    expect(await closed.promise).toBe(60_000);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('two runs with the same inputs produce the same sequence of hook calls', async () => {
    async function run(): Promise<string[]> {
      const engine = new Engine({ clock: 'virtual', log: () => {} });
      const log: string[] = [];
      class Logged extends Connection {
        override readDelimiter = '\n';
        override encoding = 'utf8' as const;
        override onConnect() {
          log.push(`s${this.id % 1000 > 0 ? '' : ''} connect ${engine.now()}`);
        }
        override onRead(line: string) {
          log.push(`s read ${line} ${engine.now()}`);
          this.write(`${line.toUpperCase()}\n`);
          if (line === 'bye') void this.close();
        }
        override onClose() {
          log.push(`s close ${engine.now()}`);
        }
      }
      await new Server(Logged, { engine }).listen('memory:determinism');
      for (const name of ['x', 'y']) {
        const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
        client.on('connect', () => log.push(`${name} connect ${engine.now()}`));
        client.on('read', (line: string) => log.push(`${name} read ${line} ${engine.now()}`));
        client.on('close', () => log.push(`${name} close ${engine.now()}`));
        void client.connect({ memory: 'determinism', latency: name === 'x' ? 7 : 3 });
        client.write(`hello from ${name}\nbye\n`);
      }
      await settle(engine);
      await engine.stop();
      return log;
    }
    const first = await run();
    const second = await run();
    expect(first.length).toBeGreaterThan(10);
    expect(second).toEqual(first);
  });

  it('a bounded in-flight buffer stalls the writer until the reader takes data', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const { accepted, address } = await pausedServer(engine, 'inflight');
    const client = new Client({ engine, writeHighWaterMark: 1024 });
    void client.connect({ memory: address.slice('memory:'.length), buffer: 4096 });
    await settle(engine);
    const reader = await accepted;
    const total = 256 * 1024;
    for (let sent = 0; sent < total; sent += 1024) client.write(Buffer.alloc(1024));
    await settle(engine);
    // The link holds 4 KiB in flight and the paused reader's buffer a little more: the rest waits.
    expect(client.bufferedBytes).toBeGreaterThan(total / 2);
    const drained = new Promise<void>((r) => client.once('write', () => r()));
    reader.resumeReading();
    await settle(engine);
    await drained;
    expect(client.bufferedBytes).toBe(0);
    expect(reader.bytesRead).toBe(total);
  });

  it("a reset mid-write: bytesWritten stays at what the link had taken, read or not before the reset", async () => {
    const engine = testEngine({ clock: 'virtual' });
    const { accepted, address } = await pausedServer(engine, 'reset-accounting');
    let atClose = -1;
    class Writer extends Client {
      override onReadError() {} // the reset: expected
      override onClose() {
        atClose = this.bytesWritten;
      }
    }
    const client = new Writer({ engine });
    await client.connect({ memory: address.slice('memory:'.length), latency: 5, buffer: 65536 });
    client.write(Buffer.alloc(1 << 20));
    await settle(engine);
    const reader = await accepted;
    // What the link took: a full 64 KiB in flight, and what the reader's socket took in (unread).
    const taken = 65536 + reader.bytesRead;
    expect(taken).toBeLessThan(1 << 20);
    await reader.close(false); // unread data: the writer is reset
    await settle(engine);
    expect(client.closed).toBe(true);
    expect(atClose).toBe(taken);
  });

  it('closing with unread data resets the peer: ECONNRESET reaches onReadError', async () => {
    const engine = testEngine();
    const serverSide = deferred<Connection>();
    class Hold extends Connection {
      override onConnect() {
        this.pauseReading();
        serverSide.resolve(this);
      }
    }
    const address = memoryAddress('destroy');
    await new Server(Hold, { engine }).listen(address);
    const client = new Client({ engine });
    const errors: string[] = [];
    client.on('readError', (err) => errors.push(String(err.systemCode)));
    client.onReadError = () => {};
    await client.connect(address);
    const conn = await serverSide.promise;
    client.write('never read\n');
    while (conn.bytesRead === 0) await new Promise((r) => setImmediate(r)); // arrived, unread
    await conn.close(false);
    await client.whenClosed();
    expect(errors).toEqual(['ECONNRESET']);
  });
});
