/** Test helpers: real loopback sockets, awaited events, no sleeps. */
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { afterEach } from 'vitest';
import { Engine } from '../src/engine.js';
import type { InetAddress } from '../src/address.js';

/** An isolated engine whose log lines are collected instead of printed. Stopped after each test. */
export function testEngine(options: { clock?: 'real' | 'virtual' } = {}): Engine & { lines: string[] } {
  const lines: string[] = [];
  const engine = Object.assign(new Engine({ ...options, stopTimeout: 2000, log: (m) => lines.push(m) }), { lines });
  cleanups.push(() => engine.stop());
  return engine;
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  const pending = cleanups.splice(0);
  for (const fn of pending.reverse()) await fn();
});

/** Register something to undo after the current test. */
export function onCleanup(fn: () => unknown): void {
  cleanups.push(fn);
}

export { freePort } from './free-port.js';

export function portOf(address: unknown): number {
  return (address as InetAddress).port;
}

/** A temp directory removed after the test. */
export function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'trews-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A plain node:net client that records everything it receives. */
export class Peer {
  readonly socket: net.Socket;
  readonly chunks: Buffer[] = [];
  received = Buffer.alloc(0);
  ended = false;
  closed = false;
  error: (Error & { code?: string }) | undefined;
  #waiters: Array<() => void> = [];

  constructor(target: number | string | net.NetConnectOpts, { allowHalfOpen = false } = {}) {
    const opts: net.NetConnectOpts =
      typeof target === 'number' ? { port: target, host: '127.0.0.1' } : typeof target === 'string' ? { path: target } : target;
    this.socket = net.connect({ ...opts, allowHalfOpen });
    this.socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.received = Buffer.concat([this.received, chunk]);
      this.#wake();
    });
    this.socket.on('end', () => {
      this.ended = true;
      this.#wake();
    });
    this.socket.on('error', (err) => {
      this.error = err;
      this.#wake();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    cleanups.push(() => this.socket.destroy());
  }

  connected(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.socket.connecting) return resolve();
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
  }

  get text(): string {
    return this.received.toString();
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** Resolve once `predicate` holds, re-checked on every event; fail after `ms`. */
  until(predicate: () => boolean, what = 'condition', ms = 10_000): Promise<void> {
    return waitFor(predicate, (wake) => this.#waiters.push(wake), what, ms, () => `received so far: ${JSON.stringify(this.text.slice(-200))}`);
  }

  untilText(text: string, ms?: number): Promise<void> {
    return this.until(() => this.text.includes(text), `text ${JSON.stringify(text)}`, ms);
  }

  untilBytes(n: number, ms?: number): Promise<void> {
    return this.until(() => this.received.length >= n, `${n} bytes`, ms);
  }

  untilClosed(ms?: number): Promise<void> {
    return this.until(() => this.closed, 'close', ms);
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

/** Resolve when `predicate()` holds; `subscribe` arranges for re-checks. Rejects after `ms`. */
export function waitFor(
  predicate: () => boolean,
  subscribe: (wake: () => void) => void,
  what: string,
  ms: number,
  detail: () => string = () => '',
): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}; ${detail()}`)), ms);
    const check = () => {
      if (predicate()) {
        clearTimeout(timer);
        resolve();
      } else subscribe(check);
    };
    check();
  });
}

/**
 * Until `written()` (a stream's bytesWritten) has stayed the same, above 0, for 300 ms and 40
 * checks 5 ms apart: turns of the event loop in which libuv would have written had the OS
 * taken more, so the peer's window and the kernel's buffers are full.
 */
export function untilWritesStall(written: () => number, ms = 15_000): Promise<void> {
  let last = -1;
  let since = Date.now();
  let checks = 0;
  const stalled = () => {
    const now = written();
    if (now !== last || now <= 0) [last, since, checks] = [now, Date.now(), 0];
    return ++checks >= 40 && Date.now() - since >= 300;
  };
  return waitFor(stalled, (wake) => setTimeout(wake, 5), 'the writes to stall', ms);
}

/** A promise and the functions that settle it. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Deterministic pseudo-random bytes (so failures reproduce). */
export function pseudoRandomBytes(n: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Run a Python 3 script (standard library only) with args; resolves with stdout, rejects on non-zero exit. */
export function python(script: string, args: string[] = [], ms = 20_000): Promise<string> {
  return pythonProcess(script, args, ms, 'ignore').output;
}

/**
 * Run a Python 3 script whose stdin the test can write to (to tell it when to go on: a
 * signal that needs no sleep). `output` resolves with stdout, rejects on non-zero exit.
 */
export function pythonProcess(script: string, args: string[] = [], ms = 20_000, stdin: 'pipe' | 'ignore' = 'pipe'): { stdin: Writable | null; output: Promise<string> } {
  const child = spawn('python3', ['-c', script, ...args], { stdio: [stdin, 'pipe', 'pipe'] });
  child.stdin?.on('error', () => {}); // the script may exit without reading it
  const output = new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    cleanups.push(() => child.kill('SIGKILL'));
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`python3 exited with ${code}: ${err}`));
    });
  });
  return { stdin: child.stdin, output };
}
