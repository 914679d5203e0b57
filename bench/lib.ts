/**
 * Shared helpers for the benchmark suites: load-generator child processes (bounded in time
 * and always killed), environment knobs, table formatting and target verdicts, the servers
 * under test (listening and closing them, the hand-written line echo), and `compareRates`, the
 * trews-against-one-other-server rate comparison of the websocket and socketio suites.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));

export function benchFile(name: string): string {
  return join(BENCH_DIR, name);
}

/** A number from the environment, or `fallback` (a bad value is reported, not ignored). */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return value;
}

/**
 * The timing knobs the load-driven suites share: BENCH_SECONDS (measured), BENCH_WARMUP
 * (1 s) and BENCH_ROUNDS, with the suite's own defaults for seconds and rounds.
 */
export function envTiming(defaults: { seconds: number; rounds: number }): { seconds: number; warmup: number; rounds: number } {
  return {
    seconds: envNumber('BENCH_SECONDS', defaults.seconds),
    warmup: envNumber('BENCH_WARMUP', 1),
    rounds: Math.round(envNumber('BENCH_ROUNDS', defaults.rounds)),
  };
}

/** A comma-separated list from the environment, or null. */
export function envList(name: string): string[] | null {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return null;
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * One line about the machine: CPUs and the 1-minute load average, with a warning when other
 * work is running (a benchmark on a busy machine measures the machine, not the code).
 */
export function machineLine(): string {
  const cpus = os.availableParallelism?.() ?? os.cpus().length;
  const load = os.loadavg()[0]!;
  const busy = load > cpus * 0.5 ? `  (busy: other processes are running, expect noisy numbers)` : '';
  return `machine: ${cpus} CPUs, load average ${load.toFixed(2)}${busy}`;
}

// ---- child processes -----------------------------------------------------------------------

const children = new Set<ChildProcess>();

/** Kill every load-generator child still running (called at exit, on signals, on errors). */
export function killChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
}

let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', killChildren);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killChildren();
      process.exit(130);
    });
  }
}

export interface LoadRun<T> {
  /** The last JSON line the child printed (its result). */
  result: T;
  /** Server-process CPU time (user+system) per wall second between the child's "start" and result lines. */
  serverCpu: number;
}

/**
 * Run a plain-JS load generator with `node` (not tsx: the same cost for every server). It
 * may print `{"event":"start"}` when its measured window starts, and must print its result
 * as the last JSON line on stdout. Killed after `timeoutMs` (the promise then rejects).
 */
export function runLoad<T>(script: string, args: string[], timeoutMs: number): Promise<LoadRun<T>> {
  hookExit();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    let result: T | undefined;
    let cpuAt: NodeJS.CpuUsage | undefined;
    let wallAt = 0;
    let serverCpu = NaN;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`load generator ${script} still running after ${timeoutMs} ms: killed`));
    }, timeoutMs);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (text: string) => {
      out += text;
      let nl;
      while ((nl = out.indexOf('\n')) !== -1) {
        const line = out.slice(0, nl).trim();
        out = out.slice(nl + 1);
        if (line === '') continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          err += `unexpected output: ${line}\n`;
          continue;
        }
        if ((parsed as { event?: string }).event === 'start') {
          cpuAt = process.cpuUsage();
          wallAt = performance.now();
        } else {
          result = parsed as T;
          if (cpuAt !== undefined) {
            const used = process.cpuUsage(cpuAt);
            serverCpu = (used.user + used.system) / 1000 / (performance.now() - wallAt);
          }
        }
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => (err += text));
    child.on('error', (e) => {
      clearTimeout(timer);
      children.delete(child);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      if (code === 0 && result !== undefined) resolve({ result, serverCpu });
      else reject(new Error(`load generator exited with ${signal ?? code}${err ? `: ${err.trim()}` : ''}`));
    });
  });
}

// ---- formatting ----------------------------------------------------------------------------

export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-';
}

export function fmtRatio(n: number): string {
  if (!Number.isFinite(n)) return '-';
  return `${n >= 10 ? n.toFixed(1) : n.toFixed(2)}x`;
}

export function fmtPct(n: number): string {
  return Number.isFinite(n) ? `${Math.round(n * 100)}%` : '-';
}

/** Render rows as an aligned text table; columns listed in `right` are right-aligned. */
export function table(header: string[], rows: string[][], right: Set<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Close something, but give up waiting after `ms` (then call `force`). */
export async function closeWithin(close: () => Promise<void>, ms: number, force: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  const outcome = await Promise.race([close().then(() => 'closed' as const), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') force();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Whether a ratio met its goal: `met`, `MISSED`, or `na` when it could not be computed. */
export function verdict(ratio: number, goal: number, { atMost = false, na = 'n/a' } = {}): string {
  if (!Number.isFinite(ratio)) return na;
  return (atMost ? ratio <= goal : ratio >= goal) ? 'met' : 'MISSED';
}

/** The `round 1`, `round 2`, ... column headers. */
export function roundHeaders(rounds: number): string[] {
  return Array.from({ length: rounds }, (_, i) => `round ${i + 1}`);
}

/** A table whose first column is a name and every other column a number (right-aligned). */
export function numberTable(header: string[], rows: string[][]): string {
  return table(header, rows, new Set(Array.from({ length: header.length - 1 }, (_, i) => i + 1)));
}

/** The sample with the highest finite `rate`, or `none` when no run was measured. */
export function bestRate<S extends { rate: number }>(samples: S[], none: S): S {
  const ok = samples.filter((s) => Number.isFinite(s.rate));
  return ok.length === 0 ? none : ok.reduce((a, b) => (b.rate > a.rate ? b : a));
}

// ---- servers under test ----------------------------------------------------------------------

/** A server under test, listening on 127.0.0.1. */
export interface RunningServer {
  port: number;
  close(): Promise<void>;
}

/** What `listenTrews` needs of a trews Server (from src/ or from the built package). */
interface TrewsServer {
  listen(address: [string, number], options?: { backlog?: number }): Promise<unknown>;
  readonly localAddress: unknown;
  close(graceful?: boolean): Promise<unknown>;
}

/** Listen a trews Server on 127.0.0.1, port 0; its close() waits up to 3 s, then forces. */
export async function listenTrews(server: TrewsServer, options?: { backlog?: number }): Promise<RunningServer> {
  await server.listen(['127.0.0.1', 0], options);
  return {
    port: (server.localAddress as { port: number }).port,
    close: () =>
      closeWithin(
        async () => void (await server.close()),
        3000,
        () => void server.close(false),
      ),
  };
}

/**
 * Start a fresh server, run `measure` against its port, and close the server whatever
 * happened. When `measure` throws, print `  ! <label>: <message>` and return null: one failed
 * run is reported, not fatal.
 */
export async function onFreshServer<T>(start: () => Promise<RunningServer>, label: string, measure: (port: number) => Promise<T>): Promise<T | null> {
  const server = await start();
  try {
    return await measure(server.port);
  } catch (err) {
    console.log(`  ! ${label}: ${(err as Error).message}`);
    return null;
  } finally {
    await server.close();
  }
}

/**
 * Set up a socket a hand-written server accepted: kept in `sockets` until it closes,
 * destroyed on error (a reset at teardown is not the benchmark's concern), and TCP_NODELAY,
 * as trews sets by default.
 */
export function track<S extends net.Socket>(sockets: Set<S>, socket: S): void {
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
  socket.on('error', () => socket.destroy());
  socket.setNoDelay(true);
}

/**
 * Listen a node:net (or node:tls) server on 127.0.0.1, port 0 (plus `options`, e.g. a
 * backlog); its close() waits up to 3 s for the connections in `sockets`, then destroys them.
 */
export async function listenNet(server: net.Server, sockets: Set<net.Socket>, options: net.ListenOptions = {}): Promise<RunningServer> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, ...options }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      closeWithin(
        () => new Promise<void>((resolve) => server.close(() => resolve())),
        3000,
        () => {
          for (const s of sockets) s.destroy();
        },
      ),
  };
}

/**
 * The hand-written line echo: an indexOf loop over each received Buffer, carrying the
 * unfinished tail to the next chunk. Each line is written back with its '\n' as one
 * zero-copy view (the same bytes as `line + '\n'`, one write per line, no copy): the cheapest
 * per-line reply there is by hand. `cork`: the lines of one chunk go out in one writev.
 */
export function handSplitEcho(cork: boolean): (socket: net.Socket) => void {
  return (socket) => {
    let carry: Buffer | null = null;
    socket.on('data', (chunk: Buffer) => {
      let start = 0;
      let nl = chunk.indexOf(NL);
      if (nl === -1) {
        carry = carry === null ? chunk : Buffer.concat([carry, chunk]);
        return;
      }
      if (cork) socket.cork();
      if (carry !== null) {
        // Only the line spanning the boundary is copied.
        socket.write(Buffer.concat([carry, chunk.subarray(0, nl + 1)]));
        carry = null;
        start = nl + 1;
        nl = chunk.indexOf(NL, start);
      }
      while (nl !== -1) {
        socket.write(chunk.subarray(start, nl + 1));
        start = nl + 1;
        nl = chunk.indexOf(NL, start);
      }
      if (cork) socket.uncork();
      if (start < chunk.length) carry = chunk.subarray(start);
    });
  };
}

const NL = 0x0a;

// ---- trews against one other server, load by load ----------------------------------------------

/** What a rate-counting load generator prints last (bench/load-websocket.mjs, load-socketio.mjs). */
export interface RateResult {
  count: number;
  seconds: number;
  rate: number;
  ok: boolean;
  cpu: number;
}

/** A server under test, started fresh for every run. */
export interface ServerSpec {
  name: string;
  start(): Promise<RunningServer>;
}

/** One load: its extra generator arguments and the trews / other ratio it should reach. */
export interface RateLoad {
  name: string;
  args: string[];
  goal: number;
}

export interface RateComparison {
  /** The load generator, in bench/. */
  script: string;
  /** `[trews, other]`: the ratios are the first's rate over the second's. */
  servers: [ServerSpec, ServerSpec];
  loads: RateLoad[];
  /** Generator arguments every load shares, between `--port` and `--warmup`. */
  args: string[];
  seconds: number;
  warmup: number;
  rounds: number;
  /** Column widths of the load and server names in the per-run lines. */
  pad: { load: number; server: number };
  /** Also compare server CPU per message (steadier than a rate on a busy machine). */
  cpuPerMessage?: boolean;
}

/**
 * Run every load against every server, interleaved over `rounds` (a fresh server per run),
 * print a line per run, the table of rates, and per load the ratio of the best rates and its
 * verdict.
 */
export async function compareRates(c: RateComparison): Promise<void> {
  const rates = new Map<string, number[]>();
  // Server CPU seconds per message, the best round's: on a busy machine a ping-pong rate says
  // as much about scheduling as about the server; its CPU per message says what it costs.
  const cpuPerMessage = new Map<string, number>();
  for (let round = 1; round <= c.rounds; round++) {
    for (const load of c.loads) {
      for (const spec of c.servers) {
        const key = `${load.name}/${spec.name}`;
        const run = await measureRate(c, load, spec);
        rates.set(key, [...(rates.get(key) ?? []), run?.rate ?? NaN]);
        if (run !== null && !(run.cost >= (cpuPerMessage.get(key) ?? Infinity))) cpuPerMessage.set(key, run.cost);
      }
    }
  }
  const best = (key: string) => {
    const measured = (rates.get(key) ?? []).filter(Number.isFinite);
    return measured.length === 0 ? NaN : Math.max(...measured);
  };
  console.log();
  console.log(numberTable(['run', ...roundHeaders(c.rounds), 'best'], [...rates].map(([key, list]) => [key, ...list.map(fmtInt), fmtInt(best(key))])));
  console.log();
  const [trews, other] = c.servers.map((s) => s.name);
  for (const load of c.loads) {
    const ratio = best(`${load.name}/${trews}`) / best(`${load.name}/${other}`);
    console.log(`${load.name}: ${trews} / ${other} = ${fmtRatio(ratio)} (target >= ${load.goal}x) ${verdict(ratio, load.goal)}`);
    if (!c.cpuPerMessage) continue;
    const cpu = (cpuPerMessage.get(`${load.name}/${trews}`) ?? NaN) / (cpuPerMessage.get(`${load.name}/${other}`) ?? NaN);
    console.log(`${load.name}: server CPU per message, ${trews} / ${other} = ${fmtRatio(cpu)} (lower is better)`);
  }
}

/**
 * One run of `load` against a fresh `spec` server, printed as one line: its rate and server
 * CPU seconds per message, or null when the run failed or reported errors (it does not count).
 */
async function measureRate(c: RateComparison, load: RateLoad, spec: ServerSpec): Promise<{ rate: number; cost: number } | null> {
  return onFreshServer(spec.start, `${load.name} ${spec.name}`, async (port) => {
    const { result, serverCpu } = await runLoad<RateResult>(
      benchFile(c.script),
      ['--port', String(port), ...c.args, '--warmup', String(c.warmup), '--seconds', String(c.seconds), ...load.args],
      (c.warmup + c.seconds) * 1000 + 15_000,
    );
    console.log(
      `  ${load.name.padEnd(c.pad.load)} ${spec.name.padEnd(c.pad.server)} ${fmtInt(result.rate).padStart(10)} msg/s  server cpu ${Math.round(serverCpu * 100)}%  load cpu ${Math.round(result.cpu * 100)}%${result.ok ? '' : '  (errors)'}`,
    );
    return result.ok ? { rate: result.rate, cost: (serverCpu * result.seconds) / result.count } : null;
  });
}
