/**
 * Idle connections benchmark: the memory one idle connection costs a trews Server, against a
 * plain node:net server doing the same work (line echo, TCP_NODELAY, an 'error' handler, its
 * sockets kept in a Set).
 *
 * Each run starts a fresh server process (bench/idle-server.mjs, with --expose-gc) and a
 * separate client process (bench/load-idle.mjs) that opens the connections, has one line
 * echoed on each, then leaves them idle. The server measures RSS and heapUsed after full GCs
 * before and after; the deltas divided by the number of connections are the cost per
 * connection. It measures twice: right after the connections opened, and once they have been
 * idle for a while (BENCH_IDLE_SETTLE ms). Right after, RSS still holds the young generation
 * that V8 grew while accepting (its size depends on how much each server allocated on the
 * way); an idle process gives that back when V8's memory reducer runs, and what is left is
 * what idle connections keep costing. trews runs from the built package (dist/) when it is up to date, as users run
 * it; otherwise from src/ through tsx, which costs more heap (the output says so).
 * 10,000 connections need about 10,000 descriptors in each process: the limit is
 * raised with `ulimit -n` (in a bash wrapper) when the hard limit allows, otherwise the count
 * is scaled down, and the output says so.
 *
 * Knobs (environment): BENCH_IDLE_CONNECTIONS (10000), BENCH_ROUNDS (2; the lowest cost of
 * the rounds counts), BENCH_IDLE_SETTLE (20000 ms; 0 skips the settled measurement).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DIR, benchFile, envNumber, fmtInt, fmtRatio, machineLine, table, verdict } from './lib.js';
import { builtTrews } from './trews-build.js';

interface Memory {
  connections: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

interface Sample {
  rss: number;
  heap: number;
  external: number;
  /** RSS per connection once idle for `settleMs` (NaN when not measured). */
  settledRss: number;
  openMs: number;
}

const KINDS = [
  { name: 'trews', what: "trews Server + Connection, readDelimiter '\\n', echo" },
  { name: 'net', what: "node:net server, hand-written '\\n' splitter, echo, sockets in a Set" },
];

export const description = 'idle: memory per idle connection (RSS and heap), 10,000 connections, trews Server vs node:net';

// ---- child processes with awaitable JSON lines ------------------------------------------------

const live = new Set<ChildProcess>();
let exitHooked = false;

function killAll(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  live.clear();
}

export class Proc {
  readonly child: ChildProcess;
  #lines: string[] = [];
  #partial = '';
  #stderr = '';
  #done = false;
  #wake: Array<() => void> = [];

  constructor(command: string, args: string[]) {
    if (!exitHooked) {
      exitHooked = true;
      process.once('exit', killAll);
    }
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(this.child);
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (text: string) => {
      this.#partial += text;
      let nl;
      while ((nl = this.#partial.indexOf('\n')) !== -1) {
        this.#lines.push(this.#partial.slice(0, nl));
        this.#partial = this.#partial.slice(nl + 1);
      }
      this.#notify();
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (text: string) => (this.#stderr += text));
    this.child.on('close', () => {
      this.#done = true;
      live.delete(this.child);
      this.#notify();
    });
  }

  #notify(): void {
    for (const w of this.#wake.splice(0)) w();
  }

  /** The next stdout line, parsed as JSON. */
  async next<T>(what: string, ms: number): Promise<T> {
    const t0 = performance.now();
    while (this.#lines.length === 0) {
      if (this.#done) throw new Error(`${what}: the process exited (${this.#stderr.trim().slice(-400) || 'no stderr'})`);
      const left = ms - (performance.now() - t0);
      if (left <= 0) throw new Error(`${what}: nothing after ${ms} ms (${this.#stderr.trim().slice(-400) || 'no stderr'})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return JSON.parse(this.#lines.shift()!) as T;
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  async stop(): Promise<void> {
    if (this.#done) return;
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await new Promise<void>((resolve) => (this.#done ? resolve() : this.child.once('close', () => resolve())));
    clearTimeout(timer);
  }
}

/** Run `node args` with the open-files limit raised to `limit` (through bash), or as is. */
export function node(args: string[], limit: number | null): Proc {
  if (limit === null) return new Proc(process.execPath, args);
  const quoted = [process.execPath, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Proc('bash', ['-c', `ulimit -n ${limit} && exec ${quoted}`]);
}

// ---- trews against one other server: memory per idle connection --------------------------------

/** What an idle-memory server prints for each "measure" line (bench/*-idle-server.mjs). */
interface ServerMemory {
  connections: number;
  rss: number;
  heapUsed: number;
  external: number;
  /** V8's new space as committed, when the server reports it. */
  youngGeneration?: number;
}

/**
 * Bytes per connection: RSS, heap + external (what JavaScript objects and their buffers cost),
 * and RSS less the growth of V8's young generation (NaN when not reported).
 */
interface IdleCost {
  rss: number;
  heap: number;
  rssLessYoung: number;
  /** RSS once the connections have been idle `settleMs` (NaN when not measured). */
  settledRss: number;
}

export interface IdleComparison {
  /** The server process, run as `node --expose-gc <server> <kind>`, in bench/. */
  server: string;
  /** The client, run as `node <client> --mode idle --port P --connections N`, in bench/. */
  client: string;
  /** `[trews, other]`: the ratios are the first's cost over the second's. */
  kinds: [string, string];
  /** What the client opens, for errors (`opening 5000 <what>`). */
  what: string;
  /** The built trews module the server imports, relative to the repository (e.g. dist/websocket/index.js). */
  dist: string;
  /** Column width of the kind in the per-run lines. */
  pad: number;
  /** The highest trews / other ratio, RSS and heap each, that meets the target. */
  goal: number;
  connections: number;
  rounds: number;
  /** Also measure RSS after the connections sat idle this long (ms; 0: not). */
  settleMs: number;
}

/**
 * Memory per idle connection, each kind in a fresh server process, interleaved over `rounds`
 * (the lowest of each figure counts): a line per run, then trews / other for RSS just opened,
 * RSS once settled and heap, with verdicts. Skipped, with a line saying so, when trews is not built.
 */
export async function compareIdleMemory(c: IdleComparison): Promise<void> {
  if (!existsSync(join(BENCH_DIR, '..', c.dist))) {
    console.log(`idle: skipped (no ${c.dist}: run npm run build first)`);
    return;
  }
  const best = new Map<string, IdleCost>();
  for (let round = 1; round <= c.rounds; round++) {
    for (const kind of c.kinds) {
      const cost = await idleCost(c, kind);
      const settled = Number.isNaN(cost.settledRss) ? '' : `  ${fmtInt(cost.settledRss).padStart(7)} B RSS after ${c.settleMs / 1000} s idle`;
      console.log(`  idle ${kind.padEnd(c.pad)} ${fmtInt(cost.rss).padStart(7)} B RSS  ${fmtInt(cost.heap).padStart(7)} B heap+external${settled} per connection`);
      const prev = best.get(kind);
      best.set(kind, prev === undefined ? cost : lowest(prev, cost));
    }
  }
  const [trews, other] = c.kinds.map((kind) => best.get(kind)!);
  const vs = `${c.kinds[0]} / ${c.kinds[1]}`;
  const target = `(target <= ${c.goal.toFixed(1)}x)`;
  const n = fmtInt(c.connections);
  const judge = (what: string, key: 'rss' | 'settledRss' | 'heap') => {
    const ratio = trews![key] / other![key];
    console.log(`idle (${n} connections): ${what} ${vs} = ${fmtRatio(ratio)} ${target} ${verdict(ratio, c.goal, { atMost: true })}`);
  };
  judge('RSS just opened', 'rss');
  if (c.settleMs > 0) judge(`RSS after ${c.settleMs / 1000} s idle`, 'settledRss');
  judge('heap', 'heap');
  if (Number.isFinite(trews!.rssLessYoung) && Number.isFinite(other!.rssLessYoung)) {
    // Not a cost per connection: V8 grows its young generation (up to 32 MB with Node 20's
    // defaults) while any server allocates fast, as during the connects, and gives it back once idle.
    console.log(
      `idle (${n} connections): RSS less V8's young generation ${vs} = ${fmtRatio(trews!.rssLessYoung / other!.rssLessYoung)}` +
        ` (${fmtInt(trews!.rssLessYoung)} B vs ${fmtInt(other!.rssLessYoung)} B; the young generation grew ${fmtInt(trews!.rss - trews!.rssLessYoung)} B vs ${fmtInt(other!.rss - other!.rssLessYoung)} B per connection)`,
    );
  }
}

/** The lower of each figure of two runs. */
function lowest(a: IdleCost, b: IdleCost): IdleCost {
  return {
    rss: Math.min(a.rss, b.rss),
    heap: Math.min(a.heap, b.heap),
    rssLessYoung: Math.min(a.rssLessYoung, b.rssLessYoung),
    settledRss: Math.min(a.settledRss, b.settledRss),
  };
}

/** One run: the server's memory before and after the client opened its connections, per connection. */
async function idleCost(c: IdleComparison, kind: string): Promise<IdleCost> {
  const server = node(['--expose-gc', benchFile(c.server), kind], null);
  let client: Proc | null = null;
  try {
    const { port } = await server.next<{ port: number }>(`${kind} server start`, 30_000);
    server.send('measure');
    const before = await server.next<ServerMemory>('measure', 30_000);
    client = node([benchFile(c.client), '--mode', 'idle', '--port', String(port), '--connections', String(c.connections)], null);
    const opened = await client.next<{ connections: number; failed: number }>(`${kind}: opening ${c.connections} ${c.what}`, 120_000);
    if (opened.failed > 0) console.log(`  ! ${kind}: ${opened.failed} connections failed`);
    // The server may still be finishing the last handshakes: measure until it holds them all.
    let after: ServerMemory;
    do {
      server.send('measure');
      after = await server.next<ServerMemory>('measure', 30_000);
    } while (after.connections < opened.connections && (await new Promise((r) => setTimeout(r, 100, true))));
    const young = (after.youngGeneration ?? NaN) - (before.youngGeneration ?? NaN);
    let settledRss = NaN;
    if (c.settleMs > 0) {
      // Just opened, RSS still holds what V8 grew while accepting; an idle process gives it back.
      await new Promise((r) => setTimeout(r, c.settleMs));
      server.send('measure');
      settledRss = ((await server.next<ServerMemory>('measure', 30_000)).rss - before.rss) / after.connections;
    }
    return {
      rss: (after.rss - before.rss) / after.connections,
      heap: (after.heapUsed + after.external - before.heapUsed - before.external) / after.connections,
      rssLessYoung: (after.rss - before.rss - young) / after.connections,
      settledRss,
    };
  } finally {
    await client?.stop();
    await server.stop();
  }
}

function fdLimits(): { soft: number; hard: number } {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const [, soft, hard] = line?.split(/\s{2,}/) ?? [];
  const num = (v: string | undefined) => (v === undefined || v === 'unlimited' ? 1 << 20 : Number(v));
  return { soft: num(soft), hard: num(hard) };
}

// ---- one run --------------------------------------------------------------------------------

async function measure(server: Proc, expect: number): Promise<Memory> {
  // The server may still be finishing the last accepts: wait until it holds them all.
  for (let i = 0; ; i++) {
    server.send('measure');
    const m = await server.next<Memory>('server measure', 30_000);
    if (m.connections >= expect || i >= 50) return m;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function runOnce(kind: string, n: number, limit: number | null, trews: string[], settleMs: number): Promise<Sample> {
  // Node flags go before the script, its arguments after.
  const flags = trews[0] === '--import' ? trews.slice(0, 2) : [];
  const module = kind === 'trews' ? trews.slice(flags.length) : [];
  const server = node(['--expose-gc', ...flags, benchFile('idle-server.mjs'), kind, ...module], limit);
  let client: Proc | null = null;
  try {
    const { port } = await server.next<{ port: number }>(`${kind} server start`, 30_000);
    const before = await measure(server, 0);
    client = node([benchFile('load-idle.mjs'), '--port', String(port), '--connections', String(n)], limit);
    const opened = await client.next<{ connections: number; failed: number; errors: string[]; ms: number }>(`${kind}: opening ${n} connections`, 120_000);
    if (opened.failed > 0) console.log(`  ! ${kind}: ${opened.failed} connections failed (${opened.errors.join('; ')})`);
    const after = await measure(server, opened.connections);
    const count = after.connections;
    if (count === 0) throw new Error(`${kind}: no connection open`);
    let settledRss = NaN;
    if (settleMs > 0) {
      await new Promise((r) => setTimeout(r, settleMs));
      const settled = await measure(server, count);
      settledRss = (settled.rss - before.rss) / count;
    }
    client.send('close');
    await client.next(`${kind}: closing`, 30_000).catch(() => undefined);
    return {
      rss: (after.rss - before.rss) / count,
      heap: (after.heapUsed - before.heapUsed) / count,
      external: (after.external - before.external) / count,
      settledRss,
      openMs: opened.ms,
    };
  } finally {
    await client?.stop();
    await server.stop();
  }
}

// ---- the suite ------------------------------------------------------------------------------

export async function run(): Promise<void> {
  const wanted = Math.round(envNumber('BENCH_IDLE_CONNECTIONS', 10_000));
  const rounds = Math.round(envNumber('BENCH_ROUNDS', 2));
  const settleMs = Math.round(envNumber('BENCH_IDLE_SETTLE', 20_000));
  const headroom = 256;
  const { soft, hard } = fdLimits();
  let n = wanted;
  let limit: number | null = null;
  let note = `open-files limit ${soft} (hard ${hard}) is enough`;
  if (soft < wanted + headroom) {
    if (hard >= wanted + headroom) {
      limit = wanted + headroom;
      note = `open-files limit raised from ${soft} to ${limit} with ulimit -n`;
    } else {
      n = Math.max(100, hard - headroom);
      limit = hard;
      note = `SCALED DOWN to ${n} connections: the hard open-files limit is ${hard}`;
    }
  }
  console.log(`idle: ${fmtInt(n)} idle connections per run (each has one line echoed first), ${rounds} round(s), node ${process.version}`);
  const built = builtTrews();
  const trews = built.path === null ? ['--import', 'tsx', join(BENCH_DIR, '..', 'src', 'index.ts')] : [built.path];
  console.log(`  ${note}; server and clients in separate processes, a fresh server process per run`);
  console.log(`  ${built.what}`);
  for (const k of KINDS) console.log(`  ${k.name.padEnd(6)} ${k.what}`);
  console.log(machineLine());
  console.log();

  const samples = new Map<string, Sample[]>(KINDS.map((k) => [k.name, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const k of KINDS) {
      try {
        const s = await runOnce(k.name, n, limit, trews, settleMs);
        samples.get(k.name)!.push(s);
        console.log(
          `  round ${round}  ${k.name.padEnd(6)} rss ${fmtInt(s.rss).padStart(6)} B/conn   heap ${fmtInt(s.heap).padStart(6)} B/conn` +
            `   external ${fmtInt(s.external).padStart(5)} B/conn   opened in ${(s.openMs / 1000).toFixed(1)} s` +
            (Number.isNaN(s.settledRss) ? '' : `   rss once settled ${fmtInt(s.settledRss).padStart(6)} B/conn`),
        );
      } catch (err) {
        console.log(`  ! round ${round} ${k.name}: ${(err as Error).message}`);
      }
    }
  }

  type Key = 'rss' | 'settledRss' | 'heap' | 'external';
  const best = (name: string, key: Key) => Math.min(...(samples.get(name) ?? []).map((s) => s[key]));
  const settled = settleMs > 0;
  const rows = KINDS.map((k) => [
    k.name,
    fmtInt(best(k.name, 'rss')),
    ...(settled ? [fmtInt(best(k.name, 'settledRss'))] : []),
    fmtInt(best(k.name, 'heap')),
    fmtInt(best(k.name, 'external')),
  ]);
  const headers = ['server', 'rss B/conn', ...(settled ? [`rss settled (${settleMs / 1000} s idle)`] : []), 'heap B/conn', 'external B/conn'];
  console.log();
  console.log(table(headers, rows, new Set(headers.map((_, i) => i).slice(1))));
  console.log();
  const keys: Array<[Key, string]> = [['rss', 'rss just opened'], ...(settled ? [['settledRss', 'rss settled'] as [Key, string]] : []), ['heap', 'heap']];
  for (const [key, label] of keys) {
    const ratio = best('trews', key) / best('net', key);
    console.log(`trews / net ${label.padEnd(15)} per connection = ${fmtRatio(ratio).padStart(6)} (target <= 1.2x)  ${verdict(ratio, 1.2, { atMost: true })}`);
  }
  console.log('(lowest of the rounds; RSS also holds allocator slack and, just opened, young-generation space V8 gives back when idle;');
  console.log(' heap is what JavaScript objects cost)');
}
