import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Client, Connection, Server, Struct, type Engine } from '../src/index.js';
import { ConnectError, HookError, OverflowError, TruncatedFrameError } from '../src/errors.js';
import type { Delimiter } from '../src/framing.js';
import { Peer, deferred, freePort, portOf, pseudoRandomBytes, python, sha256, tempDir, testEngine } from './helpers.js';

/** Start a server on 127.0.0.1:0 with the given connection class. */
async function serve<C extends Connection>(engine: Engine, Conn: new (o?: object) => C, options: object = {}): Promise<{ server: Server<C>; port: number }> {
  const server = new Server<C>(Conn, { engine, ...options });
  await server.listen(['127.0.0.1', 0]);
  return { server, port: portOf(server.localAddress) };
}

class Echo extends Connection {
  override readDelimiter: Delimiter = '\n';
  override onRead(line: Buffer) {
    this.write(line);
    this.write('\n');
  }
}

/** A connection that records the frames it gets and every hook call, in order. */
function recorder(delimiter: Delimiter, extra: Partial<Connection> = {}) {
  const frames: unknown[][] = [];
  const hooks: string[] = [];
  const errors: Error[] = [];
  const closed = deferred();
  const accepted = deferred<Connection>();
  class Recorder extends Connection {
    override readDelimiter = delimiter;
    override onConnect() {
      hooks.push('connect');
      accepted.resolve(this);
    }
    override onRead(...values: unknown[]) {
      hooks.push('read');
      frames.push(values);
    }
    override onEnd() {
      hooks.push('end');
    }
    override onError(err: Error) {
      hooks.push(`error:${(err as { code?: string }).code}`);
      errors.push(err);
      super.onError(err);
    }
    override onClose() {
      hooks.push('close');
      closed.resolve();
    }
  }
  Object.assign(Recorder.prototype, extra);
  return { Recorder, frames, hooks, errors, closed: closed.promise, accepted: accepted.promise };
}

describe('echo server', () => {
  it('echoes lines for one client', async () => {
    const engine = testEngine();
    const { port } = await serve(engine, Echo);
    const peer = new Peer(port);
    await peer.write('hello\nworld\n');
    await peer.untilText('hello\nworld\n');
    expect(peer.text).toBe('hello\nworld\n');
  });

  it('serves two sequential clients and two concurrent ones', async () => {
    const engine = testEngine();
    const { server, port } = await serve(engine, Echo);
    for (const word of ['first', 'second']) {
      const peer = new Peer(port);
      await peer.write(`${word}\n`);
      await peer.untilText(`${word}\n`);
      peer.socket.end();
      await peer.untilClosed();
    }
    const a = new Peer(port);
    const b = new Peer(port);
    await Promise.all([a.connected(), b.connected()]);
    await Promise.all([a.write('from a\n'), b.write('from b\n')]);
    await Promise.all([a.untilText('from a\n'), b.untilText('from b\n')]);
    expect(a.text).toBe('from a\n');
    expect(b.text).toBe('from b\n');
    expect(server.connections.size).toBe(2);
  });

  it('echoes to everyone through server.connections', async () => {
    const engine = testEngine();
    class ToAll extends Connection {
      override readDelimiter = '\n';
      override onRead(line: Buffer) {
        for (const c of this.server.connections) c.write(`${String(line)}\n`);
      }
    }
    const { server, port } = await serve(engine, ToAll);
    const peers = [new Peer(port), new Peer(port), new Peer(port)];
    await Promise.all(peers.map((p) => p.connected()));
    await waitForConnections(server, 3);
    await peers[0]!.write('hi all\n');
    await Promise.all(peers.map((p) => p.untilText('hi all\n')));
    expect(peers.map((p) => p.text)).toEqual(['hi all\n', 'hi all\n', 'hi all\n']);
  });

  it('broadcast skips the excepted connection', async () => {
    const engine = testEngine();
    class Shout extends Connection {
      override readDelimiter = '\n';
      override onRead(line: Buffer) {
        this.server.broadcast(`${String(line)}!\n`, this);
      }
    }
    const { server, port } = await serve(engine, Shout);
    const [a, b] = [new Peer(port), new Peer(port)];
    await waitForConnections(server, 2);
    await a.write('x\n');
    await b.untilText('x!\n');
    await b.write('y\n');
    await a.untilText('y!\n');
    expect(a.text).toBe('y!\n');
    expect(b.text).toBe('x!\n');
  });
});

async function waitForConnections(server: Server<Connection>, n: number): Promise<void> {
  while (server.connections.size < n) await new Promise((r) => server.once('accept', r));
}

describe('readDelimiter over a socket', () => {
  const cases: Array<[string, Delimiter, Buffer | string, unknown[][]]> = [
    ['null: chunks as they arrive', null, 'abc', [[Buffer.from('abc')]]],
    ['string', '\r\n', 'one\r\ntwo\r\n', [[Buffer.from('one')], [Buffer.from('two')]]],
    ['Buffer', Buffer.from([0xff, 0x00]), Buffer.from([1, 0xff, 0, 2, 3, 0xff, 0]), [[Buffer.from([1])], [Buffer.from([2, 3])]]],
    ['byte count', 4, 'abcdefgh', [[Buffer.from('abcd')], [Buffer.from('efgh')]]],
    ['Struct', new Struct('!2H'), Buffer.from([0, 42, 0, 81]), [[42, 81]]],
    ['RegExp', /\s\s+/, 'This is  a test.  ', [[Buffer.from('This is')], [Buffer.from('a test.')]]],
  ];
  for (const [name, delimiter, input, expected] of cases) {
    it(name, async () => {
      const engine = testEngine();
      const r = recorder(delimiter);
      const { port } = await serve(engine, r.Recorder);
      const peer = new Peer(port);
      await peer.write(input);
      await waitUntil(() => r.frames.length >= expected.length);
      expect(r.frames).toEqual(expected);
    });
  }

  it('a sticky RegExp delivers the match array', async () => {
    const engine = testEngine();
    const r = recorder(/(\w+)=(\d+);/y);
    r.Recorder.prototype.encoding = 'utf8';
    const { port } = await serve(engine, r.Recorder);
    const peer = new Peer(port);
    await peer.write('a=1;bb=22;');
    await waitUntil(() => r.frames.length >= 2);
    expect(r.frames.map(([m]) => [...(m as string[])])).toEqual([
      ['a=1;', 'a', '1'],
      ['bb=22;', 'bb', '22'],
    ]);
  });

  it('switching delimiters inside onRead applies to bytes already buffered', async () => {
    const engine = testEngine();
    const got: string[] = [];
    const done = deferred();
    class Switcher extends Connection {
      override readDelimiter: Delimiter = '\r\n';
      override encoding = 'utf8' as const;
      override onRead(data: string) {
        got.push(data);
        if (this.readDelimiter === '\r\n') this.readDelimiter = Number(data);
        else this.readDelimiter = '\r\n';
        if (got.length === 4) done.resolve();
      }
    }
    const { port } = await serve(engine, Switcher);
    const peer = new Peer(port);
    await peer.write('5\r\nhello3\r\nabc');
    await done.promise;
    expect(got).toEqual(['5', 'hello', '3', 'abc']);
  });

  it('finds a delimiter split byte by byte across reads', async () => {
    const engine = testEngine();
    const r = recorder('\r\n\r\n');
    const { port } = await serve(engine, r.Recorder);
    const peer = new Peer(port);
    const conn = await r.accepted;
    const message = 'GET / HTTP/1.0\r\nHost: x\r\n\r\nnext\r\n\r\n';
    for (let i = 0; i < message.length; i++) {
      await peer.write(message[i]!);
      // Each byte its own read: wait until the server has it before sending the next.
      await waitUntil(() => conn.bytesRead === i + 1);
    }
    await waitUntil(() => r.frames.length >= 2);
    expect(r.frames.map(([f]) => String(f))).toEqual(['GET / HTTP/1.0\r\nHost: x', 'next']);
  });

  it('encoding delivers strings, decoding multi-byte characters split across chunks', async () => {
    const engine = testEngine();
    const r = recorder(null);
    r.Recorder.prototype.encoding = 'utf8';
    const { port } = await serve(engine, r.Recorder);
    const peer = new Peer(port);
    const euro = Buffer.from('€'); // 3 bytes
    await peer.write(euro.subarray(0, 1));
    await waitUntil(() => r.frames.length >= 1);
    await peer.write(euro.subarray(1));
    await waitUntil(() => r.frames.map(([s]) => s).join('') === '€');
    expect(r.frames.every(([s]) => typeof s === 'string')).toBe(true);
  });
});

describe('bufferSize', () => {
  it('delivers a frame of exactly bufferSize bytes', async () => {
    const engine = testEngine();
    const r = recorder('\n');
    const { port } = await serve(engine, r.Recorder);
    const peer = new Peer(port);
    await peer.write(Buffer.concat([Buffer.alloc(65536, 'a'), Buffer.from('\n')]));
    await waitUntil(() => r.frames.length === 1);
    expect((r.frames[0]![0] as Buffer).length).toBe(65536);
    expect(r.errors).toEqual([]);
  });

  it('one byte past the limit without a delimiter calls onOverflowError once, then closes', async () => {
    const engine = testEngine();
    const overflows: OverflowError[] = [];
    const r = recorder('\n', {
      onOverflowError(this: Connection, err: OverflowError) {
        overflows.push(err);
        Connection.prototype.onOverflowError.call(this, err);
      },
    });
    const { port } = await serve(engine, r.Recorder);
    const peer = new Peer(port);
    await peer.write(Buffer.alloc(65536, 'a'));
    await peer.write(Buffer.alloc(1, 'a'));
    await r.closed;
    expect(overflows).toHaveLength(1);
    expect(overflows[0]).toMatchObject({ code: 'ERR_TREWS_OVERFLOW', limit: 65536, size: 65537 });
    expect(r.hooks.slice(-2)).toEqual(['error:ERR_TREWS_OVERFLOW', 'close']);
    expect(engine.lines.some((l) => l.includes('ERR_TREWS_OVERFLOW'))).toBe(true);
  });

  it('a whole frame over the limit arriving in one piece overflows too', async () => {
    const engine = testEngine();
    const r = recorder('\n');
    const { port } = await serve(engine, r.Recorder, { connectionOptions: { bufferSize: 100 } });
    const peer = new Peer(port);
    await peer.write(`${'b'.repeat(101)}\nok\n`);
    await r.closed;
    expect(r.frames).toEqual([]);
    expect(r.errors[0]).toBeInstanceOf(OverflowError);
    expect(r.errors[0]).toMatchObject({ limit: 100, size: 101 });
  });

  it('an overriding onOverflowError may keep the channel: the oversized frame is skipped', async () => {
    const engine = testEngine();
    const r = recorder('\n', { onOverflowError() {} });
    const { port } = await serve(engine, r.Recorder, { connectionOptions: { bufferSize: 10 } });
    const peer = new Peer(port);
    await peer.write('short\nthis line is far too long\nafter\n');
    await waitUntil(() => r.frames.length >= 2);
    expect(r.frames.map(([f]) => String(f))).toEqual(['short', 'after']);
  });
});

describe('writes', () => {
  it('coalesces the writes of one dispatch into one socket write', async () => {
    const engine = testEngine();
    const writesPerDispatch: number[] = [];
    class Counting extends Connection {
      override readDelimiter = '\n';
      override onConnect() {
        const socket = this.socket!;
        const original = socket.write.bind(socket) as (...a: unknown[]) => boolean;
        socket.write = ((...args: unknown[]) => {
          writesPerDispatch.push(1);
          return original(...args);
        }) as typeof socket.write;
      }
      override onRead(line: Buffer) {
        this.write(line);
        this.write('\n');
      }
    }
    const { port } = await serve(engine, Counting);
    const peer = new Peer(port);
    const lines = Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join('');
    await peer.write(lines);
    await peer.untilText(lines);
    // 100 lines, 200 write() calls, arrived in very few chunks: one socket write per chunk.
    expect(writesPerDispatch.length).toBeLessThanOrEqual(peer.chunks.length + 2);
    expect(writesPerDispatch.length).toBeLessThan(10);
  });

  it('writes outside a dispatch in one turn go out together', async () => {
    const engine = testEngine();
    const { server, port } = await serve(engine, Connection);
    const peer = new Peer(port);
    await waitForConnections(server, 1);
    const conn = [...server.connections][0]!;
    for (let i = 0; i < 50; i++) conn.write(`${i},`);
    await peer.untilText('49,');
    expect(peer.chunks.length).toBe(1);
  });

  it('write() returns false above the high-water mark and onWrite fires when drained', async () => {
    const engine = testEngine();
    const drained = deferred();
    let returned: boolean | undefined;
    class Big extends Connection {
      override onConnect() {
        returned = this.write(Buffer.alloc(1 << 20, 'x'));
      }
      override onWrite() {
        drained.resolve();
      }
    }
    const { port } = await serve(engine, Big, { connectionOptions: { writeHighWaterMark: 1024 } });
    const peer = new Peer(port);
    await peer.untilBytes(1 << 20);
    await drained.promise;
    expect(returned).toBe(false);
  });

  it('8 MiB written then close() arrives intact', async () => {
    const engine = testEngine();
    const payload = pseudoRandomBytes(8 << 20);
    class Sender extends Connection {
      override onConnect() {
        this.write(payload);
        void this.close();
      }
    }
    const { port } = await serve(engine, Sender);
    const peer = new Peer(port);
    await peer.until(() => peer.ended, 'end', 15_000);
    expect(peer.received.length).toBe(payload.length);
    expect(sha256(peer.received)).toBe(sha256(payload));
  });

  it('a client writes 8 MiB then close(): the server receives it all', async () => {
    const engine = testEngine();
    const payload = pseudoRandomBytes(8 << 20, 7);
    const chunks: Buffer[] = [];
    const r = recorder(null, {
      onRead(data: Buffer) {
        chunks.push(data);
      },
    });
    const { port } = await serve(engine, r.Recorder);
    const client = new Client({ engine });
    await client.connect(['127.0.0.1', port]);
    client.write(payload);
    await client.close();
    await r.closed;
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(payload));
  });

  it('writeFile sends a file in order with the writes around it, honouring offset and length', async () => {
    const engine = testEngine();
    const dir = tempDir();
    const file = path.join(dir, 'data.bin');
    const content = pseudoRandomBytes(300_000, 3);
    writeFileSync(file, content);
    const sent = deferred<number[]>();
    class Files extends Connection {
      override onConnect() {
        this.write('<');
        const whole = this.writeFile(file);
        this.write('|');
        const part = this.writeFile(file, { offset: 1000, length: 5000 });
        this.write('>');
        void Promise.all([whole, part]).then(sent.resolve);
        void this.close();
      }
    }
    const { port } = await serve(engine, Files);
    const peer = new Peer(port);
    await peer.until(() => peer.ended, 'end');
    expect(await sent.promise).toEqual([300_000, 5000]);
    const expected = Buffer.concat([Buffer.from('<'), content, Buffer.from('|'), content.subarray(1000, 6000), Buffer.from('>')]);
    expect(sha256(peer.received)).toBe(sha256(expected));
  });

  it('writeFile of a missing file rejects and reaches onWriteError with the system code', async () => {
    const engine = testEngine();
    const { port } = await serve(engine, Connection);
    const client = new Client({ engine });
    const seen = deferred<Error>();
    client.on('writeError', seen.resolve);
    await client.connect(['127.0.0.1', port]);
    const err = await client.writeFile(path.join(tempDir(), 'missing')).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('ENOENT');
    expect(await seen.promise).toMatchObject({ code: 'ERR_TREWS_WRITE', systemCode: 'ENOENT' });
  });

  it('write() rejects bad input with a TypeError naming what it takes', async () => {
    const engine = testEngine();
    const client = new Client({ engine });
    expect(() => client.write(42 as never)).toThrow(/string, Buffer or Uint8Array/);
  });

  it('writePacked packs with the Struct delimiter or an explicit Struct', async () => {
    const engine = testEngine();
    const r = recorder(null);
    const { port } = await serve(engine, r.Recorder);
    const client = new Client({ engine, readDelimiter: new Struct('!2H') });
    await client.connect(['127.0.0.1', port]);
    client.writePacked(42, 81);
    client.writePacked(new Struct('!B'), 7);
    await waitUntil(() => Buffer.concat(r.frames.map(([f]) => f as Buffer)).length >= 5);
    expect(Buffer.concat(r.frames.map(([f]) => f as Buffer))).toEqual(Buffer.from([0, 42, 0, 81, 7]));
  });
});

describe('half-close and close', () => {
  it("a peer's half-close never loses the reply to its last line", async () => {
    const engine = testEngine();
    const r = recorder('\n', {
      onRead(this: Connection, line: Buffer) {
        r.hooks.push('read');
        this.write(`echo:${String(line)}\n`);
      },
    });
    const { port } = await serve(engine, r.Recorder);
    const peer = new Peer(port);
    await peer.write('one\ntwo\nlast-without-newline');
    peer.socket.end();
    await peer.untilClosed();
    expect(peer.text).toBe('echo:one\necho:two\necho:last-without-newline\n');
    await r.closed;
    expect(r.hooks).toEqual(['connect', 'read', 'read', 'read', 'end', 'close']);
  });

  it('allowHalfOpen keeps the channel writable after the peer FIN until it closes', async () => {
    const engine = testEngine();
    const r = recorder('\n', {
      onEnd(this: Connection) {
        this.write('late reply\n');
        void this.close();
      },
    });
    const { port } = await serve(engine, r.Recorder, { connectionOptions: { allowHalfOpen: true } });
    const peer = new Peer(port);
    await peer.connected();
    peer.socket.end();
    await peer.untilClosed();
    expect(peer.text).toBe('late reply\n');
  });

  it('end() half-closes: the peer sees EOF and can still send', async () => {
    const engine = testEngine();
    const r = recorder('\n');
    const { port } = await serve(engine, r.Recorder);
    const peer = new Peer(port, { allowHalfOpen: true });
    const conn = await r.accepted;
    conn.write('bye\n');
    conn.end();
    await peer.until(() => peer.ended, 'end');
    expect(peer.text).toBe('bye\n');
    await peer.write('still here\n');
    await waitUntil(() => r.frames.length === 1);
    expect(String(r.frames[0]![0])).toBe('still here');
    expect(() => conn.write('x')).toThrow(/after end\(\)/);
  });

  it('a fixed-size frame cut short by the peer is reported as ERR_TREWS_TRUNCATED', async () => {
    const engine = testEngine();
    const r = recorder(4);
    const { port } = await serve(engine, r.Recorder);
    const peer = new Peer(port);
    await peer.write('abcdef');
    peer.socket.end();
    await r.closed;
    expect(r.frames).toEqual([[Buffer.from('abcd')]]);
    expect(r.errors[0]).toBeInstanceOf(TruncatedFrameError);
    expect((r.errors[0] as TruncatedFrameError).remainder).toEqual(Buffer.from('ef'));
  });

  it('close() inside onRead stops delivery of frames still buffered', async () => {
    const engine = testEngine();
    const r = recorder('\n', {
      onRead(this: Connection, line: Buffer) {
        r.frames.push([line]);
        this.write('bye\n');
        void this.close();
      },
    });
    const { port } = await serve(engine, r.Recorder);
    const peer = new Peer(port);
    await peer.write('a\nb\nc\n');
    await r.closed;
    await peer.untilClosed();
    expect(r.frames.map(([f]) => String(f))).toEqual(['a']);
    expect(peer.text).toBe('bye\n');
  });

  it('pauseReading inside onRead stops delivery at once; resumeReading delivers the rest', async () => {
    const engine = testEngine();
    const got: string[] = [];
    const paused = deferred<Connection>();
    class Pauser extends Connection {
      override readDelimiter = '\n';
      override onRead(line: Buffer) {
        got.push(String(line));
        if (got.length === 1) {
          this.pauseReading();
          paused.resolve(this);
        }
      }
    }
    const { port } = await serve(engine, Pauser);
    const peer = new Peer(port);
    await peer.write('1\n2\n3\n');
    const conn = await paused.promise;
    await new Promise((r) => setImmediate(r));
    expect(got).toEqual(['1']);
    conn.resumeReading();
    await waitUntil(() => got.length === 3);
    expect(got).toEqual(['1', '2', '3']);
  });

  it('close(false) drops what is queued; close() resolves after onClose', async () => {
    const engine = testEngine();
    const order: string[] = [];
    class Quiet extends Connection {
      override onClose() {
        order.push('onClose');
      }
    }
    const { server, port } = await serve(engine, Quiet);
    const peer = new Peer(port);
    await waitForConnections(server, 1);
    const conn = [...server.connections][0]!;
    conn.write('never sent');
    const closing = conn.close(false).then(() => order.push('resolved'));
    expect(server.connections.size).toBe(0);
    await closing;
    await peer.untilClosed();
    expect(order).toEqual(['onClose', 'resolved']);
    expect(peer.text).toBe('');
    expect(conn.closed).toBe(true);
  });

  it('a graceful close to a peer that never finishes is forced after closeTimeout', async () => {
    const engine = testEngine();
    const r = recorder('\n');
    const { port } = await serve(engine, r.Recorder, { connectionOptions: { closeTimeout: 200 } });
    const peer = new Peer(port, { allowHalfOpen: true }); // reads, but never ends its side
    const conn = await r.accepted;
    conn.write('bye\n');
    const started = engine.now();
    await conn.close();
    expect(engine.now() - started).toBeGreaterThanOrEqual(150);
    expect(conn.forced).toBe(true);
    await peer.until(() => peer.ended, 'end');
    expect(peer.text).toBe('bye\n');
  });
});

describe('errors', () => {
  it('a refused connect calls onConnectError then onClose, once each, and rejects with the same error', async () => {
    const engine = testEngine();
    const port = await freePort(); // nobody listens there: a refused connect
    const hooks: string[] = [];
    let seen: ConnectError | undefined;
    class C extends Client {
      override onConnectError(err: ConnectError) {
        hooks.push('connectError');
        seen = err;
      }
      override onConnect() {
        hooks.push('connect');
      }
      override onClose() {
        hooks.push('close');
      }
    }
    const client = new C({ engine });
    const err = await client.connect(['127.0.0.1', port]).catch((e: unknown) => e);
    await client.whenClosed();
    expect(hooks).toEqual(['connectError', 'close']);
    expect(err).toBe(seen);
    expect(err).toBeInstanceOf(ConnectError);
    expect(err).toMatchObject({ code: 'ERR_TREWS_CONNECT', systemCode: 'ECONNREFUSED' });
    expect((err as ConnectError).cause).toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('a refused connect with default hooks logs one line and never crashes', async () => {
    const engine = testEngine();
    const port = await freePort();
    const client = new Client({ engine });
    void client.connect(['127.0.0.1', port]); // not awaited: hooks only, Pants style
    await client.whenClosed();
    expect(engine.lines).toHaveLength(1);
    expect(engine.lines[0]).toMatch(/ERR_TREWS_CONNECT.*ECONNREFUSED/);
  });

  it('an awaited failing connect is not logged: the caller handles it', async () => {
    const engine = testEngine();
    const port = await freePort();
    const client = new Client({ engine });
    await expect(client.connect(['127.0.0.1', port])).rejects.toBeInstanceOf(ConnectError);
    expect(engine.lines).toEqual([]);
  });

  it('an unresolvable host is a ConnectError, not a crash', async () => {
    const engine = testEngine();
    const client = new Client({ engine });
    const err = await client.connect(['no-such-host.invalid', 80]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL']).toContain((err as ConnectError).systemCode);
    await client.whenClosed();
  });

  it('a peer reset reaches onReadError then onClose; the server and other connections keep working', async () => {
    const engine = testEngine();
    const r = recorder('\n', {
      onConnect(this: Connection) {
        r.hooks.push('connect');
        this.write('ready\n');
      },
    });
    const { server, port } = await serve(engine, r.Recorder);
    const bystander = new Peer(port);
    await bystander.connected();
    await waitForConnections(server, 1);
    // Once greeted, Python closes with SO_LINGER 0: a TCP reset. (No data before it: libuv
    // reports data and a reset that arrive in the same poll as data then EOF.)
    await python(
      `import socket, struct, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
assert s.recv(100) == b'ready\\n'
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
s.close()`,
      [String(port)],
    );
    await r.closed;
    expect(r.hooks.filter((h) => h !== 'connect')).toEqual(['error:ERR_TREWS_READ', 'close']);
    expect(r.errors[0]).toMatchObject({ systemCode: 'ECONNRESET' });
    expect(engine.lines).toEqual([]); // a vanished peer is routine: no log line by default
    expect(server.listening).toBe(true);
    await bystander.write('still fine\n');
    await waitUntil(() => r.frames.some(([f]) => String(f) === 'still fine'));
  });

  it('a throwing onRead goes to onError as a HookError; the server serves on', async () => {
    const engine = testEngine();
    const r = recorder('\n', {
      onRead(line: Buffer) {
        if (String(line) === 'boom') throw new Error('kaboom');
        r.frames.push([line]);
      },
    });
    const { port } = await serve(engine, r.Recorder);
    const bad = new Peer(port);
    await bad.write('boom\n');
    await bad.untilClosed();
    expect(r.errors[0]).toBeInstanceOf(HookError);
    expect(r.errors[0]).toMatchObject({ code: 'ERR_TREWS_HOOK', hook: 'onRead' });
    expect(((r.errors[0] as HookError).cause as Error).message).toBe('kaboom');
    const good = new Peer(port);
    await good.write('fine\n');
    await waitUntil(() => r.frames.length === 1);
  });

  it('a throwing onConnect, onClose and onError never crash the process', async () => {
    const engine = testEngine();
    const reported: unknown[] = [];
    engine.on('error', (err) => reported.push(err));
    const closes = deferred();
    class Grumpy extends Connection {
      override onConnect(): void {
        throw new Error('connect hook broke');
      }
      override onError(err: Error): void {
        super.onError(err);
        throw new Error('error hook broke');
      }
      override onClose(): void {
        closes.resolve();
        throw new Error('close hook broke');
      }
    }
    const { port } = await serve(engine, Grumpy);
    const peer = new Peer(port);
    await peer.untilClosed();
    await closes.promise;
    await new Promise((r) => setImmediate(r));
    expect(reported.map((e) => (e as Error).message)).toContain('error hook broke');
  });

  it('every hook has an event emitted after it with the same arguments', async () => {
    const engine = testEngine();
    const { port } = await serve(engine, Echo);
    const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
    const events: unknown[][] = [];
    client.on('connect', () => events.push(['connect']));
    client.on('read', (line: string) => events.push(['read', line]));
    client.on('end', () => events.push(['end']));
    client.on('close', () => events.push(['close']));
    await client.connect(['127.0.0.1', port]);
    client.write('ping\n');
    await new Promise((r) => client.once('read', r));
    await client.close();
    expect(events).toEqual([['connect'], ['read', 'ping'], ['close']]);
  });
});

describe('properties and addresses', () => {
  it('reports addresses, bytes and state, still readable inside onClose', async () => {
    const engine = testEngine();
    const seen = deferred<unknown>();
    class Watch extends Connection {
      override readDelimiter = '\n';
      override onRead() {
        this.write('ok\n');
      }
      override onClose() {
        seen.resolve({ remote: this.remoteAddress, local: this.localAddress, read: this.bytesRead, written: this.bytesWritten });
      }
    }
    const { port } = await serve(engine, Watch);
    const client = new Client({ engine, readDelimiter: '\n' });
    expect(client.connected).toBe(false);
    const connecting = client.connect(`127.0.0.1:${port}`);
    expect(client.connecting).toBe(true);
    await connecting;
    expect(client.connected).toBe(true);
    expect(client.remoteAddress).toEqual({ address: '127.0.0.1', port, family: 'IPv4' });
    client.write('hi\n');
    await new Promise((r) => client.once('read', r));
    await client.close();
    const info = (await seen.promise) as { remote: unknown; local: unknown; read: number; written: number };
    expect(info.local).toEqual({ address: '127.0.0.1', port, family: 'IPv4' });
    expect(info.remote).toEqual(client.localAddress);
    expect(info.read).toBe(3);
    expect(info.written).toBe(3);
    expect(client.closed).toBe(true);
  });

  it("keeps an accepted connection's addresses readable in onClose after the peer resets", async () => {
    const engine = testEngine();
    const seen = deferred<{ remote: unknown; local: unknown; name: string }>();
    class Watch extends Connection {
      override readDelimiter = '\n';
      override onRead() {
        this.write('ok\n');
      }
      override onClose() {
        seen.resolve({ remote: this.remoteAddress, local: this.localAddress, name: String(this) });
      }
    }
    const { port } = await serve(engine, Watch);
    const peer = new Peer(port);
    peer.socket.write('hi\n');
    await peer.until(() => peer.received.toString() === 'ok\n');
    const peerPort = peer.socket.localPort;
    // Nothing asked for the addresses before the reset: they are captured on the way.
    peer.socket.resetAndDestroy();
    const info = await seen.promise;
    expect(info.remote).toEqual({ address: '127.0.0.1', port: peerPort, family: 'IPv4' });
    expect(info.local).toEqual({ address: '127.0.0.1', port, family: 'IPv4' });
    expect(info.name).toMatch(new RegExp(`^Watch#\\d+\\(127\\.0\\.0\\.1:${peerPort}\\)$`));
  });

  it('connects over IPv6 loopback', async () => {
    const engine = testEngine();
    const server = new Server(Echo, { engine });
    const listened = await server.listen(['::1', 0]).then(
      () => true,
      () => false,
    );
    if (!listened) return; // No IPv6 on this machine: nothing to test.
    const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
    await client.connect(`[::1]:${portOf(server.localAddress)}`);
    expect(client.remoteAddress).toMatchObject({ address: '::1', family: 'IPv6' });
    client.write('six\n');
    const [line] = await new Promise<unknown[]>((r) => client.once('read', (...a: unknown[]) => r(a)));
    expect(line).toBe('six');
  });

  it('rejects invalid addresses and delimiters with clear errors', () => {
    const engine = testEngine();
    const client = new Client({ engine });
    expect(() => client.connect(70000)).toThrow(RangeError);
    expect(() => client.connect({} as never)).toThrow(/port number/);
    expect(() => {
      client.readDelimiter = 0;
    }).toThrow(/positive integer/);
    expect(() => {
      client.readDelimiter = {} as never;
    }).toThrow(TypeError);
    expect(() => {
      client.bufferSize = -5;
    }).toThrow(RangeError);
  });
});

/** Wait for a condition that socket events make true (polls on event-loop turns, bounded). */
async function waitUntil(predicate: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for condition');
    await new Promise((r) => setImmediate(r));
  }
}
