/**
 * Framing scenarios over real loopback sockets (127.0.0.1:0): Pants' delimiter tests,
 * writePacked, and the length-prefixed pattern (a Struct header, then a byte count, then
 * back) with bodies of 0 bytes, 1 byte, 64 KiB and 1 MiB.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Client, Connection, Server, Struct, type Engine, type OverflowError } from '../src/index.js';
import type { Delimiter } from '../src/framing.js';
import { Peer, deferred, portOf, pseudoRandomBytes, testEngine } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

async function serve<C extends Connection>(engine: Engine, Conn: new (o?: object) => C, options: object = {}): Promise<{ server: Server<C>; port: number }> {
  const server = new Server<C>(Conn, { engine, ...options });
  await server.listen(['127.0.0.1', 0]);
  return { server, port: portOf(server.localAddress) };
}

async function waitUntil(predicate: () => boolean, what = 'condition', ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** A server connection class recording the arguments of every onRead and every 'read' event. */
function recorder(delimiter: Delimiter, encoding: BufferEncoding | null = null) {
  const reads: unknown[][] = [];
  const events: unknown[][] = [];
  const errors: Error[] = [];
  const accepted = deferred<Connection>();
  class Recorder extends Connection {
    override readDelimiter = delimiter;
    override encoding = encoding;
    override onConnect() {
      this.on('read', (...args: unknown[]) => events.push(args));
      accepted.resolve(this);
    }
    override onRead(...args: unknown[]) {
      reads.push(args);
    }
    override onError(err: Error) {
      errors.push(err);
      super.onError(err);
    }
  }
  return { Recorder, reads, events, errors, accepted: accepted.promise };
}

const sha = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

// ---------------------------------------------------------------------------

describe("Pants' delimiter scenarios, client and server both trews", () => {
  it("'\\r\\n': 'line1\\r\\nline2\\r\\n' written twice gives 4 frames", async () => {
    const engine = testEngine();
    const r = recorder('\r\n', 'utf8');
    const { port } = await serve(engine, r.Recorder);
    const client = new Client({ engine });
    await client.connect(['127.0.0.1', port]);
    client.write('line1\r\nline2\r\n');
    client.write('line1\r\nline2\r\n'); // same turn: coalesced into one segment
    await waitUntil(() => r.reads.length >= 4, '4 frames');
    client.write('line1\r\nline2\r\n'); // a later turn: a separate read
    await waitUntil(() => r.reads.length >= 6, '6 frames');
    expect(r.reads).toEqual([['line1'], ['line2'], ['line1'], ['line2'], ['line1'], ['line2']]);
    expect(r.events).toEqual(r.reads);
    expect(r.errors).toEqual([]);
  });

  it("Struct('!2H'): writePacked(42, 81) arrives as onRead(42, 81)", async () => {
    const engine = testEngine();
    const r = recorder(new Struct('!2H'));
    const { port } = await serve(engine, r.Recorder);
    const client = new Client({ engine, readDelimiter: new Struct('!2H') });
    await client.connect(['127.0.0.1', port]);
    client.writePacked(42, 81);
    await waitUntil(() => r.reads.length >= 1);
    expect(r.reads).toEqual([[42, 81]]);
    expect(r.events).toEqual([[42, 81]]); // the 'read' event carries the same values
    // On the wire: 00 2a 00 51, big-endian.
    expect(new Struct('!2H').pack(42, 81)).toEqual(Buffer.from([0x00, 0x2a, 0x00, 0x51]));
  });

  it("Struct('!2H') request/response: the server answers with writePacked from inside onRead", async () => {
    const engine = testEngine();
    class Adder extends Connection {
      override readDelimiter = new Struct('!2H');
      override onRead(a: number, b: number) {
        this.writePacked(a + 1, b + 1);
      }
    }
    const { port } = await serve(engine, Adder);
    const got: number[][] = [];
    class Asker extends Client {
      override readDelimiter = new Struct('!2H');
      override onRead(a: number, b: number) {
        got.push([a, b]);
      }
    }
    const client = new Asker({ engine });
    await client.connect(['127.0.0.1', port]);
    for (let i = 0; i < 100; i++) client.writePacked(i, 1000 + i);
    await waitUntil(() => got.length >= 100);
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => [i + 1, 1001 + i]));
  });

  it("RegExp /\\s\\s+/: 'This is  a test.  ' gives 'This is' and 'a test.'", async () => {
    const engine = testEngine();
    const r = recorder(/\s\s+/, 'utf8');
    const { port } = await serve(engine, r.Recorder);
    const client = new Client({ engine });
    await client.connect(['127.0.0.1', port]);
    client.write('This is  a test.  ');
    await waitUntil(() => r.reads.length >= 2);
    expect(r.reads).toEqual([['This is'], ['a test.']]);
  });

  it('4-byte frames, whatever the write boundaries', async () => {
    const engine = testEngine();
    const r = recorder(4, 'latin1');
    const { port } = await serve(engine, r.Recorder);
    const peer = new Peer(port);
    const conn = await r.accepted;
    let sent = 0;
    for (const piece of ['abcdefg', 'h', 'ij', 'klmnop', 'q', 'rst']) {
      await peer.write(piece);
      sent += piece.length;
      await waitUntil(() => conn.bytesRead === sent); // each piece its own read
    }
    await waitUntil(() => r.reads.length >= 5);
    expect(r.reads).toEqual([['abcd'], ['efgh'], ['ijkl'], ['mnop'], ['qrst']]);
  });
});

describe('writePacked', () => {
  async function connected(delimiter: Delimiter = null) {
    const engine = testEngine();
    const r = recorder(null);
    const { port } = await serve(engine, r.Recorder);
    const client = new Client({ engine, readDelimiter: delimiter });
    await client.connect(['127.0.0.1', port]);
    const received = () => Buffer.concat(r.reads.map(([chunk]) => chunk as Buffer));
    return { client, received, r };
  }

  it('packs with the current Struct delimiter, or with an explicit Struct given first', async () => {
    const { client, received } = await connected(new Struct('!2H'));
    expect(client.writePacked(42, 81)).toBe(true);
    client.writePacked(new Struct('<I'), 0x01020304);
    client.writePacked(new Struct('!h?3s'), -2, true, 'abc');
    // The explicit Struct is used for that call only.
    client.writePacked(1, 2);
    const want = Buffer.from([0, 42, 0, 81, 4, 3, 2, 1, 0xff, 0xfe, 1, 0x61, 0x62, 0x63, 0, 1, 0, 2]);
    await waitUntil(() => received().length >= want.length);
    expect(received()).toEqual(want);
  });

  it('follows the delimiter as it changes', async () => {
    const { client, received } = await connected(new Struct('!B'));
    client.writePacked(1);
    client.readDelimiter = new Struct('!H');
    client.writePacked(2);
    client.readDelimiter = '\n';
    expect(() => client.writePacked(3)).toThrow(TypeError);
    await waitUntil(() => received().length >= 3);
    expect(received()).toEqual(Buffer.from([1, 0, 2]));
  });

  it('a value that does not fit throws RangeError/TypeError at the call, naming the field; nothing is written', async () => {
    const { client, received } = await connected(new Struct('!2H'));
    expect(() => client.writePacked(70000, 1)).toThrow(RangeError);
    expect(() => client.writePacked(70000, 1)).toThrow(/field 1 \('H'\).*out of range 0\.\.65535/);
    expect(() => client.writePacked(1, -1)).toThrow(/field 2 \('H'\)/);
    expect(() => client.writePacked(1, 1.5)).toThrow(TypeError);
    expect(() => client.writePacked(1, 'x' as never)).toThrow(/field 2 \('H'\).*must be an integer/);
    expect(() => client.writePacked(1)).toThrow(/expected 2 values for '!2H', got 1/);
    expect(() => client.writePacked(1, 2, 3)).toThrow(TypeError);
    expect(() => client.writePacked(new Struct('!B'), 256)).toThrow(/Struct '!B': value 256 at field 1 \('B'\)/);
    expect(() => client.writePacked(new Struct('!I'), 2 ** 32)).toThrow(RangeError);
    expect(() => client.writePacked(new Struct('!q'), 2 ** 60)).toThrow(/pass a bigint/);
    expect(client.bufferedBytes).toBe(0);
    // Only this sentinel reaches the peer: none of the failed calls wrote a byte.
    client.write('END');
    await waitUntil(() => received().length >= 3);
    await new Promise((r) => setTimeout(r, 20));
    expect(received().toString('latin1')).toBe('END');
  });

  it('without a Struct delimiter or a Struct argument: TypeError saying what it needs', async () => {
    const { client } = await connected('\n');
    expect(() => client.writePacked(1, 2)).toThrow(/needs a Struct readDelimiter, or a Struct as its first argument/);
  });
});

// ---------------------------------------------------------------------------
// The length-prefixed pattern

const HEADER = new Struct('!I');

/**
 * The pattern, kept minimal: read a 4-byte big-endian length, then that many bytes, then a
 * header again. `readDelimiter = 0` is invalid, so a zero length is an empty message at once.
 */
function lengthPrefixed(bufferSize?: number) {
  const messages: Array<{ length: number; sha: string }> = [];
  const errors: Error[] = [];
  const overflows: OverflowError[] = [];
  const closed = deferred();
  class Framed extends Connection {
    override readDelimiter: Delimiter = HEADER;
    override onConnect() {
      if (bufferSize !== undefined) this.bufferSize = bufferSize;
    }
    override onRead(data: number | Buffer) {
      if (typeof data === 'number') {
        if (data === 0) this.#message(Buffer.alloc(0));
        else this.readDelimiter = data;
      } else {
        this.readDelimiter = HEADER;
        this.#message(data);
      }
    }
    #message(body: Buffer) {
      messages.push({ length: body.length, sha: sha(body) });
      // Reply: a length-prefixed raw SHA-256 digest.
      const digest = createHash('sha256').update(body).digest();
      this.writePacked(HEADER, digest.length);
      this.write(digest);
    }
    override onOverflowError(err: OverflowError) {
      overflows.push(err);
      super.onOverflowError(err);
    }
    override onError(err: Error) {
      errors.push(err);
      super.onError(err);
    }
    override onClose() {
      closed.resolve();
    }
  }
  return { Framed, messages, errors, overflows, closed: closed.promise };
}

/** A client speaking the same pattern, collecting the replies' payloads as hex. */
class ReplyReader extends Client {
  replies: string[] = [];
  override readDelimiter: Delimiter = HEADER;
  override onRead(data: number | Buffer) {
    if (typeof data === 'number') {
      if (data === 0) this.replies.push('');
      else this.readDelimiter = data;
    } else {
      this.readDelimiter = HEADER;
      this.replies.push(data.toString('hex'));
    }
  }
}

function frame(body: Buffer): Buffer {
  return Buffer.concat([HEADER.pack(body.length), body]);
}

describe('the length-prefixed pattern over a socket', () => {
  const bodies = [Buffer.alloc(0), Buffer.from('x'), pseudoRandomBytes(64 * KiB, 7), pseudoRandomBytes(MiB, 9)];

  it('readDelimiter = 0 is rejected, so a zero length must be handled by the pattern itself', () => {
    const client = new Client({ engine: testEngine() });
    expect(() => (client.readDelimiter = 0)).toThrow(TypeError);
    expect(() => (client.readDelimiter = 0)).toThrow(/positive integer/);
  });

  it('bodies of 0 bytes, 1 byte, 64 KiB and 1 MiB (bufferSize raised), sent one by one with writePacked + write', async () => {
    const engine = testEngine();
    const s = lengthPrefixed(2 * MiB);
    const { port } = await serve(engine, s.Framed);
    const client = new ReplyReader({ engine });
    await client.connect(['127.0.0.1', port]);
    for (const [i, body] of bodies.entries()) {
      client.writePacked(HEADER, body.length);
      client.write(body);
      await waitUntil(() => client.replies.length === i + 1, `reply ${i}`);
    }
    expect(s.messages).toEqual(bodies.map((b) => ({ length: b.length, sha: sha(b) })));
    expect(client.replies).toEqual(bodies.map(sha));
    expect(s.errors).toEqual([]);
  });

  it('all of them pipelined in one write, and again cut into odd pieces (headers split too)', async () => {
    const engine = testEngine();
    const s = lengthPrefixed(2 * MiB);
    const { port } = await serve(engine, s.Framed);
    const all = Buffer.concat([...bodies, ...bodies.slice().reverse()].map(frame));
    const peer = new Peer(port);
    await peer.write(all);
    await waitUntil(() => s.messages.length === 8, '8 messages');
    // Cut at 1, 2 and 3 bytes into each header, and at random points inside the bodies.
    const cuts = new Set<number>();
    let at = 0;
    for (const body of bodies) {
      cuts.add(at + 1).add(at + 3).add(at + 4 + Math.floor(body.length / 3));
      at += 4 + body.length;
    }
    const sorted = [...cuts].filter((c) => c < at).sort((a, b) => a - b);
    const one = Buffer.concat(bodies.map(frame));
    let from = 0;
    for (const cut of [...sorted, one.length]) {
      await peer.write(one.subarray(from, cut));
      from = cut;
    }
    await waitUntil(() => s.messages.length === 12, '12 messages');
    const order = [...bodies, ...bodies.slice().reverse(), ...bodies];
    expect(s.messages).toEqual(order.map((b) => ({ length: b.length, sha: sha(b) })));
    // Every reply is a length-prefixed 32-byte digest.
    await peer.untilBytes(12 * 36);
    const replies: string[] = [];
    for (let i = 0; i < 12; i++) {
      expect(peer.received.readUInt32BE(i * 36)).toBe(32);
      replies.push(peer.received.subarray(i * 36 + 4, i * 36 + 36).toString('hex'));
    }
    expect(replies).toEqual(order.map(sha));
  });

  it('a 64 KiB body fits the default bufferSize exactly; 64 KiB + 1 overflows once and closes', async () => {
    const engine = testEngine();
    const s = lengthPrefixed();
    const { port } = await serve(engine, s.Framed);
    const peer = new Peer(port);
    await peer.write(frame(Buffer.alloc(64 * KiB, 1)));
    await waitUntil(() => s.messages.length === 1);
    await peer.write(frame(Buffer.alloc(64 * KiB + 1, 2)));
    await s.closed;
    expect(s.messages.map((m) => m.length)).toEqual([64 * KiB]);
    expect(s.overflows).toHaveLength(1);
    expect(s.overflows[0]).toMatchObject({ code: 'ERR_TREWS_OVERFLOW', limit: 64 * KiB, size: 64 * KiB + 1 });
  });

  it('a 1 MiB body without raising bufferSize is an overflow, reported before the body is buffered', async () => {
    const engine = testEngine();
    const s = lengthPrefixed();
    const { port } = await serve(engine, s.Framed);
    const peer = new Peer(port);
    // Only the header and one body byte: the count delimiter is checked as soon as a byte waits.
    await peer.write(Buffer.concat([HEADER.pack(MiB), Buffer.from([0])]));
    await s.closed;
    expect(s.overflows).toHaveLength(1);
    expect(s.overflows[0]).toMatchObject({ limit: 64 * KiB, size: MiB });
    expect(s.messages).toEqual([]);
  });

  it('many zero-length messages in a row, mixed with 1-byte ones', async () => {
    const engine = testEngine();
    const s = lengthPrefixed();
    const { port } = await serve(engine, s.Framed);
    const peer = new Peer(port);
    const list = Array.from({ length: 200 }, (_, i) => (i % 3 === 0 ? Buffer.from([i & 0xff]) : Buffer.alloc(0)));
    await peer.write(Buffer.concat(list.map(frame)));
    await waitUntil(() => s.messages.length === list.length);
    expect(s.messages.map((m) => m.length)).toEqual(list.map((b) => b.length));
  });
});
