/**
 * Stream: a connected byte stream (TCP, Unix socket, TLS, or the in-memory transport) with
 * framing, coalesced writes, exact write accounting, half-close that never loses a reply, a
 * graceful close bounded on stalls, inactivity timeouts and optional reconnecting.
 */
import { Buffer } from 'node:buffer';
import * as net from 'node:net';
import type tls from 'node:tls';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { Channel, Outcome, defineFieldAccessors, type ChannelEvents, type ChannelOptions } from './channel.js';
import { debug, type Timer } from './engine.js';
import { observingClose, observingOpen, publishClose, publishOpen } from './diagnostics.js';
import { formatAddress, parseAddress, toAddress, unixPathSlip, type Address, type AddressInput, type Endpoint } from './address.js';
import {
  AbortError,
  ClosedError,
  ConnectError,
  OverflowError,
  ReadError,
  StateError,
  TLSError,
  TruncatedFrameError,
  WriteError,
} from './errors.js';
import { CHUNKS, NO_BYTES, ReadBuffer, compileDelimiter, decodeMatch, type CompiledDelimiter, type Delimiter, type FrameArgs } from './framing.js';
import { FrameIterator, type FramesOptions } from './frames.js';
import { MemorySocket, connectMemory } from './memory.js';
import { Struct, type StructInput } from './struct.js';
import {
  DEFAULT_HANDSHAKE_TIMEOUT,
  clientCertificateError,
  prepareServerTLS,
  wrapClient,
  wrapServer,
  type ServerTLS,
  type TLSClientOptions,
  type TLSServerOptions,
} from './tls.js';

/** Options for a `Stream` (`Client`, `Connection`): each sets the property of the same name. */
export interface StreamOptions extends ChannelOptions {
  /** How incoming bytes are cut into messages (default null: each chunk as it arrives). */
  readDelimiter?: Delimiter;
  /** Deliver strings in this encoding instead of Buffers (default null). */
  encoding?: BufferEncoding | null;
  /** The most bytes one frame, or one unframed remainder, may hold (default 65536). */
  bufferSize?: number;
  /** Keep the channel open for writing after the peer's FIN (default false: close after flushing). */
  allowHalfOpen?: boolean;
  /**
   * How long a graceful close may stall (nothing more sent, or the peer not finishing) before
   * it is forced (ms, default 5000).
   */
  closeTimeout?: number;
  /** Call `onTimeout('idle')` after this many ms with no bytes read or written (0: never, the default). */
  idleTimeout?: number;
  /** Call `onTimeout('read')` after this many ms with no bytes read (0: never, the default). */
  readTimeout?: number;
  /** `write()` returns false once this many bytes are buffered (default 65536). */
  writeHighWaterMark?: number;
  /** Disable Nagle's algorithm (default true: trews already coalesces writes). */
  noDelay?: boolean;
  /** TLS client options used by `connect()` when it is not given its own `tls` option. */
  tls?: TLSClientOptions | boolean;
  /**
   * Outgoing connections only: when connecting fails or the connection drops, try again with
   * exponential backoff on the Engine clock (`true` for the defaults).
   */
  reconnect?: boolean | ReconnectOptions;
}

/** How a client retries (`reconnect: true` takes these defaults): jittered exponential backoff on the Engine clock. */
export interface ReconnectOptions {
  /** Delay before the first retry, ms (default 100). */
  initialDelay?: number;
  /** Longest delay between retries, ms (default 30000). */
  maxDelay?: number;
  /** Each delay is the previous one times this (default 2). */
  factor?: number;
  /** Randomise each delay by up to this fraction either way (default 0.2; 0 for none). */
  jitter?: number;
  /** Give up after this many retries in a row (default Infinity); then `onConnectError`. */
  maxAttempts?: number;
}

const RECONNECT_DEFAULTS: Required<ReconnectOptions> = { initialDelay: 100, maxDelay: 30_000, factor: 2, jitter: 0.2, maxAttempts: Infinity };

/** Options for `stream.connect(address, options)`. */
export interface ConnectOptions {
  /** Give up connecting after this many ms (`onConnectError` with code `ETIMEDOUT`). */
  timeout?: number;
  /** Local interface address to connect from (TCP). */
  localAddress?: string;
  /** Resolve the host name to this IP family only (TCP). */
  family?: 4 | 6;
  /** Connect with TLS: `true` for the defaults (verify the certificate and host name), or tls.connect options. */
  tls?: TLSClientOptions | boolean;
  /**
   * Abort connecting (the TLS handshake and `reconnect` retries included): the channel closes
   * without `onConnectError`, and `connect()` rejects with an `AbortError` (cause: the
   * signal's reason). Once connected, the signal no longer applies: use `close()`.
   */
  signal?: AbortSignal;
}

/** Options for `stream.close(options)`. */
export interface CloseOptions {
  /** Send what is queued, then FIN, and wait for the peer (default true). */
  flush?: boolean;
  /** Force the close after this many ms (default: the channel's `closeTimeout`). */
  timeout?: number;
}

/** Options for `stream.writeFile(file, options)`. */
export interface WriteFileOptions {
  /** Byte offset in the file to start from (default 0). */
  offset?: number;
  /** How many bytes to send (default: to the end of the file). */
  length?: number;
}

/** The events a `Stream` emits: one per hook, with the hook's arguments (`onConnectError(err)` -> `'connectError'`). */
export interface StreamEvents extends ChannelEvents {
  connect: [];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  read: any[];
  write: [];
  end: [];
  tlsHandshake: [];
  timeout: [kind: 'idle' | 'read'];
  reconnecting: [attempt: number, delay: number, reason: Error];
  connectError: [err: ConnectError];
  readError: [err: ReadError];
  writeError: [err: WriteError];
  overflowError: [err: OverflowError];
  tlsError: [err: TLSError];
}

const STATES = ['idle', 'connecting', 'open', 'closing', 'closed'] as const;
type State = (typeof STATES)[number];

/** The server that accepted a stream: told once it is open (after onConnect), as it starts closing, and once it has closed. */
export interface StreamOwner {
  _streamOpened(stream: Stream): void;
  _streamClosing(stream: Stream): void;
  _streamClosed(stream: Stream): void;
}

interface FileJob {
  source: string | FileHandle;
  offset: number;
  length: number;
  done: ReturnType<typeof Outcome.create<number>>;
}


/**
 * Coalesced writes are filled into views of a shared slab, as Node's own Buffer pool does for
 * small buffers (it stops at 4 KiB, the size of a typical coalesced reply). Regions are never
 * reused: a slab is dropped once full and freed when the last write from it is done.
 */
const SLAB_SIZE = 64 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabUsed = 0;
function writeSlab(bytes: number): Buffer {
  if (bytes > SLAB_SIZE / 4) return Buffer.allocUnsafe(bytes);
  if (slabUsed + bytes > SLAB_SIZE) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + bytes);
  slabUsed += (bytes + 7) & ~7;
  return out;
}
/**
 * A stream's ReadBuffer is made when data arrives and let go once empty, so idle connections
 * hold none. One spare is kept, so that a busy server does not make one per chunk received.
 */
let spareReadBuffer: ReadBuffer | null = null;
function readBufferFor(framing: CompiledDelimiter, bufferSize: number): ReadBuffer {
  const rb = spareReadBuffer ?? new ReadBuffer(bufferSize);
  spareReadBuffer = null;
  rb.bufferSize = bufferSize;
  rb.setDelimiter(framing);
  return rb;
}

/** The writes of a run as one buffer, filled in place: no intermediate Buffer per string. */
function joinBytes(run: Array<string | Buffer>, bytes: number): Buffer {
  const out = writeSlab(bytes);
  let at = 0;
  for (const item of run) {
    if (typeof item !== 'string') {
      out.set(item, at);
      at += item.length;
    } else if (item.length === 1 && item.charCodeAt(0) < 0x80) {
      out[at++] = item.charCodeAt(0);
    } else {
      at += out.write(item, at);
    }
  }
  return out;
}
/** The most bytes handed to the socket at once (see #takeRun): also the most copied into one. */
const HAND_LIMIT = 256 * 1024;
const OWNER = Symbol('trews.stream');
type OwnedSocket = net.Socket & { [OWNER]?: Stream };
const FILE_CHUNK = 64 * 1024;
const ENCODINGS = new Set(['utf8', 'utf-8', 'utf16le', 'utf-16le', 'ucs2', 'ucs-2', 'latin1', 'binary', 'ascii', 'base64', 'base64url', 'hex']);

// The bits of Stream#flags: one small integer instead of a field (8 bytes) per boolean.
/** The low bits: the index of the stream's state in STATES. */
const STATE_BITS = 7;
const PAUSED = 1 << 3;
const DISPATCHING = 1 << 4;
/** The peer's FIN arrived and is not handled yet. */
const EOF = 1 << 5;
const END_REQUESTED = 1 << 6;
/** Every queued write is a string (they can be joined). */
const QUEUE_STRINGS = 1 << 7;
const FLUSH_SCHEDULED = 1 << 8;
/** write() returned false: onWrite is owed. */
const WANT_DRAIN = 1 << 9;
const ACCEPTED = 1 << 10;
const SECURE = 1 << 11;
const HANDSHAKING = 1 << 12;
/** The last close was forced. */
const FORCED = 1 << 13;
/** A failure that retrying cannot fix (a TLS handshake refused). */
const FATAL = 1 << 14;
/** The current socket has connected: its addresses can be told. */
const CONNECTED = 1 << 15;
/** onWrite is due on the next tick. */
const DRAIN_SCHEDULED = 1 << 16;
/** The peer finished (FIN) while the stream was open: the close report's reason is 'peer'. */
const PEER_ENDED = 1 << 17;
/**
 * A write to the socket failed after the OS had taken an unknown part of it: libuv forgets
 * what it still held then, so `#inSocket` is the last figure it told (see #socketDestroy).
 */
const HELD_UNSURE = 1 << 18;
/** The socket refused the last write at once (nothing of it was taken): `#inSocket` is exact. */
const WRITE_REFUSED = 1 << 19;

type Settle<T> = ReturnType<typeof Outcome.create<T>>;

/**
 * The state of a Stream that most connections never need, made on first use: reconnecting,
 * connect and TLS set-up, inactivity timeouts, file sends, closing. A server's idle
 * connections then carry none of it.
 */
class Occasional {
  reconnect: Required<ReconnectOptions> | null = null;
  attempt = 0;
  reconnectTimer: Timer | null = null;
  connectOptions: ConnectOptions = {};
  /** Why the current connection went away, when it will be retried. */
  dropError: Error | null = null;
  connecting: Settle<void> | null = null;
  upgrading: Settle<void> | null = null;
  readyTimer: Timer | null = null;
  clientTLS: TLSClientOptions | null = null;
  idleTimeout = 0;
  readTimeout = 0;
  lastRead = 0;
  lastActivity = 0;
  timeoutTimer: Timer | null = null;
  file: FileJob | null = null;
  queueFiles = 0;
  closeTimer: Timer | null = null;
  closeBound = 0;
  closed: Settle<void> | null = null;
  /** Decodes unframed chunks (a multi-byte character may span two). */
  decoder: StringDecoder | null = null;
  /** The first error handed to an error hook: the close report's reason. */
  failure: Error | null = null;
}

/** What `for await` yields on a stream class T: `onRead`'s one argument, or a Struct's values as an array. */
export type FrameOf<T extends Stream> = [T['readDelimiter']] extends [Struct] ? Parameters<T['onRead']> : Parameters<T['onRead']>[0];

/** StreamEvents of a stream class T: `'read'` carries what T's `onRead` receives. */
export type StreamEventsOf<T extends Stream> = Omit<StreamEvents, 'read'> & { read: Parameters<T['onRead']> };

// Listener types follow the class (`this`), so a `'read'` listener is typed like `onRead`.
export interface Stream {
  /** Listen for an event: each hook `onXxx` emits `'xxx'` with its arguments right after it runs (a `'read'` listener gets what this class's `onRead` receives). */
  on<E extends keyof StreamEvents>(event: E, fn: (...args: StreamEventsOf<this>[E]) => void, context?: unknown): this;
  addListener<E extends keyof StreamEvents>(event: E, fn: (...args: StreamEventsOf<this>[E]) => void, context?: unknown): this;
  once<E extends keyof StreamEvents>(event: E, fn: (...args: StreamEventsOf<this>[E]) => void, context?: unknown): this;
  off<E extends keyof StreamEvents>(event: E, fn?: (...args: StreamEventsOf<this>[E]) => void, context?: unknown, once?: boolean): this;
  removeListener<E extends keyof StreamEvents>(event: E, fn?: (...args: StreamEventsOf<this>[E]) => void, context?: unknown, once?: boolean): this;
}

/**
 * A connected byte stream over TCP, TLS, a Unix socket or the in-memory transport. Subclass
 * `Client` (outgoing) or `Connection` (accepted by a `Server`) rather than `Stream` itself,
 * override the hooks you need, and set `readDelimiter` to receive whole messages in `onRead`.
 *
 * @example
 * ```ts
 * class Lines extends Client {
 *   override readDelimiter = '\n';
 *   override encoding = 'utf8';
 *   override onRead(line: string) {
 *     console.log('got', line);
 *   }
 * }
 * await new Lines().connect('localhost:4000');
 * ```
 */
export class Stream extends Channel<StreamEvents> {
  /** How incoming bytes are cut into messages; takes effect for bytes already buffered. */
  declare readDelimiter: Delimiter;
  /** Deliver strings in this encoding (null: Buffers). */
  // `string & {}`: a subclass's `encoding = 'utf8'` is typed string, not 'utf8' (the runtime check names the accepted ones).
  declare encoding: BufferEncoding | (string & {}) | null;
  /** The most bytes one frame or one unframed remainder may hold. */
  declare bufferSize: number;
  /** Inactivity limit in ms for reads and writes together (0: off), on the Engine clock. */
  declare idleTimeout: number;
  /** Inactivity limit in ms for reads (0: off), on the Engine clock. */
  declare readTimeout: number;

  // Plain settings keep their defaults on the prototype (see the static block): an instance
  // carries only what its options or class fields change. Every slot on an instance costs
  // each idle connection 8 bytes.
  /** Keep the channel open for writing after the peer's FIN (default false). */
  declare allowHalfOpen: boolean;
  /** How long a graceful close may stall before it is forced (ms, default 5000). */
  declare closeTimeout: number;
  /** `write()` returns false once this many bytes are buffered (default 65536). */
  declare writeHighWaterMark: number;
  /** Disable Nagle's algorithm (default true). */
  declare readonly noDelay: boolean;
  /** TLS client options for `connect()` (overridden by its own `tls` option). */
  declare tls: TLSClientOptions | boolean | undefined;

  /** @internal */ _owner: StreamOwner | null = null;

  /** The state (STATE_BITS) and the booleans of this stream, one bit each (PAUSED, SECURE, ...). */
  #flags = QUEUE_STRINGS;
  #socket: net.Socket | null = null;
  #endpoint: Endpoint | null = null;
  /** The local address, kept on first use or as the socket is destroyed (see localAddress). */
  #local: Address | null = null;
  #delimiter: Delimiter = null;
  #framing: CompiledDelimiter = CHUNKS;
  #bufferSize = 65536;
  #encoding: BufferEncoding | null = null;
  /** Bytes received and not yet delivered: made on demand, dropped when empty. */
  #rb: ReadBuffer | null = null;
  /** Writes not yet handed to the socket (null when there are none). */
  #queue: Array<string | Buffer | FileJob> | null = null;
  #queueBytes = 0;
  /** Bytes handed to the socket in all, and those it still holds (not yet with the OS). */
  #handed = 0;
  #inSocket = 0;
  /** Everything else, made on first use (see Occasional). */
  #occasional: Occasional | null = null;

  constructor(options: StreamOptions = {}) {
    super(options);
    if (options.allowHalfOpen !== undefined) this.allowHalfOpen = options.allowHalfOpen;
    if (options.closeTimeout !== undefined) this.closeTimeout = options.closeTimeout;
    if (options.idleTimeout !== undefined) this.idleTimeout = options.idleTimeout;
    if (options.readTimeout !== undefined) this.readTimeout = options.readTimeout;
    if (options.writeHighWaterMark !== undefined) this.writeHighWaterMark = options.writeHighWaterMark;
    if (options.noDelay !== undefined) (this as { noDelay: boolean }).noDelay = options.noDelay;
    if (options.tls !== undefined) this.tls = options.tls;
    if (options.reconnect !== undefined && options.reconnect !== false) {
      this.#more.reconnect = { ...RECONNECT_DEFAULTS, ...(options.reconnect === true ? {} : options.reconnect) };
    }
    if (options.encoding !== undefined) this.encoding = options.encoding;
    if (options.bufferSize !== undefined) this.bufferSize = options.bufferSize;
    if (options.readDelimiter !== undefined) this.readDelimiter = options.readDelimiter;
  }

  get #state(): State {
    return STATES[this.#flags & STATE_BITS]!;
  }

  set #state(state: State) {
    this.#flags = (this.#flags & ~STATE_BITS) | STATES.indexOf(state);
  }

  #is(flag: number): boolean {
    return (this.#flags & flag) !== 0;
  }

  #set(flag: number): void {
    this.#flags |= flag;
  }

  #clear(flag: number): void {
    this.#flags &= ~flag;
  }

  /** The occasional state, made now if it was not yet (read `#occasional` to look without making it). */
  get #more(): Occasional {
    return (this.#occasional ??= new Occasional());
  }

  // ---- state -------------------------------------------------------------------------------

  /** True while connected: from just before `onConnect` until the channel starts closing. */
  get connected(): boolean {
    return this.#state === 'open';
  }

  /** True from `connect()` until connected or failed. */
  get connecting(): boolean {
    return this.#state === 'connecting';
  }

  /** True for a connection a server accepted (the server side), false for an outgoing one. */
  get accepted(): boolean {
    return this.#is(ACCEPTED);
  }

  /** True from `close()` until the channel has closed. */
  get closing(): boolean {
    return this.#state === 'closing';
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** True if the last close had to be forced after `closeTimeout`. */
  override get forced(): boolean {
    return this.#is(FORCED);
  }

  // Addresses stay readable until and inside onClose, even after a reset, when the kernel no
  // longer tells them. Node caches the peer's (asked for as the socket connects); the local
  // one, which Node forgets as the socket is destroyed, is kept then. An idle connection
  // holds nothing else for them.

  /**
   * The peer's address: `{ address, port, family }` over TCP, the path for a client's Unix
   * socket, null for an accepted Unix connection or before connecting. Readable in `onClose`.
   */
  get remoteAddress(): Address | null {
    if (!this.#is(CONNECTED)) return null;
    const endpoint = this.#endpoint;
    // Unix and memory sockets: the listening side's name is the only address there is.
    if (endpoint !== null && endpoint.kind !== 'inet') return this.#is(ACCEPTED) ? null : nameOf(endpoint);
    const socket = this.#socket!;
    return toAddress({ address: socket.remoteAddress, port: socket.remotePort, family: socket.remoteFamily });
  }

  /**
   * This end's address: `{ address, port, family }` over TCP, the path for an accepted Unix
   * connection, null for a client's Unix socket or before connecting. Readable in `onClose`.
   */
  get localAddress(): Address | null {
    if (!this.#is(CONNECTED)) return null;
    const endpoint = this.#endpoint;
    if (endpoint !== null && endpoint.kind !== 'inet') return this.#is(ACCEPTED) ? nameOf(endpoint) : null;
    return (this.#local ??= localAddressOf(this.#socket!));
  }

  /** Bytes received from the peer so far. */
  get bytesRead(): number {
    return this.#socket?.bytesRead ?? 0;
  }

  /** Bytes the OS has taken (sent, or in the kernel's send buffer). */
  get bytesWritten(): number {
    return this.#handed - this.#pendingInSocket().bytes;
  }

  /** Bytes written by the user that the OS has not taken yet. */
  get bufferedBytes(): number {
    return this.#queueBytes + this.#pendingInSocket().bytes;
  }

  /**
   * Of `bufferedBytes`, those certainly not on their way: still queued in trews, or held by a
   * socket that can say exactly what it holds (TCP, Unix, memory). Under TLS the socket cannot,
   * and what it holds may be partly sent: it is in `bufferedBytes` but not here.
   */
  get queuedBytes(): number {
    const pending = this.#pendingInSocket();
    return this.#queueBytes + (pending.exact ? pending.bytes : 0);
  }

  /** Bytes handed to the socket that the OS has not taken yet, as exactly as the socket tells. */
  #pendingInSocket(): { bytes: number; exact: boolean } {
    const socket = this.#socket;
    if (this.#is(HELD_UNSURE)) return { bytes: this.#inSocket, exact: false };
    if (socket === null || socket.destroyed || this.#inSocket === 0) return { bytes: this.#inSocket, exact: true };
    const held = this.#heldBy(socket);
    // Keep the latest exact figure: should a later write fail, libuv no longer tells it.
    if (held.exact && held.bytes > 0) this.#inSocket = held.bytes;
    return held;
  }

  /** What `socket` holds of what it was handed, as exactly as it tells (see #pendingInSocket). */
  #heldBy(socket: net.Socket): { bytes: number; exact: boolean } {
    // With one write in the socket at a time, libuv's remainder (or the memory link's) is exact.
    // Under TLS (encrypted sizes) or while a file streams (several writes), count it all.
    const exact =
      this.#is(SECURE) || this.#file !== null
        ? undefined
        : ((socket as unknown as { _handle?: { writeQueueSize?: unknown } })._handle?.writeQueueSize ??
          (socket as unknown as { unsentBytes?: unknown }).unsentBytes);
    const held = socket.writableLength;
    return typeof exact === 'number' ? { bytes: Math.min(exact, held), exact: true } : { bytes: held, exact: false };
  }

  /** The file being sent, if any. */
  get #file(): FileJob | null {
    return this.#occasional?.file ?? null;
  }

  /** The underlying socket, for what trews does not wrap (null before connect). */
  get socket(): net.Socket | null {
    return this.#socket;
  }

  // ---- hooks (override these) --------------------------------------------------------------

  /** The connection is established (for a server's connection: accepted). */
  onConnect(): void {}

  /**
   * A whole frame arrived (`Struct` delimiters: its values; sticky RegExp: the match). The
   * parameter types follow the class's `readDelimiter` and `encoding` types (see FrameArgs);
   * `'read'` listeners get what an override declares.
   */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  onRead(...args: FrameArgs<this['readDelimiter'], this['encoding']>): void {}

  /** Everything queued has been handed to the OS: the drain signal. */
  onWrite(): void {}

  /** The peer finished sending (FIN). Unless `allowHalfOpen`, the channel then closes after flushing. */
  onEnd(): void {}

  /**
   * Nothing was read (`'read'`) or neither read nor written (`'idle'`) for `readTimeout` /
   * `idleTimeout` ms, measured on the Engine clock. The default closes the channel.
   */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  onTimeout(kind: 'idle' | 'read'): void {
    void this.close();
  }

  /**
   * A reconnecting client lost its connection (or failed to make one) and will try again in
   * `delay` ms; `attempt` counts retries since the last success.
   */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  onReconnecting(attempt: number, delay: number, reason: Error): void {}

  /** The TLS handshake completed (before `onConnect`). */
  onTLSHandshake(): void {}

  /** Connecting failed (refused, unreachable, timed out); `onClose` follows. Default: `onError(err)`. */
  onConnectError(err: ConnectError): void {
    this._toOnError(err);
  }

  /** Reading failed (a reset, or a frame cut short at EOF: `TruncatedFrameError`). Default: `onError(err)`. */
  onReadError(err: ReadError): void {
    this._toOnError(err);
  }

  /** Writing failed (`EPIPE`, a reset). Default: `onError(err)`. */
  onWriteError(err: WriteError): void {
    this._toOnError(err);
  }

  /** A frame was larger than `bufferSize`; it is dropped. Default: `onError(err)`, which closes the channel. */
  onOverflowError(err: OverflowError): void {
    this._toOnError(err);
  }

  /** The TLS handshake failed (a refused certificate, a plain-text peer, a timeout). Default: `onError(err)`. */
  onTLSError(err: TLSError): void {
    this._toOnError(err);
  }

  // ---- connecting --------------------------------------------------------------------------

  /**
   * Connect to a TCP address or Unix path (with `{ tls }`: then handshake). Resolves after
   * `onConnect`; rejects with the error `onConnectError` (or `onTLSError`) saw.
   */
  connect(address: AddressInput, options: ConnectOptions = {}): Promise<void> {
    if (this.#state !== 'idle') throw new StateError(`connect() needs a new ${this.constructor.name}; ${String(this)} is ${this.#state}`);
    const endpoint = parseAddress(address);
    const { timeout } = options;
    if (timeout !== undefined && !(timeout > 0 && Number.isFinite(timeout))) {
      throw new RangeError(`connect timeout must be a finite number of ms > 0, got ${String(timeout)}`);
    }
    const more = this.#more;
    if (more.reconnect !== null) checkReconnect(more.reconnect);
    const tlsOptions = options.tls ?? this.tls;
    more.clientTLS = tlsOptions === undefined || tlsOptions === false ? null : tlsOptions === true ? {} : tlsOptions;
    this.#endpoint = endpoint;
    more.connectOptions = options;
    const connecting = (more.connecting = Outcome.create<void>());
    this.#syncFields();
    const { signal } = options;
    if (signal !== undefined) {
      this.#abortOn(signal, connecting);
      if (signal.aborted) return connecting.outcome;
    }
    this.#openSocket();
    return connecting.outcome;
  }

  /** Until `connecting` settles, an abort of `signal` stops connecting and closes the channel. */
  #abortOn(signal: AbortSignal, connecting: Settle<void>): void {
    if (typeof signal?.addEventListener !== 'function' || typeof signal.aborted !== 'boolean') {
      throw new TypeError('connect() option signal must be an AbortSignal');
    }
    const abort = () => {
      const more = this.#more;
      if (more.connecting !== connecting) return; // connected or failed meanwhile
      more.connecting = null;
      // The caller chose this: no onConnectError, just the close.
      connecting.reject(new AbortError(`connect to ${formatAddress(this.#endpoint)} was aborted`, { cause: signal.reason }));
      this.#abort();
    };
    if (signal.aborted) return abort();
    signal.addEventListener('abort', abort, { once: true });
    const settled = () => signal.removeEventListener('abort', abort);
    // Not through Outcome#then, which would mark the promise as awaited.
    Promise.prototype.then.call(connecting.outcome, settled, settled);
  }

  /** Open a socket to the endpoint (first connect, or a reconnect). */
  #openSocket(): void {
    const endpoint = this.#endpoint!;
    const { timeout, localAddress, family } = this.#more.connectOptions;
    this.#state = 'connecting';
    const socket =
      endpoint.kind === 'memory'
        ? (connectMemory(this.engine, endpoint.name, endpoint.link) as unknown as net.Socket)
        : endpoint.kind === 'unix'
        ? net.connect({ path: endpoint.path, allowHalfOpen: true })
        : net.connect({
            host: endpoint.host ?? 'localhost',
            port: endpoint.port,
            allowHalfOpen: true,
            ...(localAddress !== undefined && { localAddress }),
            ...(family !== undefined && { family }),
          });
    if (timeout !== undefined) {
      this.#more.readyTimer = this.engine._defer(timeout, () => {
        const err = Object.assign(new Error(`connect timed out after ${timeout} ms`), { code: 'ETIMEDOUT', syscall: 'connect' });
        this.#socket?.destroy(err);
      });
    }
    this.#listenTo(socket);
    if (this.#is(PAUSED)) socket.pause();
    socket.once('connect', Stream.#socketConnect);
  }

  /** @internal wire a socket (connecting, or accepted by a server) into this stream. */
  _attach(socket: net.Socket, listening?: Endpoint): void {
    this.#syncFields();
    this.#listenTo(socket);
    this.#state = 'connecting';
    if (!socket.connecting) {
      this.#set(ACCEPTED);
      if (listening !== undefined && listening.kind !== 'inet') this.#endpoint = listening;
      this.#connected();
    }
  }

  /**
   * @internal server side: the connection was accepted. With TLS, handshake first; then
   * `onConnect`, then the owner's `_streamOpened` (the server's `onAccept`).
   */
  _accepted(tls: ServerTLS | null): void {
    if (tls === null) this.#ready();
    else this.#wrap(wrapServer(this.#socket!, tls), tls.options);
  }

  #listenTo(socket: net.Socket): void {
    this.#socket = socket;
    (socket as OwnedSocket)[OWNER] = this;
    // Node forgets the local address as a socket is destroyed: keep it then, and what the
    // socket still held (a memory link's too: it forgets its unsent bytes).
    if (socket instanceof net.Socket || (socket as unknown) instanceof MemorySocket) socket._destroy = Stream.#socketDestroy;
    socket.on('data', Stream.#socketData);
    dropNodeEndListener(socket);
    socket.on('end', Stream.#socketEnd);
    socket.on('error', Stream.#socketError);
    socket.on('close', Stream.#socketClose);
  }

  #onConnected(): void {
    this.#connected();
    const { clientTLS } = this.#more;
    if (clientTLS === null) this.#ready();
    else this.#wrap(wrapClient(this.#socket!, clientTLS, this.#endpoint), clientTLS);
  }

  /** Connected (and, with TLS, handshaken): open the channel, then tell the owner. */
  #ready(): void {
    const more = this.#occasional;
    let connecting: Settle<void> | null = null;
    if (more !== null) {
      more.readyTimer?.cancel();
      connecting = more.connecting;
      more.connecting = null;
      more.attempt = 0;
    }
    if (this.#state === 'closing') {
      // close() was called while connecting with writes queued: send them, then close.
      connecting?.reject(new ClosedError(`${String(this)} was closed while connecting`));
      this.#beginGracefulClose();
      return;
    }
    this.#state = 'open';
    this.#armTimeouts(true);
    if (observingOpen()) publishOpen(this, this.#is(ACCEPTED), this._owner, this.remoteAddress, this.localAddress);
    this._opened();
    connecting?.resolve();
    this.#flush();
    if (this.#state === 'open') this._owner?._streamOpened(this);
  }

  /**
   * @internal The connection is open: `onConnect`. A protocol layered on the stream
   * (trews/websocket) does its handshake first.
   */
  _opened(): void {
    this._hook('onConnect');
  }

  /** The socket has connected (or was accepted). */
  #connected(): void {
    this.#set(CONNECTED);
    if (this.#endpoint !== null && this.#endpoint.kind !== 'inet') return;
    const socket = this.#socket!;
    // trews coalesces writes itself, so Nagle's algorithm would only add delay.
    if (this.noDelay) socket.setNoDelay(true);
    primePeerAddress(socket);
  }

  // ---- TLS ---------------------------------------------------------------------------------

  /**
   * Upgrade this connected stream to TLS at a frame boundary (STARTTLS). Bytes written before
   * the call go out in plain text first; bytes received but not yet delivered go to the TLS
   * layer. An accepted connection is the TLS server (give `{ key, cert }`), a client the TLS
   * client. Resolves after `onTLSHandshake`; rejects with the error `onTLSError` saw.
   */
  startTLS(options: TLSClientOptions | TLSServerOptions = {}): Promise<void> {
    if (this.#state !== 'open') throw new ClosedError(`startTLS() needs an open stream; ${String(this)} is ${this.#state}`);
    if (this.#is(SECURE)) throw new StateError(`startTLS() on ${String(this)}: TLS is already active`);
    const server = this.#is(ACCEPTED) ? prepareServerTLS(options as TLSServerOptions) : null;
    this.#set(SECURE);
    this.#flush();
    this.#set(HANDSHAKING);
    const raw = this.#socket!;
    raw.pause();
    raw.off('data', Stream.#socketData);
    const undelivered = this.#rb !== null && this.#rb.length > 0 ? this.#rb.drain() : null;
    const upgrading = (this.#more.upgrading = Outcome.create<void>());
    const upgrade = () => {
      if (this.#state !== 'open' && this.#state !== 'closing') return;
      // Node feeds bytes left in the wrapped socket's buffer to the TLS layer (initRead).
      if (undelivered !== null) raw.unshift(undelivered);
      if (server !== null) this.#wrap(wrapServer(raw, server), server.options);
      else this.#wrap(wrapClient(raw, options as TLSClientOptions, this.#endpoint), options);
    };
    // Plain bytes still queued in the socket must reach the wire before TLS takes it over.
    if (raw.writableLength === 0) upgrade();
    else raw.once('drain', upgrade);
    return upgrading.outcome;
  }

  /** True once TLS is in use (from the start, or after `startTLS`). */
  get encrypted(): boolean {
    return this.#is(SECURE);
  }

  #wrap(secure: tls.TLSSocket, options: TLSClientOptions | TLSServerOptions): void {
    const raw = this.#socket!;
    raw.off('data', Stream.#socketData);
    raw.off('end', Stream.#socketEnd);
    raw.off('error', Stream.#socketError);
    raw.off('close', Stream.#socketClose);
    raw.on('error', ignore);
    this.#set(SECURE);
    this.#set(HANDSHAKING);
    this.#listenTo(secure);
    primePeerAddress(secure);
    const limit = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
    const timer = this.engine._defer(limit, () => {
      secure.destroy(Object.assign(new Error(`TLS handshake timed out after ${limit} ms`), { code: 'ETIMEDOUT' }));
    });
    secure.once(this.#is(ACCEPTED) ? 'secure' : 'secureConnect', () => {
      timer.cancel();
      const refused = this.#is(ACCEPTED) ? clientCertificateError(secure, options as TLSServerOptions) : null;
      if (refused !== null) {
        secure.destroy(refused);
        return;
      }
      this.#clear(HANDSHAKING);
      this._hook('onTLSHandshake');
      const more = this.#more;
      const upgrading = more.upgrading;
      more.upgrading = null;
      if (this.#state === 'connecting') this.#ready();
      else this.#flush();
      upgrading?.resolve();
    });
    secure.once('close', () => timer.cancel());
  }

  /**
   * Class fields (`readDelimiter = '\n'` in a subclass) and prototype assignments define plain
   * data properties that hide the validating accessors. They are left in place (deleting one
   * would drop the object into V8's slow dictionary mode) and read instead: applied when the
   * stream attaches and at each dispatch, and `readDelimiter` by identity before every frame.
   */
  #syncFields(): void {
    const { encoding, bufferSize, readDelimiter, idleTimeout, readTimeout } = this;
    if (encoding !== this.#encoding) this.#applyEncoding(encoding);
    if (bufferSize !== this.#bufferSize) this.#applyBufferSize(bufferSize);
    if (readDelimiter !== this.#delimiter) this.#applyDelimiter(readDelimiter);
    if (idleTimeout !== this.#idleTimeout || readTimeout !== this.#readTimeout) this.#applyTimeouts(idleTimeout, readTimeout);
  }

  get #idleTimeout(): number {
    return this.#occasional?.idleTimeout ?? 0;
  }

  get #readTimeout(): number {
    return this.#occasional?.readTimeout ?? 0;
  }

  #applyTimeouts(idle: number, read: number): void {
    checkTimeout('idleTimeout', idle);
    checkTimeout('readTimeout', read);
    if (idle === 0 && read === 0 && this.#occasional === null) return;
    const more = this.#more;
    more.idleTimeout = idle;
    more.readTimeout = read;
    // Activity is tracked only while a timer runs: without one, the limits count from now.
    this.#armTimeouts(more.timeoutTimer === null);
  }

  #applyDelimiter(value: Delimiter): void {
    this.#setFraming(compileDelimiter(value, this.#encoding));
    this.#delimiter = value;
  }

  #setFraming(compiled: CompiledDelimiter): void {
    this.#framing = compiled;
    this.#rb?.setDelimiter(compiled);
  }

  #applyEncoding(value: string | null): void {
    if (value !== null && !ENCODINGS.has(value)) {
      throw new TypeError(`encoding must be null (Buffers) or a Buffer encoding such as 'utf8', got ${String(value)}`);
    }
    const encoding = value as BufferEncoding | null; // checked just above
    this.#encoding = encoding;
    if (this.#occasional !== null) this.#occasional.decoder = null;
    // A string delimiter's bytes depend on the encoding, and a RegExp's matching on it.
    if (typeof this.#delimiter === 'string' || this.#delimiter instanceof RegExp) this.#setFraming(compileDelimiter(this.#delimiter, encoding));
  }

  #applyBufferSize(value: number): void {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(`bufferSize must be a positive integer number of bytes, got ${String(value)}`);
    }
    this.#bufferSize = value;
    if (this.#rb !== null) this.#rb.bufferSize = value;
  }

  // ---- reading -----------------------------------------------------------------------------

  /** Stop delivering frames at once, even ones already buffered, and stop reading the socket. */
  pauseReading(): void {
    this.#set(PAUSED);
    this.#socket?.pause();
  }

  /** Deliver buffered frames (on the next tick) and read again. */
  resumeReading(): void {
    if (!this.#is(PAUSED)) return;
    this.#clear(PAUSED);
    if (this.#state === 'open') this.#socket?.resume();
    if (!this.#is(DISPATCHING)) process.nextTick(() => this.#dispatch());
  }

  /** True between `pauseReading()` and `resumeReading()`. */
  get readingPaused(): boolean {
    return this.#is(PAUSED);
  }

  /**
   * The frames as an async iterator: each as `'read'` delivers it (a Struct's values as an
   * array), after `onRead`. At most `highWaterMark` frames (default 16) wait for the loop;
   * above that reading pauses until the loop catches up. It ends when the peer finishes or
   * the stream closes, and throws the error that reached `onError`. Leaving the loop early
   * (`break`) closes the stream, flushing what was written.
   */
  readFrames(options?: FramesOptions): FrameIterator<FrameOf<this>> {
    return new FrameIterator(this, options);
  }

  /** `for await (const frame of stream)`: `readFrames()` with the defaults. */
  [Symbol.asyncIterator](): FrameIterator<FrameOf<this>> {
    return new FrameIterator(this);
  }

  #onData(chunk: Buffer): void {
    // While closing, incoming bytes are read and dropped: unread data would make the
    // kernel answer our close with a reset, which can destroy replies still in flight.
    if (this.#state !== 'open') return;
    const more = this.#occasional;
    if (more !== null && more.timeoutTimer !== null) more.lastRead = more.lastActivity = this.engine.now();
    this._received(chunk);
  }

  /**
   * @internal Bytes read from the socket, framed and delivered. A protocol layered on the
   * stream (trews/websocket) takes them first and passes its payload bytes on to this.
   */
  _received(chunk: Buffer): void {
    const rb = (this.#rb ??= readBufferFor(this.#framing, this.#bufferSize));
    rb.push(chunk);
    this.#dispatch();
  }

  #onEnd(): void {
    if (this.#is(HANDSHAKING)) {
      // The peer gave up before the TLS handshake finished: that is a TLS failure.
      this.#socket?.destroy(Object.assign(new Error('the peer closed the connection during the TLS handshake'), { code: 'ECONNRESET' }));
      return;
    }
    this.#set(EOF);
    if (this.#state === 'open') this.#set(PEER_ENDED);
    this.#dispatch();
  }

  #dispatch(): void {
    if (this.#is(DISPATCHING)) return;
    this.#set(DISPATCHING);
    try {
      this.#deliverFrames();
    } finally {
      this.#clear(DISPATCHING);
    }
    this.#flush();
    if (this.#is(EOF) && !this.#is(PAUSED) && this.#state === 'open') this.#finishReading();
  }

  #deliverFrames(): void {
    try {
      this.#syncFields();
    } catch (err) {
      this._hookThrew('onRead', err);
      return;
    }
    const rb = this.#rb;
    if (rb === null) return;
    while (!this.#is(PAUSED) && this.#state === 'open') {
      const wanted = this.readDelimiter;
      if (wanted !== this.#delimiter) {
        // Set as a plain property (a class field) inside onRead: apply it to what is buffered.
        try {
          this.#applyDelimiter(wanted);
        } catch (err) {
          this._hookThrew('onRead', err);
          return;
        }
      }
      const frame = rb.next();
      if (frame === null) {
        if (rb.overflow === 0) break;
        this._fail('onOverflowError', new OverflowError(rb.bufferSize, rb.overflow));
        continue;
      }
      this.#deliver(frame, rb);
    }
    if (rb.length !== 0) rb.compact();
    else if (rb.empty && this.#rb === rb) {
      this.#rb = null;
      spareReadBuffer = rb;
    }
  }

  #deliver(frame: Buffer, rb: ReadBuffer): void {
    const d = rb.delimiter;
    try {
      if (d.kind === 'struct') {
        const values = d.struct.unpack(frame);
        this._awaitHook('onRead', (this as Stream).onRead.apply(this, values));
        if (this._listened('read')) this.emit('read', ...values);
        return;
      }
      let data: unknown;
      if (d.kind === 'regex' && d.sticky) data = decodeMatch(rb.match!, this.#encoding);
      else if (this.#encoding === null) data = frame;
      else if (d.kind === 'chunk') data = (this.#more.decoder ??= new StringDecoder(this.#encoding)).write(frame);
      else data = frame.toString(this.#encoding);
      const returned: unknown = (this as Stream).onRead(data);
      if (returned !== undefined) this._awaitHook('onRead', returned); // an async onRead
      if (this._listened('read')) this.emit('read', data);
    } catch (err) {
      this._hookThrew('onRead', err);
    }
  }

  /** The peer sent FIN and every whole frame has been delivered. */
  #finishReading(): void {
    this.#clear(EOF);
    const rb = this.#rb;
    const d = this.#framing;
    const decoder = this.#occasional?.decoder ?? null;
    if (decoder !== null && d.kind === 'chunk') {
      const rest = decoder.end();
      if (rest.length > 0) this.#deliverTail(rest);
    } else if (rb !== null && rb.length > 0) {
      const tail = rb.drain();
      if (d.kind === 'bytes' || (d.kind === 'regex' && !d.sticky)) {
        // Like readline and split2: the last line need not end with the delimiter.
        this.#deliverTail(this.#encoding === null ? tail : tail.toString(this.#encoding));
      } else {
        const what = d.kind === 'regex' ? 'a sticky RegExp match' : d.kind === 'chunk' ? 'a chunk' : `a ${d.size}-byte frame`;
        this._fail('onReadError', new TruncatedFrameError(`peer closed after ${tail.length} bytes of ${what}`, tail));
      }
    }
    if (this.#state !== 'open') return;
    this._hook('onEnd');
    if (this.#state !== 'open' || this.allowHalfOpen) return;
    // A reconnecting client ends this connection (flushing) and then tries again.
    if (this.#canReconnect()) this.#beginGracefulClose();
    else void this.close();
  }

  #deliverTail(data: string | Buffer): void {
    if (this.#state !== 'open') return;
    try {
      this._awaitHook('onRead', (this as Stream).onRead(data));
      if (this._listened('read')) this.emit('read', data);
    } catch (err) {
      this._hookThrew('onRead', err);
    }
  }

  // ---- writing -----------------------------------------------------------------------------

  /**
   * Queue bytes for the peer. Writes made during one dispatch (or one turn) go out in one
   * system call. Returns false once `bufferedBytes` reaches `writeHighWaterMark`: wait for
   * `onWrite` before writing more.
   */
  write(data: string | Uint8Array, encoding: BufferEncoding = 'utf8'): boolean {
    if (this.#state !== 'open' || this.#is(END_REQUESTED)) this.#checkWritable('write');
    let bytes: number;
    if (typeof data === 'string') {
      if (encoding !== 'utf8' && encoding !== 'utf-8') {
        if (!ENCODINGS.has(encoding)) throw new TypeError(`write(): unknown encoding ${String(encoding)}`);
        data = Buffer.from(data, encoding);
        bytes = data.length;
      } else {
        bytes = data.length === 1 && data.charCodeAt(0) < 0x80 ? 1 : Buffer.byteLength(data);
      }
    } else if (data instanceof Uint8Array) {
      if (!Buffer.isBuffer(data)) data = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      bytes = data.length;
    } else {
      throw new TypeError(`write() takes a string, Buffer or Uint8Array, got ${data === null ? 'null' : typeof data}`);
    }
    if (bytes > 0) {
      (this.#queue ??= []).push(data as string | Buffer);
      this.#queueBytes += bytes;
      if (typeof data !== 'string') this.#clear(QUEUE_STRINGS);
      if (!this.#is(DISPATCHING) && !this.#is(FLUSH_SCHEDULED)) {
        this.#set(FLUSH_SCHEDULED);
        process.nextTick(Stream.#flushLater, this);
      }
      const more = this.#occasional;
      if (more !== null && more.timeoutTimer !== null) more.lastActivity = this.engine.now();
    }
    if (this.#queueBytes + this.#inSocket < this.writeHighWaterMark) return true;
    this.#set(WANT_DRAIN);
    return false;
  }

  /** Pack `values` with the current Struct delimiter, or with an explicit Struct given first, and write them. */
  writePacked(...values: unknown[]): boolean {
    let struct: Struct;
    if (values[0] instanceof Struct) struct = values.shift() as Struct;
    else if (this.#delimiter instanceof Struct) struct = this.#delimiter;
    else throw new TypeError('writePacked() needs a Struct readDelimiter, or a Struct as its first argument');
    return this.write(struct.pack(...(values as StructInput[])));
  }

  /**
   * Send a file (a path or an open FileHandle), in order with the writes around it, reading
   * it in chunks as the socket drains. Resolves with the bytes sent.
   */
  writeFile(file: string | FileHandle, options: WriteFileOptions = {}): Promise<number> {
    this.#checkWritable('writeFile');
    if (typeof file !== 'string' && (typeof file !== 'object' || file === null || typeof file.read !== 'function')) {
      throw new TypeError('writeFile() takes a file path or a FileHandle from node:fs/promises');
    }
    const offset = options.offset ?? 0;
    const length = options.length ?? Infinity;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`writeFile offset must be an integer >= 0, got ${offset}`);
    if (length !== Infinity && (!Number.isSafeInteger(length) || length < 0)) {
      throw new RangeError(`writeFile length must be an integer >= 0, got ${length}`);
    }
    const job: FileJob = { source: file, offset, length, done: Outcome.create<number>() };
    (this.#queue ??= []).push(job);
    this.#more.queueFiles++;
    this.#clear(QUEUE_STRINGS);
    this.#scheduleFlush();
    return job.done.outcome;
  }

  /** Hand everything queued to the OS now, instead of at the end of this dispatch or turn. */
  flush(): void {
    this.#flush();
  }

  /** Half-close: flush, then send FIN; reading goes on until the peer closes. */
  end(): void {
    if (this.#is(END_REQUESTED) || this.#state === 'closed' || this.#state === 'closing') return;
    this.#set(END_REQUESTED);
    this.#flush();
  }

  #checkWritable(what: string): void {
    if (this.#is(END_REQUESTED) || (this.#state !== 'open' && this.#state !== 'connecting' && this.#state !== 'idle')) {
      throw new ClosedError(`${what}() on ${String(this)} after ${this.#is(END_REQUESTED) ? 'end()' : 'close'}`);
    }
  }

  #scheduleFlush(): void {
    if (this.#is(DISPATCHING) || this.#is(FLUSH_SCHEDULED)) return;
    this.#set(FLUSH_SCHEDULED);
    process.nextTick(Stream.#flushLater, this);
  }

  #scheduledFlush(): void {
    this.#clear(FLUSH_SCHEDULED);
    this.#flush();
  }

  /**
   * Hand queued writes to the socket: plain data as one write, files streamed in order. While
   * the socket still holds an earlier write, data stays in our queue, where it is counted
   * (`bufferedBytes`) and goes out in one piece when the socket is ready.
   */
  #flush(): void {
    const socket = this.#socket;
    // A destroyed socket takes nothing: what is queued stays queued (and is reported so).
    if (socket === null || socket.destroyed || this.#is(HANDSHAKING)) return;
    if (this.#state !== 'open' && this.#state !== 'closing') return;
    let wrote = false;
    // The socket gets one write at a time; one the OS takes at once is done at once.
    for (let queue = this.#queue; queue !== null && this.#inSocket === 0 && this.#file === null; queue = this.#queue) {
      wrote = true;
      if (this.#queueBytes <= HAND_LIMIT && (this.#occasional?.queueFiles ?? 0) === 0) {
        // The common case: everything queued goes out as one write.
        const bytes = this.#queueBytes;
        const strings = this.#is(QUEUE_STRINGS);
        this.#queue = null;
        this.#queueBytes = 0;
        this.#set(QUEUE_STRINGS);
        this.#writeRun(socket, queue as Array<string | Buffer>, bytes, strings);
      } else if (isFileJob(queue[0]!)) {
        const job = queue.shift() as FileJob;
        if (queue.length === 0) this.#queue = null;
        const more = this.#more;
        more.queueFiles--;
        more.file = job;
        void this.#sendFile(socket, job);
      } else {
        const { run, bytes } = this.#takeRun(queue, HAND_LIMIT);
        this.#writeRun(socket, run, bytes, false);
      }
    }
    if (this.#queue !== null || this.#inSocket > 0 || this.#file !== null) return;
    if (this.#is(END_REQUESTED)) {
      if (!socket.writableEnded) socket.end();
    } else if (wrote && this.#wantsOnWrite() && !this.#is(DRAIN_SCHEDULED)) {
      // Everything went to the OS at once: onWrite follows on the next tick, as a callback would.
      this.#set(DRAIN_SCHEDULED);
      process.nextTick(Stream.#drainedLater, this);
    }
  }

  /**
   * Take plain writes from the front of the queue, up to `limit` bytes (splitting a larger
   * one; its rest stays first in line) or up to a file. The socket gets at most `limit` bytes
   * at a time, so `bytesWritten` shows progress within a large write.
   */
  #takeRun(queue: Array<string | Buffer | FileJob>, limit: number): { run: Array<string | Buffer>; bytes: number } {
    const run: Array<string | Buffer> = [];
    let bytes = 0;
    let i = 0;
    for (; i < queue.length; i++) {
      const item = queue[i]!;
      if (isFileJob(item)) break;
      const size = Buffer.byteLength(item);
      if (bytes + size <= limit) {
        run.push(item);
        bytes += size;
        continue;
      }
      if (run.length === 0) {
        const whole = typeof item === 'string' ? Buffer.from(item) : item;
        run.push(whole.subarray(0, limit));
        queue[i] = whole.subarray(limit);
        bytes = limit;
      }
      break;
    }
    this.#queue = i === queue.length ? null : queue.slice(i);
    this.#queueBytes -= bytes;
    return { run, bytes };
  }

  #writeRun(socket: net.Socket, run: Array<string | Buffer>, bytes: number, strings: boolean): void {
    const data = run.length === 1 ? run[0]! : strings ? run.join('') : joinBytes(run, bytes);
    // On TCP, no callback: Node then needs no tick and no allocation for a write the OS takes
    // at once, the usual case. Only when the socket keeps some does an empty write queued
    // behind it call back, once the socket has written everything before it. A TLS socket
    // seldom finishes at once (it encrypts into the raw socket): there the write calls back.
    const secure = this.#is(SECURE);
    if (secure) socket.write(data, (err) => this.#afterWrite(err));
    else socket.write(data);
    this.#handed += bytes;
    if (socket.errored) {
      // Refused at once (EPIPE: the peer is gone): none of it was taken.
      this.#inSocket = bytes;
      this.#set(WRITE_REFUSED);
      return;
    }
    this.#inSocket = socket.writableLength;
    if (this.#inSocket > 0 && !secure) socket.write(NO_BYTES, (err) => this.#afterWrite(err));
  }

  /** The socket has written what it held: note it, send what waited, signal the drain. */
  #afterWrite(err?: Error | null): void {
    const socket = this.#socket;
    // A destroyed socket calls back pending writes without an error: they were not written.
    if (err || socket === null || socket.destroyed) return;
    this.#inSocket = socket.writableLength;
    if (this.#inSocket > 0) return;
    this.#flush();
    if (!this.#is(DRAIN_SCHEDULED)) this.#drained();
  }

  static #drainedLater(stream: Stream): void {
    stream.#clear(DRAIN_SCHEDULED);
    stream.#drained();
  }

  /** Everything written is with the OS: onWrite, but only when someone will hear it (a hook call per drain costs). */
  #drained(): void {
    if (this.#inSocket > 0 || this.#queue !== null || this.#file !== null || this.#state !== 'open') return;
    if (this.#wantsOnWrite()) {
      this.#clear(WANT_DRAIN);
      this._hook('onWrite');
    }
  }

  #wantsOnWrite(): boolean {
    return this.#is(WANT_DRAIN) || this.onWrite !== Stream.prototype.onWrite || this._listened('write');
  }

  async #sendFile(socket: net.Socket, job: FileJob): Promise<void> {
    let handle: FileHandle | undefined;
    let sent = 0;
    try {
      handle = typeof job.source === 'string' ? await open(job.source, 'r') : job.source;
      let position = job.offset;
      while (sent < job.length) {
        if ((this.#state !== 'open' && this.#state !== 'closing') || socket.destroyed) throw new ClosedError(`${String(this)} closed during writeFile()`);
        const want = Math.min(FILE_CHUNK, job.length - sent);
        const { bytesRead, buffer } = await handle.read(Buffer.allocUnsafe(want), 0, want, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        sent += bytesRead;
        this.#handed += bytesRead;
        const room = socket.write(bytesRead === want ? buffer : buffer.subarray(0, bytesRead), (err) => this.#afterWrite(err));
        this.#inSocket = socket.writableLength;
        if (!room) await drained(socket);
      }
    } catch (err) {
      if (typeof job.source === 'string') await handle?.close().catch(() => undefined);
      this.#more.file = null;
      job.done.reject(err);
      if (this.#state === 'open') {
        this._fail('onWriteError', new WriteError(`writeFile() failed after ${sent} bytes: ${(err as Error).message}`, { cause: err }), job.done.outcome.observed);
      }
      return;
    }
    if (typeof job.source === 'string') await handle.close().catch(() => undefined);
    this.#more.file = null;
    job.done.resolve(sent);
    this.#afterWrite();
  }

  // ---- inactivity timeouts -----------------------------------------------------------------

  /**
   * One Engine timer for both limits, re-armed for whichever falls due first. With
   * `restart`, both limits count from now (the connection opened, or the limits changed).
   */
  #armTimeouts(restart: boolean): void {
    const more = this.#occasional;
    if (more === null) return;
    more.timeoutTimer?.cancel();
    more.timeoutTimer = null;
    const { idleTimeout, readTimeout } = more;
    if (this.#state !== 'open' || (idleTimeout === 0 && readTimeout === 0)) return;
    const now = this.engine.now();
    if (restart) more.lastRead = more.lastActivity = now;
    const due = Math.min(
      idleTimeout > 0 ? more.lastActivity + idleTimeout : Infinity,
      readTimeout > 0 ? more.lastRead + readTimeout : Infinity,
    );
    more.timeoutTimer = this.engine.defer(Math.max(due - now, 0.001), Stream.#timeoutsDue, this);
  }

  #checkTimeouts(): void {
    const more = this.#more;
    more.timeoutTimer = null;
    if (this.#state !== 'open') return;
    const now = this.engine.now();
    const kind =
      more.readTimeout > 0 && now - more.lastRead >= more.readTimeout
        ? 'read'
        : more.idleTimeout > 0 && now - more.lastActivity >= more.idleTimeout
          ? 'idle'
          : null;
    if (kind !== null) {
      // The next timeout counts from now, whatever the hook does.
      more.lastRead = more.lastActivity = now;
      this._hook('onTimeout', kind);
    }
    this.#armTimeouts(false);
  }

  // ---- closing -----------------------------------------------------------------------------

  /**
   * Close the channel. With `flush` (default) everything queued is sent, then FIN, and the
   * channel closes when the peer finishes; forced once it stalls for `timeout` (default
   * `closeTimeout`) ms. `close(false)` closes at once. Resolves after `onClose`.
   */
  close(options: boolean | CloseOptions = true): Promise<void> {
    const { flush = true, timeout = this.closeTimeout } = typeof options === 'boolean' ? { flush: options } : options;
    if (!(timeout > 0 && Number.isFinite(timeout))) throw new RangeError(`close timeout must be a finite number of ms > 0, got ${String(timeout)}`);
    const state = this.#state;
    if (state === 'closed') return this.#whenClosed();
    if (!flush || state === 'idle' || this.#socket === null || (state === 'connecting' && this.#queue === null)) {
      this.#abort();
      return this.#whenClosed();
    }
    if (state === 'closing') return this.#whenClosed();
    this.#more.closeBound = timeout;
    this.#enterClosing();
    if (state === 'open') this.#beginGracefulClose();
    return this.#whenClosed();
  }

  /** Close at once, dropping anything queued; `err`, if given, goes to `onError` first. */
  destroy(err?: Error): void {
    if (this.#state === 'closed') return;
    this.#enterClosing();
    if (err !== undefined) {
      this._errorReported('onError', err);
      this._hook('onError', err);
    }
    this.#abort();
  }

  /** Resolves once the channel has closed (after `onClose`). */
  whenClosed(): Promise<void> {
    return this.#whenClosed();
  }

  #whenClosed(): Promise<void> {
    const more = this.#more;
    if (more.closed === null) {
      more.closed = Outcome.create<void>();
      if (this.#state === 'closed') more.closed.resolve();
    }
    // On a virtual clock, a close over a simulated link waits out the link's latency:
    // awaiting it lets that virtual time pass (see Engine#_awaitTime).
    if (this.engine.virtual && this.#state !== 'closed' && this.#socket instanceof MemorySocket) return this.engine._awaitTime(more.closed.outcome);
    return more.closed.outcome;
  }

  #enterClosing(): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#state = 'closing';
    this._owner?._streamClosing(this);
  }

  #beginGracefulClose(): void {
    const socket = this.#socket!;
    this.#set(END_REQUESTED);
    this.#flush();
    // Keep reading (and dropping) so the kernel never answers our FIN with a reset.
    socket.resume();
    // The bound is on stalls: a slow reader that keeps taking our data is not cut off.
    const more = this.#more;
    const bound = more.closeBound || this.closeTimeout;
    let sent = this.bytesWritten;
    // What the kernel still had to send at the start of this period (Linux TCP), or null.
    let inKernel: number | null = null;
    const lookAtKernel = () => {
      void kernelSendQueue(socket)?.then((queued) => (inKernel = queued));
    };
    const force = () => {
      if (this.#socket !== socket || socket.destroyed) return;
      this.#set(FORCED);
      debug('%s: graceful close stalled for %d ms; closing by force', String(this), bound);
      socket.destroy();
    };
    const check = () => {
      if (this.bufferedBytes > 0 && this.bytesWritten > sent) {
        sent = this.bytesWritten;
        lookAtKernel();
        more.closeTimer = this.engine._defer(bound, check);
        return;
      }
      // Node sees no progress, but the kernel may: a slow reader's window opens a little at a
      // time, far below what wakes a writer (a third of the send buffer). Progress is less in
      // the kernel's send queue than at the start of the period.
      const asking = inKernel === null ? null : kernelSendQueue(socket);
      if (asking === null) return force();
      void asking.then((queued) => {
        if (this.#socket !== socket || socket.destroyed) return;
        if (queued === null || inKernel === null || queued >= inKernel) return force();
        inKernel = queued;
        more.closeTimer = this.engine._defer(bound, check);
      });
    };
    // Only a close with bytes still queued here can stall behind a slow reader: only those
    // pay for looking at the kernel (a read of /proc/net/tcp per period).
    if (this.bufferedBytes > 0) lookAtKernel();
    more.closeTimer = this.engine._defer(bound, check);
  }

  #abort(): void {
    this.#enterClosing();
    this.#dropQueue();
    if (this.#socket !== null && !this.#socket.destroyed) {
      this.#inSocket = this.#pendingInSocket().bytes; // what the socket still held is lost with it
      this.#socket.destroy();
    }
    else if (this.#socket === null) process.nextTick(() => this.#finalize());
  }

  /**
   * @internal Drop what is queued here (not yet handed to the socket) from byte `position` of
   * the stream on, counted as `bytesWritten + bufferedBytes` count: a close that lets only the
   * message being written finish (Outbox#hold). What the socket holds cannot be taken back.
   */
  _dropQueuedFrom(position: number): void {
    const queue = this.#queue;
    if (queue === null) return;
    // The queue starts where the socket's bytes end: at #handed.
    let keep = position - this.#handed;
    const kept: Array<string | Buffer> = [];
    let i = 0;
    for (; i < queue.length && keep > 0; i++) {
      const item = queue[i]!;
      if (isFileJob(item)) break; // its size is not known: nothing from it on is kept
      const size = Buffer.byteLength(item);
      if (size > keep) {
        const bytes = typeof item === 'string' ? Buffer.from(item) : item;
        kept.push(bytes.subarray(0, keep));
        keep = 0;
        i++;
        break;
      }
      kept.push(item);
      keep -= size;
    }
    if (i === 0) return this.#dropQueue();
    this.#queue = queue.slice(i);
    this.#dropQueue(); // a writeFile() among the dropped learns why
    if (kept.length === 0) return;
    this.#queue = kept;
    this.#queueBytes = position - this.#handed - keep;
    if (kept.some((item) => typeof item !== 'string')) this.#clear(QUEUE_STRINGS);
  }

  /** Forget what was never sent; a queued writeFile() learns why. */
  #dropQueue(): void {
    for (const item of this.#queue ?? []) {
      if (isFileJob(item)) item.done.reject(new ClosedError(`${String(this)} closed before writeFile() started`));
    }
    this.#queue = null;
    this.#queueBytes = 0;
    if (this.#occasional !== null) this.#occasional.queueFiles = 0;
    this.#set(QUEUE_STRINGS);
  }

  #onSocketError(err: Error & { code?: string; syscall?: string }): void {
    const state = this.#state;
    debug('%s: socket error in state %s: %s', String(this), state, err.message);
    if (this.#is(HANDSHAKING) && state !== 'closed') {
      this.#clear(HANDSHAKING);
      this.#set(FATAL);
      const tlsErr = new TLSError(`TLS handshake with ${formatAddress(this.remoteAddress ?? this.#endpoint)} failed: ${err.code ?? err.message}`, { cause: err });
      const pending = this.#more.connecting ?? this.#more.upgrading;
      this.#more.connecting = null;
      this.#more.upgrading = null;
      if (state !== 'closing') this._fail('onTLSError', tlsErr, pending?.outcome.observed);
      pending?.reject(tlsErr);
    } else if (this.#canReconnect()) {
      // Reported through onReconnecting when the socket has closed.
      this.#more.dropError = err;
    } else if (state === 'connecting' || (state === 'closing' && (this.#occasional?.connecting ?? null) !== null)) {
      const where = formatAddress(this.#endpoint);
      const connectErr = new ConnectError(`connect to ${where} failed: ${err.code ?? err.message}${slipHint(this.#endpoint, err)}`, { cause: err });
      const connecting = this.#more.connecting;
      this.#more.connecting = null;
      if (state === 'connecting') this._fail('onConnectError', connectErr, connecting?.outcome.observed);
      connecting?.reject(connectErr);
    } else if (state === 'open') {
      const code = err.code ?? 'unknown';
      if (err.syscall === 'write' || err.syscall === 'writev' || code === 'EPIPE') {
        this._fail('onWriteError', new WriteError(`write failed: ${code}`, { cause: err }));
      } else {
        this._fail('onReadError', new ReadError(`read failed: ${code}`, { cause: err }));
      }
    }
    // Closing or closed: the user asked to close; the failure changes nothing they can act on.
  }

  #onSocketClose(): void {
    if (this.#canReconnect()) this.#scheduleReconnect();
    else this.#finalize();
  }

  #canReconnect(): boolean {
    return (this.#occasional?.reconnect ?? null) !== null && !this.#is(ACCEPTED) && !this.#is(FATAL) && (this.#state === 'open' || this.#state === 'connecting');
  }

  /** The connection is gone: forget its state, then retry after a backoff delay. */
  #scheduleReconnect(): void {
    const more = this.#more;
    const options = more.reconnect!;
    const reason = more.dropError ?? new ClosedError(`${String(this)}: the peer closed the connection`);
    more.dropError = null;
    this.#resetConnection();
    const attempt = ++more.attempt;
    if (attempt > options.maxAttempts) {
      const code = (reason as { code?: string }).code ?? reason.message;
      const err = new ConnectError(`gave up reconnecting to ${formatAddress(this.#endpoint)} after ${options.maxAttempts} attempts: ${code}${slipHint(this.#endpoint, reason)}`, { cause: reason });
      const connecting = more.connecting;
      more.connecting = null;
      this._fail('onConnectError', err, connecting?.outcome.observed);
      connecting?.reject(err);
      this.#finalize();
      return;
    }
    const base = Math.min(options.maxDelay, options.initialDelay * options.factor ** (attempt - 1));
    const delay = Math.max(0.001, base * (1 + options.jitter * (2 * Math.random() - 1)));
    this._hook('onReconnecting', attempt, delay, reason);
    if (this.#state !== 'connecting') return; // closed inside the hook
    more.reconnectTimer = this.engine.defer(delay, () => {
      more.reconnectTimer = null;
      this.#openSocket();
    });
  }

  /** Drop everything that belonged to the lost connection; writes not yet handed to it stay queued. */
  #resetConnection(): void {
    this.#state = 'connecting';
    this.#socket = null;
    this.#handed -= this.#inSocket; // what the lost socket still held never went out
    this.#inSocket = 0;
    this.#rb = null;
    this.#clear(EOF | END_REQUESTED | SECURE | HANDSHAKING | CONNECTED | PEER_ENDED | HELD_UNSURE | WRITE_REFUSED);
    this.#local = null;
    const more = this.#more;
    more.decoder = null;
    more.closeTimer?.cancel();
    more.timeoutTimer?.cancel();
    more.timeoutTimer = null;
    more.readyTimer?.cancel();
    if (more.file !== null) {
      more.file.done.reject(new ClosedError(`${String(this)}: the connection dropped during writeFile()`));
      more.file = null;
    }
  }

  #finalize(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#dropQueue();
    this.engine._unregister(this);
    const more = this.#occasional;
    if (more !== null) {
      more.closeTimer?.cancel();
      more.timeoutTimer?.cancel();
      more.timeoutTimer = null;
      more.reconnectTimer?.cancel();
      more.readyTimer?.cancel();
      const pending = more.connecting ?? more.upgrading;
      more.connecting = null;
      more.upgrading = null;
      pending?.reject(new ClosedError(`${String(this)} closed before ${this.#is(HANDSHAKING) ? 'the TLS handshake completed' : 'connecting'}`));
    }
    this._owner?._streamClosed(this);
    if (observingClose()) this.#publishClose();
    this._hook('onClose');
    this.#occasional?.closed?.resolve();
  }

  #publishClose(): void {
    const failure = this.#occasional?.failure ?? null;
    const reason = failure !== null ? 'error' : this.#is(PEER_ENDED) ? 'peer' : 'local';
    publishClose({ channel: this, reason, error: failure, bytesRead: this.bytesRead, bytesWritten: this.bytesWritten, forced: this.#is(FORCED) });
  }

  protected override _errorReported(hook: string, err: Error): void {
    this.#more.failure ??= err;
    super._errorReported(hook, err);
  }

  override toString(): string {
    const where = this.remoteAddress ?? this.localAddress ?? this.#endpoint;
    return where === null ? super.toString() : `${super.toString()}(${formatAddress(where)})`;
  }

  // Socket listeners shared by every stream: a closure per stream and event would cost memory
  // on every connection. The socket carries its stream under OWNER.
  static #socketConnect(this: OwnedSocket): void {
    this[OWNER]!.#onConnected();
  }

  static #socketData(this: OwnedSocket, chunk: Buffer): void {
    this[OWNER]!.#onData(chunk);
  }

  static #socketEnd(this: OwnedSocket): void {
    this[OWNER]!.#onEnd();
  }

  static #socketError(this: OwnedSocket, err: Error & { code?: string; syscall?: string }): void {
    this[OWNER]!.#onSocketError(err);
  }

  static #socketClose(this: OwnedSocket): void {
    this[OWNER]!.#onSocketClose();
  }

  /** Installed as each socket's `_destroy`: keep the local address while the handle still has it. */
  static #socketDestroy(this: OwnedSocket, err: Error | null, callback: (err?: Error | null) => void): void {
    const stream = this[OWNER]!;
    if (stream.#socket === this && stream.#is(CONNECTED) && this instanceof net.Socket) stream.#local ??= localAddressOf(this);
    // Whatever destroys it (a forced close, a reset), what the OS took is final now: count it
    // while the handle can still tell, so bytesWritten never goes back to an older figure.
    if (stream.#socket === this && stream.#inSocket > 0 && !stream.#is(WRITE_REFUSED)) {
      // A write that failed midway (a reset seen by a write, not a read: the peer's FIN had
      // stopped reading, or pauseReading() had) was dropped from libuv's count before Node
      // tells us: keep the last figure libuv told. Of it, the OS may have taken some more.
      if (isWriteFailure(err)) stream.#set(HELD_UNSURE);
      else stream.#inSocket = stream.#heldBy(this).bytes;
    }
    (Object.getPrototypeOf(this) as net.Socket)._destroy.call(this, err, callback);
  }

  static #flushLater(stream: Stream): void {
    stream.#scheduledFlush();
  }

  static #timeoutsDue(stream: Stream): void {
    stream.#checkTimeouts();
  }

  static {
    // Validating accessors on the prototype. Subclasses may still declare them as class
    // fields (`readDelimiter = '\n'`, `readTimeout = 30_000`): see #syncFields.
    defineFieldAccessors<Stream>(Stream.prototype, (o) => #rb in o, {
      readDelimiter: { fallback: null, get: (s) => s.#delimiter, set: (s, v: Delimiter) => s.#applyDelimiter(v) },
      encoding: { fallback: null, get: (s) => s.#encoding, set: (s, v: string | null) => s.#applyEncoding(v) },
      bufferSize: { fallback: undefined, get: (s) => s.#bufferSize, set: (s, v: number) => s.#applyBufferSize(v) },
      idleTimeout: { fallback: 0, get: (s) => s.#idleTimeout, set: (s, v: number) => s.#applyTimeouts(v, s.#readTimeout) },
      readTimeout: { fallback: 0, get: (s) => s.#readTimeout, set: (s, v: number) => s.#applyTimeouts(s.#idleTimeout, v) },
    });
    // Defaults of the plain settings, read through the prototype until an instance sets its own.
    Object.assign(Stream.prototype, { allowHalfOpen: false, closeTimeout: 5000, writeHighWaterMark: 65536, noDelay: true, tls: undefined });
  }
}

function ignore(): void {}

function isWriteFailure(err: Error | null): boolean {
  const syscall = (err as { syscall?: unknown } | null)?.syscall;
  return syscall === 'write' || syscall === 'writev';
}

/**
 * How many bytes the kernel still holds to send on a TCP socket (sent and not acknowledged, or
 * not sent yet), from Linux's /proc/net/tcp; null where that cannot be told (another
 * platform, a Unix or in-memory socket), and a promise resolving to null if the socket is not
 * listed once.
 */
function kernelSendQueue(socket: net.Socket): Promise<number | null> | null {
  const { localPort, remotePort } = socket;
  if (process.platform !== 'linux' || typeof localPort !== 'number' || typeof remotePort !== 'number') return null;
  const key = `${hexPort(localPort)}:${hexPort(remotePort)}`;
  return kernelSendQueues(socket.remoteFamily === 'IPv6' ? '/proc/net/tcp6' : '/proc/net/tcp').then((queues) => queues?.get(key) ?? null);
}

/** How long one read of a /proc/net/tcp table serves every stalled close that asks. */
const KERNEL_TABLE_REUSE_MS = 20;
const kernelTables = new Map<string, { at: number; queues: Promise<Map<string, number | null> | null> }>();

/**
 * Send queues by `localport:remoteport` (hex, as the table writes them; null where the pair is
 * not unique). One read serves all closes that ask at about the same time: a server closing
 * with thousands of stalled connections reads the table once, not once per connection.
 */
function kernelSendQueues(file: string): Promise<Map<string, number | null> | null> {
  const cached = kernelTables.get(file);
  if (cached !== undefined && performance.now() - cached.at < KERNEL_TABLE_REUSE_MS) return cached.queues;
  const queues = readFile(file, 'latin1').then(
    (table) => {
      const byPorts = new Map<string, number | null>();
      for (const line of table.split('\n')) {
        // sl local_address rem_address st tx_queue:rx_queue ...
        const [, from, to, , txrx] = line.trim().split(/\s+/);
        if (from === undefined || to === undefined || txrx === undefined) continue;
        const key = `${from.slice(from.indexOf(':') + 1)}:${to.slice(to.indexOf(':') + 1)}`;
        // The same port pair twice (another interface): cannot tell which is ours.
        byPorts.set(key, byPorts.has(key) ? null : parseInt(txrx.slice(0, txrx.indexOf(':')), 16));
      }
      return byPorts;
    },
    () => null,
  );
  kernelTables.set(file, { at: performance.now(), queues });
  return queues;
}

function hexPort(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0');
}

/** For a Unix path that does not exist and has no '/': a hint that it may be a TCP address missing its port. */
function slipHint(endpoint: Endpoint | null, err: Error): string {
  return endpoint?.kind === 'unix' && (err as { code?: string }).code === 'ENOENT' ? unixPathSlip(endpoint.path) : '';
}

/**
 * Node's own 'end' listener on a socket (onReadableStreamEnd) acts only without
 * allowHalfOpen, which trews always sets. Removing it keeps one 'end' listener per socket
 * rather than an array of two (64 bytes on every connection). Any other listener stays.
 */
function dropNodeEndListener(socket: net.Socket): void {
  const events = (socket as unknown as { _events?: Record<string, unknown> })._events;
  const listener = events?.end;
  if (socket.allowHalfOpen && typeof listener === 'function' && listener.name === 'onReadableStreamEnd') {
    socket.removeListener('end', listener as () => void);
  }
}

/** The name of a Unix or memory endpoint, as its address. */
function nameOf(endpoint: Endpoint): Address {
  return endpoint.kind === 'unix' ? endpoint.path : formatAddress(endpoint);
}

function localAddressOf(socket: net.Socket): Address | null {
  return toAddress({ address: socket.localAddress, port: socket.localPort, family: socket.localFamily });
}

/** Have Node cache a TCP socket's peer address now: after a reset the kernel no longer tells it. */
function primePeerAddress(socket: net.Socket): void {
  void socket.remoteAddress;
}

function checkReconnect(options: Required<ReconnectOptions>): void {
  const { initialDelay, maxDelay, factor, jitter, maxAttempts } = options;
  if (!(initialDelay > 0 && Number.isFinite(initialDelay))) throw new RangeError(`reconnect.initialDelay must be a finite number of ms > 0, got ${initialDelay}`);
  if (!(maxDelay >= initialDelay)) throw new RangeError(`reconnect.maxDelay must be >= initialDelay, got ${maxDelay}`);
  if (!(factor >= 1)) throw new RangeError(`reconnect.factor must be >= 1, got ${factor}`);
  if (!(jitter >= 0 && jitter < 1)) throw new RangeError(`reconnect.jitter must be in [0, 1), got ${jitter}`);
  if (!(maxAttempts >= 0)) throw new RangeError(`reconnect.maxAttempts must be >= 0, got ${maxAttempts}`);
}

function checkTimeout(name: string, ms: number): number {
  if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms)) {
    throw new RangeError(`${name} must be a finite number of milliseconds >= 0, got ${String(ms)}`);
  }
  return ms;
}

function isFileJob(item: string | Buffer | FileJob): item is FileJob {
  return typeof item === 'object' && !Buffer.isBuffer(item);
}

/** Resolves once the socket drains or closes (at once if it is already destroyed: its 'close' may have passed). */
function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

