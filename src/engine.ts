/**
 * The Engine: the channel registry, timers, the clock, error reporting, start/stop.
 *
 * One process-wide instance (`Engine.instance()`) serves by default; `new Engine()` makes an
 * isolated one for tests. With `{ clock: 'virtual' }` time only moves with `advance(ms)`.
 */
import { debuglog } from 'node:util';
import { performance } from 'node:perf_hooks';
import { EventEmitter } from 'eventemitter3';
import type { Channel } from './channel.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyChannel = Channel<any>;

export const debug = debuglog('trews');

/** Options for `new Engine(options)`. */
export interface EngineOptions {
  /** `'real'` (default): the monotonic system clock. `'virtual'`: moves only with `advance(ms)`. */
  clock?: 'real' | 'virtual';
  /** How long `stop()` waits for graceful closes before destroying what is left (ms, default 5000). */
  stopTimeout?: number;
  /** Where default error hooks and unhandled errors are logged (default: one line to stderr). */
  log?: (message: string) => void;
}

/** The events an `Engine` emits. */
export interface EngineEvents {
  /** An error no channel hook could handle (a throwing error hook, a throwing timer). */
  error: [err: unknown, source: AnyChannel | Timer | undefined];
}

type Fn<A extends unknown[]> = (...args: A) => void;

/** A scheduled callback. `cancel()` affects this timer only; a loop or cycle may cancel itself. */
export class Timer {
  #cancel: (() => void) | undefined;

  /** @internal */
  constructor(readonly kind: 'callback' | 'loop' | 'defer' | 'cycle') {}

  /** @internal */
  _arm(cancel: () => void): void {
    this.#cancel = cancel;
  }

  /** True until it has fired for the last time or been cancelled. */
  get active(): boolean {
    return this.#cancel !== undefined;
  }

  /** Stop this timer; it will not fire again. Cancelling twice, or after the last run, does nothing. */
  cancel(): void {
    const cancel = this.#cancel;
    this.#cancel = undefined;
    cancel?.();
  }

  /** @internal marks a one-shot timer as done without calling its canceller. */
  _done(): void {
    this.#cancel = undefined;
  }
}

interface VirtualEntry {
  due: number;
  seq: number;
  timer: Timer;
  period: number;
  run: () => void;
}

let singleton: Engine | undefined;

/**
 * The home of every channel and timer: a registry of open channels, timers in milliseconds on
 * a real or virtual clock, error reporting, and `start()`/`stop()`.
 *
 * Most programs use the process-wide `Engine.instance()`, which every channel joins unless
 * given `{ engine }`. Tests make their own, often with `{ clock: 'virtual' }`.
 *
 * @example
 * ```ts
 * const engine = Engine.instance();
 * const tick = engine.cycle(1000, () => console.log('every second'));
 * engine.defer(3500, () => void engine.stop()); // cancels timers, closes every channel
 * await engine.start(); // resolves when stop() is called
 * ```
 */
export class Engine extends EventEmitter<EngineEvents> {
  /** The process-wide engine every channel uses unless given `{ engine }`. */
  static instance(): Engine {
    singleton ??= new Engine();
    return singleton;
  }

  /** True for an engine made with `{ clock: 'virtual' }`: its clock moves only with `advance(ms)`. */
  readonly virtual: boolean;
  /** How long `stop()` waits for graceful closes before destroying what is left (ms). */
  readonly stopTimeout: number;
  readonly #log: (message: string) => void;
  readonly #channels = new Set<AnyChannel>();
  readonly #timers = new Set<Timer>();
  /** Timers of trews' own machinery (link deliveries, close bounds): stop() leaves them be. */
  readonly #internal = new Set<Timer>();
  #virtualNow = 0;
  #seq = 0;
  /** Min-heap of virtual timers by (due, seq), so equal deadlines fire in creation order. */
  readonly #heap: VirtualEntry[] = [];
  #running: { promise: Promise<void>; resolve: () => void } | undefined;
  /** Virtual clock: awaited promises that need time to pass (closes over simulated links). */
  readonly #awaited = new Set<Promise<unknown>>();
  /** settle()/runFor() calls in progress: while one moves the clock, nothing else does. */
  #driving = 0;
  #movingTime = false;
  /** Wakes the loop of #moveTime when a timer is scheduled or an awaited promise settles. */
  #wakeMover: (() => void) | null = null;

  constructor(options: EngineOptions = {}) {
    super();
    const clock = options.clock ?? 'real';
    if (clock !== 'real' && clock !== 'virtual') {
      throw new TypeError(`Engine clock must be 'real' or 'virtual', got ${String(clock)}`);
    }
    this.virtual = clock === 'virtual';
    this.stopTimeout = options.stopTimeout ?? 5000;
    this.#log = options.log ?? ((message) => process.stderr.write(`trews: ${message}\n`));
  }

  /** The live set of open channels. */
  get channels(): ReadonlySet<AnyChannel> {
    return this.#channels;
  }

  /** A monotonic clock in milliseconds. */
  now(): number {
    return this.virtual ? this.#virtualNow : performance.now();
  }

  // ---- timers ------------------------------------------------------------------------------

  /** Run `fn(...args)` once, on the next turn of the event loop. */
  callback<A extends unknown[]>(fn: Fn<A>, ...args: A): Timer {
    return this.#callback(this.#timers, fn, args);
  }

  /** @internal a callback for trews' own machinery: not cancelled by stop(). */
  _callback(fn: () => void): Timer {
    return this.#callback(this.#internal, fn, []);
  }

  /** @internal a defer for trews' own machinery: not cancelled by stop(). */
  _defer(ms: number, fn: () => void): Timer {
    checkDelay('defer', ms);
    return this.#defer(this.#internal, ms, fn, []);
  }

  #callback<A extends unknown[]>(set: Set<Timer>, fn: Fn<A>, args: A): Timer {
    this.#wakeMover?.();
    const timer = new Timer('callback');
    const handle = setImmediate(() => {
      this.#retire(timer, set);
      this.#fire(timer, fn, args);
    });
    return this.#track(timer, () => clearImmediate(handle), set);
  }

  /** Run `fn(...args)` on every turn of the event loop until cancelled. */
  loop<A extends unknown[]>(fn: Fn<A>, ...args: A): Timer {
    const timer = new Timer('loop');
    let handle: NodeJS.Immediate;
    const turn = () => {
      this.#fire(timer, fn, args);
      if (timer.active) handle = setImmediate(turn);
    };
    handle = setImmediate(turn);
    return this.#track(timer, () => clearImmediate(handle));
  }

  /** Run `fn(...args)` once after `ms` milliseconds. */
  defer<A extends unknown[]>(ms: number, fn: Fn<A>, ...args: A): Timer {
    checkDelay('defer', ms);
    return this.#defer(this.#timers, ms, fn, args);
  }

  #defer<A extends unknown[]>(set: Set<Timer>, ms: number, fn: Fn<A>, args: A): Timer {
    const timer = new Timer('defer');
    if (this.virtual) return this.#virtualTimer(timer, ms, 0, fn, args, set);
    const handle = longTimeout(ms, () => {
      this.#retire(timer, set);
      this.#fire(timer, fn, args);
    });
    return this.#track(timer, handle.clear, set);
  }

  /** Run `fn(...args)` every `ms` milliseconds until cancelled. */
  cycle<A extends unknown[]>(ms: number, fn: Fn<A>, ...args: A): Timer {
    checkDelay('cycle', ms);
    const timer = new Timer('cycle');
    if (this.virtual) return this.#virtualTimer(timer, ms, ms, fn, args, this.#timers);
    if (ms <= MAX_DELAY) {
      const handle = setInterval(() => this.#fire(timer, fn, args), ms);
      return this.#track(timer, () => clearInterval(handle));
    }
    let handle: { clear(): void };
    const next = () => {
      handle = longTimeout(ms, () => {
        this.#fire(timer, fn, args);
        if (timer.active) next();
      });
    };
    next();
    return this.#track(timer, () => handle.clear());
  }

  /**
   * Virtual clock only: move time forward by `ms`, firing every timer that falls due, in
   * deadline order, with `now()` reading each timer's deadline while it runs.
   */
  advance(ms: number): void {
    if (!this.virtual) throw new TypeError("advance() needs an Engine created with { clock: 'virtual' }");
    if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms)) {
      throw new RangeError(`advance(ms) takes a finite number >= 0, got ${String(ms)}`);
    }
    const target = this.#virtualNow + ms;
    for (let top = this.#heap[0]; top !== undefined && top.due <= target; top = this.#heap[0]) {
      heapPop(this.#heap);
      if (!top.timer.active) continue;
      this.#virtualNow = top.due;
      if (top.period > 0) {
        top.due += top.period;
        top.seq = this.#seq++;
        heapPush(this.#heap, top);
      }
      top.run();
    }
    this.#virtualNow = target;
  }

  /**
   * What is scheduled: callbacks waiting for a turn, and (virtual clock) when the next timer
   * falls due. Used by `trews/testing` to run a simulation until it is idle.
   */
  pending(): { callbacks: number; loops: number; nextDue: number | null } {
    let callbacks = 0;
    let loops = 0;
    for (const set of [this.#timers, this.#internal]) {
      for (const timer of set) {
        if (timer.kind === 'callback') callbacks++;
        else if (timer.kind === 'loop') loops++;
      }
    }
    while (this.#heap.length > 0 && !this.#heap[0]!.timer.active) heapPop(this.#heap);
    return { callbacks, loops, nextDue: this.#heap[0]?.due ?? null };
  }

  /**
   * @internal trews/testing's `settle()`: run the virtual clock from timer to timer, letting
   * each turn's work run in between, until nothing is scheduled or `maxTime` has passed.
   */
  async _settle(maxTime: number, maxSteps: number): Promise<number> {
    this.#driving++;
    try {
      const end = this.now() + maxTime;
      for (let step = 0; step < maxSteps; step++) {
        await this.#turns();
        const { nextDue } = this.pending();
        if (nextDue === null) return this.now();
        if (nextDue > end) {
          this.advance(end - this.now());
          await this.#turns();
          return this.now();
        }
        this.advance(nextDue - this.now());
      }
    } finally {
      this.#driving--;
    }
    throw new Error(`settle(): still busy after ${maxSteps} steps (a cycle timer? pass maxTime)`);
  }

  /**
   * @internal A promise that settles as `done` does. On a virtual clock, awaiting it lets time
   * pass: the clock moves from timer to timer, as `settle()` moves it, until `done` settles
   * (while a `settle()` or `runFor()` runs, that one moves it). A close over a simulated link
   * awaits its peer across the link's latency: `await close()` then completes by itself, and a
   * close nobody awaits (`void close()` inside a hook) leaves the clock alone.
   */
  _awaitTime<T>(done: Promise<T>): Promise<T> {
    if (!this.virtual) return done;
    return new TimeTaking<T>(done, () => this.#keepTimeFor(done));
  }

  #keepTimeFor(done: Promise<unknown>): void {
    const awaited = this.#awaited;
    awaited.add(done);
    const settled = () => {
      awaited.delete(done);
      this.#wakeMover?.();
    };
    Promise.prototype.then.call(done, settled, settled);
    if (!this.#movingTime) void this.#moveTime();
  }

  async #moveTime(): Promise<void> {
    this.#movingTime = true;
    try {
      while (this.#awaited.size > 0) {
        await this.#turns();
        if (this.#awaited.size === 0 || this.#driving > 0) continue;
        const { nextDue } = this.pending();
        if (nextDue !== null) this.advance(nextDue - this.now());
        // Nothing scheduled: wait for something to be (or for what is awaited to settle).
        else await new Promise<void>((resolve) => (this.#wakeMover = resolve));
        this.#wakeMover = null;
      }
    } finally {
      this.#movingTime = false;
    }
  }

  /** Let Node run a few turns: I/O callbacks, immediates and nextTicks queued by the last step. */
  async #turns(): Promise<void> {
    do {
      await new Promise<void>((resolve) => setImmediate(resolve));
    } while (this.pending().callbacks > 0);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  #virtualTimer<A extends unknown[]>(timer: Timer, delay: number, period: number, fn: Fn<A>, args: A, set: Set<Timer>): Timer {
    this.#wakeMover?.();
    const entry: VirtualEntry = { due: this.#virtualNow + delay, seq: this.#seq++, timer, period, run: () => {} };
    entry.run = () => {
      if (period === 0) this.#retire(timer, set);
      this.#fire(timer, fn, args);
    };
    heapPush(this.#heap, entry);
    // Cancelled entries are skipped when they reach the top of the heap.
    return this.#track(timer, () => {}, set);
  }

  #track(timer: Timer, cancel: () => void, set: Set<Timer> = this.#timers): Timer {
    set.add(timer);
    timer._arm(() => {
      set.delete(timer);
      cancel();
    });
    return timer;
  }

  #retire(timer: Timer, set: Set<Timer> = this.#timers): void {
    timer._done();
    set.delete(timer);
  }

  #fire<A extends unknown[]>(timer: Timer, fn: Fn<A>, args: A): void {
    try {
      fn(...args);
    } catch (err) {
      this.reportError(err, timer);
    }
  }

  // ---- channels ----------------------------------------------------------------------------

  /** @internal */
  _register(channel: AnyChannel): void {
    this.#channels.add(channel);
  }

  /** @internal */
  _unregister(channel: AnyChannel): void {
    this.#channels.delete(channel);
  }

  // ---- errors and logging ------------------------------------------------------------------

  /**
   * Report an error nothing else handled: emitted as `'error'` when someone listens,
   * otherwise logged. Never throws.
   */
  reportError(err: unknown, source?: AnyChannel | Timer): void {
    if (this.listenerCount('error') > 0) {
      try {
        this.emit('error', err, source);
        return;
      } catch (listenerErr) {
        this.log(`an 'error' listener threw: ${describeError(listenerErr)}`);
      }
    }
    const where = source === undefined ? '' : ` in ${String(source instanceof Timer ? `a ${source.kind} timer` : source)}`;
    this.log(`unhandled error${where}: ${describeError(err)}`);
  }

  /** Write one line to the engine's log (stderr by default). */
  log(message: string): void {
    try {
      this.#log(message);
    } catch {
      // A broken logger must not take the process down.
    }
  }

  // ---- start / stop ------------------------------------------------------------------------

  /** Resolves when `stop()` is called. Channels and timers are live without it. */
  start(): Promise<void> {
    if (!this.#running) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#running = { promise, resolve };
    }
    return this.#running.promise;
  }

  /** True from `start()` until `stop()`. */
  get running(): boolean {
    return this.#running !== undefined;
  }

  /**
   * Cancel every timer and close every channel gracefully; channels still open after
   * `stopTimeout` ms are destroyed. Resolves when all are closed, with how many closes were
   * forced (by `stopTimeout` or by a channel's own close bound). On a virtual clock, closes over
   * simulated links take virtual time: stop() lets it pass (see `_awaitTime`).
   */
  async stop(): Promise<{ forced: number }> {
    for (const timer of [...this.#timers]) timer.cancel();
    const channels = [...this.#channels];
    const closing = channels.map((channel) => channel.close().catch(() => undefined));
    const forced = new Set<AnyChannel>();
    const bound = setTimeout(() => {
      for (const channel of channels) {
        if (!channel.closed) {
          forced.add(channel);
          channel.destroy();
        }
      }
    }, this.stopTimeout);
    await Promise.all(closing);
    clearTimeout(bound);
    for (const channel of channels) if (channel.forced) forced.add(channel);
    const running = this.#running;
    this.#running = undefined;
    running?.resolve();
    return { forced: forced.size };
  }
}

/** A promise whose first `then` (an `await`) calls `onAwait`: see Engine#_awaitTime. */
class TimeTaking<T> extends Promise<T> {
  static override get [Symbol.species]() {
    return Promise;
  }

  #onAwait: (() => void) | null;

  constructor(done: Promise<T>, onAwait: () => void) {
    super((resolve, reject) => Promise.prototype.then.call(done, resolve, reject));
    this.#onAwait = onAwait;
  }

  override then<R1 = T, R2 = never>(
    onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    const onAwait = this.#onAwait;
    this.#onAwait = null;
    onAwait?.();
    return super.then(onFulfilled, onRejected);
  }
}

/** Node clamps longer delays to 1 ms (TimeoutOverflowWarning). */
const MAX_DELAY = 2 ** 31 - 1;

/** setTimeout for any delay: longer ones are re-armed in steps of at most MAX_DELAY. */
function longTimeout(ms: number, fn: () => void): { clear(): void } {
  const due = performance.now() + ms;
  let handle: NodeJS.Timeout;
  const arm = (left: number) => {
    handle = setTimeout(left > MAX_DELAY ? () => arm(due - performance.now()) : fn, Math.min(left, MAX_DELAY));
  };
  arm(ms);
  return { clear: () => clearTimeout(handle) };
}

function checkDelay(name: string, ms: number): void {
  if (typeof ms !== 'number' || !(ms > 0) || !Number.isFinite(ms)) {
    throw new RangeError(`${name}(ms, fn) needs a finite delay > 0 in milliseconds, got ${String(ms)}`);
  }
}

export function describeError(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return String(err);
}

function before(a: VirtualEntry, b: VirtualEntry): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}

function heapPush(heap: VirtualEntry[], entry: VirtualEntry): void {
  heap.push(entry);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(heap[i]!, heap[parent]!)) break;
    [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
    i = parent;
  }
}

function heapPop(heap: VirtualEntry[]): void {
  const last = heap.pop()!;
  if (heap.length === 0) return;
  heap[0] = last;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
    if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
    if (m === i) break;
    [heap[i], heap[m]] = [heap[m]!, heap[i]!];
    i = m;
  }
}
