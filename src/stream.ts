/**
 * Stream: a connected byte stream (TCP, Unix socket, TLS, or the in-memory transport) with
 * framing, coalesced writes, exact write accounting, half-close that never loses a reply, a
 * graceful close bounded on stalls, inactivity timeouts and optional reconnecting.
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import type tls from 'node:tls';
import { EventEmitter } from 'eventemitter3';
import { open, type FileHandle } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { Channel, Outcome, defineFieldAccessors, type ChannelEvents, type ChannelOptions } from './channel.js';
import { debug, type Timer } from './engine.js';
import { formatAddress, parseAddress, toAddress, type Address, type AddressInput, type Endpoint } from './address.js';
import {
  ClosedError,
  ConnectError,
  OverflowError,
  ReadError,
  StateError,
  TLSError,
  TruncatedFrameError,
  WriteError,
} from './errors.js';
import { ReadBuffer, compileDelimiter, decodeMatch, type Delimiter } from './framing.js';
import { connectMemory } from './memory.js';
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

export interface ConnectOptions {
  /** Give up connecting after this many ms (`onConnectError` with code `ETIMEDOUT`). */
  timeout?: number;
  /** Local interface address to connect from (TCP). */
  localAddress?: string;
  /** Resolve the host name to this IP family only (TCP). */
  family?: 4 | 6;
  /** Connect with TLS: `true` for the defaults (verify the certificate and host name), or tls.connect options. */
  tls?: TLSClientOptions | boolean;
}

export interface CloseOptions {
  /** Send what is queued, then FIN, and wait for the peer (default true). */
  flush?: boolean;
  /** Force the close after this many ms (default: the channel's `closeTimeout`). */
  timeout?: number;
}

export interface WriteFileOptions {
  /** Byte offset in the file to start from (default 0). */
  offset?: number;
  /** How many bytes to send (default: to the end of the file). */
  length?: number;
}

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

type State = 'idle' | 'connecting' | 'open' | 'closing' | 'closed';

/** Called by a server that owns this stream as it starts closing and once it has closed. */
export interface StreamOwner {
  _streamClosing(stream: Stream): void;
  _streamClosed(stream: Stream): void;
}

interface FileJob {
  source: string | FileHandle;
  offset: number;
  length: number;
  done: ReturnType<typeof Outcome.create<number>>;
}

const READ_EVENT = `${EventEmitter.prefixed === false ? '' : EventEmitter.prefixed}read`;

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
/** The most bytes handed to the socket at once (see #takeRun): also the most copied into one. */
const HAND_LIMIT = 256 * 1024;
const OWNER = Symbol('trews.stream');
type OwnedSocket = net.Socket & { [OWNER]?: Stream };
const FILE_CHUNK = 64 * 1024;
const ENCODINGS = new Set(['utf8', 'utf-8', 'utf16le', 'utf-16le', 'ucs2', 'ucs-2', 'latin1', 'binary', 'ascii', 'base64', 'base64url', 'hex']);

export class Stream extends Channel<StreamEvents> {
  /** How incoming bytes are cut into messages; takes effect for bytes already buffered. */
  declare readDelimiter: Delimiter;
  /** Deliver strings in this encoding (null: Buffers). */
  declare encoding: BufferEncoding | null;
  /** The most bytes one frame or one unframed remainder may hold. */
  declare bufferSize: number;
  /** Inactivity limit in ms for reads and writes together (0: off), on the Engine clock. */
  declare idleTimeout: number;
  /** Inactivity limit in ms for reads (0: off), on the Engine clock. */
  declare readTimeout: number;

  allowHalfOpen: boolean;
  closeTimeout: number;
  writeHighWaterMark: number;
  readonly noDelay: boolean;
  /** TLS client options for `connect()` (overridden by its own `tls` option). */
  tls: TLSClientOptions | boolean | undefined;

  /** @internal */ _owner: StreamOwner | null = null;

  #state: State = 'idle';
  #socket: net.Socket | null = null;
  #endpoint: Endpoint | null = null;
  #local: Address | null = null;
  #remote: Address | null = null;
  #delimiter: Delimiter = null;
  #encoding: BufferEncoding | null = null;
  #decoder: StringDecoder | null = null;
  readonly #rb = new ReadBuffer();
  #reconnect: Required<ReconnectOptions> | null = null;
  #attempt = 0;
  #reconnectTimer: Timer | null = null;
  #connectOptions: ConnectOptions = {};
  /** Why the current connection went away, when it will be retried. */
  #dropError: Error | null = null;
  /** A failure that retrying cannot fix (a TLS handshake refused). */
  #fatal = false;
  #paused = false;
  #dispatching = false;
  #eof = false;
  #endRequested = false;
  #queue: Array<string | Buffer | FileJob> = [];
  #queueBytes = 0;
  #queueStrings = true;
  #queueFiles = 0;
  /** Bytes handed to the socket in all, and those it still holds (not yet with the OS). */
  #handed = 0;
  #inSocket = 0;
  #flushScheduled = false;
  #file: FileJob | null = null;
  #wantDrain = false;
  #closeTimer: Timer | null = null;
  #idleTimeout = 0;
  #readTimeout = 0;
  #lastRead = 0;
  #lastActivity = 0;
  #timeoutTimer: Timer | null = null;
  #closeBound = 0;
  #connecting: ReturnType<typeof Outcome.create<void>> | null = null;
  #upgrading: ReturnType<typeof Outcome.create<void>> | null = null;
  #readyTimer: Timer | null = null;
  #onReady: (() => void) | null = null;
  #accepted = false;
  #clientTLS: TLSClientOptions | null = null;
  #secure = false;
  #handshaking = false;
  /** Made on first use: most channels are never awaited. */
  #closedOutcome: ReturnType<typeof Outcome.create<void>> | null = null;
  #forced = false;

  constructor(options: StreamOptions = {}) {
    super(options);
    this.allowHalfOpen = options.allowHalfOpen ?? false;
    this.closeTimeout = options.closeTimeout ?? 5000;
    if (options.idleTimeout !== undefined) this.idleTimeout = options.idleTimeout;
    if (options.readTimeout !== undefined) this.readTimeout = options.readTimeout;
    this.writeHighWaterMark = options.writeHighWaterMark ?? 65536;
    this.noDelay = options.noDelay ?? true;
    this.tls = options.tls;
    if (options.reconnect !== undefined && options.reconnect !== false) {
      this.#reconnect = { ...RECONNECT_DEFAULTS, ...(options.reconnect === true ? {} : options.reconnect) };
    }
    if (options.encoding !== undefined) this.encoding = options.encoding;
    if (options.bufferSize !== undefined) this.bufferSize = options.bufferSize;
    if (options.readDelimiter !== undefined) this.readDelimiter = options.readDelimiter;
  }

  // ---- state -------------------------------------------------------------------------------

  get connected(): boolean {
    return this.#state === 'open';
  }

  get connecting(): boolean {
    return this.#state === 'connecting';
  }

  /** True for a connection a server accepted (the server side), false for an outgoing one. */
  get accepted(): boolean {
    return this.#accepted;
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
    return this.#forced;
  }

  get remoteAddress(): Address | null {
    return this.#remote;
  }

  get localAddress(): Address | null {
    return this.#local;
  }

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
    if (socket === null || socket.destroyed || this.#inSocket === 0) return { bytes: this.#inSocket, exact: true };
    // With one write in the socket at a time, libuv's remainder (or the memory link's) is exact.
    // Under TLS (encrypted sizes) or while a file streams (several writes), count it all.
    const exact =
      this.#secure || this.#file !== null
        ? undefined
        : ((socket as unknown as { _handle?: { writeQueueSize?: unknown } })._handle?.writeQueueSize ??
          (socket as unknown as { unsentBytes?: unknown }).unsentBytes);
    const held = socket.writableLength;
    return typeof exact === 'number' ? { bytes: Math.min(exact, held), exact: true } : { bytes: held, exact: false };
  }

  /** The underlying socket, for what trews does not wrap (null before connect). */
  get socket(): net.Socket | null {
    return this.#socket;
  }

  // ---- hooks (override these) --------------------------------------------------------------

  /** The connection is established (for a server's connection: accepted). */
  onConnect(): void {}

  /** A whole frame arrived (`Struct` delimiters: its values; sticky RegExp: the match). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any, @typescript-eslint/no-unused-vars
  onRead(data: any, ...rest: any[]): void {}

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

  onConnectError(err: ConnectError): void {
    this._toOnError(err);
  }

  onReadError(err: ReadError): void {
    this._toOnError(err);
  }

  onWriteError(err: WriteError): void {
    this._toOnError(err);
  }

  onOverflowError(err: OverflowError): void {
    this._toOnError(err);
  }

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
    if (this.#reconnect !== null) checkReconnect(this.#reconnect);
    const tlsOptions = options.tls ?? this.tls;
    this.#clientTLS = tlsOptions === undefined || tlsOptions === false ? null : tlsOptions === true ? {} : tlsOptions;
    this.#endpoint = endpoint;
    this.#connectOptions = options;
    this.#connecting = Outcome.create<void>();
    this.#syncFields();
    this.#openSocket();
    return this.#connecting.outcome;
  }

  /** Open a socket to the endpoint (first connect, or a reconnect). */
  #openSocket(): void {
    const endpoint = this.#endpoint!;
    const { timeout, localAddress, family } = this.#connectOptions;
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
      this.#readyTimer = this.engine._defer(timeout, () => {
        const err = Object.assign(new Error(`connect timed out after ${timeout} ms`), { code: 'ETIMEDOUT', syscall: 'connect' });
        this.#socket?.destroy(err);
      });
    }
    this.#listenTo(socket);
    if (this.#paused) socket.pause();
    socket.once('connect', Stream.#socketConnect);
  }

  /** @internal wire a socket (connecting, or accepted by a server) into this stream. */
  _attach(socket: net.Socket, listening?: Endpoint): void {
    this.#syncFields();
    this.#listenTo(socket);
    this.#state = 'connecting';
    if (!socket.connecting) {
      this.#accepted = true;
      if (listening !== undefined && listening.kind !== 'inet') this.#endpoint = listening;
      this.#recordAddresses();
    }
  }

  /**
   * @internal server side: the connection was accepted. With TLS, handshake first; then
   * `onConnect`, then `onReady` (the server's `onAccept`).
   */
  _accepted(tls: ServerTLS | null, onReady: () => void): void {
    this.#onReady = onReady;
    if (tls === null) this.#ready();
    else this.#wrap(wrapServer(this.#socket!, tls), tls.options);
  }

  #listenTo(socket: net.Socket): void {
    this.#socket = socket;
    (socket as OwnedSocket)[OWNER] = this;
    socket.on('data', Stream.#socketData);
    socket.on('end', Stream.#socketEnd);
    socket.on('error', Stream.#socketError);
    socket.on('close', Stream.#socketClose);
  }

  #onConnected(): void {
    this.#recordAddresses();
    if (this.#clientTLS === null) this.#ready();
    else this.#wrap(wrapClient(this.#socket!, this.#clientTLS, this.#endpoint), this.#clientTLS);
  }

  /** Connected (and, with TLS, handshaken): open the channel. */
  #ready(): void {
    this.#readyTimer?.cancel();
    const connecting = this.#connecting;
    this.#connecting = null;
    if (this.#state === 'closing') {
      // close() was called while connecting with writes queued: send them, then close.
      connecting?.reject(new ClosedError(`${String(this)} was closed while connecting`));
      this.#beginGracefulClose();
      return;
    }
    this.#state = 'open';
    this.#attempt = 0;
    this.#lastRead = this.#lastActivity = this.engine.now();
    this.#armTimeouts();
    this._hook('onConnect');
    connecting?.resolve();
    this.#flush();
    const onReady = this.#onReady;
    this.#onReady = null;
    if (onReady !== null && this.#state === 'open') onReady();
  }

  /** Record addresses once connected: they stay readable until and inside onClose. */
  #recordAddresses(): void {
    const socket = this.#socket!;
    if (this.#endpoint !== null && this.#endpoint.kind !== 'inet') {
      // Unix and memory sockets: the listening side's name is the only address there is.
      const name = this.#endpoint.kind === 'unix' ? this.#endpoint.path : formatAddress(this.#endpoint);
      this.#local = this.#accepted ? name : null;
      this.#remote = this.#accepted ? null : name;
      return;
    }
    if (this.noDelay) socket.setNoDelay(true);
    this.#local = toAddress({ address: socket.localAddress, port: socket.localPort, family: socket.localFamily });
    this.#remote = toAddress({ address: socket.remoteAddress, port: socket.remotePort, family: socket.remoteFamily });
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
    if (this.#secure) throw new StateError(`startTLS() on ${String(this)}: TLS is already active`);
    const server = this.#accepted ? prepareServerTLS(options as TLSServerOptions) : null;
    this.#secure = true;
    this.#flush();
    this.#handshaking = true;
    const raw = this.#socket!;
    raw.pause();
    raw.off('data', Stream.#socketData);
    const undelivered = this.#rb.length > 0 ? this.#rb.drain() : null;
    this.#upgrading = Outcome.create<void>();
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
    return this.#upgrading.outcome;
  }

  /** True once TLS is in use (from the start, or after `startTLS`). */
  get encrypted(): boolean {
    return this.#secure;
  }

  #wrap(secure: tls.TLSSocket, options: TLSClientOptions | TLSServerOptions): void {
    const raw = this.#socket!;
    raw.off('data', Stream.#socketData);
    raw.off('end', Stream.#socketEnd);
    raw.off('error', Stream.#socketError);
    raw.off('close', Stream.#socketClose);
    raw.on('error', ignore);
    this.#secure = true;
    this.#handshaking = true;
    this.#listenTo(secure);
    const limit = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
    const timer = this.engine._defer(limit, () => {
      secure.destroy(Object.assign(new Error(`TLS handshake timed out after ${limit} ms`), { code: 'ETIMEDOUT' }));
    });
    secure.once(this.#accepted ? 'secure' : 'secureConnect', () => {
      timer.cancel();
      const refused = this.#accepted ? clientCertificateError(secure, options as TLSServerOptions) : null;
      if (refused !== null) {
        secure.destroy(refused);
        return;
      }
      this.#handshaking = false;
      this._hook('onTLSHandshake');
      const upgrading = this.#upgrading;
      this.#upgrading = null;
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
    if (bufferSize !== this.#rb.bufferSize) this.#applyBufferSize(bufferSize);
    if (readDelimiter !== this.#delimiter) this.#applyDelimiter(readDelimiter);
    if (idleTimeout !== this.#idleTimeout || readTimeout !== this.#readTimeout) this.#applyTimeouts(idleTimeout, readTimeout);
  }

  #applyTimeouts(idle: number, read: number): void {
    this.#idleTimeout = checkTimeout('idleTimeout', idle);
    this.#readTimeout = checkTimeout('readTimeout', read);
    this.#armTimeouts();
  }

  #applyDelimiter(value: Delimiter): void {
    this.#rb.setDelimiter(compileDelimiter(value, this.#encoding));
    this.#delimiter = value;
  }

  #applyEncoding(value: BufferEncoding | null): void {
    if (value !== null && !ENCODINGS.has(value)) {
      throw new TypeError(`encoding must be null (Buffers) or a Buffer encoding such as 'utf8', got ${String(value)}`);
    }
    this.#encoding = value;
    this.#decoder = value === null ? null : new StringDecoder(value);
    // A string delimiter's bytes depend on the encoding.
    if (typeof this.#delimiter === 'string') this.#rb.setDelimiter(compileDelimiter(this.#delimiter, value));
  }

  #applyBufferSize(value: number): void {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(`bufferSize must be a positive integer number of bytes, got ${String(value)}`);
    }
    this.#rb.bufferSize = value;
  }

  // ---- reading -----------------------------------------------------------------------------

  /** Stop delivering frames at once, even ones already buffered, and stop reading the socket. */
  pauseReading(): void {
    this.#paused = true;
    this.#socket?.pause();
  }

  /** Deliver buffered frames (on the next tick) and read again. */
  resumeReading(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#state === 'open') this.#socket?.resume();
    if (!this.#dispatching) process.nextTick(() => this.#dispatch());
  }

  get readingPaused(): boolean {
    return this.#paused;
  }

  #onData(chunk: Buffer): void {
    // While closing, incoming bytes are read and dropped: unread data would make the
    // kernel answer our close with a reset, which can destroy replies still in flight.
    if (this.#state !== 'open') return;
    if (this.#timeoutTimer !== null) this.#lastRead = this.#lastActivity = this.engine.now();
    this.#rb.push(chunk);
    this.#dispatch();
  }

  #onEnd(): void {
    if (this.#handshaking) {
      // The peer gave up before the TLS handshake finished: that is a TLS failure.
      this.#socket?.destroy(Object.assign(new Error('the peer closed the connection during the TLS handshake'), { code: 'ECONNRESET' }));
      return;
    }
    this.#eof = true;
    this.#dispatch();
  }

  #dispatch(): void {
    if (this.#dispatching) return;
    this.#dispatching = true;
    try {
      this.#deliverFrames();
    } finally {
      this.#dispatching = false;
    }
    this.#flush();
    if (this.#eof && !this.#paused && this.#state === 'open') this.#finishReading();
  }

  #deliverFrames(): void {
    const rb = this.#rb;
    try {
      this.#syncFields();
    } catch (err) {
      this._hookThrew('onRead', err);
      return;
    }
    while (!this.#paused && this.#state === 'open') {
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
      this.#deliver(frame);
    }
    if (rb.length !== 0) rb.compact();
  }

  #deliver(frame: Buffer): void {
    const d = this.#rb.delimiter;
    try {
      if (d.kind === 'struct') {
        const values = d.struct.unpack(frame);
        this.onRead.apply(this, values as [unknown]);
        if (this.#readListened()) this.emit('read', ...values);
        return;
      }
      let data: unknown;
      if (d.kind === 'regex' && d.sticky) data = decodeMatch(this.#rb.match!, this.#encoding);
      else if (this.#encoding === null) data = frame;
      else if (d.kind === 'chunk') data = this.#decoder!.write(frame);
      else data = frame.toString(this.#encoding);
      this.onRead(data);
      if (this.#readListened()) this.emit('read', data);
    } catch (err) {
      this._hookThrew('onRead', err);
    }
  }

  /** emit() per frame costs even with no listener; eventemitter3 keeps listeners in `_events`. */
  #readListened(): boolean {
    return (this as unknown as { _events: Record<string, unknown> })._events[READ_EVENT] !== undefined;
  }

  /** The peer sent FIN and every whole frame has been delivered. */
  #finishReading(): void {
    this.#eof = false;
    const rb = this.#rb;
    const d = rb.delimiter;
    if (this.#decoder !== null && d.kind === 'chunk') {
      const rest = this.#decoder.end();
      if (rest.length > 0) this.#deliverTail(rest);
    } else if (rb.length > 0) {
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
      this.onRead(data);
      this.emit('read', data);
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
    if (this.#state !== 'open' || this.#endRequested) this.#checkWritable('write');
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
      this.#queue.push(data as string | Buffer);
      this.#queueBytes += bytes;
      if (typeof data !== 'string') this.#queueStrings = false;
      if (!this.#dispatching && !this.#flushScheduled) {
        this.#flushScheduled = true;
        process.nextTick(Stream.#flushLater, this);
      }
      if (this.#timeoutTimer !== null) this.#lastActivity = this.engine.now();
    }
    if (this.#queueBytes + this.#inSocket < this.writeHighWaterMark) return true;
    this.#wantDrain = true;
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
    this.#queue.push(job);
    this.#queueFiles++;
    this.#queueStrings = false;
    this.#scheduleFlush();
    return job.done.outcome;
  }

  /** Hand everything queued to the OS now, instead of at the end of this dispatch or turn. */
  flush(): void {
    this.#flush();
  }

  /** Half-close: flush, then send FIN; reading goes on until the peer closes. */
  end(): void {
    if (this.#endRequested || this.#state === 'closed' || this.#state === 'closing') return;
    this.#endRequested = true;
    this.#flush();
  }

  #checkWritable(what: string): void {
    if (this.#endRequested || (this.#state !== 'open' && this.#state !== 'connecting' && this.#state !== 'idle')) {
      throw new ClosedError(`${what}() on ${String(this)} after ${this.#endRequested ? 'end()' : 'close'}`);
    }
  }

  #scheduleFlush(): void {
    if (this.#dispatching || this.#flushScheduled) return;
    this.#flushScheduled = true;
    process.nextTick(Stream.#flushLater, this);
  }

  #scheduledFlush(): void {
    this.#flushScheduled = false;
    this.#flush();
  }

  /**
   * Hand queued writes to the socket: plain data as one write, files streamed in order. While
   * the socket still holds an earlier write, data stays in our queue, where it is counted
   * (`bufferedBytes`) and goes out in one piece when the socket is ready.
   */
  #flush(): void {
    const socket = this.#socket;
    if (socket === null || this.#file !== null || this.#handshaking || this.#inSocket > 0) return;
    if (this.#state !== 'open' && this.#state !== 'closing') return;
    const queue = this.#queue;
    if (queue.length > 0 && this.#queueFiles === 0 && this.#queueBytes <= HAND_LIMIT) {
      // The common case: everything queued goes out as one write.
      const bytes = this.#queueBytes;
      const strings = this.#queueStrings;
      this.#queue = [];
      this.#queueBytes = 0;
      this.#queueStrings = true;
      this.#writeRun(socket, queue as Array<string | Buffer>, bytes, strings);
    } else if (queue.length > 0) {
      if (isFileJob(queue[0]!)) {
        const job = queue.shift() as FileJob;
        this.#queueFiles--;
        this.#file = job;
        void this.#sendFile(socket, job);
        return;
      }
      const { run, bytes } = this.#takeRun(HAND_LIMIT);
      this.#writeRun(socket, run, bytes, false);
    }
    if (this.#endRequested && this.#queue.length === 0 && this.#inSocket === 0 && !socket.writableEnded) socket.end();
  }

  /**
   * Take plain writes from the front of the queue, up to `limit` bytes (splitting a larger
   * one; its rest stays first in line) or up to a file. The socket gets at most `limit` bytes
   * at a time, so `bytesWritten` shows progress within a large write.
   */
  #takeRun(limit: number): { run: Array<string | Buffer>; bytes: number } {
    const queue = this.#queue;
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
    this.#queue = queue.slice(i);
    this.#queueBytes -= bytes;
    return { run, bytes };
  }

  #writeRun(socket: net.Socket, run: Array<string | Buffer>, bytes: number, strings: boolean): void {
    if (run.length === 1) {
      socket.write(run[0]!, this.#afterWrite);
    } else if (strings) {
      socket.write(run.join(''), this.#afterWrite);
    } else {
      // One buffer, filled in place: no intermediate Buffer per string.
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
      socket.write(out, this.#afterWrite);
    }
    this.#handed += bytes;
    this.#inSocket = socket.writableLength;
  }

  /** After each socket write: note what the socket still holds, send what waited, signal the drain. */
  #afterWrite = (err?: Error | null): void => {
    const socket = this.#socket;
    // A destroyed socket calls back pending writes without an error: they were not written.
    if (err || socket === null || socket.destroyed) return;
    this.#inSocket = socket.writableLength;
    if (this.#inSocket > 0) return;
    if (this.#queue.length > 0 || this.#endRequested) this.#flush();
    if (this.#inSocket > 0 || this.#queue.length > 0 || this.#file !== null || this.#state !== 'open') return;
    // onWrite costs a hook call per drain: only when someone will hear it.
    if (this.#wantDrain || this.onWrite !== Stream.prototype.onWrite || this.listenerCount('write') > 0) {
      this.#wantDrain = false;
      this._hook('onWrite');
    }
  };

  async #sendFile(socket: net.Socket, job: FileJob): Promise<void> {
    let handle: FileHandle | undefined;
    let sent = 0;
    try {
      handle = typeof job.source === 'string' ? await open(job.source, 'r') : job.source;
      let position = job.offset;
      while (sent < job.length) {
        if (this.#state !== 'open' && this.#state !== 'closing') throw new ClosedError(`${String(this)} closed during writeFile()`);
        const want = Math.min(FILE_CHUNK, job.length - sent);
        const { bytesRead, buffer } = await handle.read(Buffer.allocUnsafe(want), 0, want, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        sent += bytesRead;
        this.#handed += bytesRead;
        const more = socket.write(bytesRead === want ? buffer : buffer.subarray(0, bytesRead), this.#afterWrite);
        this.#inSocket = socket.writableLength;
        if (!more) await drained(socket);
      }
    } catch (err) {
      if (typeof job.source === 'string') await handle?.close().catch(() => undefined);
      this.#file = null;
      job.done.reject(err);
      if (this.#state === 'open') {
        this._fail('onWriteError', new WriteError(`writeFile() failed after ${sent} bytes: ${(err as Error).message}`, { cause: err }), job.done.outcome.observed);
      }
      return;
    }
    if (typeof job.source === 'string') await handle.close().catch(() => undefined);
    this.#file = null;
    job.done.resolve(sent);
    this.#afterWrite();
  }

  // ---- inactivity timeouts -----------------------------------------------------------------

  /** One Engine timer for both limits, re-armed for whichever falls due first. */
  #armTimeouts(): void {
    this.#timeoutTimer?.cancel();
    this.#timeoutTimer = null;
    if (this.#state !== 'open' || (this.#idleTimeout === 0 && this.#readTimeout === 0)) return;
    const due = Math.min(
      this.#idleTimeout > 0 ? this.#lastActivity + this.#idleTimeout : Infinity,
      this.#readTimeout > 0 ? this.#lastRead + this.#readTimeout : Infinity,
    );
    this.#timeoutTimer = this.engine.defer(Math.max(due - this.engine.now(), 0.001), Stream.#timeoutsDue, this);
  }

  #checkTimeouts(): void {
    this.#timeoutTimer = null;
    if (this.#state !== 'open') return;
    const now = this.engine.now();
    const kind =
      this.#readTimeout > 0 && now - this.#lastRead >= this.#readTimeout
        ? 'read'
        : this.#idleTimeout > 0 && now - this.#lastActivity >= this.#idleTimeout
          ? 'idle'
          : null;
    if (kind !== null) {
      // The next timeout counts from now, whatever the hook does.
      this.#lastRead = this.#lastActivity = now;
      this._hook('onTimeout', kind);
    }
    this.#armTimeouts();
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
    if (!flush || state === 'idle' || this.#socket === null || (state === 'connecting' && this.#queue.length === 0)) {
      this.#abort();
      return this.#whenClosed();
    }
    if (state === 'closing') return this.#whenClosed();
    this.#closeBound = timeout;
    this.#enterClosing();
    if (state === 'open') this.#beginGracefulClose();
    return this.#whenClosed();
  }

  /** Close at once, dropping anything queued; `err`, if given, goes to `onError` first. */
  destroy(err?: Error): void {
    if (this.#state === 'closed') return;
    this.#enterClosing();
    if (err !== undefined) this._hook('onError', err);
    this.#abort();
  }

  /** Resolves once the channel has closed (after `onClose`). */
  whenClosed(): Promise<void> {
    return this.#whenClosed();
  }

  #whenClosed(): Promise<void> {
    if (this.#closedOutcome === null) {
      this.#closedOutcome = Outcome.create<void>();
      if (this.#state === 'closed') this.#closedOutcome.resolve();
    }
    return this.#closedOutcome.outcome;
  }

  #enterClosing(): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#state = 'closing';
    this._owner?._streamClosing(this);
  }

  #beginGracefulClose(): void {
    const socket = this.#socket!;
    this.#endRequested = true;
    this.#flush();
    // Keep reading (and dropping) so the kernel never answers our FIN with a reset.
    socket.resume();
    // The bound is on stalls: a slow reader that keeps taking our data is not cut off.
    const bound = this.#closeBound || this.closeTimeout;
    let sent = this.bytesWritten;
    const check = () => {
      if (this.bufferedBytes > 0 && this.bytesWritten > sent) {
        sent = this.bytesWritten;
        this.#closeTimer = this.engine._defer(bound, check);
        return;
      }
      this.#forced = true;
      debug('%s: graceful close stalled for %d ms; closing by force', String(this), bound);
      socket.destroy();
    };
    this.#closeTimer = this.engine._defer(bound, check);
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

  /** Forget what was never sent; a queued writeFile() learns why. */
  #dropQueue(): void {
    for (const item of this.#queue) {
      if (isFileJob(item)) item.done.reject(new ClosedError(`${String(this)} closed before writeFile() started`));
    }
    this.#queue = [];
    this.#queueBytes = 0;
    this.#queueFiles = 0;
    this.#queueStrings = true;
  }

  #onSocketError(err: Error & { code?: string; syscall?: string }): void {
    const state = this.#state;
    debug('%s: socket error in state %s: %s', String(this), state, err.message);
    if (this.#handshaking && state !== 'closed') {
      this.#handshaking = false;
      this.#fatal = true;
      const tlsErr = new TLSError(`TLS handshake with ${formatAddress(this.#remote ?? this.#endpoint)} failed: ${err.code ?? err.message}`, { cause: err });
      const pending = this.#connecting ?? this.#upgrading;
      this.#connecting = null;
      this.#upgrading = null;
      if (state !== 'closing') this._fail('onTLSError', tlsErr, pending?.outcome.observed);
      pending?.reject(tlsErr);
    } else if (this.#canReconnect()) {
      // Reported through onReconnecting when the socket has closed.
      this.#dropError = err;
    } else if (state === 'connecting' || (state === 'closing' && this.#connecting !== null)) {
      const where = formatAddress(this.#endpoint);
      const connectErr = new ConnectError(`connect to ${where} failed: ${err.code ?? err.message}`, { cause: err });
      const connecting = this.#connecting;
      this.#connecting = null;
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
    return this.#reconnect !== null && !this.#accepted && !this.#fatal && (this.#state === 'open' || this.#state === 'connecting');
  }

  /** The connection is gone: forget its state, then retry after a backoff delay. */
  #scheduleReconnect(): void {
    const options = this.#reconnect!;
    const reason = this.#dropError ?? new ClosedError(`${String(this)}: the peer closed the connection`);
    this.#dropError = null;
    this.#resetConnection();
    this.#attempt++;
    if (this.#attempt > options.maxAttempts) {
      const code = (reason as { code?: string }).code ?? reason.message;
      const err = new ConnectError(`gave up reconnecting to ${formatAddress(this.#endpoint)} after ${options.maxAttempts} attempts: ${code}`, { cause: reason });
      const connecting = this.#connecting;
      this.#connecting = null;
      this._fail('onConnectError', err, connecting?.outcome.observed);
      connecting?.reject(err);
      this.#finalize();
      return;
    }
    const base = Math.min(options.maxDelay, options.initialDelay * options.factor ** (this.#attempt - 1));
    const delay = Math.max(0.001, base * (1 + options.jitter * (2 * Math.random() - 1)));
    this._hook('onReconnecting', this.#attempt, delay, reason);
    if (this.#state !== 'connecting') return; // closed inside the hook
    this.#reconnectTimer = this.engine.defer(delay, () => {
      this.#reconnectTimer = null;
      this.#openSocket();
    });
  }

  /** Drop everything that belonged to the lost connection; writes not yet handed to it stay queued. */
  #resetConnection(): void {
    this.#state = 'connecting';
    this.#socket = null;
    this.#handed -= this.#inSocket; // what the lost socket still held never went out
    this.#inSocket = 0;
    this.#rb.reset();
    this.#decoder = this.#encoding === null ? null : new StringDecoder(this.#encoding);
    this.#eof = false;
    this.#endRequested = false;
    this.#secure = false;
    this.#handshaking = false;
    this.#local = this.#remote = null;
    this.#closeTimer?.cancel();
    this.#timeoutTimer?.cancel();
    this.#timeoutTimer = null;
    this.#readyTimer?.cancel();
    if (this.#file !== null) {
      this.#file.done.reject(new ClosedError(`${String(this)}: the connection dropped during writeFile()`));
      this.#file = null;
    }
  }

  #finalize(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closeTimer?.cancel();
    this.#timeoutTimer?.cancel();
    this.#timeoutTimer = null;
    this.#reconnectTimer?.cancel();
    this.#dropQueue();
    this.engine._unregister(this);
    this.#readyTimer?.cancel();
    const pending = this.#connecting ?? this.#upgrading;
    this.#connecting = null;
    this.#upgrading = null;
    pending?.reject(new ClosedError(`${String(this)} closed before ${this.#handshaking ? 'the TLS handshake completed' : 'connecting'}`));
    this._owner?._streamClosed(this);
    this._hook('onClose');
    this.#closedOutcome?.resolve();
  }

  override toString(): string {
    const where = this.#remote ?? this.#local ?? this.#endpoint;
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
      encoding: { fallback: null, get: (s) => s.#encoding, set: (s, v: BufferEncoding | null) => s.#applyEncoding(v) },
      bufferSize: { fallback: undefined, get: (s) => s.#rb.bufferSize, set: (s, v: number) => s.#applyBufferSize(v) },
      idleTimeout: { fallback: 0, get: (s) => s.#idleTimeout, set: (s, v: number) => s.#applyTimeouts(v, s.#readTimeout) },
      readTimeout: { fallback: 0, get: (s) => s.#readTimeout, set: (s, v: number) => s.#applyTimeouts(s.#idleTimeout, v) },
    });
  }
}

function ignore(): void {}

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

function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

