/**
 * Soak test: connections opened, used and closed by the thousand, in rounds, checking that
 * file descriptors and heap come back to where they started. Not part of `npm test`:
 *
 *   npm run soak            (node --expose-gc --import tsx test/soak.ts)
 *
 * Each round opens SOAK_CONNECTIONS (default 2000) trews Clients to a trews line-echo Server in
 * this process, in batches that fit the file-descriptor limit, echoes SOAK_LINES (3) lines on
 * each and ends every connection one of five ways (client close(), client end() half-close,
 * server close() after 'quit', client close(false), client reset). After each round, once every
 * channel has closed, it runs gc() and counts /proc/self/fd and heapUsed.
 *
 * The starting level is taken after one warm-up batch (lazily loaded modules, JIT code and
 * pools are not leaks). PASS: after the last round, open fds = start +- 2 and
 * heapUsed <= start + 5 MiB, every echo was exact, every channel closed, nothing unhandled.
 * Exits 1 on FAIL.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Client, Connection, Engine, Server, type ReadError } from '../src/index.js';

const MiB = 1024 * 1024;
const ROUNDS = envInt('SOAK_ROUNDS', 10);
const PER_ROUND = envInt('SOAK_CONNECTIONS', 2000);
const LINES = envInt('SOAK_LINES', 3);
const FD_MARGIN = 2;
const HEAP_MARGIN = 5 * MiB;

type Mode = 'close' | 'end' | 'server-close' | 'abort' | 'reset';
const MODES: Mode[] = ['close', 'end', 'server-close', 'abort', 'reset'];

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error('soak: run with --expose-gc (npm run soak does)');
  process.exit(2);
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** The soft limit on open files, from /proc/self/limits. */
function fdLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === undefined || soft === 'unlimited' ? 1 << 20 : Number(soft);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function settle(): Promise<{ fds: number; heap: number; rss: number }> {
  // Let close callbacks and finalizers run, then collect twice.
  await sleep(50);
  gc!();
  await sleep(20);
  gc!();
  const m = process.memoryUsage();
  return { fds: openFds(), heap: m.heapUsed, rss: m.rss };
}

// ---- the server ----------------------------------------------------------------------------

const logged: string[] = [];
const reported: unknown[] = [];
const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));
process.on('uncaughtException', (err) => unhandled.push(err));

const engine = new Engine({ log: (message) => logged.push(message) });
engine.on('error', (err) => reported.push(err));

let peerResets = 0;

class Echo extends Connection {
  override readDelimiter = '\n';
  override encoding = 'utf8' as const;
  override onReadError(err: ReadError): void {
    if (err.systemCode === 'ECONNRESET') peerResets++;
    super.onReadError(err);
  }
  override onRead(line: string): void {
    if (line === 'quit') {
      this.write('bye\n');
      void this.close();
    } else {
      this.write(line + '\n');
    }
  }
}

const server = new Server(Echo, { engine });
await server.listen(['127.0.0.1', 0]);
const port = (server.localAddress as { port: number }).port;

// ---- one connection's life -----------------------------------------------------------------

let failures = 0;
const failureSamples: string[] = [];

function fail(what: string): void {
  failures++;
  if (failureSamples.length < 5) failureSamples.push(what);
}

async function session(id: number): Promise<void> {
  const mode = MODES[id % MODES.length]!;
  const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8', closeTimeout: 5000 });
  const got: string[] = [];
  let wake: (() => void) | null = null;
  client.on('read', (line: string) => {
    got.push(line);
    wake?.();
  });
  const received = (n: number) =>
    new Promise<void>((resolve, reject) => {
      if (got.length >= n) return resolve();
      const timer = setTimeout(() => reject(new Error(`connection ${id}: ${got.length}/${n} lines after 10 s`)), 10_000);
      wake = () => {
        if (got.length >= n) {
          clearTimeout(timer);
          wake = null;
          resolve();
        }
      };
    });
  try {
    await client.connect(['127.0.0.1', port]);
    for (let j = 0; j < LINES; j++) client.write(`c${id} line ${j}\n`);
    await received(LINES);
    for (let j = 0; j < LINES; j++) if (got[j] !== `c${id} line ${j}`) fail(`connection ${id}: line ${j} came back as ${JSON.stringify(got[j])}`);
    switch (mode) {
      case 'close':
        await client.close();
        break;
      case 'end':
        client.end();
        await client.whenClosed();
        break;
      case 'server-close':
        client.write('quit\n');
        await received(LINES + 1);
        if (got[LINES] !== 'bye') fail(`connection ${id}: expected bye, got ${JSON.stringify(got[LINES])}`);
        await client.whenClosed();
        break;
      case 'abort':
        await client.close(false);
        break;
      case 'reset':
        client.socket!.resetAndDestroy();
        await client.whenClosed();
        break;
    }
  } catch (err) {
    fail(`connection ${id} (${mode}): ${(err as Error).message}`);
    client.destroy();
  }
}

async function runConnections(first: number, count: number, batch: number): Promise<void> {
  for (let start = 0; start < count; start += batch) {
    const n = Math.min(batch, count - start);
    await Promise.all(Array.from({ length: n }, (_, k) => session(first + start + k)));
  }
}

async function allClosed(): Promise<boolean> {
  const t0 = performance.now();
  // Only the server itself may remain.
  while (server.connections.size > 0 || engine.channels.size > 1) {
    if (performance.now() - t0 > 15_000) return false;
    await sleep(10);
  }
  return true;
}

// ---- the rounds ----------------------------------------------------------------------------

const limit = fdLimit();
// Each connection holds two descriptors here (client and server side); keep headroom.
const BATCH = Math.max(10, Math.min(500, Math.floor((limit - 200) / 2)));

const cold = await settle();
await runConnections(0, Math.min(BATCH, PER_ROUND), BATCH);
await allClosed();
const start = await settle();

const fmtMiB = (bytes: number) => (bytes / MiB).toFixed(2);
const signed = (n: number, digits = 0) => `${n >= 0 ? '+' : ''}${n.toFixed(digits)}`;
const header = ['round', 'conns', 'seconds', 'conns/s', 'fds', 'Δfds', 'heap MiB', 'Δheap MiB', 'rss MiB', 'failures'];
const widths = [5, 6, 7, 7, 4, 4, 8, 9, 7, 8];
const row = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');

console.log(
  `soak: ${ROUNDS} rounds x ${PER_ROUND} connections (batches of ${BATCH}, fd limit ${limit}), ${LINES} lines echoed each, ` +
    `ends rotating ${MODES.join(' / ')}; node ${process.version}`,
);
console.log(`cold start: ${cold.fds} fds, heap ${fmtMiB(cold.heap)} MiB; after one warm-up batch (the starting level): ${start.fds} fds, heap ${fmtMiB(start.heap)} MiB`);
console.log(`pass: fds back to start +- ${FD_MARGIN}, heap <= start + ${HEAP_MARGIN / MiB} MiB after the last round`);
console.log();
console.log(row(header));
console.log(row(widths.map((w) => '-'.repeat(w))));

let last = start;
let closedOk = true;
let next = BATCH;
const t0 = performance.now();
for (let round = 1; round <= ROUNDS; round++) {
  const failuresBefore = failures;
  const r0 = performance.now();
  await runConnections(next, PER_ROUND, BATCH);
  next += PER_ROUND;
  const seconds = (performance.now() - r0) / 1000;
  if (!(await allClosed())) {
    closedOk = false;
    fail(`round ${round}: ${server.connections.size} server connections and ${engine.channels.size - 1} other channels still open after 15 s`);
  }
  last = await settle();
  console.log(
    row([
      String(round),
      String(PER_ROUND),
      seconds.toFixed(2),
      (PER_ROUND / seconds).toFixed(0),
      String(last.fds),
      signed(last.fds - start.fds),
      fmtMiB(last.heap),
      signed((last.heap - start.heap) / MiB, 2),
      fmtMiB(last.rss),
      String(failures - failuresBefore),
    ]),
  );
}
const total = (performance.now() - t0) / 1000;

await server.close();
await engine.stop();

const fdOk = Math.abs(last.fds - start.fds) <= FD_MARGIN;
const heapOk = last.heap - start.heap <= HEAP_MARGIN;
const otherLogs = logged.filter((l) => !/ECONNRESET/.test(l));
console.log();
console.log(
  `${ROUNDS * PER_ROUND} connections in ${total.toFixed(1)} s; the server saw ${peerResets} peer resets (the 'reset' ends) and logged ${otherLogs.length} lines; ` +
    `${reported.length} engine errors; ${unhandled.length} unhandled`,
);
for (const sample of failureSamples) console.log(`  failure: ${sample}`);
for (const line of otherLogs.slice(0, 5)) console.log(`  log: ${line}`);
for (const err of unhandled.slice(0, 5)) console.log(`  unhandled: ${String(err)}`);
const checks = [
  `fds ${start.fds} -> ${last.fds} (${fdOk ? 'ok' : 'LEAK'})`,
  `heap ${fmtMiB(start.heap)} -> ${fmtMiB(last.heap)} MiB (${heapOk ? 'ok' : 'LEAK'})`,
  `echo failures ${failures}`,
  `channels closed ${closedOk ? 'ok' : 'NO'}`,
];
const pass = fdOk && heapOk && failures === 0 && closedOk && reported.length === 0 && unhandled.length === 0;
console.log(`${pass ? 'PASS' : 'FAIL'}: ${checks.join(', ')}`);
process.exit(pass ? 0 : 1);
