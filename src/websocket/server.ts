/**
 * WebSocketServer: accepts WebSocket upgrades on its own node:http server (`listen`) or on
 * one you already run (`attach`: share a port with an HTTP app), and makes one connection
 * channel per accepted upgrade. Like Server: `connections`, `maxConnections`, `broadcast`, and
 * `close()` resolving once every connection has closed (each sent close code 1001).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import { Channel, Outcome, type ChannelEvents, type ChannelOptions } from '../channel.js';
import { debug } from '../engine.js';
import { formatAddress, parseAddress, toAddress, type Address, type AddressInput, type Endpoint } from '../address.js';
import { ListenError, StateError } from '../errors.js';
import { Stream, type StreamOwner } from '../stream.js';
import { broadcastTo, checkSlowReaders, type ListenOptions, type SlowReaders } from '../stream-server.js';
import type { TLSServerOptions } from '../tls.js';
import type { RelayParts, Relaying } from '../relay.js';
import { WebSocketConnection, type WebSocketOptions } from './connection.js';
import { CloseCode, acceptDeflate, type DeflateOptions } from './protocol.js';
import { acceptReply, checkUpgrade, chooseProtocol, refusalReply, type Refusal } from './handshake.js';

export type WebSocketConnectionClass<C extends WebSocketConnection> = new (options?: WebSocketOptions) => C;

/** Which origins may connect: one, a list, or a test (the Origin header; undefined when absent). */
export type OriginCheck = string | readonly string[] | ((origin: string | undefined, request: http.IncomingMessage) => boolean);

export interface WebSocketServerOptions extends ChannelOptions {
  /** Options given to every accepted connection: any of WebSocketOptions (its engine is the server's). */
  connectionOptions?: Omit<WebSocketOptions, 'engine'> & Record<string, unknown>;
  /** Refuse upgrades (HTTP 503) beyond this many open connections (default Infinity). */
  maxConnections?: number;
  /** What `broadcast()` does for a connection not reading what it is sent (default 'skip'; see SlowReaders). */
  slowReaders?: SlowReaders;
  /** Accept only these origins (others get HTTP 403). Default: any. */
  origin?: OriginCheck;
  /** Subprotocols this server speaks; the first the client offers is chosen (`connection.protocol`). */
  protocols?: readonly string[];
  /** Only upgrades to this path (`listen` and `attach`); default any. */
  path?: string;
  /**
   * Accept permessage-deflate (RFC 7692) when a client offers it: `true` for ws's defaults, or
   * its options (`threshold`, `serverNoContextTakeover`, ...). Default false: no compression.
   */
  perMessageDeflate?: boolean | DeflateOptions;
  /** `listen()` serves `wss:`: `{ key, cert }` (PEM) and any https.createServer options. */
  tls?: TLSServerOptions;
}

export interface WebSocketServerEvents<C> extends ChannelEvents {
  listen: [];
  accept: [connection: C];
  listenError: [err: ListenError];
}

type State = 'idle' | 'listening' | 'closing' | 'closed';
type HTTPServer = http.Server | https.Server;

export class WebSocketServer<C extends WebSocketConnection = WebSocketConnection> extends Channel<WebSocketServerEvents<C>> implements StreamOwner, Relaying {
  /** The class made for each accepted connection, when none is passed to the constructor. */
  static ConnectionClass: WebSocketConnectionClass<WebSocketConnection> = WebSocketConnection;

  readonly ConnectionClass: WebSocketConnectionClass<C>;
  /** Upgrades beyond this many open connections are refused with HTTP 503. */
  maxConnections: number;
  /** What `broadcast()` does for a connection not reading what it is sent (default 'skip'; see SlowReaders). */
  slowReaders: SlowReaders;
  readonly connectionOptions: Omit<WebSocketOptions, 'engine'> & Record<string, unknown>;
  readonly #options: WebSocketServerOptions;
  #state: State = 'idle';
  #http: HTTPServer | null = null;
  /** True when the HTTP server is this server's own (listen), false when attached to. */
  #ownsHTTP = false;
  #path: string | undefined;
  #local: Address | null = null;
  /** Where listen() listens (a Unix path tells connections their local address). */
  #endpoint: Endpoint | null = null;
  readonly #open = new Set<C>();
  readonly #closing = new Set<C>();
  #httpClosed = true;
  readonly #closed = Outcome.create<void>();

  constructor(ConnectionClass?: WebSocketConnectionClass<C> | WebSocketServerOptions, options: WebSocketServerOptions = {}) {
    if (typeof ConnectionClass === 'object') {
      options = ConnectionClass;
      ConnectionClass = undefined;
    }
    super(options);
    const ctor = ConnectionClass ?? (new.target as typeof WebSocketServer).ConnectionClass;
    if (typeof ctor !== 'function' || !(ctor.prototype instanceof WebSocketConnection || ctor === WebSocketConnection)) {
      throw new TypeError('WebSocketServer needs a WebSocketConnection subclass as its ConnectionClass');
    }
    this.ConnectionClass = ctor as WebSocketConnectionClass<C>;
    this.maxConnections = options.maxConnections ?? Infinity;
    this.slowReaders = checkSlowReaders(options.slowReaders ?? 'skip');
    this.connectionOptions = options.connectionOptions ?? {};
    this.#options = options;
    this.#path = options.path;
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  get listening(): boolean {
    return this.#state === 'listening';
  }

  /** Where `listen()` listens (`{ address, port, family }` or the Unix path); null when attached. */
  get localAddress(): Address | null {
    return this.#local;
  }

  /** The open connections; a closing one leaves at once. */
  get connections(): ReadonlySet<C> {
    return this.#open;
  }

  /** The HTTP server upgrades come from (its own, or the one attached to). */
  get httpServer(): HTTPServer | null {
    return this.#http;
  }

  // ---- hooks -------------------------------------------------------------------------------

  /**
   * An upgrade request passed the protocol checks (and origin, path and capacity). Return
   * false to refuse it (HTTP 403) or an HTTP status (e.g. 401) to answer with; anything else
   * accepts it.
   */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  onUpgrade(request: http.IncomingMessage): boolean | number | void {}

  /** The server is listening (listen) or attached (attach). */
  onListen(): void {}

  /** A connection was accepted; runs after its `onConnect`. */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  onAccept(connection: C): void {}

  /** Listening failed (`EADDRINUSE`, `EACCES`). */
  onListenError(err: ListenError): void {
    this._toOnError(err);
  }

  /** The default logs the error, and closes the server only if it is not listening. */
  override onError(err: Error): void {
    this._logError(err);
    if (!this.listening) void this.close();
  }

  // ---- listening ---------------------------------------------------------------------------

  /**
   * Listen on an address with an HTTP server of its own (HTTPS with the `tls` option). Plain
   * HTTP requests get 426 Upgrade Required. Resolves after `onListen`.
   */
  listen(address: AddressInput, options: ListenOptions = {}): Promise<void> {
    if (this.#state !== 'idle') throw new StateError(`listen() needs a new server; ${String(this)} is ${this.#state}`);
    const endpoint = parseAddress(address);
    if (endpoint.kind === 'memory') throw new TypeError('a WebSocketServer listens on a TCP address or a Unix path');
    this.#endpoint = endpoint;
    const listenOptions: net.ListenOptions =
      endpoint.kind === 'unix'
        ? { path: endpoint.path }
        : { port: endpoint.port, ...(endpoint.host !== undefined && { host: endpoint.host }), ...(options.ipv6Only && { ipv6Only: true }) };
    if (options.backlog !== undefined) listenOptions.backlog = options.backlog;
    const { tls } = this.#options;
    const server: HTTPServer = tls === undefined ? http.createServer() : https.createServer(tls);
    server.on('request', refuseRequest);
    this.#use(server, true);
    const { outcome, resolve, reject } = Outcome.create<void>();
    const onError = (err: Error & { code?: string }) => {
      server.off('listening', onListening);
      const listenErr = new ListenError(`listen on ${formatAddress(endpoint)} failed: ${err.code ?? err.message}`, { cause: err });
      if (this.#state === 'listening') this._fail('onListenError', listenErr, outcome.observed);
      reject(listenErr);
      this.#httpClosed = true;
      this.#state = 'closing';
      this.#maybeFinalize();
    };
    const onListening = () => {
      server.off('error', onError);
      server.on('error', (err) => debug('%s: HTTP server error: %s', String(this), err.message));
      this.#httpClosed = false;
      this.#local = toAddress(server.address());
      this._hook('onListen');
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.once('close', () => {
      this.#httpClosed = true;
      this.#maybeFinalize();
    });
    this.#state = 'listening';
    server.listen(listenOptions);
    return outcome;
  }

  /**
   * Take WebSocket upgrades from an HTTP server you run (node:http, https, or the one under
   * fastify or express), on `path` if given (upgrades to other paths are left to other
   * 'upgrade' listeners, or refused with 400 if there are none).
   */
  attach(server: HTTPServer, options: { path?: string } = {}): this {
    if (this.#state !== 'idle') throw new StateError(`attach() needs a new server; ${String(this)} is ${this.#state}`);
    if (options.path !== undefined) this.#path = options.path;
    this.#use(server, false);
    this.#state = 'listening';
    this._hook('onListen');
    return this;
  }

  #use(server: HTTPServer, own: boolean): void {
    this.#http = server;
    this.#ownsHTTP = own;
    server.on('upgrade', this.#onUpgrade);
  }

  #onUpgrade = (request: http.IncomingMessage, socket: net.Socket, head: Buffer): void => {
    if (this.#path !== undefined && pathOf(request) !== this.#path) {
      // Another 'upgrade' listener (another WebSocketServer on another path) may take it.
      if (this.#http!.listenerCount('upgrade') > 1) return;
      refuse(socket, { status: 400, reason: `no WebSocket endpoint at ${pathOf(request)}` });
      return;
    }
    const refusal = this.#check(request);
    if (refusal !== null) {
      debug('%s: refusing an upgrade: %d %s', String(this), refusal.status, refusal.reason);
      refuse(socket, refusal);
      return;
    }
    let connection: C;
    try {
      connection = new this.ConnectionClass({ ...this.connectionOptions, engine: this.engine });
    } catch (err) {
      refuse(socket, { status: 500, reason: 'internal error' });
      this.engine.reportError(err, this);
      return;
    }
    connection._owner = this;
    if (Object.hasOwn(connection, 'server')) (connection as { server?: unknown }).server = this;
    connection.protocol = chooseProtocol(request, this.#options.protocols ?? []);
    let extensions: string | null = null;
    const { perMessageDeflate } = this.#options;
    if (perMessageDeflate !== undefined && perMessageDeflate !== false) {
      let agreed;
      try {
        agreed = acceptDeflate(request.headers['sec-websocket-extensions'], perMessageDeflate === true ? {} : perMessageDeflate, connection.bufferSize);
      } catch {
        connection.destroy();
        refuse(socket, { status: 400, reason: 'invalid Sec-WebSocket-Extensions' });
        return;
      }
      if (agreed !== null) {
        connection._useDeflate(agreed.deflate);
        extensions = agreed.header;
      }
    }
    this.#open.add(connection);
    // Frames the client sent right behind its request are read first.
    if (head.length > 0) socket.unshift(head);
    try {
      connection._attach(socket, this.#endpoint ?? undefined);
    } catch (err) {
      connection.destroy(err as Error);
      return;
    }
    // The 101 reply goes out with what onConnect writes, in one write.
    Stream.prototype.write.call(connection, acceptReply(request, connection.protocol, extensions));
    connection._accepted(null);
  };

  /** Why an upgrade is refused, or null to accept it. */
  #check(request: http.IncomingMessage): Refusal | null {
    if (this.#state !== 'listening') return { status: 503, reason: 'the server is closing' };
    const invalid = checkUpgrade(request);
    if (invalid !== null) return invalid;
    if (!originAllowed(this.#options.origin, request)) return { status: 403, reason: 'origin not allowed' };
    if (this.#open.size >= this.maxConnections) return { status: 503, reason: 'too many connections' };
    let verdict: boolean | number | void;
    try {
      verdict = this.onUpgrade(request);
    } catch (err) {
      this._hookThrew('onUpgrade', err);
      return { status: 500, reason: 'internal error' };
    }
    if (verdict === false) return { status: 403, reason: 'refused' };
    if (typeof verdict === 'number' && verdict !== 101) return { status: verdict, reason: 'refused' };
    return null;
  }

  // ---- connections -------------------------------------------------------------------------

  /**
   * Send `data` (string: text, Buffer: binary) to every open connection except `except`,
   * respecting each one's backpressure (see `slowReaders`). Returns how many were sent to.
   */
  broadcast(data: string | Uint8Array, except?: WebSocketConnection | Iterable<WebSocketConnection>): number {
    this._relay?.([data]);
    return this.#deliver(data, except);
  }

  /** @internal */
  _relay: ((parts: RelayParts) => void) | null = null;

  /** @internal Another process's broadcast (`except` there named connections of that process). */
  _relayed(parts: RelayParts): void {
    if (parts.length === 1) this.#deliver(parts[0]!, undefined);
  }

  #deliver(data: string | Uint8Array, except: WebSocketConnection | Iterable<WebSocketConnection> | undefined): number {
    return broadcastTo(this.#open, except, checkSlowReaders(this.slowReaders), (connection) => {
      connection.write(data);
      return true;
    });
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
    this.#open.delete(stream as C);
    this.#closing.delete(stream as C);
    this.#maybeFinalize();
  }

  // ---- closing -----------------------------------------------------------------------------

  /**
   * Stop taking upgrades (closing its own HTTP server; an attached one is left running) and
   * close every connection with `code` (default 1001, going away). `close(false)` drops them.
   * Resolves after `onClose`, once every connection has closed.
   */
  close(code: number | boolean = CloseCode.GOING_AWAY, reason = ''): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') {
      if (code === false) for (const connection of [...this.#open, ...this.#closing]) void connection.close(false);
      return this.#closed.outcome;
    }
    const wasIdle = this.#state === 'idle';
    this.#state = 'closing';
    if (wasIdle) {
      process.nextTick(() => this.#finalize());
      return this.#closed.outcome;
    }
    const server = this.#http!;
    server.off('upgrade', this.#onUpgrade);
    if (this.#ownsHTTP) server.close();
    for (const connection of [...this.#open, ...this.#closing]) {
      if (typeof code === 'boolean') void connection.close(code);
      else void connection.close(code, reason);
    }
    this.#maybeFinalize();
    return this.#closed.outcome;
  }

  destroy(err?: Error): void {
    if (this.#state === 'closed') return;
    if (err !== undefined) this._hook('onError', err);
    void this.close(false);
  }

  /** Resolves once the server and all its connections have closed. */
  whenClosed(): Promise<void> {
    return this.#closed.outcome;
  }

  #maybeFinalize(): void {
    if (this.#state !== 'closing' || this.#open.size > 0 || this.#closing.size > 0) return;
    if (this.#ownsHTTP && !this.#httpClosed) return;
    this.#finalize();
  }

  #finalize(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.engine._unregister(this);
    this._hook('onClose');
    this.#closed.resolve();
  }

  override toString(): string {
    return this.#local === null ? super.toString() : `${super.toString()}(${formatAddress(this.#local)})`;
  }
}

function pathOf(request: http.IncomingMessage): string {
  const url = request.url ?? '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

function originAllowed(check: OriginCheck | undefined, request: http.IncomingMessage): boolean {
  if (check === undefined) return true;
  const origin = request.headers.origin;
  if (typeof check === 'function') return check(origin, request);
  if (typeof check === 'string') return origin === check;
  return origin !== undefined && check.includes(origin);
}

/** Answer an upgrade with an HTTP error and close the socket. */
function refuse(socket: net.Socket, refusal: Refusal): void {
  socket.on('error', () => {});
  if (socket.writable) socket.end(refusalReply(refusal));
  socket.once('finish', () => socket.destroy());
}

function refuseRequest(_request: http.IncomingMessage, response: http.ServerResponse): void {
  response.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', Upgrade: 'websocket', Connection: 'close' });
  response.end('this is a WebSocket endpoint\n');
}
