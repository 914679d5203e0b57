/**
 * Messages: request/reply and one-way notifications over packets.
 *
 * Each packet holds one message, the array `[type, id, content]` encoded by the channel's codec
 * (JSON by default): type 0 a request, 1 its success reply, 2 its failure reply (simpy.io's
 * message layer, as mosaik speaks it), and 3 a notification `[3, null, content]` (a trews
 * addition; peers that only know 0-2 never receive one unless the application sends it).
 * A failure's content is `{ message, code? }` (`failures: 'trews'`), a string (`'simpy'`: what
 * simpy.io sends, there a formatted Python traceback) or `[type, message, ...traceback lines]`
 * (`'mosaik'`: what mosaik-api-v3's `Channel` sends, and unpacks into its `RemoteException`).
 * Every form is understood on receipt, whatever this side sends.
 *
 * Outgoing messages wait in the channel's own queue and are handed to the stream only while
 * its `bufferedBytes` is below `writeHighWaterMark`, each recorded with its byte range, so
 * that `close({ mode })` can say which messages never went out (see `CloseReport`).
 */
import { Client } from './client.js';
import { Outcome } from './channel.js';
import { Connection } from './connection.js';
import { debug, type Timer } from './engine.js';
import { ClosedError, TimeoutError, TrewsError } from './errors.js';
import type { CloseOptions, Stream } from './stream.js';
import { CodecError, decodeWith, jsonCodec, messageOf, type Codec } from './codec.js';
import { Outbox, type OutboxItem } from './outbox.js';
import { Packets, framePacket, type Constructor, type PacketChannel, type PacketEvents, type PacketMembers, type PacketOptions, type TypedEvents } from './packet.js';
import { inspect } from 'node:util';

/** Wire types. */
const REQUEST = 0;
const SUCCESS = 1;
const FAILURE = 2;
const NOTIFY = 3;

/** Request ids run from 1 to 2^31 - 1, then wrap. */
export const MAX_REQUEST_ID = 2 ** 31 - 1;
export const DEFAULT_MAX_IN_FLIGHT = 1000;

export type MessageKind = 'request' | 'reply' | 'failure' | 'notify';
const KIND_TYPE: Record<MessageKind, number> = { request: REQUEST, reply: SUCCESS, failure: FAILURE, notify: NOTIFY };

/** A message this side sent (or tried to): as reported when the channel closes. */
export interface SentMessage {
  readonly kind: MessageKind;
  /** The request id (for replies and failures: the id answered); null for notifications. */
  readonly id: number | null;
  /** What was passed to `request()`/`notify()`, returned by `onRequest`, or the failure content. */
  readonly content: unknown;
}

/**
 * What a closing message channel did not send, passed to `onClose` and kept as `closeReport`.
 * `incomplete`: messages of which only a part was written out; `queued`: messages of which
 * nothing was (still in the channel's queue, or handed to the stream but not yet to the OS).
 * "Written out" is the stream's `bytesWritten`: handed to the OS, which is not "received".
 */
export interface CloseReport {
  incomplete: SentMessage[];
  queued: SentMessage[];
}

/**
 * - `'now'`: close at once; whatever was not written out is reported.
 * - `'message'`: finish the message being written, then close; every message after it, in
 *   the channel or the stream, is reported as `queued` and never sent. The socket's current
 *   write (at most 256 KiB, coalesced) cannot be cut at a message boundary, so its messages
 *   still go out whole.
 * - `'queue'` (default): wait (up to `timeout`) for replies to requests being answered, send
 *   everything queued, then close gracefully (forced after `timeout`).
 */
export type CloseMode = 'now' | 'message' | 'queue';

export interface MessageCloseOptions extends CloseOptions {
  /** Default `'queue'` (`'now'` when `flush` is false). */
  mode?: CloseMode;
}

export interface RequestOptions {
  /** Reject with a `TimeoutError` after this many ms on the Engine clock (default: `requestTimeout`; 0: never). */
  timeout?: number;
  /** Abort the request: it rejects with `signal.reason`; a reply arriving later is ignored. */
  signal?: AbortSignal;
}

/**
 * How this side words the failure replies it sends (see `MessageMembers.failures`):
 * `'trews'` `{ message, code? }`, `'simpy'` `'Type: message'`, `'mosaik'` `[type, message]`.
 */
export type FailureForm = 'trews' | 'simpy' | 'mosaik';
const FAILURE_FORMS = new Set<string>(['trews', 'simpy', 'mosaik']);

export interface MessageOptions extends PacketOptions {
  /** How message values become bytes (default `jsonCodec`). */
  codec?: Codec;
  /** How failure replies are worded on the wire (default `'trews'`). */
  failures?: FailureForm;
  /** Requests in flight allowed each way (default 1000). */
  maxInFlight?: number;
  /** Default timeout of `request()` in ms (default 0: none). */
  requestTimeout?: number;
}

export type MessageEvents = Omit<PacketEvents, 'close'> & {
  close: [report: CloseReport];
  request: [content: unknown];
  notify: [content: unknown];
};

/**
 * The peer answered a request with a failure. trews sends only a message and a code, never a
 * stack; a Python peer's traceback (simpy.io, mosaik) is kept apart, as `remoteStack`.
 */
export class RemoteError extends TrewsError {
  override readonly code = 'ERR_TREWS_REMOTE';
  constructor(
    message: string,
    /**
     * The `code` the peer gave (e.g. `'ERR_TREWS_LIMIT'`, `'ENOENT'`, an application code), or
     * a Python peer's exception type (`'ValueError'`), if any.
     */
    readonly remoteCode?: string,
    /** A Python peer's traceback text (`'Traceback (most recent call last):\n...'`), if it sent one. */
    readonly remoteStack?: string,
  ) {
    super(message);
  }
}

/** A limit was reached: too many requests in flight (`maxInFlight`). */
export class LimitError extends TrewsError {
  override readonly code = 'ERR_TREWS_LIMIT';
}

/** What `Messages(Base)` adds to a packet channel. */
export interface MessageMembers {
  /** How message values become bytes; both sides must use the same (default `jsonCodec`). */
  codec: Codec;
  /**
   * How the failure replies this side sends are worded (any form is understood on receipt):
   * - `'trews'` (default): `{ message, code? }`.
   * - `'simpy'`: the string `'Type: message'` (Type: the error's `code`, else its `name`), as
   *   simpy.io's `Message` sends a failure (its text is a Python traceback, this line its last).
   * - `'mosaik'`: `[type, message]` (type as above), the list mosaik-api-v3's `Channel` sends
   *   (there followed by traceback lines) and unpacks into `RemoteException(type, message, ...)`.
   *   A mosaik peer given any other form fails in its reader and stops answering.
   *
   * Never a stack: what crosses the wire is the error's message and code or name.
   */
  failures: FailureForm;
  /**
   * Requests in flight allowed each way. `request()` beyond it rejects at once with a
   * `LimitError`; an incoming request beyond it is answered with a failure of that code.
   */
  maxInFlight: number;
  /** Default `timeout` of `request()`, ms (0: none). */
  requestTimeout: number;
  /** Set just before `onClose`: what this channel did not send. */
  readonly closeReport: CloseReport | null;
  /** Outgoing requests awaiting their reply. */
  readonly pendingRequests: number;
  /** Messages waiting in the channel's queue for room in the stream's window. */
  readonly queuedMessages: number;
  /**
   * Send a request; resolves with the reply's content, rejects with a `RemoteError` (the peer
   * answered with a failure), a `TimeoutError`, the signal's reason, a `ClosedError` (closed
   * before the reply), a `LimitError`, or a `CodecError`/`OverflowError` (not sendable).
   * Never an unhandled rejection if ignored.
   */
  request<R = unknown>(content: unknown, options?: RequestOptions): Promise<R>;
  /**
   * Send a one-way message. Throws a `ClosedError` on a closing or closed channel and a
   * `CodecError`/`OverflowError` if it cannot be sent. False once the window is full (more
   * sends are queued; wait for `onWrite` if you want to keep memory flat).
   */
  notify(content: unknown): boolean;
  /**
   * A request arrived. Return the reply (or a Promise of it); throw (or reject) to answer with
   * a failure `{ message, code }`. The default answers every request with a failure.
   */
  onRequest(content: unknown): unknown;
  /** A notification arrived. */
  onNotify(content: unknown): void;
  /** The channel closed; `report` (always given) lists what it did not send. */
  onClose(report?: CloseReport): void;
  /** Close (see `CloseMode`); resolves after `onClose`, when `closeReport` is set. */
  close(options?: boolean | MessageCloseOptions): Promise<void>;
}

export interface MessageChannel extends MessageMembers, PacketMembers, TypedEvents<MessageEvents> {}

interface Outgoing extends OutboxItem, SentMessage {}

interface Pending {
  readonly entry: Outgoing;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
  timer: Timer | null;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const MODES = new Set<string>(['now', 'message', 'queue']);

/** Add request/reply messages to a packet channel class: `Messages(Packets(Connection))`. */
export function Messages<T extends Constructor<Stream & PacketChannel>>(Base: T): Constructor<MessageChannel> & T {
  class MessageStream extends Base implements MessageMembers {
    codec: Codec;
    failures: FailureForm;
    maxInFlight: number;
    requestTimeout: number;
    #report: CloseReport | null = null;
    readonly #outbox = new Outbox<Outgoing>(this);
    readonly #pending = new Map<number, Pending>();
    #lastId = 0;
    /** Incoming requests whose answer (a Promise) is not in yet. */
    #answering = 0;
    #mode: CloseMode | null = null;
    /** A 'queue' close waiting for answers: its bound, and what to do once they are in. */
    #closeWait: { timer: Timer; proceed: () => void } | null = null;
    /** Reading was paused because replies waited for the peer to read (see #answer). */
    #heldByReplies = false;

    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    constructor(...args: any[]) {
      // Options are checked before the channel exists (and registers with its engine).
      const options = (args[0] ?? {}) as MessageOptions;
      if (options.reconnect !== undefined && options.reconnect !== false) {
        // Requests in flight, and their byte accounting, belong to one connection.
        throw new TypeError('message channels do not reconnect: make a new client (pending requests end with the connection)');
      }
      const maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
      if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 1 || maxInFlight >= MAX_REQUEST_ID) {
        throw new RangeError(`maxInFlight must be an integer from 1 to ${MAX_REQUEST_ID - 1}, got ${String(maxInFlight)}`);
      }
      const requestTimeout = checkTimeout(options.requestTimeout ?? 0);
      const failures = options.failures ?? 'trews';
      if (!FAILURE_FORMS.has(failures)) throw new TypeError(`failures must be 'trews', 'simpy' or 'mosaik', got ${brief(failures)}`);
      super(...args);
      this.codec = options.codec ?? jsonCodec;
      this.failures = failures;
      this.maxInFlight = maxInFlight;
      this.requestTimeout = requestTimeout;
      // The drain signal: room in the stream's window again.
      this.on('write', () => {
        this.#outbox.pump();
        if (this.#heldByReplies && this.#outbox.waiting === 0) {
          this.#heldByReplies = false;
          this.resumeReading();
        }
      });
    }

    get closeReport(): CloseReport | null {
      return this.#report;
    }

    get pendingRequests(): number {
      return this.#pending.size;
    }

    get queuedMessages(): number {
      return this.#outbox.waiting;
    }

    override get closing(): boolean {
      return (this.#mode !== null && !this.closed) || super.closing;
    }

    // ---- hooks -------------------------------------------------------------------------------

    onRequest(content: unknown): unknown {
      void content;
      throw Object.assign(new Error(`${this.constructor.name} does not answer requests (override onRequest)`), { code: 'ERR_TREWS_NO_HANDLER' });
    }

    onNotify(content: unknown): void {
      void content;
    }

    override onClose(report?: CloseReport): void {
      void report;
    }

    // ---- sending -----------------------------------------------------------------------------

    request<R = unknown>(content: unknown, options: RequestOptions = {}): Promise<R> {
      const { outcome, resolve, reject } = Outcome.create<R>();
      try {
        this.#checkOpen('request');
        const { signal, timeout = this.requestTimeout } = options;
        checkTimeout(timeout);
        signal?.throwIfAborted();
        if (this.#pending.size >= this.maxInFlight) {
          throw new LimitError(`${String(this)}: ${this.#pending.size} requests await a reply already (maxInFlight ${this.maxInFlight})`);
        }
        const id = nextRequestId(this.#lastId, this.#pending);
        const entry = this.#message('request', id, content);
        this.#lastId = id;
        const pending: Pending = { entry, resolve: resolve as (value: unknown) => void, reject, timer: null, signal, onAbort: undefined };
        this.#pending.set(id, pending);
        if (timeout > 0) {
          pending.timer = this.engine.defer(timeout, () => this.#settle(id, new TimeoutError(`request ${id} to ${String(this)} got no reply within ${timeout} ms`)));
        }
        if (signal !== undefined) {
          pending.onAbort = () => this.#settle(id, signal.reason);
          signal.addEventListener('abort', pending.onAbort, { once: true });
        }
        this.#outbox.push(entry);
      } catch (err) {
        reject(err);
      }
      return outcome;
    }

    notify(content: unknown): boolean {
      this.#checkOpen('notify');
      return this.#outbox.push(this.#message('notify', null, content));
    }

    #checkOpen(what: string): void {
      if (this.#mode !== null || this.closing || this.closed) throw new ClosedError(`${what}() on ${String(this)} after close()`);
    }

    /** Encode and frame a message: any failure is thrown here, at the sending call. */
    #message(kind: MessageKind, id: number | null, content: unknown): Outgoing {
      let payload: Uint8Array | string;
      try {
        payload = this.codec.encode([KIND_TYPE[kind], id, content]);
      } catch (err) {
        const what = kind === 'notify' ? 'a notification' : kind === 'request' ? `request ${id}` : `the ${kind} to request ${id}`;
        throw new CodecError(`${what} could not be encoded as ${this.codec.name ?? 'the codec'}: ${messageOf(err)}`, { cause: err });
      }
      return { kind, id, content, frame: framePacket(payload, this.maxPacketSize), start: 0, end: 0, cancelled: false };
    }

    /** Settle an outgoing request: with the reply's content, or rejected with `err`. */
    #settle(id: number, err: unknown, value?: unknown): void {
      const pending = this.#pending.get(id);
      if (pending === undefined) return;
      this.#pending.delete(id);
      pending.timer?.cancel();
      if (pending.onAbort !== undefined) pending.signal!.removeEventListener('abort', pending.onAbort);
      pending.entry.cancelled = true; // still waiting in the queue: never send it
      if (err === undefined) pending.resolve(value);
      else pending.reject(err);
    }

    // ---- receiving ---------------------------------------------------------------------------

    override onPacket(payload: Buffer): void {
      let message: unknown;
      try {
        message = decodeWith(this.codec, payload);
        checkMessage(message);
      } catch (err) {
        this._fail('onReadError', err as CodecError);
        return;
      }
      const [type, id, content] = message as [number, number, unknown];
      if (type === REQUEST) this.#incoming(id, content);
      else if (type === NOTIFY) this._hook('onNotify', content);
      else if (!this.#pending.has(id)) debug('%s: a reply to request %d, which is not pending (timed out or aborted)', String(this), id);
      else if (type === SUCCESS) this.#settle(id, undefined, content);
      else this.#settle(id, remoteError(content));
    }

    #incoming(id: number, content: unknown): void {
      if (this.#mode !== null) {
        this.#answer(id, FAILURE, new ClosedError(`${String(this)} is closing`));
        return;
      }
      if (this.#answering >= this.maxInFlight) {
        this.#answer(id, FAILURE, new LimitError(`${this.#answering} requests are being answered already (maxInFlight ${this.maxInFlight})`));
        return;
      }
      let result: unknown;
      let failed = false;
      try {
        result = this.onRequest(content);
      } catch (err) {
        failed = true;
        result = err;
      }
      try {
        (this.emit as (event: string, ...args: unknown[]) => boolean)('request', content);
      } catch (err) {
        this._hookThrew('onRequest', err);
      }
      if (failed || !isThenable(result)) {
        this.#answer(id, failed ? FAILURE : SUCCESS, result);
        return;
      }
      this.#answering++;
      result.then(
        (value) => this.#answered(id, SUCCESS, value),
        (err: unknown) => this.#answered(id, FAILURE, err),
      );
    }

    #answered(id: number, type: number, value: unknown): void {
      this.#answering--;
      this.#answer(id, type, value);
      if (this.#answering === 0) this.#closeWait?.proceed();
    }

    #answer(id: number, type: number, value: unknown): void {
      if (!this.connected) {
        // Closed (or closing) while the answer was being made: the peer's request ends with its close.
        debug('%s: closed before the answer to request %d was ready; not sent', String(this), id);
        return;
      }
      let entry: Outgoing | undefined;
      if (type === SUCCESS) {
        try {
          entry = this.#message('reply', id, value);
        } catch (err) {
          value = err; // not encodable, or too large: tell the peer why
        }
      }
      try {
        entry ??= this.#message('failure', id, failureContent(value, this.failures));
      } catch (err) {
        // Even the failure does not fit maxPacketSize: no answer can be sent.
        this._hook('onError', err);
        return;
      }
      // A peer that sends requests and does not read its replies: stop reading its requests
      // until the replies drain, so the queue cannot grow without bound (TCP holds the peer back).
      if (!this.#outbox.push(entry) && !this.readingPaused) {
        this.#heldByReplies = true;
        this.pauseReading();
      }
    }

    // ---- closing -----------------------------------------------------------------------------

    override close(options: boolean | MessageCloseOptions = true): Promise<void> {
      const opts: MessageCloseOptions = typeof options === 'boolean' ? { flush: options } : options;
      const mode = opts.mode ?? (opts.flush === false ? 'now' : 'queue');
      if (!MODES.has(mode)) throw new TypeError(`close mode must be 'now', 'message' or 'queue', got ${String(mode)}`);
      const timeout = opts.timeout ?? this.closeTimeout;
      if (!(timeout > 0 && Number.isFinite(timeout))) throw new RangeError(`close timeout must be a finite number of ms > 0, got ${String(timeout)}`);
      if (this.closed) return super.close(false);
      // Already on its way out at the stream level: only 'now' can hurry it.
      if (super.closing && mode !== 'now') return this.whenClosed();
      this.#mode = mode;
      if (mode !== 'queue') {
        // A later, harder close replaces a 'queue' close still waiting for answers.
        this.#closeWait?.timer.cancel();
        this.#closeWait = null;
      }
      if (mode === 'now') return super.close({ flush: false, timeout });
      if (mode === 'message') {
        this.#outbox.hold();
        return super.close({ flush: true, timeout });
      }
      if (this.#closeWait !== null) return this.whenClosed();
      const proceed = () => {
        this.#closeWait?.timer.cancel();
        this.#closeWait = null;
        this.#outbox.handAll();
        void super.close({ flush: true, timeout });
      };
      if (this.#answering === 0 || !this.connected) {
        proceed();
        return this.whenClosed();
      }
      // Requests being answered: their replies are messages too. Wait for them, bounded.
      this.#closeWait = { timer: this.engine._defer(timeout, proceed), proceed };
      return this.whenClosed();
    }

    // Every close, whatever its cause, ends here: account for what was not sent, end every request.
    protected override _hook(hook: string, ...args: unknown[]): boolean {
      if (hook !== 'onClose') return super._hook(hook, ...args);
      this.#closeWait?.timer.cancel();
      this.#closeWait = null;
      const { incomplete, queued } = this.#outbox.unsent();
      const unsent = new Set<Outgoing>([...incomplete, ...queued]);
      this.#report = { incomplete: incomplete.map(sentMessage), queued: queued.map(sentMessage) };
      for (const [id, pending] of [...this.#pending]) {
        const when = unsent.has(pending.entry) ? `request ${id} was sent` : `the reply to request ${id} arrived`;
        this.#settle(id, new ClosedError(`${String(this)} closed before ${when}`));
      }
      return super._hook('onClose', this.#report);
    }
  }
  // The class has the members; the cast adds the event typing.
  return MessageStream as unknown as Constructor<MessageChannel> & T;
}

/** A message channel accepted by a Server: override `onRequest` (and `onNotify`). */
export class MessageConnection extends Messages(Packets(Connection)) {
  constructor(options?: MessageOptions) {
    super(options);
  }
}

/** A message channel for outgoing connections: `await client.connect(address); await client.request(...)`. */
export class MessageClient extends Messages(Packets(Client)) {
  constructor(options?: MessageOptions) {
    super(options);
  }
}

/** The next free request id after `last`: wraps from 2^31 - 1 to 1, skipping ids still pending. */
export function nextRequestId(last: number, pending: { has(id: number): boolean }): number {
  let id = last;
  do id = id >= MAX_REQUEST_ID ? 1 : id + 1;
  while (pending.has(id));
  return id;
}

/** `[type, id, content]` with a known type, an integer id (null for notifications). */
function checkMessage(message: unknown): void {
  if (!Array.isArray(message) || message.length !== 3) {
    throw new CodecError(`not a message: expected [type, id, content], got ${brief(message)}`);
  }
  const [type, id] = message as unknown[];
  if (type === NOTIFY ? id !== null : !(type === REQUEST || type === SUCCESS || type === FAILURE) || !Number.isSafeInteger(id)) {
    throw new CodecError(`not a message: type ${brief(type)} with id ${brief(id)} (types: 0 request, 1 reply, 2 failure with an integer id; 3 notification with null)`);
  }
}

/** What a failure carries, in the peer's form: the message and the code (or type), never a stack. */
function failureContent(err: unknown, form: FailureForm): unknown {
  const message = err instanceof Error ? err.message : typeof err === 'string' ? err : brief(err);
  const code = (err as { code?: unknown } | null)?.code;
  if (form === 'trews') return typeof code === 'string' ? { message, code } : { message };
  // Python's side shows a type: the code says more than a name, when there is one.
  const type = typeof code === 'string' ? code : err instanceof Error ? err.name : 'Error';
  return form === 'mosaik' ? [type, message] : `${type}: ${message}`;
}

const TRACEBACK = 'Traceback (most recent call last):';

/** A failure in any form: `{ message, code }`, a string (a Python traceback is taken apart), or mosaik's list. */
function remoteError(content: unknown): RemoteError {
  if (typeof content === 'string') {
    if (!content.startsWith(TRACEBACK)) return new RemoteError(content);
    const last = lastException(content);
    return new RemoteError(last?.message ?? content, last?.type, content);
  }
  if (Array.isArray(content)) {
    const [type, message, ...trace] = content as unknown[];
    if (typeof type !== 'string' || typeof message !== 'string') return new RemoteError(brief(content));
    const stack = trace.map((line) => (typeof line === 'string' ? line : brief(line))).join('');
    return new RemoteError(message, type, stack === '' ? undefined : stack);
  }
  const { message, code } = (content ?? {}) as { message?: unknown; code?: unknown };
  return new RemoteError(typeof message === 'string' ? message : brief(content), typeof code === 'string' ? code : undefined);
}

/**
 * The exception a Python traceback ends with: the lines after its last indented (frame) line,
 * `Type: message` (the type may be dotted, the message span lines). Undefined if not that shape.
 */
function lastException(traceback: string): { type: string; message: string } | undefined {
  let end = traceback.length;
  while (end > 0 && traceback[end - 1] === '\n') end--; // not /\n+$/: quadratic on a hostile run of newlines
  const lines = traceback.slice(0, end).split('\n');
  let first = lines.length;
  while (first > 0 && !/^\s/.test(lines[first - 1]!)) first--;
  const match = /^([A-Za-z_][\w.]*)(?:: ([\s\S]*))?$/.exec(lines.slice(first).join('\n'));
  if (match === null) return undefined;
  const type = match[1]!;
  return { type, message: match[2] ?? type };
}

function sentMessage({ kind, id, content }: Outgoing): SentMessage {
  return { kind, id, content };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

function checkTimeout(ms: number): number {
  if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms)) {
    throw new RangeError(`a request timeout must be a finite number of ms >= 0 (0: none), got ${String(ms)}`);
  }
  return ms;
}

function brief(value: unknown): string {
  return inspect(value, { depth: 2, breakLength: Infinity, maxStringLength: 100, maxArrayLength: 10 });
}
