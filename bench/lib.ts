/**
 * Shared helpers for the benchmark suites: load-generator child processes (bounded in time
 * and always killed), environment knobs, and table formatting.
 */
import { spawn, type ChildProcess } from 'node:child_process';
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
