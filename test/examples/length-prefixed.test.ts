/**
 * The length-prefixed example: the protocol mixin in-process (port 0), a Python client built
 * on `struct.pack('!I', len)` as the independent peer, and `main.ts` run as a process.
 */
import { describe, expect, it } from 'vitest';
import { HookError, Server, type Engine, type OverflowError } from '../../src/index.js';
import { HEADER, LengthPrefixedClient, LengthPrefixedConnection } from '../../examples/length-prefixed/protocol.js';
import { startHashServer } from '../../examples/length-prefixed/hash-server.js';
import { Peer, deferred, freePort, portOf, pseudoRandomBytes, python, sha256, testEngine } from '../helpers.js';
import { spawnWithTsx } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
async function waitUntil(predicate: () => boolean, what = 'condition', ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** A client collecting every reply as a string. */
class Collector extends LengthPrefixedClient {
  replies: string[] = [];
  override onMessage(body: Buffer): void {
    this.replies.push(body.toString());
  }
}

async function hashServer(engine: Engine, maxMessageSize?: number) {
  const server = await startHashServer({ address: ['127.0.0.1', 0], engine, ...(maxMessageSize !== undefined && { maxMessageSize }) });
  return portOf(server.localAddress);
}

const frame = (body: Buffer): Buffer => Buffer.concat([HEADER.pack(body.length), body]);

describe('length-prefixed example, in-process', () => {
  const bodies = [Buffer.alloc(0), Buffer.from('x'), pseudoRandomBytes(64 * KiB, 3), pseudoRandomBytes(MiB, 5)];

  it('answers messages of 0 bytes, 1 byte, 64 KiB and 1 MiB with their SHA-256, one at a time and pipelined', async () => {
    const engine = testEngine();
    const port = await hashServer(engine);
    const client = new Collector({ engine });
    await client.connect(['127.0.0.1', port]);
    for (const [i, body] of bodies.entries()) {
      client.sendMessage(body);
      await waitUntil(() => client.replies.length === i + 1, `reply ${i}`);
    }
    for (const body of bodies) client.sendMessage(body);
    await waitUntil(() => client.replies.length === 8, '8 replies');
    expect(client.replies).toEqual([...bodies, ...bodies].map((b) => sha256(b)));
    // The client raised its own bufferSize only as far as it needed (replies are 64 bytes).
    expect(client.bufferSize).toBe(64 * KiB);
  });

  it('sendMessage writes the 4-byte big-endian header and the body, strings as UTF-8', async () => {
    const engine = testEngine();
    const port = await hashServer(engine);
    const client = new Collector({ engine });
    await client.connect(['127.0.0.1', port]);
    client.sendMessage('héllo');
    await waitUntil(() => client.replies.length === 1);
    expect(client.replies).toEqual([sha256(Buffer.from('héllo', 'utf8'))]);
    expect(client.bytesWritten).toBe(4 + 6);
  });

  it('sendMessage refuses a message over maxMessageSize with a RangeError, writing nothing', async () => {
    const engine = testEngine();
    const port = await hashServer(engine);
    const client = new Collector({ engine });
    client.maxMessageSize = 64; // the replies are 64 hex characters
    await client.connect(['127.0.0.1', port]);
    expect(() => client.sendMessage(Buffer.alloc(65))).toThrow(RangeError);
    expect(() => client.sendMessage(Buffer.alloc(65))).toThrow(/65-byte message exceeds maxMessageSize 64/);
    expect(client.bufferedBytes).toBe(0);
    client.sendMessage(Buffer.alloc(64));
    await waitUntil(() => client.replies.length === 1);
    expect(client.replies).toEqual([sha256(Buffer.alloc(64))]);
    expect(client.bytesWritten).toBe(4 + 64);
  });

  it('a header over maxMessageSize: onOverflowError once, before the body is buffered, then the connection closes', async () => {
    const engine = testEngine();
    const overflows: OverflowError[] = [];
    const closed = deferred();
    class Strict extends LengthPrefixedConnection {
      override maxMessageSize = 100;
      override onOverflowError(err: OverflowError) {
        overflows.push(err);
        super.onOverflowError(err);
      }
      override onClose() {
        closed.resolve();
      }
    }
    const server = new Server(Strict, { engine });
    await server.listen(['127.0.0.1', 0]);
    const peer = new Peer(portOf(server.localAddress));
    await peer.write(HEADER.pack(4 * 1024 * MiB - 1)); // a 4 GiB claim, no body at all
    await closed.promise;
    await peer.untilClosed();
    expect(overflows).toHaveLength(1);
    expect(overflows[0]).toMatchObject({ code: 'ERR_TREWS_OVERFLOW', limit: 100, size: 4 * 1024 * MiB - 1 });
    expect(peer.received.length).toBe(0);
  });

  it('an onOverflowError that keeps the connection: the oversized body is skipped and the next message answered', async () => {
    const engine = testEngine();
    let overflows = 0;
    const got: number[] = [];
    class Lenient extends LengthPrefixedConnection {
      override maxMessageSize = 100;
      override onConnect() {
        this.bufferSize = 64; // the skip goes in pieces of at most bufferSize bytes
      }
      override onOverflowError() {
        overflows++;
      }
      override onMessage(body: Buffer) {
        got.push(body.length);
        this.sendMessage(sha256(body));
      }
    }
    const server = new Server(Lenient, { engine });
    await server.listen(['127.0.0.1', 0]);
    const peer = new Peer(portOf(server.localAddress));
    const wire = Buffer.concat([frame(Buffer.alloc(5, 1)), frame(Buffer.alloc(1000, 2)), frame(Buffer.alloc(0)), frame(Buffer.alloc(100, 3))]);
    // In awkward pieces: the oversized body straddles several reads.
    for (const [from, to] of [[0, 12], [12, 300], [300, 999], [999, wire.length]] as const) await peer.write(wire.subarray(from, to));
    await waitUntil(() => got.length === 3, '3 messages');
    expect(got).toEqual([5, 0, 100]);
    expect(overflows).toBe(1);
    await peer.untilBytes(3 * 68);
  });

  it("onMessage runs through the hook machinery: a 'message' event follows it, and a throw goes to onError", async () => {
    const engine = testEngine();
    const errors: Error[] = [];
    const events: Buffer[] = [];
    const closed = deferred();
    class Fragile extends LengthPrefixedConnection {
      override onConnect() {
        (this as unknown as NodeJS.EventEmitter).on('message', (body: Buffer) => events.push(body));
      }
      override onMessage(body: Buffer) {
        if (body.toString() === 'boom') throw new Error('boom');
      }
      override onError(err: Error) {
        errors.push(err);
        super.onError(err);
      }
      override onClose() {
        closed.resolve();
      }
    }
    const server = new Server(Fragile, { engine });
    await server.listen(['127.0.0.1', 0]);
    const peer = new Peer(portOf(server.localAddress));
    await peer.write(Buffer.concat([frame(Buffer.from('fine')), frame(Buffer.from('boom')), frame(Buffer.from('never'))]));
    await closed.promise;
    expect(events.map(String)).toEqual(['fine']);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(HookError);
    expect(errors[0]).toMatchObject({ hook: 'onMessage' });
  });
});

// ---------------------------------------------------------------------------

const PY_CLIENT = String.raw`
import hashlib, socket, struct, sys
port = int(sys.argv[1])
sizes = [int(x) for x in sys.argv[2].split(',')]
bodies = [bytes((i * 7 + n) % 256 for i in range(n)) for n in sizes]
s = socket.create_connection(('127.0.0.1', port))
# Pipelined: every request in one sendall, then read the replies.
s.sendall(b''.join(struct.pack('!I', len(b)) + b for b in bodies))
f = s.makefile('rb')
for b in bodies:
    (n,) = struct.unpack('!I', f.read(4))
    reply = f.read(n).decode('ascii')
    assert reply == hashlib.sha256(b).hexdigest(), (len(b), reply)
# Then one at a time, the header and body in separate sends.
for b in bodies:
    s.sendall(struct.pack('!I', len(b)))
    s.sendall(b)
    (n,) = struct.unpack('!I', f.read(4))
    assert f.read(n).decode('ascii') == hashlib.sha256(b).hexdigest()
s.shutdown(socket.SHUT_WR)
assert f.read() == b''
print('ok', len(bodies) * 2)
`;

const PY_OVERSIZED = String.raw`
import socket, struct, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(struct.pack('!I', int(sys.argv[2])) + b'x' * 10)
data = b''
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except ConnectionResetError:
    pass
print('closed', len(data))
`;

describe('length-prefixed example with a Python peer', () => {
  it('a Python client using struct.pack("!I", len) gets the SHA-256 of every message, pipelined and one by one', async () => {
    const engine = testEngine();
    const port = await hashServer(engine);
    const out = await python(PY_CLIENT, [String(port), ['0', '1', '13', String(64 * KiB), String(MiB)].join(',')]);
    expect(out.trim()).toBe('ok 10');
  });

  it('a Python client announcing maxMessageSize + 1 is disconnected without a reply', async () => {
    const engine = testEngine();
    const port = await hashServer(engine, 1000);
    const out = await python(PY_OVERSIZED, [String(port), '1001']);
    expect(out.trim()).toBe('closed 0');
    expect(engine.lines.some((l) => l.includes('ERR_TREWS_OVERFLOW'))).toBe(true);
  });
});

// ---------------------------------------------------------------------------

describe('length-prefixed example main.ts', () => {
  it('listens on $PORT, prints a Python one-liner that works, and exits 0 on SIGINT', async () => {
    const port = await freePort();
    const { child, stdout, stderr, exited } = spawnWithTsx('examples/length-prefixed/main.ts', { PORT: String(port) });
    await waitUntil(() => stdout().includes('python3 -c') || child.exitCode !== null, 'the banner', 20_000);
    expect(stdout()).toContain(`listening on tcp port ${port}`);
    // Run the one-liner exactly as printed.
    const oneLiner = /python3 -c "(.*)"\s*$/m.exec(stdout())?.[1];
    expect(oneLiner, stdout()).toBeDefined();
    const reply = await python(oneLiner!);
    expect(reply.trim()).toBe(sha256('hello'));
    child.kill('SIGINT');
    const { code, signal } = await exited;
    expect({ code, signal, stderr: stderr() }).toEqual({ code: 0, signal: null, stderr: '' });
    expect(stdout()).toContain('bye');
  });
});
