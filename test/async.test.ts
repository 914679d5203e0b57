/**
 * Async ergonomics: connect() with an AbortSignal, and `for await` over a stream's frames,
 * over real loopback sockets.
 */
import net from 'node:net';
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { AbortError, Client, ConnectError, ReadError, Struct } from '../src/index.js';
import { deferred, freePort, onCleanup, sha256, testEngine } from './helpers.js';

/** A plain node:net server: `onSocket` gets each connection. Closed after the test. */
async function rawServer(onSocket: (socket: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as net.AddressInfo).port;
}

/** A client that records its hooks. */
function recordingClient(engine: ReturnType<typeof testEngine>, options: ConstructorParameters<typeof Client>[0] = {}) {
  const hooks: string[] = [];
  class Recording extends Client {
    override onConnect() {
      hooks.push('connect');
    }
    override onConnectError(err: ConnectError) {
      hooks.push(`connectError ${err.systemCode}`);
    }
    override onReconnecting(attempt: number) {
      hooks.push(`reconnecting ${attempt}`);
    }
    override onClose() {
      hooks.push('close');
    }
  }
  return { client: new Recording({ engine, ...options }), hooks };
}

function expectAbortError(err: unknown, reason: unknown): void {
  expect(err).toBeInstanceOf(AbortError);
  expect(err).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
  expect((err as Error).cause).toBe(reason);
}

describe('connect() with an AbortSignal', () => {
  it('an already aborted signal: rejects with AbortError (cause: the reason), closes (onClose once), no onConnectError, no connection made', async () => {
    const engine = testEngine();
    let accepted = 0;
    const port = await rawServer(() => accepted++);
    const { client, hooks } = recordingClient(engine);
    const reason = new Error('not wanted');
    const err = await client.connect(['127.0.0.1', port], { signal: AbortSignal.abort(reason) }).catch((e: unknown) => e);
    expectAbortError(err, reason);
    await client.whenClosed();
    expect(hooks).toEqual(['close']);
    // A connection made after it is accepted; the aborted one never was.
    const probe = new Client({ engine });
    await probe.connect(['127.0.0.1', port]);
    await probe.close();
    expect(accepted).toBe(1);
  });

  it('an abort while the TCP connect is in flight: the socket is destroyed, AbortError, onClose once', async () => {
    const engine = testEngine();
    const port = await rawServer(() => {});
    const { client, hooks } = recordingClient(engine);
    const controller = new AbortController();
    const connecting = client.connect(['127.0.0.1', port], { signal: controller.signal });
    expect(client.connecting).toBe(true);
    controller.abort();
    const err = await connecting.catch((e: unknown) => e);
    expectAbortError(err, controller.signal.reason);
    expect((err as Error).message).toBe(`connect to 127.0.0.1:${port} was aborted`);
    await client.whenClosed();
    expect(hooks).toEqual(['close']);
    expect(client.socket!.destroyed).toBe(true);
  });

  it('an abort during a TLS handshake the server never answers: AbortError, onClose once, the server sees the connection close', async () => {
    const engine = testEngine();
    const serverSide = deferred<net.Socket>();
    const port = await rawServer((socket) => {
      socket.resume(); // swallow the ClientHello, never answer
      serverSide.resolve(socket);
    });
    const { client, hooks } = recordingClient(engine);
    const controller = new AbortController();
    const connecting = client.connect(['127.0.0.1', port], { signal: controller.signal, tls: { servername: 'localhost' } });
    const socket = await serverSide.promise;
    const serverClosed = new Promise((resolve) => socket.once('close', resolve));
    expect(client.connecting).toBe(true);
    controller.abort('user gave up');
    expectAbortError(await connecting.catch((e: unknown) => e), 'user gave up');
    await serverClosed;
    await client.whenClosed();
    expect(hooks).toEqual(['close']);
  });

  it('an abort during a reconnect wait stops retrying: AbortError, onClose once, no onConnectError', async () => {
    const engine = testEngine();
    const port = await freePort();
    const { client, hooks } = recordingClient(engine, { reconnect: { initialDelay: 60_000, maxDelay: 60_000, jitter: 0 } });
    const controller = new AbortController();
    client.on('reconnecting', () => controller.abort());
    const err = await client.connect(['127.0.0.1', port], { signal: controller.signal }).catch((e: unknown) => e);
    expectAbortError(err, controller.signal.reason);
    await client.whenClosed();
    expect(hooks).toEqual(['reconnecting 1', 'close']);
    expect(engine.channels.size).toBe(0);
  });

  it('once connected the signal no longer applies: its listener is removed and a later abort changes nothing', async () => {
    const engine = testEngine();
    const port = await rawServer((socket) => socket.pipe(socket));
    const { client, hooks } = recordingClient(engine, { readDelimiter: '\n', encoding: 'utf8' });
    const controller = new AbortController();
    await client.connect(['127.0.0.1', port], { signal: controller.signal });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    controller.abort();
    const echo = deferred<string>();
    client.once('read', echo.resolve);
    client.write('still here\n');
    expect(await echo.promise).toBe('still here');
    expect(client.connected).toBe(true);
    await client.close();
    expect(hooks).toEqual(['connect', 'close']);
  });

  it('a failed connect with a signal: onConnectError as usual, and the listener is removed', async () => {
    const engine = testEngine();
    const { client, hooks } = recordingClient(engine);
    const controller = new AbortController();
    const err = await client.connect(['127.0.0.1', await freePort()], { signal: controller.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    await client.whenClosed();
    expect(hooks).toEqual(['connectError ECONNREFUSED', 'close']);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('a signal that is not an AbortSignal is a TypeError', () => {
    const engine = testEngine();
    expect(() => new Client({ engine }).connect(1, { signal: {} as AbortSignal })).toThrow(/signal must be an AbortSignal/);
  });
});

describe('for await over a stream', () => {
  it('request/response: each line in order (after onRead), then the loop ends when the server finishes; the client closes', async () => {
    const engine = testEngine();
    const port = await rawServer((socket) => {
      socket.once('data', (question) => socket.end(`${question.toString().trim()} is 1\nand 2\nand 3\n`));
    });
    const seenByHook: string[] = [];
    class Asker extends Client {
      override readDelimiter = '\n';
      override encoding = 'utf8' as const;
      override onRead(line: string) {
        seenByHook.push(line);
      }
    }
    const client = new Asker({ engine });
    await client.connect(['127.0.0.1', port]);
    client.write('one\n');
    const lines: string[] = [];
    for await (const line of client) lines.push(line as string);
    expect(lines).toEqual(['one is 1', 'and 2', 'and 3']);
    expect(seenByHook).toEqual(lines);
    await client.whenClosed();
  });

  it("a Struct delimiter yields its values as an array (one value too), as 'read' delivers them", async () => {
    const engine = testEngine();
    const pair = new Struct('!HH');
    const port = await rawServer((socket) => socket.end(Buffer.concat([pair.pack(1, 2), pair.pack(3, 4), new Struct('!I').pack(7)])));
    // Frames wait in the iterator already cut: a delimiter change belongs in onRead, as ever.
    class Switching extends Client {
      override onRead(...values: number[]) {
        if (values[0] === 3) this.readDelimiter = new Struct('!I');
      }
    }
    const client = new Switching({ engine, readDelimiter: pair });
    await client.connect(['127.0.0.1', port]);
    const frames: unknown[] = [];
    for await (const values of client) frames.push(values);
    expect(frames).toEqual([[1, 2], [3, 4], [7]]);
  });

  it('break closes the stream, flushing what was written: the peer gets the last line, then EOF; onClose once', async () => {
    const engine = testEngine();
    const received = deferred<string>();
    const port = await rawServer((socket) => {
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('end', () => received.resolve(text));
      socket.write('first\nsecond\nthird\n');
    });
    let closes = 0;
    const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
    client.on('close', () => closes++);
    await client.connect(['127.0.0.1', port]);
    const lines: string[] = [];
    for await (const line of client) {
      lines.push(line as string);
      client.write(`got ${line}\n`);
      if (line === 'second') break;
    }
    expect(lines).toEqual(['first', 'second']);
    expect(await received.promise).toBe('got first\ngot second\n');
    await client.whenClosed();
    expect(closes).toBe(1);
  });

  it('a peer reset: the frames before it, then the loop throws the ReadError (ECONNRESET), which is not logged', async () => {
    const engine = testEngine();
    const port = await rawServer((socket) => {
      socket.write('one\n');
      socket.once('data', () => socket.resetAndDestroy()); // after the client has seen 'one'
    });
    const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
    await client.connect(['127.0.0.1', port]);
    const lines: string[] = [];
    const err = await (async () => {
      for await (const line of client) {
        lines.push(line as string);
        client.write('ack\n');
      }
    })().catch((e: unknown) => e);
    expect(lines).toEqual(['one']);
    expect(err).toBeInstanceOf(ReadError);
    expect((err as ReadError).systemCode).toBe('ECONNRESET');
    await client.whenClosed();
    expect(engine.lines).toEqual([]);
  });

  it('on a closed stream the loop ends at once; a bad highWaterMark is a RangeError', async () => {
    const engine = testEngine();
    const client = new Client({ engine });
    await client.close();
    const frames: unknown[] = [];
    for await (const frame of client) frames.push(frame);
    expect(frames).toEqual([]);
    expect(() => client.readFrames({ highWaterMark: 0 })).toThrow(RangeError);
  });

  it('backpressure: a fast writer and a slow loop; reading pauses, at most highWaterMark frames wait, the writer is held back, all 32 MiB arrive in order', async () => {
    const engine = testEngine();
    const LINE = 1024;
    const COUNT = 32 * 1024; // 32 MiB in 1 KiB lines
    const line = (i: number) => `${String(i).padStart(8, '0')} ${'x'.repeat(LINE - 10)}\n`;
    const expected = sha256(Array.from({ length: COUNT }, (_, i) => line(i)).join(''));
    let writerBlocked = 0;
    const port = await rawServer((socket) => {
      // As fast as TCP takes it: write until write() says stop, go on at 'drain'.
      let i = 0;
      const pump = () => {
        while (i < COUNT) {
          if (!socket.write(line(i++))) {
            writerBlocked++;
            socket.once('drain', pump);
            return;
          }
        }
        socket.end();
      };
      pump();
    });
    const client = new Client({ engine, readDelimiter: '\n', encoding: 'latin1' });
    await client.connect(['127.0.0.1', port]);
    const frames = client.readFrames({ highWaterMark: 8 });
    let maxQueued = 0;
    let pausedSeen = 0;
    let next = 0;
    const digest = (await import('node:crypto')).createHash('sha256');
    for await (const frame of frames) {
      const text = frame as string;
      expect(Number(text.slice(0, 8))).toBe(next++);
      digest.update(`${text}\n`);
      maxQueued = Math.max(maxQueued, frames.queued);
      if (client.readingPaused) pausedSeen++;
      // A slow consumer: a turn of the event loop per frame, so the network outruns it.
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(next).toBe(COUNT);
    expect(digest.digest('hex')).toBe(expected);
    expect(maxQueued).toBeLessThanOrEqual(8);
    expect(pausedSeen).toBeGreaterThan(0);
    // The bytes we did not take waited in the writer (and the kernel), not in our memory.
    expect(writerBlocked).toBeGreaterThan(0);
  });
});
