/**
 * Channel: the base of every trews channel. It owns the hook -> event mapping, the error
 * routing (specific error hook -> onError -> engine), and the rule that a throwing hook never
 * escapes into Node's event loop.
 */
import { EventEmitter } from 'eventemitter3';
import { Engine, debug } from './engine.js';
import { HookError, ReadError, WriteError } from './errors.js';
import { publishError } from './diagnostics.js';

/** Options every channel takes. */
export interface ChannelOptions {
  /** The engine this channel lives in (default: `Engine.instance()`). */
  engine?: Engine;
}

/** Events every channel emits: one per hook, with the hook's arguments. */
export interface ChannelEvents {
  close: [];
  error: [err: Error];
}

let lastId = 0;

/**
 * Errors that an awaited Promise rejects with or an event listener receives: default hooks
 * need not log them. One set for all channels (errors are never shared), not a field each.
 */
const received = new WeakSet<Error>();

const events = new Map<string, string>();
const EVENT_PREFIX = EventEmitter.prefixed === false ? '' : String(EventEmitter.prefixed);

/** Event name of a hook: `onConnectError` -> `connectError`, `onTLSError` -> `tlsError`. */
export function eventOf(hook: string): string {
  let event = events.get(hook);
  if (event === undefined) {
    const name = hook.slice(2);
    event = name.startsWith('TLS') ? `tls${name.slice(3)}` : name.charAt(0).toLowerCase() + name.slice(1);
    // Hook names are method names: a handful per class. The bound only guards misuse.
    if (events.size < 1024) events.set(hook, event);
  }
  return event;
}

const noop = () => {};

/**
 * A Promise that knows whether anyone has subscribed to it (awaited it, or called then/catch),
 * so default error hooks can stay quiet when the caller handles the rejection. It never causes
 * an unhandled rejection when ignored: Pants-style users drive everything from hooks.
 */
export class Outcome<T> extends Promise<T> {
  static override get [Symbol.species]() {
    return Promise;
  }
  observed = false;

  override then<R1 = T, R2 = never>(
    onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    this.observed = true;
    return super.then(onFulfilled, onRejected);
  }

  /** A pending Outcome with its settle functions; already marked handled. */
  static create<T>(): { outcome: Outcome<T>; resolve: (value: T) => void; reject: (err: unknown) => void } {
    let resolve!: (value: T) => void;
    let reject!: (err: unknown) => void;
    const outcome = new Outcome<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    Promise.prototype.then.call(outcome, undefined, noop);
    return { outcome, resolve, reject };
  }
}

/**
 * The base of every channel (`Stream`, `StreamServer`, `Datagram` and their subclasses): one
 * socket with `on*` hooks to override. Every hook `onXxx` also emits the event `'xxx'` with
 * the same arguments, right after it runs.
 */
export abstract class Channel<Events extends ChannelEvents = ChannelEvents> extends EventEmitter<Events> {
  /** Unique in the process and increasing: later channels have larger ids. */
  readonly id = ++lastId;
  /** The engine this channel lives in. */
  readonly engine: Engine;

  constructor(options: ChannelOptions = {}) {
    super();
    this.engine = options.engine ?? Engine.instance();
    this.engine._register(this);
  }

  /** True once the channel has fully closed (after `onClose`). */
  abstract get closed(): boolean;

  /** True if closing this channel gracefully ran out of time and it was closed by force. */
  get forced(): boolean {
    return false;
  }

  /** Close the channel; `flush` (default true) sends what is queued first. */
  abstract close(flush?: boolean): Promise<unknown>;

  /** Close at once, dropping anything queued; `err` goes to `onError` first. */
  abstract destroy(err?: Error): void;

  // ---- hooks -------------------------------------------------------------------------------

  /** The channel has closed; runs exactly once, after any error hook of the same failure. */
  onClose(): void {}

  /**
   * Any error not handled by a more specific hook. The default logs it (unless an `'error'`
   * listener or an awaiting caller receives it, or it only says the peer reset or vanished:
   * that goes to `NODE_DEBUG=trews`) and closes the channel without flushing.
   */
  onError(err: Error): void {
    this._logError(err);
    void this.close(false);
  }

  /** The logging half of the default `onError`. */
  protected _logError(err: Error): void {
    if (this.#isObserved(err)) {
      // Someone else receives it.
    } else if (peerWentAway(err)) {
      debug('%s: %s', String(this), describeBriefly(err)); // routine for a server: not worth a log line
    } else {
      this.engine.log(`${String(this)}: ${describeBriefly(err)}`);
    }
  }

  // ---- hook plumbing -----------------------------------------------------------------------

  /**
   * Call a hook and emit its event. An exception from the hook (or a listener) goes to
   * `onError` as a `HookError`; one from `onError` itself goes to the engine. Returns false
   * if something threw.
   */
  protected _hook(hook: string, ...args: unknown[]): boolean {
    try {
      this._awaitHook(hook, (this as unknown as Record<string, (...a: unknown[]) => unknown>)[hook]!(...args));
      const event = eventOf(hook);
      if (this._listened(event)) (this.emit as (event: string, ...a: unknown[]) => boolean)(event, ...args);
      return true;
    } catch (err) {
      this._hookThrew(hook, err);
      return false;
    }
  }

  /**
   * What a hook returned: an async hook's rejection goes to `onError` like a throw (an
   * unhandled rejection would end the process). Hooks usually return undefined: one compare.
   */
  protected _awaitHook(hook: string, result: unknown): void {
    if (result === undefined || typeof (result as PromiseLike<unknown> | null)?.then !== 'function') return;
    (result as PromiseLike<unknown>).then(undefined, (err: unknown) => this._hookThrew(hook, err));
  }

  /** Whether anything listens for `event`: emit() costs even with no listener. */
  protected _listened(event: string): boolean {
    // eventemitter3 keeps listeners in `_events`, under the event name with its prefix.
    return (this as unknown as { _events: Record<string, unknown> })._events[EVENT_PREFIX + event] !== undefined;
  }

  /** A hook threw: route it to onError, or to the engine when onError is what threw. */
  protected _hookThrew(hook: string, thrown: unknown): void {
    debug('%s: %s threw %o', String(this), hook, thrown);
    if (hook === 'onError') {
      this.engine.reportError(thrown, this);
      this.destroy();
      return;
    }
    const err = new HookError(hook, thrown);
    this._errorReported('onError', err);
    this._hook('onError', err);
  }

  /**
   * Report a failure through its specific error hook (`onConnectError`, ...). The default of
   * each specific hook passes the error on to `onError`.
   */
  protected _fail(hook: string, err: Error, awaited = false): void {
    if (awaited || this.listenerCount(eventOf(hook) as never) > 0) received.add(err);
    this._errorReported(hook, err);
    this._hook(hook, err);
  }

  /**
   * An error is about to reach `hook`: publish it (`trews:error`, `NODE_DEBUG=trews`).
   * Subclasses also keep the first one, for their close report.
   */
  protected _errorReported(hook: string, err: Error): void {
    publishError(this, hook, err);
  }

  /** The default body of every specific error hook. */
  protected _toOnError(err: Error): void {
    this._hook('onError', err);
  }

  #isObserved(err: Error): boolean {
    return received.has(err) || this.listenerCount('error' as never) > 0;
  }

  override toString(): string {
    return `${this.constructor.name}#${this.id}`;
  }
}

/** How an instance reads and applies one field that subclasses may override as a class field. */
export interface OverridableField<T> {
  /** Read on anything that is not an instance (a subclass prototype). */
  fallback: unknown;
  get(channel: T): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  set(channel: T, value: any): void;
}

/**
 * Validating accessors on a channel prototype. On an instance they read and apply the field.
 * On anything else (`MyConn.prototype.encoding = 'utf8'`) a set leaves a plain value there,
 * which instances read and apply (as they do with class fields), and a get returns `fallback`.
 */
export function defineFieldAccessors<T extends object>(
  prototype: T,
  isInstance: (target: object) => boolean,
  fields: Record<string, OverridableField<T>>,
): void {
  for (const [key, field] of Object.entries(fields)) {
    Object.defineProperty(prototype, key, {
      configurable: true,
      get(this: T) {
        return isInstance(this) ? field.get(this) : field.fallback;
      },
      set(this: T, value: unknown) {
        if (isInstance(this)) field.set(this, value);
        else Object.defineProperty(this, key, { value, writable: true, configurable: true, enumerable: true });
      },
    });
  }
}

const PEER_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/** A read or write failed because the peer reset or vanished. */
function peerWentAway(err: Error): boolean {
  return (err instanceof ReadError || err instanceof WriteError) && PEER_GONE.has(err.systemCode ?? '');
}

/** One log line for an error: `Name [CODE]: message (cause)`. */
export function describeBriefly(err: Error): string {
  const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
  const code = (err as { code?: unknown }).code;
  return `${err.name}${typeof code === 'string' ? ` [${code}]` : ''}: ${err.message}${cause}`;
}
