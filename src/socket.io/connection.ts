/**
 * SocketConnection: one client's connection to one namespace, in TornadIO2's model. Subclass
 * it and override `onOpen`, `onMessage`, `onEvent`, `onClose`; declare event handlers with
 * `@event('name')` or a static `events` map. A handler's return value (or what its promise
 * resolves to) is the ack the client asked for.
 */
import { PacketType } from 'socket.io-parser';
import { ClosedError, StateError, TimeoutError } from '../errors.js';
import type { Timer } from '../engine.js';
import { checkEventName, encode, type Encoded } from './packets.js';
import { Broadcast, type Namespace } from './namespace.js';
import type { CloseReason, TransportName } from './engine-session.js';
import type { SocketIOClient } from './client.js';
import type { SocketIOServer } from './server.js';

/** What `onOpen` learns about the client: the CONNECT packet's `auth` and the first HTTP request. */
export interface OpenInfo {
  /** The `auth` the client sent with its CONNECT (`io(url, { auth })`), `{}` if none. */
  auth: Record<string, unknown>;
  /** The handshake request's query parameters. */
  query: Record<string, string>;
  /** The handshake request's headers. */
  headers: Record<string, string | string[] | undefined>;
  /** The client's address `{ address, port, family }`, or null. */
  address: { address: string; port: number; family: string } | null;
  /** The namespace connected to. */
  namespace: string;
}

/** A refusal of `onOpen` carrying `data` to the client's `connect_error` (`err.data`). */
export class ConnectRefusedError extends Error {
  constructor(
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'ConnectRefusedError';
  }
}

/** A connection class as the server instantiates it. */
export type SocketConnectionClass = (new () => SocketConnection) & {
  endpoints?: Readonly<Record<string, SocketConnectionClass>>;
  events?: Readonly<Record<string, EventHandler | string>>;
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type EventHandler = (this: any, ...args: any[]) => unknown;

const EVENT_NAME = Symbol('trews.socketio.event');
type Tagged = EventHandler & { [EVENT_NAME]?: string[] };

/**
 * Declare a method as the handler of the event `name` (standard decorators, TypeScript 5+):
 * `@event('chat') onChat(text: string) { return 'ok'; }`.
 */
export function event(name: string) {
  return function <M extends EventHandler>(method: M, context: ClassMethodDecoratorContext): M {
    if (context.kind !== 'method') throw new TypeError('@event() decorates methods');
    const tagged = method as Tagged;
    (tagged[EVENT_NAME] ??= []).push(name);
    return method;
  };
}

/** Each class's event handlers, gathered once from its decorated methods and `events` maps. */
const handlerTables = new WeakMap<object, Map<string, EventHandler>>();

function handlersOf(ctor: SocketConnectionClass): Map<string, EventHandler> {
  let table = handlerTables.get(ctor);
  if (table !== undefined) return table;
  table = new Map();
  // Base classes first, so a subclass's handlers win.
  const chain: object[] = [];
  for (let proto = ctor.prototype as object | null; proto !== null && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) chain.unshift(proto);
  for (const proto of chain) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      const value = Object.getOwnPropertyDescriptor(proto, key)?.value as Tagged | undefined;
      if (typeof value === 'function' && value[EVENT_NAME] !== undefined) for (const name of value[EVENT_NAME]) table.set(name, value);
    }
    const events = Object.hasOwn(proto.constructor, 'events') ? (proto.constructor as SocketConnectionClass).events : undefined;
    for (const [name, handler] of Object.entries(events ?? {})) {
      const fn = typeof handler === 'string' ? (proto as Record<string, EventHandler>)[handler] : handler;
      if (typeof fn !== 'function') throw new TypeError(`events['${name}'] of ${ctor.name} names no method: ${String(handler)}`);
      table.set(name, fn);
    }
  }
  handlerTables.set(ctor, table);
  return table;
}

interface PendingAck {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: Timer;
}

interface QueuedEvent {
  name: string;
  args: unknown[];
  id: number | undefined;
}

/** The most events an `ordered` connection holds while a handler runs before it is closed. */
const MAX_QUEUED_EVENTS = 1024;

export class SocketConnection {
  /** Namespaces other than '/' and their connection classes (read from the class given to the server). */
  static endpoints?: Readonly<Record<string, SocketConnectionClass>>;
  /** Event handlers by event name: a function, or the name of a method. */
  static events?: Readonly<Record<string, EventHandler | string>>;

  /** Run handlers one at a time in arrival order: the next waits for an async handler to settle. */
  declare ordered: boolean;
  /** How long `emitWithAck` waits for the client's ack, in ms. */
  declare ackTimeout: number;
  /** The most acks `emitWithAck` may wait for at once. */
  declare maxPendingAcks: number;

  /** The Socket.IO socket id (what the client sees as `socket.id`; not the Engine.IO session id). */
  id = '';
  // namespace, server, info: accessors on the prototype (see the static block), no field of
  // their own; declared as properties so that a subclass may narrow them (`declare server: MyServer`).
  /** The namespace's name ('/', '/chat', ...). */
  declare namespace: string;
  /** The server that accepted it. */
  declare server: SocketIOServer;
  /** What the client sent and was, as `onOpen` saw it (made from the session's handshake when first read). */
  declare info: OpenInfo;
  /** @internal */
  declare _client: SocketIOClient;
  /** @internal */
  declare _namespace: Namespace;
  #state: 'opening' | 'open' | 'closed' = 'opening';
  /** Rooms, acks, early packets and queued events, made on first use (see Extra). */
  #more: Extra | null = null;
  /** `info` once made; before, the CONNECT's `auth` (a Pending) or undefined (none sent). */
  #info: OpenInfo | Pending | undefined = undefined;

  get #extra(): Extra {
    return (this.#more ??= new Extra());
  }

  /** True from the CONNECT reply until closed. */
  get connected(): boolean {
    return this.#state === 'open';
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** The rooms joined. */
  get rooms(): ReadonlySet<string> {
    return this.#more?.rooms ?? EMPTY;
  }

  /** The Engine.IO transport in use now ('websocket' after an upgrade). */
  get transport(): TransportName {
    return this._client.session.transport;
  }

  // ---- hooks -------------------------------------------------------------------------------

  /**
   * The client asks to connect. Return `false` (or a promise of it) or throw to refuse: the
   * client gets a `connect_error` with the error's message (and `data` of a ConnectRefusedError).
   */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  onOpen(info: OpenInfo): boolean | void | Promise<boolean | void> {}

  /** `socket.send(data)` on the client (the `message` event). The default dispatches like onEvent. */
  onMessage(...args: unknown[]): unknown {
    return this.onEvent('message', ...args);
  }

  /**
   * An event from the client. The default calls the handler declared for `name`, and ignores
   * events without one. The return value (or its promise's value) answers the client's ack.
   */
  onEvent(name: string, ...args: unknown[]): unknown {
    const handler = handlersOf(this.constructor as SocketConnectionClass).get(name);
    return handler === undefined ? undefined : handler.apply(this, args);
  }

  /** The connection closed: the client or server disconnected the namespace, or the session ended. */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  onClose(reason: CloseReason): void {}

  /** A handler threw or rejected. The default logs it; the connection stays open. */
  onError(err: Error): void {
    this.server.engine.reportError(err);
  }

  // ---- sending -----------------------------------------------------------------------------

  /**
   * Send an event. Packets sent in one dispatch leave together (one write on a WebSocket);
   * those sent in `onOpen` follow the CONNECT reply. False once closed.
   */
  emit(name: string, ...args: unknown[]): boolean {
    checkEventName(name);
    if (this.#state === 'closed') return false;
    return this._sendEncoded(encode({ type: PacketType.EVENT, nsp: this.namespace, data: [name, ...args] }));
  }

  /** Send a `message` event (what `socket.on('message')` receives on the client). */
  send(...args: unknown[]): boolean {
    return this.emit('message', ...args);
  }

  /**
   * Send an event and wait for the client's ack: resolves with its first argument; rejects
   * with a TimeoutError after `timeout` ms (default `ackTimeout`) or a ClosedError on close.
   */
  emitWithAck(name: string, ...args: unknown[]): Promise<unknown> {
    return this.#emitWithAck(this.ackTimeout, name, args);
  }

  /** `emitWithAck` with its own timeout: `connection.timeout(500).emitWithAck('ask')`. */
  timeout(ms: number): { emitWithAck(name: string, ...args: unknown[]): Promise<unknown> } {
    return { emitWithAck: (name, ...args) => this.#emitWithAck(ms, name, args) };
  }

  #emitWithAck(ms: number, name: string, args: unknown[]): Promise<unknown> {
    checkEventName(name);
    if (this.#state === 'closed') return Promise.reject(new ClosedError(`emitWithAck('${name}') on a closed connection`));
    const extra = this.#extra;
    const acks = (extra.acks ??= new Map());
    if (acks.size >= this.maxPendingAcks) return Promise.reject(new StateError(`${acks.size} acks already pending (maxPendingAcks)`));
    const id = extra.nextAck++;
    return new Promise((resolve, reject) => {
      const timer = this.server.engine.defer(ms, () => {
        acks.delete(id);
        reject(new TimeoutError(`no ack for '${name}' within ${ms} ms`));
      });
      acks.set(id, { resolve, reject, timer });
      this._sendEncoded(encode({ type: PacketType.EVENT, nsp: this.namespace, id, data: [name, ...args] }));
    });
  }

  // ---- rooms -------------------------------------------------------------------------------

  join(room: string | readonly string[]): void {
    if (this.#state === 'closed') return;
    for (const one of typeof room === 'string' ? [room] : room) {
      (this.#extra.rooms ??= new Set()).add(one);
      this._namespace._join(this, one);
    }
  }

  leave(room: string): void {
    if (this.#more?.rooms?.delete(room)) this._namespace._leave(this, room);
  }

  /** Send to a room's members but this connection: `this.to('lobby').emit('hi')`. */
  to(room: string | readonly string[]): Broadcast {
    return new Broadcast(this._namespace).to(room).except(this);
  }

  /** Send to every connection of the namespace but this one. */
  get broadcast(): Broadcast {
    return new Broadcast(this._namespace).except(this);
  }

  // ---- closing -----------------------------------------------------------------------------

  /** Disconnect this namespace (the client's other namespaces stay connected). Resolves after `onClose`. */
  close(): Promise<void> {
    if (this.#state !== 'open') return Promise.resolve();
    this._sendEncoded(encode({ type: PacketType.DISCONNECT, nsp: this.namespace }));
    this._client._forget(this);
    this._closed('server namespace disconnect');
    return Promise.resolve();
  }

  // ---- plumbing (called by the session's Socket.IO layer) ----------------------------------

  /** @internal */
  _sendEncoded(parts: Encoded): boolean {
    if (this.#state !== 'open') {
      if (this.#state === 'closed') return false;
      (this.#extra.early ??= []).push(parts);
      return true;
    }
    const session = this._client.session;
    for (const part of parts) session.send(part);
    return true;
  }

  /** @internal The CONNECT's `auth`, kept for `info` (undefined: none sent). */
  _opening(auth: Record<string, unknown> | undefined): void {
    if (auth !== undefined) this.#info = new Pending(auth);
  }

  /** @internal The CONNECT reply is out. */
  _opened(): void {
    this.#state = 'open';
    this._namespace.connections.set(this.id, this);
    const early = this.#more?.early;
    if (early == null) return;
    this.#more!.early = null;
    for (const parts of early) this._sendEncoded(parts);
  }

  /** @internal An event from the client; `id` when it wants an ack. */
  _event(name: string, args: unknown[], id: number | undefined): void {
    if (this.#state !== 'open') return;
    const queue = this.#more?.queue;
    if (queue != null) {
      if (queue.length >= MAX_QUEUED_EVENTS) {
        this._client.session.close('transport error');
        return;
      }
      queue.push({ name, args, id });
      return;
    }
    this.#run(name, args, id);
  }

  #run(name: string, args: unknown[], id: number | undefined): void {
    let result: unknown;
    try {
      result = name === 'message' ? this.onMessage(...args) : this.onEvent(name, ...args);
    } catch (err) {
      this.#handlerFailed(err);
      return;
    }
    if (!isThenable(result)) {
      this.#ack(id, result);
      return;
    }
    if (this.ordered) this.#extra.queue ??= [];
    Promise.resolve(result).then(
      (value) => {
        this.#ack(id, value);
        this.#next();
      },
      (err: unknown) => {
        this.#handlerFailed(err);
        this.#next();
      },
    );
  }

  /** Ordered mode: run the events that waited for the last handler, until one is async again. */
  #next(): void {
    if (!this.ordered || this.#more === null) return;
    const queue = this.#more.queue;
    this.#more.queue = null;
    while (queue !== null && queue.length > 0 && this.#state === 'open') {
      const { name, args, id } = queue.shift()!;
      this.#run(name, args, id);
      const waiting = this.#more?.queue as QueuedEvent[] | null | undefined;
      if (waiting != null) {
        // That handler is async: the rest wait for it.
        waiting.push(...queue);
        return;
      }
    }
  }

  #ack(id: number | undefined, value: unknown): void {
    if (id === undefined || this.#state !== 'open') return;
    this._sendEncoded(encode({ type: PacketType.ACK, nsp: this.namespace, id, data: value === undefined ? [] : [value] }));
  }

  #handlerFailed(err: unknown): void {
    try {
      this.onError(err instanceof Error ? err : new Error(String(err)));
    } catch (thrown) {
      this.server.engine.reportError(thrown);
    }
  }

  /** @internal The client's ack for one of our emitWithAck calls. */
  _acked(id: number, args: unknown[]): void {
    const acks = this.#more?.acks;
    const pending = acks?.get(id);
    if (pending === undefined) return;
    acks!.delete(id);
    pending.timer.cancel();
    pending.resolve(args[0]);
  }

  /** @internal Leave everything and run onClose, once. */
  _closed(reason: CloseReason): void {
    if (this.#state === 'closed') return;
    const wasOpen = this.#state === 'open';
    this.#state = 'closed';
    const more = this.#more;
    this.#more = null;
    if (wasOpen) this._namespace.connections.delete(this.id);
    for (const room of more?.rooms ?? []) this._namespace._leave(this, room);
    for (const pending of more?.acks?.values() ?? []) {
      pending.timer.cancel();
      pending.reject(new ClosedError(`the connection closed (${reason}) before the ack came`));
    }
    if (!wasOpen) return;
    try {
      this.onClose(reason);
    } catch (err) {
      this.#handlerFailed(err);
    }
  }

  static {
    Object.assign(SocketConnection.prototype, { ordered: false, ackTimeout: 10_000, maxPendingAcks: 1024 });
    Object.defineProperties(SocketConnection.prototype, {
      namespace: {
        get(this: SocketConnection): string {
          return (this._namespace as Namespace | undefined)?.name ?? '/';
        },
        configurable: true,
      },
      server: {
        get(this: SocketConnection): SocketIOServer | undefined {
          return (this._client as SocketIOClient | undefined)?.server;
        },
        configurable: true,
      },
      info: {
        get(this: SocketConnection): OpenInfo | undefined {
          const info = this.#info;
          if (info !== undefined && !(info instanceof Pending)) return info;
          // Undefined until the client's CONNECT made this connection (in a constructor, say).
          const client = this._client as SocketIOClient | undefined;
          return client === undefined ? undefined : (this.#info = client._openInfo(info?.auth, this.namespace));
        },
        set(this: SocketConnection, info: OpenInfo): void {
          this.#info = info;
        },
        configurable: true,
      },
    });
  }
}

const EMPTY: ReadonlySet<string> = new Set();

/** A connection's rarely used state, kept out of it: an idle connection has none. */
class Extra {
  rooms: Set<string> | null = null;
  acks: Map<number, PendingAck> | null = null;
  nextAck = 0;
  /** Packets sent during onOpen, sent right after the CONNECT reply. */
  early: Encoded[] | null = null;
  /** Ordered mode: events waiting for the running handler. Null when idle. */
  queue: QueuedEvent[] | null = null;
}

/** The CONNECT's `auth`, waiting for `info` to be made. */
class Pending {
  constructor(readonly auth: Record<string, unknown>) {}
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<unknown>).then === 'function';
}
