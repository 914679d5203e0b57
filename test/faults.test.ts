/**
 * Fault suite: hostile and broken peers, resource exhaustion and re-entrant hooks, over real
 * sockets on 127.0.0.1. Where the peer's behaviour matters (resets, half-closes, floods, slow
 * reads, held ports) it is an independent process: Python's socket module or plain node:net.
 *
 * Every case's name is the promise it checks. No case may end in an unhandled error, an
 * unhandled rejection or a crash: a guard below collects them and the suite fails if any.
 *
 *   npx vitest run test/faults.test.ts
 */
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { readFileSync, statSync } from 'node:fs';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection, Server, type Engine } from '../src/index.js';
import { ConnectError, HookError, ListenError, OverflowError, type ReadError, type WriteError } from '../src/errors.js';
import { MessageConnection, type CloseReport } from '../src/message.js';
import { Peer, deferred, onCleanup, portOf, pseudoRandomBytes, python, pythonProcess, sha256, tempDir, testEngine, untilWritesStall, waitFor } from './helpers.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const FLOOD = path.join(HERE, 'faults', 'flood.mjs');
const EMFILE_SERVER = path.join(HERE, 'faults', 'emfile-server.ts');
const MiB = 1 << 20;

// ---- the guard: nothing escapes -------------------------------------------------------------

const escaped: string[] = [];
const onRejection = (reason: unknown) => escaped.push(`unhandledRejection: ${describeThrown(reason)}`);
const onException = (err: unknown) => escaped.push(`uncaughtException: ${describeThrown(err)}`);

beforeAll(() => {
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
});

afterAll(async () => {
  // Give late callbacks (socket closes, child exits) a moment to surface anything.
  await sleep(50);
  process.off('unhandledRejection', onRejection);
  process.off('uncaughtException', onException);
  expect(escaped).toEqual([]);
});

function describeThrown(value: unknown): string {
  return value instanceof Error ? (value.stack ?? value.message) : String(value);
}

// ---- helpers --------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function waitUntil(predicate: () => boolean, what: string, ms = 10_000): Promise<void> {
  const t0 = performance.now();
  while (!predicate()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Block this thread (and so the event loop) for `ms`: I/O piles up and is polled in one turn. */
function blockEventLoop(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function serve<C extends Connection>(
  engine: Engine,
  Conn: new (options?: object) => C,
  options: object = {},
): Promise<{ server: Server<C>; port: number }> {
  const server = new Server<C>(Conn, { engine, ...options });
  await server.listen(['127.0.0.1', 0]);
  return { server, port: portOf(server.localAddress) };
}

class Echo extends Connection {
  override readDelimiter = '\n';
  override onRead(line: Buffer): void {
    this.write(line);
    this.write('\n');
  }
}

/** The server still answers a new client. */
async function stillServes(port: number, text = 'still serving'): Promise<void> {
  const peer = new Peer(port);
  await peer.write(`${text}\n`);
  await peer.untilText(`${text}\n`);
  peer.socket.destroy();
}

/** A long-running child process whose stdout lines can be awaited; killed after the test. */
interface Child {
  proc: ChildProcess;
  stderr(): string;
  /** The next stdout line not yet taken. */
  nextLine(what: string, ms?: number): Promise<string>;
  send(text: string): void;
  exited: Promise<number | null>;
}

function child(command: string, args: string[], { input = false, cwd = ROOT } = {}): Child {
  const proc = spawn(command, args, { cwd, stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  let err = '';
  let done = false;
  const waiters: Array<() => void> = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (text: string) => {
    partial += text;
    let nl;
    while ((nl = partial.indexOf('\n')) !== -1) {
      lines.push(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
    wake();
  });
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (text: string) => (err += text));
  const exited = new Promise<number | null>((resolve) =>
    proc.on('close', (code) => {
      done = true;
      wake();
      resolve(code);
    }),
  );
  proc.on('error', (e) => {
    err += String(e);
    done = true;
    wake();
  });
  onCleanup(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  return {
    proc,
    stderr: () => err,
    exited,
    send: (text) => proc.stdin!.write(text),
    async nextLine(what, ms = 15_000) {
      await waitFor(() => lines.length > 0 || done, (w) => waiters.push(w), what, ms, () => `stderr: ${err.slice(-500)}`);
      const line = lines.shift();
      if (line === undefined) throw new Error(`${command} exited before ${what}: ${err.slice(-500)}`);
      return line;
    },
  };
}

/** Largest growth of RSS and of ArrayBuffer memory over the baseline taken now, sampled every `ms`. */
function memoryWatch(ms = 20): { stop(): { rss: number; arrayBuffers: number } } {
  const base = process.memoryUsage();
  let rss = 0;
  let arrayBuffers = 0;
  const sample = () => {
    const m = process.memoryUsage();
    rss = Math.max(rss, m.rss - base.rss);
    arrayBuffers = Math.max(arrayBuffers, m.arrayBuffers - base.arrayBuffers);
  };
  const timer = setInterval(sample, ms);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { rss, arrayBuffers };
    },
  };
}

/**
 * A line client playing ping-pong on its own socket, 2 ms apart, recording each round trip:
 * the bystander whose service must not suffer while another peer misbehaves.
 */
function pinger(port: number) {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  const trips: Array<{ at: number; rtt: number }> = [];
  const wrong: string[] = [];
  let n = 0;
  let sentAt = 0;
  let buffered = '';
  let running = true;
  const ping = () => {
    if (!running || socket.destroyed) return;
    sentAt = performance.now();
    socket.write(`ping ${n}\n`);
  };
  socket.setEncoding('utf8');
  socket.on('connect', ping);
  socket.on('data', (text: string) => {
    buffered += text;
    let nl;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line !== `ping ${n}`) wrong.push(line);
      trips.push({ at: sentAt, rtt: performance.now() - sentAt });
      n++;
      setTimeout(ping, 2);
    }
  });
  socket.on('error', (err) => wrong.push(`error ${(err as { code?: string }).code}`));
  onCleanup(() => socket.destroy());
  return {
    trips,
    wrong,
    /** Round trips that started in [from, to], and the slowest of them. */
    during(from: number, to: number) {
      const inside = trips.filter((t) => t.at >= from && t.at <= to);
      return { count: inside.length, maxRtt: Math.max(0, ...inside.map((t) => t.rtt)) };
    },
    stop() {
      running = false;
      socket.destroy();
    },
  };
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 (utime) and 15 (stime) of proc(5); `fields` starts at field 3.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

// Scaled down on a single-CPU machine, where the reader and the writer share one core.
const SLOW_MIB = Number(process.env.TREWS_FAULTS_SLOW_MIB ?? (os.availableParallelism() >= 2 ? 256 : 64));
const SLOW_RATE_MIB = 64;
const FLOOD_BYTES = 1024 * MiB;
const MEMORY_BOUND = 64 * MiB;

// ---- peers that break the connection --------------------------------------------------------

describe('peers that break the connection', () => {
  it('a peer that resets mid-write (we write 16 MiB, it reads 64 KiB then RSTs): onWriteError or onReadError, then onClose, once each; no crash; the server keeps serving', async () => {
    const engine = testEngine();
    const payload = pseudoRandomBytes(16 * MiB);
    const hooks: string[] = [];
    const closed = deferred();
    let victim: Connection | null = null;
    class Writer extends Echo {
      override onConnect() {
        if (victim !== null) return;
        victim = this;
        hooks.push('connect');
        this.write(payload);
      }
      override onWriteError(err: WriteError) {
        if (this === victim) hooks.push(`writeError ${err.systemCode}`);
        super.onWriteError(err);
      }
      override onReadError(err: ReadError) {
        if (this === victim) hooks.push(`readError ${err.systemCode}`);
        super.onReadError(err);
      }
      override onClose() {
        if (this !== victim) return;
        hooks.push('close');
        closed.resolve();
      }
    }
    const { server, port } = await serve(engine, Writer);
    const out = await python(
      `import socket, struct, sys
s = socket.socket()
# A small receive window: most of the 16 MiB is still queued on our side when the RST comes.
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.connect(('127.0.0.1', int(sys.argv[1])))
got = 0
while got < 65536:
    got += len(s.recv(65536))
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
s.close()
print(got)`,
      [String(port)],
    );
    await closed.promise;
    expect(Number(out)).toBeGreaterThanOrEqual(65536);
    expect(Number(out)).toBeLessThan(16 * MiB); // it really was cut off mid-write
    expect(hooks).toHaveLength(3);
    expect(hooks[0]).toBe('connect');
    expect(hooks[1]).toMatch(/^(writeError|readError) (ECONNRESET|EPIPE)$/);
    expect(hooks[2]).toBe('close');
    expect(server.listening).toBe(true);
    await stillServes(port);
  });

  // A reset arrives through a read while we read; after the peer's FIN (or with reading
  // paused) it arrives through a write, and libuv then forgets what it still held. Either way
  // the close report must be exact: a message the OS took in part is incomplete, never queued.
  for (const how of ['resets', 'half-closes, then resets'] as const) {
    it(`a peer that stops reading, then ${how}: bytesWritten never decreases and stays at what the OS took; the message it took in part is incomplete, never queued; none lost`, async () => {
      const engine = testEngine();
      const body = 'y'.repeat(1000);
      const COUNT = 16_000;
      // Each message's byte range on the wire: [4-byte length][JSON [3, null, content]].
      const ends: number[] = [];
      for (let seq = 0, at = 0; seq < COUNT; seq++) ends.push((at += 4 + Buffer.byteLength(JSON.stringify([3, null, { seq, body }]))));
      const startOf = (seq: number) => (seq === 0 ? 0 : ends[seq - 1]!);
      let talker: MessageConnection | null = null;
      const samples: number[] = [];
      const report = deferred<CloseReport>();
      class Talker extends MessageConnection {
        override onConnect() {
          talker = this;
          for (let seq = 0; seq < COUNT; seq++) this.notify({ seq, body });
        }
        override onError() {} // the reset: expected
        override onClose(r?: CloseReport) {
          samples.push(this.bytesWritten);
          report.resolve(r!);
        }
      }
      const { port } = await serve(engine, Talker);
      const peer = pythonProcess(
        `import socket, struct, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.connect(('127.0.0.1', int(sys.argv[1])))
got = 0
while got < 200000:
    got += len(s.recv(65536))
if sys.argv[2] == 'fin':
    s.shutdown(socket.SHUT_WR)
print(got, flush=True)
sys.stdin.readline()
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
s.close()`,
        [String(port), how === 'resets' ? 'rst' : 'fin'],
      );
      // Sample all along, as a user would: each value must be >= the one before.
      let sampling = true;
      const sample = () => {
        if (!sampling) return;
        if (talker !== null && !talker.closed) samples.push(talker.bytesWritten);
        setTimeout(sample, 2);
      };
      sample();
      // The peer has stopped reading: wait until the OS takes no more (unchanged for 300 ms
      // and 40 turns of our event loop, in which libuv would have written had it been able).
      await waitUntil(() => talker !== null && talker.bytesWritten > 0, 'the first bytes out');
      await untilWritesStall(() => talker!.bytesWritten);
      const taken = talker!.bytesWritten;
      expect(talker!.bufferedBytes).toBeGreaterThan(0); // stalled mid-way, with more to send
      peer.stdin!.end('reset\n');
      const { incomplete, queued } = await report.promise;
      await peer.output;
      sampling = false;
      for (let i = 1; i < samples.length; i++) expect(samples[i]).toBeGreaterThanOrEqual(samples[i - 1]!);
      // After the reset the OS takes nothing more: bytesWritten stays at what it had taken.
      expect(samples.at(-1)).toBe(taken);
      const seqs = (list: typeof queued) => list.map((m) => (m.content as { seq: number }).seq);
      const straddler = ends.findIndex((end) => end > taken);
      const cutMidMessage = startOf(straddler) < taken;
      // None lost, none twice: every message not written out whole is reported, in order.
      expect([...seqs(incomplete), ...seqs(queued)]).toEqual(Array.from({ length: COUNT - straddler }, (_, i) => straddler + i));
      if (how === 'resets') {
        // Seen by a read: exact. Written out (ending at or before `taken`), the one cut, the rest never started.
        expect(seqs(incomplete)).toEqual(cutMidMessage ? [straddler] : []);
      } else {
        // Seen by a write (reading stopped at the FIN): libuv forgets what it still held, so
        // the messages in its last write past `taken` may have started: incomplete, not queued.
        if (cutMidMessage) expect(seqs(incomplete)[0]).toBe(straddler);
        expect(incomplete.length).toBeLessThan(300); // one write: at most 256 KiB
      }
    });
  }

  it('messages written after a reset that reading (paused) has not seen are refused by the OS at once: all reported queued, bytesWritten 0', async () => {
    const engine = testEngine();
    const connected = deferred<MessageConnection>();
    const report = deferred<CloseReport>();
    class Paused extends MessageConnection {
      override onConnect() {
        this.pauseReading(); // Node reads 16 KiB more, then libuv stops reading
        connected.resolve(this);
      }
      override onError() {} // the reset: expected
      override onClose(r?: CloseReport) {
        report.resolve(r!);
      }
    }
    const { port } = await serve(engine, Paused);
    // 60 KB of empty packets, then a reset (SO_LINGER 0): it is sent as the process closes the socket.
    const peer = python(
      `import socket, struct, sys
s = socket.socket()
s.connect(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'\\0\\0\\0\\2[]' * 10000)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
s.close()`,
      [String(port)],
    );
    const conn = await connected.promise;
    await peer;
    for (let seq = 0; seq < 5; seq++) conn.notify({ seq });
    const { incomplete, queued } = await report.promise;
    expect(incomplete).toEqual([]);
    expect(queued.map((m) => (m.content as { seq: number }).seq)).toEqual([0, 1, 2, 3, 4]);
    expect(conn.bytesWritten).toBe(0);
  });

  // Node calls the write callback of a write cancelled by destroy() with no error
  // (stream_base_commons onWriteComplete: `if (stream.destroyed) req.callback(null)`): such a
  // write must not count as written.
  it('after close(false) with 16 MiB queued, bytesWritten is exactly what the peer receives (a cancelled write is not counted)', async () => {
    const engine = testEngine();
    const payload = Buffer.alloc(16 * MiB, 'x');
    const closed = deferred<number>();
    class Writer extends Connection {
      override onConnect() {
        this.write(payload);
        // Close once the kernel has taken some of it and the rest is stuck behind the peer.
        const closeWhenStuck = () => {
          if (this.bytesWritten > 0 && this.bufferedBytes > 0) void this.close(false);
          else setImmediate(closeWhenStuck);
        };
        closeWhenStuck();
      }
      override onClose() {
        closed.resolve(this.bytesWritten);
      }
    }
    const { port } = await serve(engine, Writer);
    const peer = new Peer(port);
    peer.socket.pause(); // reads nothing until we have closed: a few MiB wait in the kernel
    const written = await closed.promise;
    // What the kernel took is delivered after our close: read it all, up to the FIN.
    peer.socket.resume();
    await peer.untilClosed();
    expect(peer.error).toBeUndefined();
    expect(peer.received.length).toBeLessThan(16 * MiB);
    // "Taken by the OS" is what the OS delivered, to the byte.
    expect(written).toBe(peer.received.length);
  });

  it('a peer that half-closes while we write 16 MiB: all 16 MiB arrive (sha256 equal), then a clean close: onEnd, onClose, no error hook', async () => {
    const engine = testEngine();
    const payload = pseudoRandomBytes(16 * MiB, 7);
    const hooks: string[] = [];
    const closed = deferred();
    let writtenAtClose = -1;
    class Writer extends Connection {
      override onConnect() {
        hooks.push('connect');
        expect(this.write(payload)).toBe(false);
      }
      override onEnd() {
        hooks.push(`end (still queued: ${this.bufferedBytes > 0})`);
        reader.stdin!.write('go'); // only now may Python read on: the FIN surely came first
      }
      override onError(err: Error) {
        hooks.push(`error ${(err as { code?: string }).code}`);
        super.onError(err);
      }
      override onClose() {
        writtenAtClose = this.bytesWritten;
        hooks.push('close');
        closed.resolve();
      }
    }
    const { port } = await serve(engine, Writer);
    // Python reads the first bytes, sends FIN while we are still writing, waits until our
    // onEnd has run (a byte on its stdin: under load it could otherwise drain all 16 MiB
    // before Node sees the FIN), then reads to EOF.
    const reader = pythonProcess(
      `import hashlib, socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
h = hashlib.sha256()
first = s.recv(65536)
h.update(first)
got = len(first)
s.shutdown(socket.SHUT_WR)
sys.stdin.buffer.read(1)
while True:
    d = s.recv(1 << 20)
    if not d:
        break
    h.update(d)
    got += len(d)
s.close()
print(got, h.hexdigest())`,
      [String(port)],
    );
    const out = await reader.output;
    await closed.promise;
    const [got, digest] = out.trim().split(' ');
    expect(Number(got)).toBe(payload.length);
    expect(digest).toBe(sha256(payload));
    expect(hooks).toEqual(['connect', 'end (still queued: true)', 'close']);
    expect(writtenAtClose).toBe(payload.length);
  });

  it(`a slow reader (${SLOW_MIB} MiB read at <= ${SLOW_RATE_MIB} MiB/s) while we write honouring write() and onWrite: every byte arrives intact, bufferedBytes stays under the high-water mark plus one chunk, memory grows < 64 MiB`, async () => {
    const engine = testEngine();
    const total = SLOW_MIB * MiB;
    const chunk = pseudoRandomBytes(64 * 1024, 3);
    const highWater = 1 * MiB;
    const expected = createHash('sha256');
    for (let i = 0; i < total / chunk.length; i++) expected.update(chunk);
    const digest = expected.digest('hex');
    const stats = { writes: 0, refusals: 0, drains: 0, maxBuffered: 0 };
    const closed = deferred();
    const errors: Error[] = [];
    class Producer extends Connection {
      sent = 0;
      override onConnect() {
        this.pump();
      }
      override onWrite() {
        stats.drains++;
        this.pump();
      }
      pump() {
        while (this.sent < total) {
          this.sent += chunk.length;
          stats.writes++;
          const more = this.write(chunk);
          stats.maxBuffered = Math.max(stats.maxBuffered, this.bufferedBytes);
          if (!more) {
            stats.refusals++;
            return;
          }
        }
        void this.close();
      }
      override onError(err: Error) {
        errors.push(err);
        super.onError(err);
      }
      override onClose() {
        closed.resolve();
      }
    }
    const { port } = await serve(engine, Producer, { connectionOptions: { writeHighWaterMark: highWater } });
    const memory = memoryWatch();
    const started = performance.now();
    const out = await python(
      `import hashlib, socket, sys, time
port, rate = int(sys.argv[1]), float(sys.argv[2])
s = socket.create_connection(('127.0.0.1', port))
h = hashlib.sha256()
got = 0
t0 = time.monotonic()
while True:
    d = s.recv(256 * 1024)
    if not d:
        break
    h.update(d)
    got += len(d)
    ahead = got / rate - (time.monotonic() - t0)
    if ahead > 0:
        time.sleep(ahead)
s.close()
print(got, h.hexdigest())`,
      [String(port), String(SLOW_RATE_MIB * MiB)],
      40_000,
    );
    await closed.promise;
    const seconds = (performance.now() - started) / 1000;
    const grew = memory.stop();
    const [got, hash] = out.trim().split(' ');
    expect(Number(got)).toBe(total);
    expect(hash).toBe(digest);
    expect(errors).toEqual([]);
    // Backpressure was real: write() said no, and onWrite said when to go on.
    expect(stats.refusals).toBeGreaterThan(10);
    expect(stats.drains).toBeGreaterThanOrEqual(stats.refusals);
    expect(stats.maxBuffered).toBeLessThanOrEqual(highWater + chunk.length);
    expect(grew.rss).toBeLessThan(MEMORY_BOUND);
    expect(grew.arrayBuffers).toBeLessThan(MEMORY_BOUND);
    console.log(
      `slow reader: ${SLOW_MIB} MiB in ${seconds.toFixed(1)} s, ${stats.writes} writes, ${stats.refusals} refused, ` +
        `max bufferedBytes ${(stats.maxBuffered / 1024).toFixed(0)} KiB, growth rss ${(grew.rss / MiB).toFixed(1)} MiB, ` +
        `arrayBuffers ${(grew.arrayBuffers / MiB).toFixed(1)} MiB`,
    );
  }, 45_000);
});

// ---- floods ---------------------------------------------------------------------------------

describe('floods without a delimiter', () => {
  it('a 1 GiB flood without a delimiter: the default onOverflowError closes the offender after bufferSize bytes, the flooder is cut off (reset), a bystander keeps its echo', async () => {
    const engine = testEngine();
    const overflows: OverflowError[] = [];
    const closed = deferred();
    let offender: Connection | null = null;
    class Guarded extends Echo {
      override onOverflowError(err: OverflowError) {
        offender = this;
        overflows.push(err);
        super.onOverflowError(err);
      }
      override onClose() {
        if (overflows.length > 0) closed.resolve();
      }
    }
    const { server, port } = await serve(engine, Guarded);
    const bystander = pinger(port);
    await waitUntil(() => bystander.trips.length >= 3, 'the bystander echo');
    const memory = memoryWatch();
    const flooder = child(process.execPath, [FLOOD, String(port), String(FLOOD_BYTES), 'hold']);
    expect(JSON.parse(await flooder.nextLine('flood start'))).toEqual({ event: 'start' });
    const result = JSON.parse(await flooder.nextLine('flood result', 20_000)) as { sent: number; error: string | null; ms: number };
    await closed.promise;
    const grew = memory.stop();
    const tripsBefore = bystander.trips.length;
    await waitUntil(() => bystander.trips.length >= tripsBefore + 5, 'the bystander echo after the flood');
    expect(server.connections.size).toBe(1); // the bystander only
    expect([...server.connections].some((c) => c === offender)).toBe(false);
    bystander.stop();
    expect(overflows).toHaveLength(1);
    expect(overflows[0]).toMatchObject({ code: 'ERR_TREWS_OVERFLOW', limit: 65536 });
    expect(overflows[0]!.size).toBeGreaterThan(65536);
    expect(['ECONNRESET', 'EPIPE']).toContain(result.error);
    expect(result.sent).toBeLessThan(FLOOD_BYTES);
    expect(grew.arrayBuffers).toBeLessThan(MEMORY_BOUND);
    expect(bystander.wrong).toEqual([]);
    expect(server.listening).toBe(true);
  });

  it('a 1 GiB flood read to the end (onOverflowError keeps the channel): onOverflowError once, memory grows < 64 MiB, a bystander keeps getting answers during the flood, the offender closes cleanly at its FIN', async () => {
    const engine = testEngine();
    const overflows: OverflowError[] = [];
    const closed = deferred<number>();
    let floodedAt = 0;
    class Tolerant extends Echo {
      override onOverflowError(err: OverflowError) {
        // Keep the channel: the rest of the oversized frame is discarded as it arrives.
        overflows.push(err);
      }
      override onClose() {
        if (overflows.length > 0) {
          floodedAt = performance.now();
          closed.resolve(this.bytesRead);
        }
      }
    }
    const { server, port } = await serve(engine, Tolerant);
    const bystander = pinger(port);
    await waitUntil(() => bystander.trips.length >= 3, 'the bystander echo');
    const memory = memoryWatch();
    const flooder = child(process.execPath, [FLOOD, String(port), String(FLOOD_BYTES), 'end']);
    await flooder.nextLine('flood start');
    const startedAt = performance.now();
    const result = JSON.parse(await flooder.nextLine('flood result', 30_000)) as { sent: number; error: string | null; ms: number };
    const bytesRead = await closed.promise;
    const grew = memory.stop();
    const during = bystander.during(startedAt, floodedAt);
    const tripsBefore = bystander.trips.length;
    await waitUntil(() => bystander.trips.length >= tripsBefore + 5, 'the bystander echo after the flood');
    bystander.stop();
    expect(result).toMatchObject({ sent: FLOOD_BYTES, error: null });
    expect(bytesRead).toBe(FLOOD_BYTES);
    expect(overflows).toHaveLength(1);
    expect(grew.rss).toBeLessThan(MEMORY_BOUND);
    expect(grew.arrayBuffers).toBeLessThan(MEMORY_BOUND);
    // The bystander was answered all along: round trips every few ms, none stalled.
    const floodSeconds = (floodedAt - startedAt) / 1000;
    expect(during.count).toBeGreaterThanOrEqual(Math.min(20, Math.floor(floodSeconds * 10)));
    expect(during.maxRtt).toBeLessThan(1000);
    expect(bystander.wrong).toEqual([]);
    expect(server.listening).toBe(true);
    console.log(
      `flood: 1 GiB in ${floodSeconds.toFixed(1)} s (${(1024 / floodSeconds).toFixed(0)} MiB/s), bystander ${during.count} round trips ` +
        `during it, slowest ${during.maxRtt.toFixed(1)} ms; growth rss ${(grew.rss / MiB).toFixed(1)} MiB, arrayBuffers ${(grew.arrayBuffers / MiB).toFixed(1)} MiB`,
    );
  }, 45_000);
});

// ---- hooks that throw -----------------------------------------------------------------------

interface ThrowCase {
  hook: string;
  /** Make the connection reach the hook. */
  provoke(peer: Peer): Promise<void>;
  /** Where the thrown error must arrive. */
  reaches: 'onError' | 'engine';
}

const THROW_CASES: ThrowCase[] = [
  { hook: 'onConnect', reaches: 'onError', provoke: async () => {} },
  { hook: 'onRead', reaches: 'onError', provoke: (peer) => peer.write('x\n') },
  { hook: 'onWrite', reaches: 'onError', provoke: (peer) => peer.write('x\n') },
  { hook: 'onEnd', reaches: 'onError', provoke: async (peer) => void peer.socket.end() },
  {
    hook: 'onClose',
    reaches: 'onError',
    provoke: async (peer) => {
      await peer.write('x\n');
      await peer.untilText('x\n');
      peer.socket.end();
    },
  },
  {
    hook: 'onReadError',
    reaches: 'onError',
    provoke: async (peer) => {
      await peer.write('x\n');
      await peer.untilText('x\n');
      peer.socket.resetAndDestroy();
    },
  },
  { hook: 'onOverflowError', reaches: 'onError', provoke: (peer) => peer.write(Buffer.alloc(70_000, 'a')) },
  // The last resort: an error hook that itself throws goes to the engine's 'error' event.
  { hook: 'onError', reaches: 'engine', provoke: (peer) => peer.write(Buffer.alloc(70_000, 'a')) },
];

describe('hooks that throw', () => {
  it.each(THROW_CASES)(
    'a throwing $hook: no crash, the error reaches $reaches, the connection closes once, the server keeps serving',
    async ({ hook, provoke, reaches }) => {
      const engine = testEngine();
      const reported: unknown[] = [];
      engine.on('error', (err) => reported.push(err));
      const boom = new Error(`${hook} broke`);
      const seen: Error[] = [];
      let closes = 0;
      const closed = deferred();
      let armed: Connection | null = null;
      class Fragile extends Echo {
        #throwIn(name: string) {
          if (this === armed && name === hook) throw boom;
        }
        override onConnect() {
          armed ??= this;
          this.#throwIn('onConnect');
        }
        override onRead(line: Buffer) {
          super.onRead(line);
          this.#throwIn('onRead');
        }
        override onWrite() {
          this.#throwIn('onWrite');
        }
        override onEnd() {
          this.#throwIn('onEnd');
        }
        override onReadError(err: ReadError) {
          this.#throwIn('onReadError');
          super.onReadError(err);
        }
        override onOverflowError(err: OverflowError) {
          this.#throwIn('onOverflowError');
          super.onOverflowError(err);
        }
        override onError(err: Error) {
          if (this === armed) seen.push(err);
          this.#throwIn('onError');
          super.onError(err);
        }
        override onClose() {
          if (this !== armed) return;
          closes++;
          closed.resolve();
          this.#throwIn('onClose');
        }
      }
      const { server, port } = await serve(engine, Fragile);
      const peer = new Peer(port);
      await peer.connected();
      await provoke(peer);
      await closed.promise;
      await peer.untilClosed();
      await sleep(20); // anything that would follow onClose has had its turn
      expect(closes).toBe(1);
      if (reaches === 'onError') {
        const hookErrors = seen.filter((e): e is HookError => e instanceof HookError);
        expect(hookErrors).toHaveLength(1);
        expect(hookErrors[0]).toMatchObject({ code: 'ERR_TREWS_HOOK', hook });
        expect(hookErrors[0]!.cause).toBe(boom);
        expect(reported).toEqual([]);
      } else {
        expect(reported).toEqual([boom]);
      }
      expect(server.listening).toBe(true);
      await stillServes(port);
    },
  );
});

// ---- re-entrant closes ----------------------------------------------------------------------

describe('closing channels from inside hooks', () => {
  it.each([
    { how: 'close()', close: (c: Connection) => void c.close() },
    { how: 'close(false)', close: (c: Connection) => void c.close(false) },
    { how: 'destroy()', close: (c: Connection) => c.destroy() },
  ])(
    "one connection's onRead closes another ($how) whose frames arrived in the same poll: no exception, no onRead on the closed one, its onClose once",
    async ({ close }) => {
      const engine = testEngine();
      const reported: unknown[] = [];
      engine.on('error', (err) => reported.push(err));
      // Count event-loop turns, to check that both sockets' bytes came in the same poll.
      let turn = 0;
      let counting = true;
      const count = () => {
        turn++;
        if (counting) setImmediate(count);
      };
      count();
      onCleanup(() => (counting = false));
      const named = new Map<string, Named>();
      const frames: string[] = [];
      const errors: Error[] = [];
      const closes: string[] = [];
      const dataTurns = new Map<string, number>();
      let killer = '';
      let victim = '';
      let killTurn = -1;
      const victimClosed = deferred();
      class Named extends Connection {
        override readDelimiter = '\n';
        override encoding = 'utf8' as const;
        name = '';
        override onRead(line: string) {
          if (this.name === '') {
            this.name = line;
            named.set(line, this);
            this.socket!.on('data', () => dataTurns.has(this.name) || dataTurns.set(this.name, turn));
            this.write(`named ${line}\n`);
            // Both connected: say go, then keep the loop busy while Python sends to both, so
            // that both sockets are readable when the loop next polls.
            if (named.size === 2) {
              setImmediate(() => {
                const a = named.get('A')!;
                a.write('go\n');
                a.flush();
                blockEventLoop(400);
              });
            }
            return;
          }
          frames.push(`${this.name}: ${line}`);
          // Whichever is read first closes the other, whose frames are waiting in this poll.
          if (line === 'kill' && killer === '') {
            killer = this.name;
            victim = this.name === 'A' ? 'B' : 'A';
            killTurn = turn;
            close(named.get(victim)!);
          }
        }
        override onError(err: Error) {
          errors.push(err);
          super.onError(err);
        }
        override onClose() {
          closes.push(this.name);
          if (this.name === victim) victimClosed.resolve();
        }
      }
      const { port } = await serve(engine, Named);
      const out = await python(
        `import socket, sys
port = int(sys.argv[1])
def line(s):
    buf = b''
    while not buf.endswith(b'\\n'):
        d = s.recv(1)
        if not d:
            raise SystemExit('closed early')
        buf += d
    return buf
a = socket.create_connection(('127.0.0.1', port))
a.sendall(b'A\\n')
assert line(a) == b'named A\\n'
b = socket.create_connection(('127.0.0.1', port))
b.sendall(b'B\\n')
assert line(b) == b'named B\\n'
assert line(a) == b'go\\n'
a.sendall(b'kill\\na1\\na2\\n')
b.sendall(b'kill\\nb1\\nb2\\n')
import select
names = {a: 'A', b: 'B'}
ended = 'none'
while ended == 'none':
    ready, _, _ = select.select([a, b], [], [], 5)
    if not ready:
        break
    for s in ready:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            d = b''
        if not d:
            ended = names[s]
a.close()
b.close()
print(ended)`,
        [String(port)],
      );
      await victimClosed.promise;
      await waitUntil(() => closes.length === 2, 'both connections to close');
      await sleep(20);
      counting = false;
      const survivor = killer;
      expect(['A', 'B']).toContain(survivor);
      expect(out.trim()).toBe(victim); // the peer saw the victim end first
      // The survivor got all its frames, the victim none: its bytes waited in the same poll.
      expect(frames).toEqual([`${survivor}: kill`, `${survivor}: ${survivor.toLowerCase()}1`, `${survivor}: ${survivor.toLowerCase()}2`]);
      expect(closes.filter((n) => n === victim)).toHaveLength(1);
      expect(errors.filter((e) => e instanceof HookError)).toEqual([]);
      expect(reported).toEqual([]);
      // Where the victim's socket still read (a graceful close reads and drops), it read in the killing turn.
      const victimTurn = dataTurns.get(victim);
      if (victimTurn !== undefined) expect(victimTurn).toBe(killTurn);
      expect(dataTurns.get(survivor)).toBe(killTurn);
    },
  );

  it.each([
    { how: 'close()', close: (c: Connection) => void c.close(), reply: 'bye\n' },
    { how: 'close(false)', close: (c: Connection) => void c.close(false), reply: '' },
  ])(
    'close() inside onRead ($how) with frames still buffered and more arriving: no onRead after it, onClose once, the peer sees the end',
    async ({ close, reply }) => {
      const engine = testEngine();
      const frames: string[] = [];
      let closes = 0;
      const closed = deferred();
      class Quitter extends Connection {
        override readDelimiter = '\n';
        override encoding = 'utf8' as const;
        override onRead(line: string) {
          frames.push(line);
          this.write('bye\n');
          close(this);
          // Anything written after close() is refused, not silently queued.
          expect(() => this.write('too late\n')).toThrow(/after close/);
        }
        override onClose() {
          closes++;
          closed.resolve();
        }
      }
      const { port } = await serve(engine, Quitter, { connectionOptions: { closeTimeout: 2000 } });
      const peer = new Peer(port);
      await peer.write('a\nb\nc\n');
      // Keep sending while the server closes: a graceful close reads and drops, never delivers.
      for (let i = 0; i < 5 && !peer.closed && !peer.ended; i++) {
        peer.socket.write(`more ${i}\n`);
        await sleep(10);
      }
      await closed.promise;
      peer.socket.end();
      await peer.untilClosed();
      await sleep(20);
      expect(frames).toEqual(['a']);
      expect(closes).toBe(1);
      expect(peer.text).toBe(reply);
    },
  );
});

// ---- resources that are not there -----------------------------------------------------------

describe('names, ports and paths that are not available', () => {
  it('connecting to an unresolvable name (no-such-host.invalid): onConnectError then onClose, once each, the promise rejects with the same ConnectError; a reconnecting client retries maxAttempts times, then gives up the same way', async () => {
    const engine = testEngine();
    const runs: Array<{ hooks: string[]; error: unknown; rejected: unknown }> = [];
    for (const reconnect of [false, { initialDelay: 5, jitter: 0, maxAttempts: 2 }] as const) {
      const hooks: string[] = [];
      let error: unknown;
      class Resolver extends Client {
        override onReconnecting(attempt: number, _delay: number, reason: Error) {
          hooks.push(`reconnecting ${attempt} ${(reason as { code?: string }).code}`);
        }
        override onConnectError(err: ConnectError) {
          error = err;
          hooks.push('connectError');
        }
        override onClose() {
          hooks.push('close');
        }
      }
      const client = new Resolver({ engine, reconnect });
      const rejected = await client.connect(['no-such-host.invalid', 80]).catch((e: unknown) => e);
      await client.whenClosed();
      runs.push({ hooks, error, rejected });
    }
    const dnsCodes = ['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL'];
    for (const { error, rejected } of runs) {
      expect(error).toBeInstanceOf(ConnectError);
      expect(rejected).toBe(error);
      expect(dnsCodes).toContain((error as ConnectError).systemCode);
    }
    expect(runs[0]!.hooks).toEqual(['connectError', 'close']);
    expect(runs[1]!.hooks).toHaveLength(4);
    expect(runs[1]!.hooks.slice(0, 2)).toEqual([expect.stringMatching(/^reconnecting 1 /), expect.stringMatching(/^reconnecting 2 /)]);
    expect(runs[1]!.hooks.slice(2)).toEqual(['connectError', 'close']);
    expect(engine.channels.size).toBe(0);
  });

  it('EADDRINUSE on TCP (the port held by another process): onListenError then onClose, the promise rejects with the same ListenError (systemCode EADDRINUSE); unobserved, it is logged once and nothing crashes', async () => {
    const engine = testEngine();
    const holder = child('python3', [
      '-c',
      `import socket, sys
s = socket.socket()
s.bind(('127.0.0.1', 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
sys.stdin.read()`,
    ], { input: true });
    const port = Number(await holder.nextLine('the held port'));
    const hooks: string[] = [];
    class Taken extends Server {
      override onListenError(err: ListenError) {
        hooks.push(`listenError ${err.systemCode}`);
        super.onListenError(err);
      }
      override onClose() {
        hooks.push('close');
      }
    }
    const server = new Taken(Echo, { engine });
    const err = await server.listen(['127.0.0.1', port]).catch((e: unknown) => e);
    await server.whenClosed();
    expect(err).toBeInstanceOf(ListenError);
    expect(err).toMatchObject({ code: 'ERR_TREWS_LISTEN', systemCode: 'EADDRINUSE' });
    expect(hooks).toEqual(['listenError EADDRINUSE', 'close']);
    expect(engine.lines).toEqual([]); // awaited: the caller handles it, nothing logged

    // Nobody awaits: the default onListenError logs one line and closes; nothing escapes.
    const careless = new Server(Echo, { engine });
    void careless.listen(['127.0.0.1', port]);
    await careless.whenClosed();
    expect(engine.lines).toHaveLength(1);
    expect(engine.lines[0]).toMatch(/EADDRINUSE/);
    holder.proc.stdin!.end();
    expect(await holder.exited).toBe(0);
  });

  it('EADDRINUSE on a Unix path (a live socket of another process): ListenError with systemCode EADDRINUSE, the socket file is not deleted and its owner keeps serving', async () => {
    const engine = testEngine();
    const where = path.join(tempDir(), 'held.sock');
    const holder = child('python3', [
      '-c',
      `import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
print('ready', flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b'held\\n')
    except OSError:
        pass
    c.close()`,
      where,
    ]);
    expect(await holder.nextLine('the held path')).toBe('ready');
    const hooks: string[] = [];
    class Taken extends Server {
      override onListenError(err: ListenError) {
        hooks.push(`listenError ${err.systemCode}`);
      }
      override onClose() {
        hooks.push('close');
      }
    }
    const server = new Taken(Echo, { engine });
    const err = await server.listen(where).catch((e: unknown) => e);
    await server.whenClosed();
    expect(err).toBeInstanceOf(ListenError);
    expect(err).toMatchObject({ systemCode: 'EADDRINUSE' });
    expect((err as Error).message).toMatch(/another server is listening/);
    expect(hooks).toEqual(['listenError EADDRINUSE', 'close']);
    expect(statSync(where).isSocket()).toBe(true);
    const peer = new Peer(where);
    await peer.untilText('held\n');
  });

  it('running out of file descriptors (server under ulimit -n 64, EMFILE on accept): no crash, no busy loop (< 50% of a core), connections already open keep working, and new ones are served again once some close', async () => {
    const limit = 64;
    const srv = child('bash', ['-c', `ulimit -n ${limit} && exec "${process.execPath}" --import tsx "${EMFILE_SERVER}"`], { input: true });
    const info = JSON.parse(await srv.nextLine('the server to listen', 20_000)) as { port: number; pid: number; fds: number };
    const status = async () => {
      srv.send('status\n');
      return JSON.parse(await srv.nextLine('status')) as { connections: number; fds: number; acceptErrors: number; codes: string[] };
    };

    /** Connect, send a line, and see whether it is echoed ('served') or the socket closes ('refused'). */
    const attempt = (ms = 3000) =>
      new Promise<{ outcome: 'served' | 'refused' | 'pending'; socket: net.Socket }>((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port: info.port });
        let text = '';
        const timer = setTimeout(() => resolve({ outcome: 'pending', socket }), ms);
        socket.setEncoding('utf8');
        socket.on('connect', () => socket.write('ping\n'));
        socket.on('data', (d: string) => {
          text += d;
          if (text === 'ping\n') {
            clearTimeout(timer);
            resolve({ outcome: 'served', socket });
          }
        });
        socket.on('error', () => {});
        socket.on('close', () => {
          clearTimeout(timer);
          resolve({ outcome: 'refused', socket });
        });
        onCleanup(() => socket.destroy());
      });

    const served: net.Socket[] = [];
    const others: net.Socket[] = [];
    let refused = 0;
    for (let i = 0; i < limit + 10 && others.length < 3; i++) {
      const { outcome, socket } = await attempt();
      if (outcome === 'served') served.push(socket);
      else {
        others.push(socket);
        if (outcome === 'refused') refused++;
      }
    }
    const exhausted = await status();
    expect(served.length).toBeGreaterThan(5);
    expect(served.length).toBeLessThan(limit);
    expect(refused).toBeGreaterThan(0);
    // The server's descriptor table is full: even listing /proc/self/fd fails (EMFILE). libuv
    // accepts and closes what it cannot keep (its "EMFILE trick") without reporting it, so
    // the refused peers see a close and the server no error.
    expect(exhausted.fds).toBe(-1);
    expect(exhausted.connections).toBe(served.length);

    // With connections waiting that it cannot accept, the server must not spin.
    const cpu0 = cpuSeconds(info.pid);
    const t0 = performance.now();
    await sleep(1000);
    const cpuShare = (cpuSeconds(info.pid) - cpu0) / ((performance.now() - t0) / 1000);
    expect(cpuShare).toBeLessThan(0.5);

    // The connections it holds still work.
    const first = served[0]!;
    const echoed = new Promise<string>((resolve) => first.once('data', (d: string) => resolve(d)));
    first.write('still\n');
    expect(await echoed).toBe('still\n');

    // Free some descriptors: new connections are served again.
    for (const socket of others) socket.destroy();
    for (const socket of served.splice(0, 5)) socket.end();
    const t1 = performance.now();
    let after = await status();
    while (after.connections > served.length && performance.now() - t1 < 5000) {
      await sleep(50);
      after = await status();
    }
    expect(after.connections).toBe(served.length);
    const again = await attempt(5000);
    expect(again.outcome).toBe('served');
    again.socket.destroy();
    for (const socket of served) socket.destroy();
    srv.proc.stdin!.end();
    expect(await srv.exited).toBe(0);
    expect(srv.stderr()).not.toMatch(/Error|unhandled/i);
    console.log(
      `EMFILE: ${served.length} connections served under ulimit -n ${limit} (${info.fds} fds at listen), ${refused} refused, ` +
        `${exhausted.acceptErrors} accept errors reported, server CPU ${(cpuShare * 100).toFixed(1)}% while exhausted`,
    );
  }, 40_000);
});

// ---- connection limits ----------------------------------------------------------------------

describe('maxConnections', () => {
  it('a burst of 500 connects against maxConnections 50: exactly 50 served at a time, the other 450 closed at once without a byte, no crash; freed slots are served again', async () => {
    const engine = testEngine();
    const max = 50;
    let accepted = 0;
    let mostOpen = 0;
    class Counted extends Echo {
      override onConnect() {
        accepted++;
        mostOpen = Math.max(mostOpen, this.server.connections.size);
      }
    }
    const { server, port } = await serve(engine, Counted, { maxConnections: max });

    type Outcome = { socket: net.Socket; state: 'waiting' | 'served' | 'refused'; connectedAt: number; closedAt: number };
    const open = (n: number): Outcome[] =>
      Array.from({ length: n }, () => {
        const socket = net.connect({ host: '127.0.0.1', port });
        const o: Outcome = { socket, state: 'waiting', connectedAt: 0, closedAt: 0 };
        let text = '';
        socket.setEncoding('utf8');
        socket.on('connect', () => {
          o.connectedAt = performance.now();
          socket.write('hi\n');
        });
        socket.on('data', (d: string) => {
          text += d;
          if (text === 'hi\n') o.state = 'served';
        });
        socket.on('error', () => {});
        socket.on('close', () => {
          o.closedAt = performance.now();
          if (o.state === 'waiting') o.state = 'refused';
        });
        onCleanup(() => socket.destroy());
        return o;
      });
    const count = (list: Outcome[], state: Outcome['state']) => list.filter((o) => o.state === state).length;

    const burst = open(500);
    await waitUntil(() => count(burst, 'waiting') === 0, 'every connect to be served or refused', 15_000);
    expect(count(burst, 'served')).toBe(max);
    expect(count(burst, 'refused')).toBe(500 - max);
    expect(accepted).toBe(max);
    expect(mostOpen).toBe(max);
    expect(server.connections.size).toBe(max);
    // Refused at once: closed soon after connecting (no waiting for a timeout).
    const slowest = Math.max(...burst.filter((o) => o.state === 'refused').map((o) => o.closedAt - o.connectedAt));
    expect(slowest).toBeLessThan(3000);

    // Free 10 slots: 11 new connects get exactly 10 served.
    for (const o of burst.filter((x) => x.state === 'served').slice(0, 10)) o.socket.end();
    await waitUntil(() => server.connections.size === max - 10, 'the freed slots');
    const more = open(11);
    await waitUntil(() => count(more, 'waiting') === 0, 'the second wave', 10_000);
    expect(count(more, 'served')).toBe(10);
    expect(count(more, 'refused')).toBe(1);
    expect(server.connections.size).toBe(max);
    expect(server.listening).toBe(true);
  }, 30_000);
});
