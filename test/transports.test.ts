/**
 * The same user classes over TCP and over the in-memory transport: each scenario runs on both
 * and must give the same result.
 */
import { describe, expect, it } from 'vitest';
import { Client, Connection, Server, type Engine } from '../src/index.js';
import type { AddressInput } from '../src/address.js';
import { memoryAddress } from '../src/testing.js';
import { deferred, portOf, pseudoRandomBytes, sha256, testEngine } from './helpers.js';

interface Transport {
  name: string;
  listen(server: Server<Connection>): Promise<AddressInput>;
}

const transports: Transport[] = [
  {
    name: 'tcp',
    async listen(server) {
      await server.listen(['127.0.0.1', 0]);
      return ['127.0.0.1', portOf(server.localAddress)];
    },
  },
  {
    name: 'memory',
    async listen(server) {
      const address = memoryAddress('scenario');
      await server.listen(address);
      return address;
    },
  },
];

class Echo extends Connection {
  override readDelimiter = '\n';
  override onRead(line: Buffer) {
    this.write(line);
    this.write('\n');
  }
}

/** A client that collects frames and lets the test await a count of them. */
class Collector extends Client {
  readonly frames: unknown[] = [];
  #want = 0;
  #done: (() => void) | null = null;

  override onRead(data: unknown) {
    this.frames.push(data);
    if (this.#done !== null && this.frames.length >= this.#want) this.#done();
  }

  frameCount(n: number): Promise<void> {
    if (this.frames.length >= n) return Promise.resolve();
    this.#want = n;
    return new Promise((resolve) => (this.#done = resolve));
  }
}

async function start(engine: Engine, transport: Transport, Conn: typeof Connection, options: object = {}) {
  const server = new Server(Conn, { engine, ...options });
  const address = await transport.listen(server);
  return { server, address };
}

for (const transport of transports) {
  describe(`scenarios over ${transport.name}`, () => {
    it('echo', async () => {
      const engine = testEngine();
      const { address } = await start(engine, transport, Echo);
      const client = new Collector({ engine, readDelimiter: '\n', encoding: 'utf8' });
      await client.connect(address);
      client.write('a\nb\n');
      client.write('c\n');
      await client.frameCount(3);
      expect(client.frames).toEqual(['a', 'b', 'c']);
    });

    it('framing: switching delimiters mid-buffer', async () => {
      const engine = testEngine();
      const got: string[] = [];
      const done = deferred();
      class Switcher extends Connection {
        override readDelimiter: string | number = '\r\n';
        override encoding = 'utf8' as const;
        override onRead(data: string) {
          got.push(data);
          this.readDelimiter = this.readDelimiter === '\r\n' ? Number(data) : '\r\n';
          if (got.length === 4) done.resolve();
        }
      }
      const { address } = await start(engine, transport, Switcher);
      const client = new Client({ engine });
      await client.connect(address);
      client.write('5\r\nhello3\r\nabc');
      await done.promise;
      expect(got).toEqual(['5', 'hello', '3', 'abc']);
    });

    it('half-close: the reply to the last line is not lost', async () => {
      const engine = testEngine();
      const { address } = await start(engine, transport, Echo);
      const client = new Collector({ engine, readDelimiter: '\n', encoding: 'utf8', allowHalfOpen: true });
      await client.connect(address);
      client.write('one\ntwo');
      client.end();
      await client.whenClosed();
      expect(client.frames).toEqual(['one', 'two']);
    });

    it('close with flush delivers 1 MiB written just before it', async () => {
      const engine = testEngine();
      const payload = pseudoRandomBytes(1 << 20, 5);
      class Sender extends Connection {
        override onConnect() {
          this.write(payload);
          void this.close();
        }
      }
      const { address } = await start(engine, transport, Sender);
      const client = new Collector({ engine });
      await client.connect(address);
      await client.whenClosed();
      expect(sha256(Buffer.concat(client.frames as Buffer[]))).toBe(sha256(payload));
    });

    it('overflow: one byte past bufferSize calls onOverflowError and closes', async () => {
      const engine = testEngine();
      const overflow = deferred<Error>();
      class Small extends Echo {
        override onOverflowError(err: Error) {
          overflow.resolve(err);
          super.onOverflowError(err as never);
        }
      }
      const { address } = await start(engine, transport, Small, { connectionOptions: { bufferSize: 16 } });
      const client = new Client({ engine });
      await client.connect(address);
      client.write('x'.repeat(17));
      expect(await overflow.promise).toMatchObject({ code: 'ERR_TREWS_OVERFLOW', limit: 16, size: 17 });
      await client.whenClosed();
    });

    it('backpressure: write() returns false and onWrite fires once the peer reads again', async () => {
      const engine = testEngine();
      const accepted = deferred<Connection>();
      class Lazy extends Connection {
        override onConnect() {
          this.pauseReading();
          accepted.resolve(this);
        }
      }
      const { address } = await start(engine, transport, Lazy);
      const client = new Client({ engine, writeHighWaterMark: 64 * 1024 });
      await client.connect(address);
      const server = await accepted.promise;
      const chunk = Buffer.alloc(64 * 1024, 'q');
      let written = 0;
      while (client.write(chunk)) {
        written += chunk.length;
        await new Promise((r) => setImmediate(r));
        if (written > 64 << 20) throw new Error('write() never returned false');
      }
      written += chunk.length;
      const drained = new Promise<void>((resolve) => client.once('write', resolve));
      let received = 0;
      server.on('read', (data: Buffer) => (received += data.length));
      server.resumeReading();
      await drained;
      await new Promise<void>((resolve) => {
        const check = () => (received >= written ? resolve() : setImmediate(check));
        check();
      });
      expect(received).toBe(written);
    });
  });
}
