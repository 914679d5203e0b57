/**
 * SocketIOServer: Engine.IO v4 + Socket.IO v5 for today's socket.io-client, on the trews core.
 * Long-polling requests are answered here; WebSocket upgrades go to a WebSocketServer attached
 * to the same HTTP server. Each Engine.IO session gets a Socket.IO layer that opens one
 * SocketConnection per namespace the client connects to.
 */
import * as http from 'node:http';
import type * as https from 'node:https';
import type * as net from 'node:net';
import { Channel, Outcome, type ChannelEvents, type ChannelOptions } from '../channel.js';
import { debug, type Timer } from '../engine.js';
import { formatAddress, parseAddress, toAddress, type Address, type AddressInput, type InetAddress } from '../address.js';
import { ListenError, StateError } from '../errors.js';
import { WebSocketServer } from '../websocket/server.js';
import { SocketConnection, type SocketConnectionClass } from './connection.js';
import { handshakeOf, SocketIOClient } from './client.js';
import { EngineSession, EngineWebSocket, type EngineSettings, type SessionHost, type TransportName } from './engine-session.js';
import { Broadcast, Namespace } from './namespace.js';
import type { Encoded } from './packets.js';
import type { RelayParts, Relaying } from '../relay.js';
import { answerPreflight, corsHeaders, EngineError, readBody, rememberCors, sendError, sendOk, sendPayload, type CorsOptions, type EngineErrorReply } from './polling.js';

export interface SocketIOServerOptions extends ChannelOptions {
  /** The HTTP path of the endpoint (default '/socket.io/'). */
  path?: string;
  /** Send a ping every this many ms (default 25000). */
  pingInterval?: number;
  /** Close a session whose pong is this many ms late (default 20000). */
  pingTimeout?: number;
  /** The most bytes of one message (WebSocket) or one POST (polling); default 1e6. */
  maxPayload?: number;
  /** Cross-origin polling for browsers on other origins. Default: none (same origin only). */
  cors?: CorsOptions;
  /** The transports accepted (default both: `['polling', 'websocket']`). */
  transports?: readonly TransportName[];
  /** Close a session that connects no namespace within this many ms (default 45000). */
  connectTimeout?: number;
  /** Give up an upgrade to WebSocket not completed within this many ms (default 10000). */
  upgradeTimeout?: number;
  /** The most packets a polling session holds for its next GET before it is closed (default 1024). */
  maxBufferedPackets?: number;
  /** The most bytes a WebSocket session may have queued (its client not reading) before it is closed (default 16 MiB). */
  maxBufferedBytes?: number;
}

export interface SocketIOServerEvents extends ChannelEvents {
  listen: [];
  listenError: [err: ListenError];
}

type State = 'idle' | 'listening' | 'closing' | 'closed';
type HTTPServer = http.Server | https.Server;

/** Carries the Engine.IO WebSocket transport: its upgrades are checked by the SocketIOServer. */
class EngineWebSocketServer extends WebSocketServer<EngineWebSocket> {
  /** The upgrade request being accepted (its connection opens within the same call). */
  upgrading: http.IncomingMessage | null = null;

  constructor(
    readonly io: SocketIOServer,
    options: ConstructorParameters<typeof WebSocketServer>[1],
  ) {
    super(EngineWebSocket, options);
  }

  override onUpgrade(request: http.IncomingMessage): boolean | number {
    const refusal = this.io._checkUpgrade(request);
    if (refusal !== null) return refusal;
    this.upgrading = request;
    return true;
  }

  override onAccept(socket: EngineWebSocket): void {
    const request = this.upgrading;
    this.upgrading = null;
    if (request !== null) this.io._upgraded(socket, request);
  }
}

export class SocketIOServer extends Channel<SocketIOServerEvents> implements Relaying {
  /** The class for namespace '/' (and, through its `endpoints`, the others). */
  readonly ConnectionClass: SocketConnectionClass;
  readonly path: string;
  readonly connectTimeout: number;
  readonly cors: CorsOptions | undefined;
  readonly transports: readonly TransportName[];
  readonly #settings: EngineSettings;
  readonly #sessions = new Map<string, EngineSession>();
  /** What every session reads of this server: one object for all. */
  readonly #host: SessionHost;
  readonly #namespaces = new Map<string, Namespace>();
  readonly #endpoints = new Map<string, SocketConnectionClass>();
  readonly #websockets: EngineWebSocketServer;
  #state: State = 'idle';
  #http: HTTPServer | null = null;
  #ownsHTTP = false;
  #local: Address | null = null;
  /** Pings every session every pingInterval: one timer for all. */
  #pinger: Timer | null = null;
  /** An attached HTTP server's own 'request' listeners, given every request not for us. */
  #otherListeners: Array<(...args: unknown[]) => void> = [];
  readonly #closed = Outcome.create<void>();

  constructor(ConnectionClass: SocketConnectionClass = SocketConnection, options: SocketIOServerOptions = {}) {
    super(options);
    if (typeof ConnectionClass !== 'function' || !(ConnectionClass.prototype instanceof SocketConnection || ConnectionClass === SocketConnection)) {
      throw new TypeError('SocketIOServer needs a SocketConnection subclass');
    }
    this.ConnectionClass = ConnectionClass;
    this.#endpoints.set('/', ConnectionClass);
    for (const [name, Class] of Object.entries(ConnectionClass.endpoints ?? {})) {
      if (!name.startsWith('/')) throw new TypeError(`endpoint names start with '/': ${name}`);
      this.#endpoints.set(name, Class);
    }
    this.path = options.path ?? '/socket.io/';
    this.connectTimeout = options.connectTimeout ?? 45_000;
    this.cors = options.cors;
    this.transports = options.transports ?? ['polling', 'websocket'];
    const maxPayload = options.maxPayload ?? 1e6;
    this.#settings = {
      pingInterval: options.pingInterval ?? 25_000,
      pingTimeout: options.pingTimeout ?? 20_000,
      maxPayload,
      upgradeTimeout: options.upgradeTimeout ?? 10_000,
      maxBufferedPackets: options.maxBufferedPackets ?? 1024,
      maxBufferedBytes: options.maxBufferedBytes ?? 16 * 1024 * 1024,
      upgrades: this.transports.includes('websocket') ? ['websocket'] : [],
    };
    const sessions = this.#sessions;
    this.#host = { engine: this.engine, settings: this.#settings, sessionEnded: (ended) => void sessions.delete(ended.sid) };
    this.#websockets = new EngineWebSocketServer(this, { engine: this.engine, path: this.path, connectionOptions: { bufferSize: maxPayload } });
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  get listening(): boolean {
    return this.#state === 'listening';
  }

  /** Where `listen()` listens; null when attached. */
  get localAddress(): Address | null {
    return this.#local;
  }

  get httpServer(): HTTPServer | null {
    return this.#http;
  }

  /** The Engine.IO sessions open now (one per connected client). */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  // ---- hooks -------------------------------------------------------------------------------

  onListen(): void {}

  onListenError(err: ListenError): void {
    this._toOnError(err);
  }

  override onError(err: Error): void {
    this._logError(err);
    if (!this.listening) void this.close();
  }

  // ---- namespaces and rooms ----------------------------------------------------------------

  /** A namespace by name (its connections, rooms, broadcasts). */
  of(name: string): Namespace {
    let namespace = this.#namespaces.get(name);
    if (namespace === undefined) this.#namespaces.set(name, (namespace = new Namespace(name, this)));
    return namespace;
  }

  /** Broadcast to a room of namespace '/': `server.to('lobby').emit('news', text)`. */
  to(room: string | readonly string[]): Broadcast {
    return this.of('/').to(room);
  }

  /** Broadcast to namespace '/' except these rooms or connections. */
  except(skip: Parameters<Namespace['except']>[0]): Broadcast {
    return this.of('/').except(skip);
  }

  /** Send an event to every connection of namespace '/' (`server.except(x).emit(...)` to skip some). Returns how many. */
  broadcast(name: string, ...args: unknown[]): number {
    return this.of('/').emit(name, ...args);
  }

  /** @internal */
  _relay: ((parts: RelayParts) => void) | null = null;

  /** @internal Another process's `to(room).emit(...)`: [[namespace, rooms, skipped rooms], ...the encoded packet]. */
  _relayed(parts: RelayParts): void {
    const [head, ...packet] = parts;
    if (typeof head !== 'string' || typeof packet[0] !== 'string') return;
    const [name, rooms, skipped] = JSON.parse(head) as [string, string[], string[]];
    // Only a namespace this server serves (a message naming another must not make one).
    if (this.#endpoints.has(name)) new Broadcast(this.of(name), new Set(rooms), new Set(skipped))._send(packet as Encoded);
  }

  /** @internal The connection class for a namespace, or undefined. */
  _endpoint(name: string): SocketConnectionClass | undefined {
    return this.#endpoints.get(name);
  }

  // ---- listening ---------------------------------------------------------------------------

  /** Listen with an HTTP server of its own. Other paths get 404. Resolves after `onListen`. */
  listen(address: AddressInput): Promise<void> {
    if (this.#state !== 'idle') throw new StateError(`listen() needs a new server; ${String(this)} is ${this.#state}`);
    const endpoint = parseAddress(address);
    if (endpoint.kind === 'memory') throw new TypeError('a SocketIOServer listens on a TCP address or a Unix path');
    const options: net.ListenOptions = endpoint.kind === 'unix' ? { path: endpoint.path } : { port: endpoint.port, ...(endpoint.host !== undefined && { host: endpoint.host }) };
    const server = http.createServer();
    this.#ownsHTTP = true;
    this.#state = 'listening';
    const { outcome, resolve, reject } = Outcome.create<void>();
    server.once('error', (err: Error & { code?: string }) => {
      const listenErr = new ListenError(`listen on ${formatAddress(endpoint)} failed: ${err.code ?? err.message}`, { cause: err });
      this._fail('onListenError', listenErr, outcome.observed);
      reject(listenErr);
      this.#state = 'closing';
      this.#finalize();
    });
    server.once('listening', () => {
      server.on('error', (err) => debug('%s: HTTP server error: %s', String(this), err.message));
      this.#local = toAddress(server.address());
      this.#use(server);
      resolve();
    });
    server.listen(options);
    return outcome;
  }

  /**
   * Serve on an HTTP or HTTPS server you run: requests to `path` are ours, every other request
   * goes to the server's own 'request' listeners (your app).
   */
  attach(server: HTTPServer): this {
    if (this.#state !== 'idle') throw new StateError(`attach() needs a new server; ${String(this)} is ${this.#state}`);
    this.#otherListeners = server.listeners('request') as Array<(...args: unknown[]) => void>;
    server.removeAllListeners('request');
    this.#ownsHTTP = false;
    this.#state = 'listening';
    this.#use(server);
    return this;
  }

  #use(server: HTTPServer): void {
    this.#http = server;
    server.on('request', this.#onRequest);
    this.#websockets.attach(server, { path: this.path });
    this.#pinger = this.engine.cycle(this.#settings.pingInterval, () => {
      for (const session of this.#sessions.values()) session._ping();
    });
    this._hook('onListen');
  }

  // ---- HTTP requests (polling) -------------------------------------------------------------

  #onRequest = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname !== this.path) {
      if (this.#otherListeners.length > 0) for (const listener of this.#otherListeners) listener.call(this.#http, request, response);
      else {
        response.writeHead(404, { 'Content-Type': 'text/plain' });
        response.end('not found\n');
      }
      return;
    }
    response.on('error', () => {});
    if (request.method === 'OPTIONS') {
      answerPreflight(this.cors, request, response);
      return;
    }
    rememberCors(response, corsHeaders(this.cors, request));
    const refusal = this.#checkRequest(url, 'polling');
    if (refusal !== null) {
      sendError(response, 400, refusal);
      return;
    }
    const sid = url.searchParams.get('sid');
    if (sid === null) {
      if (request.method !== 'GET') return sendError(response, 400, EngineError.BAD_HANDSHAKE_METHOD);
      const session = this.#open(request, url);
      sendPayload(response, session.handshake());
      return;
    }
    const session = this.#sessions.get(sid);
    if (session === undefined || session.transport !== 'polling') return sendError(response, 400, session === undefined ? EngineError.UNKNOWN_SID : EngineError.BAD_REQUEST);
    if (request.method === 'GET') {
      if (!session._poll(response)) {
        // Two GETs at once: the client is broken or hostile.
        sendError(response, 400, EngineError.BAD_REQUEST);
        session.close('transport error');
      }
    } else if (request.method === 'POST') {
      if (!session._beginPost()) {
        sendError(response, 400, EngineError.BAD_REQUEST);
        session.close('transport error');
        return;
      }
      void readBody(request, response, this.#settings.maxPayload).then((body) => {
        if (body === null) {
          session._endPost(null);
          session.close('transport error');
          return;
        }
        sendOk(response);
        session._endPost(body);
      });
    } else {
      sendError(response, 400, EngineError.BAD_REQUEST);
    }
  };

  /** Why an Engine.IO request is refused, or null. */
  #checkRequest(url: URL, transport: TransportName): EngineErrorReply | null {
    if (this.#state !== 'listening') return EngineError.FORBIDDEN;
    if (url.searchParams.get('EIO') !== '4') return EngineError.UNSUPPORTED_PROTOCOL_VERSION;
    const asked = url.searchParams.get('transport');
    if (asked !== transport || !this.transports.includes(transport)) return EngineError.UNKNOWN_TRANSPORT;
    return null;
  }

  #open(request: http.IncomingMessage, url: URL): EngineSession {
    const session = new EngineSession(this.#host);
    this.#sessions.set(session.sid, session);
    const address = toAddress({ address: request.socket.remoteAddress, port: request.socket.remotePort, family: request.socket.remoteFamily }) as InetAddress | null;
    session.listener = new SocketIOClient(this, session, handshakeOf(url.search, request.headers, address));
    return session;
  }

  // ---- WebSocket upgrades ------------------------------------------------------------------

  /** @internal An upgrade's verdict: null to accept, or the HTTP status refusing it. */
  _checkUpgrade(request: http.IncomingMessage): number | null {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (this.#checkRequest(url, 'websocket') !== null) return 400;
    const sid = url.searchParams.get('sid');
    if (sid !== null && this.#sessions.get(sid)?.transport !== 'polling') return 400;
    return null;
  }

  /** @internal A WebSocket is open: a new session, or the upgrade of a polling one. */
  _upgraded(socket: EngineWebSocket, request: http.IncomingMessage): void {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const sid = url.searchParams.get('sid');
    if (sid === null) {
      this.#open(request, url)._useSocket(socket);
      return;
    }
    const session = this.#sessions.get(sid);
    if (session === undefined || !session._beginProbe(socket)) void socket.close();
  }

  // ---- closing -----------------------------------------------------------------------------

  /**
   * Close every session (each client is told: no reconnection) and stop serving; closes its
   * own HTTP server (an attached one keeps running). Resolves after `onClose`.
   */
  close(): Promise<void> {
    if (this.#state === 'closing' || this.#state === 'closed') return this.#closed.outcome;
    const wasIdle = this.#state === 'idle';
    this.#state = 'closing';
    this.#pinger?.cancel();
    for (const session of [...this.#sessions.values()]) session.close('server shutting down');
    const server = this.#http;
    if (wasIdle || server === null) {
      void this.#websockets.close();
      process.nextTick(() => this.#finalize());
      return this.#closed.outcome;
    }
    server.off('request', this.#onRequest);
    for (const listener of this.#otherListeners) server.on('request', listener);
    const websocketsClosed = this.#websockets.close();
    const httpClosed = this.#ownsHTTP
      ? new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Held polls answered above; idle keep-alive sockets would hold close() open.
          server.closeIdleConnections();
        })
      : Promise.resolve();
    void Promise.all([websocketsClosed, httpClosed]).then(() => this.#finalize());
    return this.#closed.outcome;
  }

  destroy(err?: Error): void {
    if (err !== undefined) this._hook('onError', err);
    void this.close();
    this.#http?.closeAllConnections();
  }

  whenClosed(): Promise<void> {
    return this.#closed.outcome;
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
