/**
 * Helpers for the example tests that run example programs as real processes: through the tsx
 * CLI (as `npx tsx` would), in a process group of their own so that SIGINT reaches tsx and
 * its child as Ctrl-C does, and killed after the test if still running.
 */
import path from 'node:path';
import { spawn, type ChildProcessByStdio, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Peer, onCleanup, waitFor } from '../helpers.js';

/** The repository root (examples are run from there). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const TSX_CLI = path.join(ROOT, 'node_modules/tsx/dist/cli.mjs');

export interface RunningExample {
  stdout(): string;
  stderr(): string;
  /** Send SIGINT to the whole process group, as Ctrl-C in a terminal does; resolves on exit. */
  interrupt(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnTsx(file: string, args: string[], env: Record<string, string>, cwd = ROOT): ChildProcessWithoutNullStreams {
  // `npx tsx file` minus npx: the tsx CLI, which runs the file in a child node process. In a
  // process group of its own so that Ctrl-C (and the cleanup) reach tsx and its child alike.
  const child = spawn(process.execPath, [TSX_CLI, file, ...args], {
    cwd,
    env: { ...process.env, ...env, NODE_OPTIONS: '' },
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end();
  onCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) killGroup(child, 'SIGKILL');
  });
  return child;
}

function killGroup(child: ChildProcessWithoutNullStreams, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // Already gone.
  }
}

/** Start an example server; resolves once it prints its "listening" line. */
export function runExample(file: string, env: Record<string, string>, ms = 15_000): Promise<RunningExample> {
  const child = spawnTsx(file, [], env);
  let out = '';
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const running: RunningExample = {
    stdout: () => out,
    stderr: () => err,
    interrupt: () => {
      killGroup(child, 'SIGINT');
      return exited;
    },
  };
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file}: no "listening" line after ${ms} ms; stdout: ${out}; stderr: ${err}`)), ms);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/listening on port \d+.*\n/.test(out)) {
        clearTimeout(timer);
        resolve(running);
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${file} exited (${signal ?? code}) before listening; stdout: ${out}; stderr: ${err}`));
    });
  });
}

/** Run an example program to its end; resolves with its exit code and output. */
export function runToEnd(file: string, args: string[], env: Record<string, string>, ms = 15_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnTsx(file, args, env);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      killGroup(child, 'SIGKILL');
      reject(new Error(`${file} still running after ${ms} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, ms);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface SpawnedExample {
  child: ChildProcessByStdio<null, Readable, Readable>;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code and signal once the process exits. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Start an example program with `node --import tsx` (one process, so `child.kill('SIGINT')`
 * reaches it directly), from the repository root with `env` added, collecting its output;
 * killed after the test.
 */
export function spawnWithTsx(file: string, env: Record<string, string>): SpawnedExample {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, file)], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onCleanup(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Wait until a spawned example has printed its first line (or exited); `what` names it in a timeout. */
export async function untilFirstLine(example: SpawnedExample, what: string, ms: number): Promise<void> {
  await waitFor(
    () => example.stdout().includes('\n') || example.child.exitCode !== null,
    (wake) => {
      example.child.stdout.once('data', wake);
      example.child.once('exit', wake);
    },
    what,
    ms,
    () => example.stderr(),
  );
}

/** The chat's greeting, then its hello: a user at `port` called `nick`. */
export async function joinChat(port: number, nick: string): Promise<Peer> {
  const user = new Peer(port);
  await user.untilText('Welcome to trews chat! What is your nickname?\n');
  await user.write(`${nick}\n`);
  await user.untilText(`* hello ${nick}, `);
  return user;
}
