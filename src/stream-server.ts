/**
 * StreamServer: listens on a TCP address or Unix path and makes one stream channel per
 * accepted connection. It tracks its connections so that `close()` closes them and
 * resolves once all are gone.
 */
import * as net from 'node:net';
import { lstat, unlink } from 'node:fs/promises';
import { Channel, Outcome, type ChannelEvents, type ChannelOptions } from './channel.js';
import { observingClose, publishClose } from './diagnostics.js';
import { debug } from './engine.js';
import { formatAddress, looksLikeHost, parseAddress, slipAdvice, toAddress, type Address, type AddressInput, type Endpoint } from './address.js';
import { ListenError, StateError } from './errors.js';
import { Stream, type CloseOptions, type StreamOptions, type StreamOwner } from './stream.js';
import { prepareServerTLS, type ServerTLS, type TLSServerOptions } from './tls.js';
import { listenMemory, type MemoryListener } from './memory.js';
import type { RelayParts, Relaying } from './relay.js';

export type StreamClass<C extends Stream> = new (options?: StreamOptions) => C;

/** Options for `new StreamServer(ConnectionClass, options)` and `new Server(...)`. */
export interface StreamServerOptions extends ChannelOptions {
  /**
   * Options given to every accepted connection (its engine is the server's): any of
   * StreamOptions, and those of your connection class (e.g. a message layer's `codec`).
   */
  connectionOptions?: Omit<StreamOptions, 'engine'> & Record<string, unknown>;
  /** Refuse (close at once) connections beyond this many open ones (default Infinity). */
  maxConnections?: number;
  /** Serve TLS: `{ key, cert }` (PEM) and any tls.createSecureContext options. */
  tls?: TLSServerOptions;
  /** What `broadcast()` does for a connection that is not reading what it is sent (see SlowReaders; default 'skip'). */
  slowReaders?: SlowReaders;
}

/**
 * What `broadcast()` does for a connection whose `bufferedBytes` has reached its
 * `writeHighWaterMark` (a peer that is not reading what it is sent):
 * - `'skip'` (default): leave it out of this broadcast (it misses the message);
 * - `'close'`: close it without flushing (a member that cannot keep up is let go);
 * - `'queue'`: write anyway: memory then grows with all the traffic it does not read.
 */
export type SlowReaders = 'skip' | 'close' | 'queue';
const SLOW_READERS = new Set<string>(['skip', 'close', 'queue']);

/** Check a `slowReaders` option; TypeError naming the accepted values. */
export function checkSlowReaders(value: unknown): SlowReaders {
  if (!SLOW_READERS.has(value as string)) throw new TypeError(`slowReaders must be 'skip', 'close' or 'queue', got ${String(value)}`);
  return value as SlowReaders;
}

/** Whether `broadcast()` may write to `connection` now, under `policy` (closing it, under 'close', if not). */
function keepsUp(connection: Stream, policy: SlowReaders): boolean {
  if (policy === 'queue' || connection.bufferedBytes < connection.writeHighWaterMark) return true;
  if (policy === 'close') void connection.close(false);
  return false;
}

/**
 * The loop behind every server's `broadcast()`: `send` to each member that is not in `except`,
 * is connected and not closing, and keeps up under `policy`; `send` returns false for a member
 * it could not write to. Returns how many were sent to.
 */
export function broadcastTo<C extends Stream>(members: Iterable<C>, except: Stream | Iterable<Stream> | undefined, policy: SlowReaders, send: (member: C) => boolean): number {
  const skip = except === undefined ? null : except instanceof Stream ? new Set([except]) : new Set(except);
  let count = 0;
  // A copy: the 'close' policy, or a write that fails, changes the set.
  for (const member of [...members]) {
    if (skip?.has(member) || !member.connected || member.closing || !keepsUp(member, policy)) continue;
    if (send(member)) count++;
  }
  return count;
}

/** Options for `server.listen(address, options)`. */
export interface ListenOptions {
  /** Pending-connection queue length passed to listen(2). */
  backlog?: number;
  /** TCP on '::' only: do not accept IPv4 too. */
  ipv6Only?: boolean;
}

export interface StreamServerEvents<C> extends ChannelEvents {
  listen: [];
  accept: [connection: C];
  listenError: [err: ListenError];
}

type State = 'idle' | 'binding' | 'listening' | 'closing' | 'closed';

/**
 * Listens on one address and makes one stream of `ConnectionClass` per accepted peer. Use
 * `Server`, whose connections are `Connection`s by default.
 */
export class StreamServer<C extends Stream = Stream> extends Channel<StreamServerEvents<C>> implements StreamOwner, Relaying {
  /** The class made for each accepted connection, when none is passed to the constructor. */
  static ConnectionClass: StreamClass<Stream> = Stream;

  readonly ConnectionClass: StreamClass<C>;
  /** Connections beyond this many open ones are closed as soon as they are accepted. */
  maxConnections: number;
  /** What `broadcast()` does for a connection not reading what it is sent (default 'skip'; see SlowReaders). */
  slowReaders: SlowReaders;
  readonly connectionOptions: Omit<StreamOptions, 'engine'> & Record<string, unknown>;
  readonly #tls: ServerTLS | null;

  #state: State = 'idle';
  #server: net.Server | MemoryListener | null = null;
  #endpoint: Endpoint | null = null;
  #local: Address | null = null;
  /** Open connections (public): one leaves as it starts closing. */
  readonly #open = new Set<C>();
  /** Connections closing but not yet closed. (Not a set of every live one: that would cost each idle connection.) */
  readonly #closing = new Set<C>();
  #listenClosed = true;
  readonly #closedOutcome = Outcome.create<{ forced: number }>();
  #forced = 0;
  /** The first error handed to an error hook: the close report's reason. */
  #failure: Error | null = null;

  constructor(ConnectionClass?: StreamClass<C> | StreamServerOptions, options: StreamServerOptions = {}) {
    if (typeof ConnectionClass === 'object') {
      options = ConnectionClass;
      ConnectionClass = undefined;
    }
    super(options);
    const ctor = ConnectionClass ?? (new.target as typeof StreamServer).ConnectionClass;
    if (typeof ctor !== 'function' || !(ctor.prototype instanceof Stream || ctor === Stream)) {
      throw new TypeError('StreamServer needs a Stream subclass (such as a Connection subclass) as its ConnectionClass');
    }
    this.ConnectionClass = ctor as StreamClass<C>;
    this.maxConnections = options.maxConnections ?? Infinity;
    this.slowReaders = checkSlowReaders(options.slowReaders ?? 'skip');
    this.connectionOptions = options.connectionOptions ?? {};
    this.#tls = options.tls === undefined ? null : prepareServerTLS(options.tls);
  }

  /** True if this server speaks TLS. */
  get encrypted(): boolean {
    return this.#tls !== null;
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** True from the end of `listen()` (just before `onListen`) until the server starts closing. */
  get listening(): boolean {
    return this.#state === 'listening';
  }

  /** Where the server listens: `{ address, port, family }` (so `listen(0)` tells its port) or the Unix path. */
  get localAddress(): Address | null {
    return this.#local;
  }

  /** The open connections; a closing one leaves at once. */
  get connections(): ReadonlySet<C> {
    return this.#open;
  }

  // ---- hooks -------------------------------------------------------------------------------

  /** The server is listening. */
  onListen(): void {}

  /** A connection was accepted (with TLS: and handshaken); runs after that connection's `onConnect`. */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  onAccept(connection: C): void {}

  /**
   * The default logs the error and closes the server only if it is not listening (listening
   * failed). Anything else, such as a throwing `onAccept`, must not take down every
   * connection of a working server.
   */
  override onError(err: Error): void {
    this._logError(err);
    if (!this.listening) void this.close(false);
  }

  /**
   * `onError` itself threw: report it to the engine, and close only a server that is not
   * listening, as the default `onError` does. One bad error handler must not take down the
   * listener and every connection.
   */
  protected override _hookThrew(hook: string, thrown: unknown): void {
    if (hook !== 'onError') return super._hookThrew(hook, thrown);
    this.engine.reportError(thrown, this);
    if (!this.listening) void this.close(false);
  }

  /** Listening failed (`EADDRINUSE`, `EACCES`, a live or non-socket file at a Unix path). */
  onListenError(err: ListenError): void {
    this._toOnError(err);
  }

  // ---- listening ---------------------------------------------------------------------------

  /** Listen on an address. Resolves after `onListen`; rejects with the error `onListenError` saw. */
  listen(address: AddressInput, options: ListenOptions = {}): Promise<void> {
    if (this.#state !== 'idle') throw new StateError(`listen() needs a new server; ${String(this)} is ${this.#state}`);
    const endpoint = parseAddress(address);
    // listen('localhost') would quietly make a socket file named localhost: refuse the slip.
    // (An explicit { path } or './localhost' is taken as written.)
    if (typeof address === 'string' && endpoint.kind === 'unix' && looksLikeHost(address)) {
      throw new TypeError(`listen(${JSON.stringify(address)}): a string that is not 'host:port' is a Unix socket path, and this one looks like a host. ${slipAdvice(address)}; a port number alone listens on all interfaces`);
    }
    this.#endpoint = endpoint;
    this.#state = 'binding';
    const { outcome, resolve, reject } = Outcome.create<void>();
    this.#bind(endpoint, options).then(
      (server) => {
        if (this.#state !== 'binding') {
          server.close();
          reject(new ListenError(`${String(this)} was closed while binding`));
          return;
        }
        this.#server = server;
        this.#listenClosed = false;
        this.#state = 'listening';
        this.#local = toAddress(server.address());
        server.on('close', this.#onListenerClose);
        this._hook('onListen');
        resolve();
      },
      (err: Error) => {
        const listenErr = err instanceof ListenError ? err : new ListenError(`listen on ${formatAddress(endpoint)} failed: ${(err as { code?: string }).code ?? err.message}`, { cause: err });
        if (this.#state === 'binding') this._fail('onListenError', listenErr, outcome.observed);
        reject(listenErr);
        if (this.#state === 'binding') this.#finalize();
      },
    );
    return outcome;
  }

  async #bind(endpoint: Endpoint, options: ListenOptions): Promise<net.Server | MemoryListener> {
    if (endpoint.kind === 'memory') {
      return listenMemory(this.engine, endpoint.name, (socket) => this.#onConnection(socket as unknown as net.Socket));
    }
    const listenOptions: net.ListenOptions =
      endpoint.kind === 'unix'
        ? { path: endpoint.path }
        : { port: endpoint.port, ...(endpoint.host !== undefined && { host: endpoint.host }), ...(options.ipv6Only && { ipv6Only: true }) };
    if (options.backlog !== undefined) listenOptions.backlog = options.backlog;
    try {
      return await this.#listenOnce(listenOptions);
    } catch (err) {
      if (endpoint.kind !== 'unix' || (err as { code?: string }).code !== 'EADDRINUSE' || endpoint.path.startsWith('\0')) throw err;
      await replaceStaleSocket(endpoint.path, err as Error);
      return await this.#listenOnce(listenOptions);
    }
  }

  #listenOnce(options: net.ListenOptions): Promise<net.Server> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ allowHalfOpen: true }, this.#onConnection);
      const onError = (err: Error) => {
        server.off('listening', onListening);
        reject(err);
      };
      const onListening = () => {
        server.off('error', onError);
        // After listening, an error can only come from accepting: keep serving, and say so. (On
        // Linux, libuv handles EMFILE itself: it accepts and closes the extra connection.)
        server.on('error', this.#onAcceptError);
        resolve(server);
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(options);
    });
  }

  #onAcceptError = (err: Error & { code?: string }): void => {
    debug('%s: accept failed: %s', String(this), err.message);
    this.engine.log(`${String(this)}: accept failed: ${err.code ?? err.message}`);
  };

  #onConnection = (socket: net.Socket): void => {
    if (this.#state !== 'listening' || this.#open.size >= this.maxConnections) {
      debug('%s: refusing a connection (%s, %d open)', String(this), this.#state, this.#open.size);
      socket.destroy();
      return;
    }
    let connection: C;
    try {
      connection = new this.ConnectionClass({ ...this.connectionOptions, engine: this.engine });
    } catch (err) {
      socket.destroy();
      this.engine.reportError(err, this);
      return;
    }
    connection._owner = this;
    // A subclass that declared `server` as a field (not `declare server`) hides the accessor.
    if (Object.hasOwn(connection, 'server')) (connection as { server?: unknown }).server = this;
    this.#open.add(connection);
    try {
      connection._attach(socket, this.#endpoint ?? undefined);
    } catch (err) {
      // An invalid class field (bufferSize = 0): fail this connection, and free its socket,
      // which the stream may not have taken yet (else server.close() would wait for it).
      socket.destroy();
      connection.destroy(err as Error);
      return;
    }
    connection._accepted(this.#tls);
  };

  // ---- connections -------------------------------------------------------------------------

  /**
   * Write `data` to every open connection except `except`, respecting each one's backpressure:
   * one whose write buffer has reached its high-water mark is skipped (or closed, or written
   * to anyway: see `slowReaders`). Returns how many were written to.
   */
  broadcast(data: string | Uint8Array, except?: Stream | Iterable<Stream>): number {
    const payload = typeof data === 'string' ? Buffer.from(data) : data;
    this._relay?.([payload]);
    return this.#deliver(payload, except);
  }

  /** @internal */
  _relay: ((parts: RelayParts) => void) | null = null;

  /** @internal Another process's broadcast (`except` there named connections of that process). */
  _relayed(parts: RelayParts): void {
    const [payload] = parts;
    if (parts.length === 1 && payload instanceof Uint8Array) this.#deliver(payload, undefined);
  }

  #deliver(payload: Uint8Array, except: Stream | Iterable<Stream> | undefined): number {
    return broadcastTo(this.#open, except, checkSlowReaders(this.slowReaders), (connection) => {
      try {
        connection.write(payload);
        return true;
      } catch {
        return false; // a connection that ended its writing side (end()) is skipped
      }
    });
  }

  /** Every connection not yet fully closed, as a new array (closing one changes the sets). */
  #live(): C[] {
    return [...this.#open, ...this.#closing];
  }

  /** @internal */
  _streamOpened(stream: Stream): void {
    this._hook('onAccept', stream);
  }

  /** @internal */
  _streamClosing(stream: Stream): void {
    if (this.#open.delete(stream as C)) this.#closing.add(stream as C);
  }

  /** @internal */
  _streamClosed(stream: Stream): void {
    if (this.#state === 'closing' && stream.forced) this.#forced++;
    this.#open.delete(stream as C);
    this.#closing.delete(stream as C);
    this.#maybeFinalize();
  }

  // ---- closing -----------------------------------------------------------------------------

  /**
   * Stop listening and close every connection (flushing, unless `flush` is false; each close
   * bounded by `timeout`, default the connection's `closeTimeout`). Resolves after `onClose`,
   * once every connection has closed, with how many closes had to be forced.
   */
  close(options: boolean | CloseOptions = true): Promise<{ forced: number }> {
    const flush = typeof options === 'boolean' ? options : (options.flush ?? true);
    if (this.#state === 'closed' || this.#state === 'closing') {
      if (!flush) for (const connection of this.#live()) void connection.close(false);
      return this.whenClosed();
    }
    const wasIdle = this.#state === 'idle';
    this.#state = 'closing';
    if (wasIdle) {
      process.nextTick(() => this.#finalize());
      return this.#closedOutcome.outcome;
    }
    this.#server?.close();
    for (const connection of this.#live()) void connection.close(options);
    this.#maybeFinalize();
    return this.whenClosed();
  }

  destroy(err?: Error): void {
    if (this.#state === 'closed') return;
    if (err !== undefined) this._hook('onError', err);
    void this.close(false);
  }

  /** Resolves once the server and all its connections have closed. */
  whenClosed(): Promise<{ forced: number }> {
    const closed = this.#closedOutcome.outcome;
    // On a virtual clock, its connections' closes over simulated links take virtual time:
    // awaiting this lets it pass (see Engine#_awaitTime).
    return this.#endpoint?.kind === 'memory' && this.#state !== 'closed' ? this.engine._awaitTime(closed) : closed;
  }

  #onListenerClose = (): void => {
    this.#listenClosed = true;
    this.#maybeFinalize();
  };

  #maybeFinalize(): void {
    if (this.#state === 'closing' && this.#open.size === 0 && this.#closing.size === 0 && (this.#listenClosed || this.#server === null)) this.#finalize();
  }

  #finalize(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.engine._unregister(this);
    if (observingClose()) publishClose({ channel: this, reason: this.#failure === null ? 'local' : 'error', error: this.#failure, bytesRead: 0, bytesWritten: 0, forced: false });
    this._hook('onClose');
    this.#closedOutcome.resolve({ forced: this.#forced });
  }

  protected override _errorReported(hook: string, err: Error): void {
    this.#failure ??= err;
    super._errorReported(hook, err);
  }

  override toString(): string {
    const where = this.#local ?? this.#endpoint;
    return where === null ? super.toString() : `${super.toString()}(${formatAddress(where)})`;
  }
}

/**
 * EADDRINUSE on a Unix path: replace the file only if it is a socket nobody answers on (a
 * crashed server's leftover). A live socket or any other file is an error and is kept.
 */
async function replaceStaleSocket(path: string, inUse: Error): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch {
    return; // Gone meanwhile: just retry.
  }
  if (!stats.isSocket()) {
    throw new ListenError(`listen on ${path} failed: the path exists and is not a socket; refusing to replace it`, { cause: inUse });
  }
  if (await isLive(path)) {
    throw new ListenError(`listen on ${path} failed: another server is listening on it`, { cause: inUse });
  }
  debug('replacing stale Unix socket %s', path);
  await unlink(path).catch((err: { code?: string }) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (err: Error & { code?: string }) => {
      // Refused: nobody listens. Anything else (EACCES, ...): treat as live, never delete.
      resolve(err.code !== 'ECONNREFUSED');
    });
  });
}
