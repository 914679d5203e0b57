/**
 * Typed packets (packetmq): packet types registered by name and numeric id, a handshake when
 * the connection opens, and a close that tells the peer why.
 *
 * Wire: each packet's payload is a 2-byte big-endian type id, then the body encoded by the
 * channel's codec (JSON by default; an empty body is `undefined`). Ids 0 to `MAX_PACKET_ID`
 * are the application's; the ids above it are trews' control packets, whose bodies are always
 * JSON: HELLO (server -> client: `{ version, packets: { name: id } }`), READY (client ->
 * server), REFUSE (`{ reason }`) and BYE (`{ reason }`).
 *
 * The server sends HELLO on connect; the client checks that the protocol version and the set of
 * packet names agree (in any order), and answers READY (then both sides call `onReady` and may
 * `send`) or REFUSE with the reason (then both sides call `onHandshakeError` and close).
 * The ids: strict (the default) when neither side is `adaptive`, every id must agree. An
 * adaptive client adopts the server's ids; an adaptive server (HELLO says `adaptive: true`) is
 * sent the strict client's table in READY (`{ packets }`) and adopts it. Adopted ids hold for
 * that connection only (`activeRegistry`); the shared registry is never changed.
 * `close({ reason })` sends BYE first, and the peer's `onClose(reason)` receives it.
 *
 * packetmq, the model: a 2-byte type id too (then msgpack), user ids from 16 up to its
 * MAX_PACKET_ID 2^16 (which its own header cannot hold), ids 0-3 its handshake and softquit.
 * Here the application has 0 to 0xFFEF and control sits above; ported ids 16-0xFFEF keep their
 * numbers. Its adaptive handshake compared the name lists in order and went on after finding
 * them unequal; here the names are a set and a mismatch ends the handshake.
 */
import { Client } from './client.js';
import { Connection } from './connection.js';
import { type Timer } from './engine.js';
import { StateError, TrewsError } from './errors.js';
import type { CloseOptions, Stream } from './stream.js';
import { CodecError, decodeWith, encodeWith, jsonCodec, type Codec } from './codec.js';
import { Packets, type Constructor, type PacketChannel, type PacketEvents, type PacketMembers, type PacketOptions, type TypedEvents } from './packet.js';

/** The largest application packet id; the ids above it (0xFFF0-0xFFFF) are control packets. */
export const MAX_PACKET_ID = 0xffef;

const HELLO = 0xffff;
const READY = 0xfffe;
const REFUSE = 0xfffd;
const BYE = 0xfffc;

const EMPTY = Buffer.alloc(0);

export interface PacketRegistryOptions {
  /** The protocol version both sides must speak (default 1). */
  version?: number | string;
  /** Packet names to register: in order (ids 0, 1, ...) or with their ids. */
  packets?: readonly string[] | Readonly<Record<string, number>>;
  /**
   * Adopt the peer's ids when both sides have the same packet names (packetmq's
   * `adaptPacketIds`). Default false: strict, every id must agree (or the peer adapts).
   */
  adaptive?: boolean;
}

/** Called by the default `onReceive` for a packet of its type. */
export type PacketHandler = (data: unknown, channel: RegistryChannel) => void;

/** A registered packet type, as `get(nameOrId)` returns it. */
export interface PacketType {
  readonly name: string;
  readonly id: number;
  readonly handler: PacketHandler | undefined;
}

/** A protocol: its version and its packet types, by name and id. */
export class PacketRegistry {
  readonly version: number | string;
  readonly adaptive: boolean;
  readonly #byName = new Map<string, PacketType>();
  readonly #byId = new Map<number, PacketType>();

  constructor(options: PacketRegistryOptions = {}) {
    this.version = options.version ?? 1;
    if (typeof this.version !== 'string' && !Number.isFinite(this.version)) {
      throw new TypeError(`a protocol version must be a number or a string, got ${String(this.version)}`);
    }
    this.adaptive = options.adaptive ?? false;
    if (typeof this.adaptive !== 'boolean') throw new TypeError(`adaptive must be a boolean, got ${String(this.adaptive)}`);
    const { packets = [] } = options;
    if (Array.isArray(packets)) for (const name of packets) this.register(name as string);
    else for (const [name, id] of Object.entries(packets)) this.register(name, id);
  }

  /**
   * Register a packet type, with its id (else it gets the lowest free one) and optionally the
   * handler the default `onReceive` calls for it. Returns the registry.
   */
  register(name: string, idOrOptions?: number | { id?: number; handler?: PacketHandler }): this {
    const { id: given, handler } = typeof idOrOptions === 'object' && idOrOptions !== null ? idOrOptions : { id: idOrOptions, handler: undefined };
    if (typeof name !== 'string' || name === '') throw new TypeError(`a packet name must be a non-empty string, got ${String(name)}`);
    if (this.#byName.has(name)) throw new TypeError(`packet '${name}' is registered already (id ${this.#byName.get(name)!.id})`);
    if (handler !== undefined && typeof handler !== 'function') throw new TypeError(`the handler of packet '${name}' must be a function, got ${typeof handler}`);
    let id = given;
    if (id === undefined) {
      id = 0;
      while (this.#byId.has(id)) id++;
    }
    if (!Number.isInteger(id) || id < 0 || id > MAX_PACKET_ID) {
      throw new RangeError(`packet id for '${name}' must be an integer from 0 to ${MAX_PACKET_ID} (higher ids are trews' control packets), got ${String(id)}`);
    }
    const taken = this.#byId.get(id);
    if (taken !== undefined) throw new TypeError(`packet id ${id} is taken by '${taken.name}'; '${name}' needs another`);
    const type: PacketType = { name, id, handler };
    this.#byName.set(name, type);
    this.#byId.set(id, type);
    return this;
  }

  /** The packet type with this name (a string) or id (a number). */
  get(nameOrId: string | number): PacketType | undefined {
    return typeof nameOrId === 'string' ? this.#byName.get(nameOrId) : this.#byId.get(nameOrId);
  }

  /** Unregister the packet type with this name or id; false if there was none. */
  delete(nameOrId: string | number): boolean {
    if (typeof nameOrId !== 'string' && typeof nameOrId !== 'number') throw new TypeError(`delete() takes a packet name or id, got ${typeof nameOrId}`);
    const type = this.get(nameOrId);
    if (type === undefined) return false;
    this.#byName.delete(type.name);
    this.#byId.delete(type.id);
    return true;
  }

  idOf(name: string): number | undefined {
    return this.#byName.get(name)?.id;
  }

  nameOf(id: number): string | undefined {
    return this.#byId.get(id)?.name;
  }

  /** The registered names, in registration order. */
  get names(): string[] {
    return [...this.#byName.keys()];
  }

  /** `{ name: id }` for every packet type (what the server sends in HELLO). */
  table(): Record<string, number> {
    return Object.fromEntries([...this.#byName.values()].map(({ name, id }) => [name, id]));
  }

  /**
   * Why a server's HELLO does not match this (the client's) registry, or null if it does: the
   * version, the names (in any order), and the ids unless either side is adaptive.
   */
  mismatch(hello: unknown): string | null {
    const { version, packets, adaptive } = (hello ?? {}) as { version?: unknown; packets?: unknown; adaptive?: unknown };
    if (!isTable(packets)) return 'malformed handshake: no packet table';
    if (version !== this.version) return `protocol version differs: the server speaks ${JSON.stringify(version)}, the client ${JSON.stringify(this.version)}`;
    const names = this.#namesDiffer(packets, 'client');
    if (names !== null || this.adaptive || adaptive === true) return names;
    for (const { name, id } of this.#byName.values()) {
      if (packets[name] !== id) return `packet ids differ: '${name}' is ${JSON.stringify(packets[name])} on the server, ${id} on the client`;
    }
    return null;
  }

  /**
   * A copy of this registry (names, handlers) with the peer's ids, for one connection. Throws
   * if the names differ or an id is not valid; `we` words the error from this side.
   */
  adopt(packets: unknown, we: 'server' | 'client'): PacketRegistry {
    if (!isTable(packets)) throw new TypeError('malformed handshake: no packet table');
    const names = this.#namesDiffer(packets, we);
    if (names !== null) throw new TypeError(names);
    const copy = new PacketRegistry({ version: this.version, adaptive: this.adaptive });
    for (const { name, handler } of this.#byName.values()) copy.register(name, { id: packets[name] as number, handler });
    return copy;
  }

  #namesDiffer(theirs: Record<string, unknown>, we: 'server' | 'client'): string | null {
    const theirsOnly = Object.keys(theirs).filter((name) => !this.#byName.has(name));
    const oursOnly = this.names.filter((name) => !Object.hasOwn(theirs, name));
    if (theirsOnly.length === 0 && oursOnly.length === 0) return null;
    const list = (names: string[]) => (names.length === 0 ? 'none' : names.map((n) => `'${n}'`).join(', '));
    const [serverOnly, clientOnly] = we === 'client' ? [theirsOnly, oursOnly] : [oursOnly, theirsOnly];
    return `packet names differ: only the server has ${list(serverOnly)}; only the client has ${list(clientOnly)}`;
  }
}

function isTable(packets: unknown): packets is Record<string, unknown> {
  return typeof packets === 'object' && packets !== null && !Array.isArray(packets);
}

/** The handshake failed: refused (by either side, `reason` says why) or timed out. */
export class HandshakeError extends TrewsError {
  override readonly code = 'ERR_TREWS_HANDSHAKE';
  constructor(
    /** Why, as sent in the REFUSE packet (or the timeout). */
    readonly reason: string,
    /** True when the peer refused this side; false when this side refused the peer or gave up waiting. */
    readonly byPeer: boolean,
  ) {
    super(byPeer ? `the peer refused the handshake: ${reason}` : `handshake failed: ${reason}`);
  }
}

export interface RegistryOptions extends PacketOptions {
  /** The protocol this side speaks (default: an empty registry, version 1). */
  registry?: PacketRegistry;
  /** How packet bodies are encoded (default `jsonCodec`). */
  codec?: Codec;
  /** Give up on a handshake not done after this many ms on the Engine clock (default 10000). */
  handshakeTimeout?: number;
}

export interface RegistryCloseOptions extends CloseOptions {
  /** Sent to the peer (in a BYE packet) before a graceful close; its `onClose` receives it. */
  reason?: string;
}

export type RegistryEvents = Omit<PacketEvents, 'close'> & {
  close: [reason?: string];
  ready: [];
  receive: [name: string, data: unknown];
  handshakeError: [err: HandshakeError];
};

/** What `Registry(Base)` adds to a packet channel. */
export interface RegistryMembers {
  /** The protocol this side speaks; set it before connecting. */
  registry: PacketRegistry;
  /**
   * The packet table in force on this connection: `registry` itself, or, after an adaptive
   * handshake that adopted the peer's ids, a copy of it with those ids.
   */
  readonly activeRegistry: PacketRegistry;
  codec: Codec;
  handshakeTimeout: number;
  /** True once the handshake succeeded: `send` works from then on. */
  readonly ready: boolean;
  /** Why the channel closed: the reason in either side's BYE or REFUSE, or the handshake timeout; set before `onClose`. */
  readonly closeReason: string | undefined;
  /** Send a packet of a registered type. Throws a `StateError` before `onReady`, a `TypeError` for an unknown name. */
  send(name: string, data?: unknown): boolean;
  /** The handshake succeeded, on both sides. */
  onReady(): void;
  /** A packet of a registered type arrived. The default calls the type's handler, if it has one. */
  onReceive(name: string, data: unknown): void;
  /** The handshake failed (refused by either side, or timed out). The default calls `onError`; the channel closes either way. */
  onHandshakeError(err: HandshakeError): void;
  /** The channel closed; `reason` is `closeReason` (undefined for a close without one). */
  onClose(reason?: string): void;
  /** Close; gracefully (the default) with `{ reason }` first tells the peer why. */
  close(options?: boolean | RegistryCloseOptions): Promise<void>;
}

export interface RegistryChannel extends RegistryMembers, PacketMembers, TypedEvents<RegistryEvents> {}

/** Add typed packets with a handshake to a packet channel class: `Registry(Packets(Connection))`. */
export function Registry<T extends Constructor<Stream & PacketChannel>>(Base: T): Constructor<RegistryChannel> & T {
  class RegistryStream extends Base implements RegistryMembers {
    registry: PacketRegistry;
    codec: Codec;
    handshakeTimeout: number;
    #ready = false;
    /** Ids adopted from the peer in an adaptive handshake (else `registry` is in force). */
    #adopted: PacketRegistry | null = null;
    #reason: string | undefined;
    #byeSent = false;
    #timer: Timer | null = null;

    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    constructor(...args: any[]) {
      const options = (args[0] ?? {}) as RegistryOptions;
      if (options.reconnect !== undefined && options.reconnect !== false) {
        // A new connection would need a new handshake, and a BYE means "do not come back".
        throw new TypeError('registry channels do not reconnect: make a new client');
      }
      super(...args);
      this.registry = options.registry ?? new PacketRegistry();
      this.codec = options.codec ?? jsonCodec;
      this.handshakeTimeout = options.handshakeTimeout ?? 10_000;
      this.on('connect', () => this.#handshake());
    }

    get ready(): boolean {
      return this.#ready;
    }

    get activeRegistry(): PacketRegistry {
      return this.#adopted ?? this.registry;
    }

    get closeReason(): string | undefined {
      return this.#reason;
    }

    /** Accepted by a server: the authoritative side. */
    get #server(): boolean {
      return this.accepted;
    }

    onReady(): void {}

    onReceive(name: string, data: unknown): void {
      this.activeRegistry.get(name)?.handler?.(data, this as unknown as RegistryChannel);
    }

    onHandshakeError(err: HandshakeError): void {
      this._toOnError(err);
    }

    override onClose(reason?: string): void {
      void reason;
    }

    send(name: string, data?: unknown): boolean {
      if (!this.#ready) throw new StateError(`send('${name}') on ${String(this)} before the handshake completed: send from onReady`);
      const id = this.activeRegistry.idOf(name);
      if (id === undefined) throw new TypeError(`unknown packet type '${name}'; registered: ${this.activeRegistry.names.join(', ') || 'none'}`);
      return this.#send(id, data === undefined ? EMPTY : encodeWith(this.codec, data, `packet '${name}'`));
    }

    #send(id: number, body: Uint8Array | string): boolean {
      const bytes = typeof body === 'string' ? Buffer.from(body) : body;
      const payload = Buffer.allocUnsafe(2 + bytes.length);
      payload.writeUInt16BE(id, 0);
      payload.set(bytes, 2);
      return this.sendPacket(payload);
    }

    #handshake(): void {
      this.#timer = this.engine.defer(this.handshakeTimeout, () => {
        this.#timer = null;
        this.#fail(new HandshakeError(`no handshake within ${this.handshakeTimeout} ms`, false));
      });
      if (!this.#server) return;
      const { version, adaptive } = this.registry;
      this.#send(HELLO, JSON.stringify({ version, packets: this.registry.table(), ...(adaptive ? { adaptive } : {}) }));
    }

    override onPacket(payload: Buffer): void {
      try {
        if (payload.length < 2) throw new CodecError(`a ${payload.length}-byte packet has no type id`);
        const id = payload.readUInt16BE(0);
        const body = payload.subarray(2);
        if (id > MAX_PACKET_ID) {
          this.#control(id, decodeWith(jsonCodec, body));
          return;
        }
        const name = this.activeRegistry.nameOf(id);
        if (name === undefined) throw new CodecError(`packet id ${id} is not registered`);
        if (!this.#ready) {
          this.#refuse(`packet '${name}' arrived before the handshake completed`);
          return;
        }
        this._hook('onReceive', name, body.length === 0 ? undefined : decodeWith(this.codec, body));
      } catch (err) {
        if (!(err instanceof CodecError)) throw err; // a hook's failure: onPacket's caller reports it
        this._fail('onReadError', err);
      }
    }

    #control(id: number, body: unknown): void {
      const reason = typeof (body as { reason?: unknown } | null)?.reason === 'string' ? (body as { reason: string }).reason : undefined;
      if (id === BYE) {
        this.#reason ??= reason;
        this.#byeSent = true; // the peer is leaving: no BYE back
        void this.close();
      } else if (id === REFUSE) {
        this.#reason ??= reason;
        this.#fail(new HandshakeError(reason ?? 'no reason given', true));
      } else if (id !== HELLO && id !== READY) {
        throw new CodecError(`unknown control packet id 0x${id.toString(16)}`);
      } else if (this.#ready || (id === HELLO) === this.#server) {
        // HELLO goes only to the client, READY only to the server, each once.
        this.#refuse(`unexpected ${id === HELLO ? 'HELLO' : 'READY'} packet`);
      } else if (id === READY) {
        // An adaptive server is sent the strict client's ids, which the client found to have our names.
        const packets = (body as { packets?: unknown } | null)?.packets;
        if (packets !== undefined && !this.#adopt(packets, 'server')) return;
        this.#becomeReady();
      } else {
        const mismatch = this.registry.mismatch(body);
        if (mismatch !== null) {
          this.#refuse(mismatch);
          return;
        }
        const packets = (body as { packets: unknown }).packets;
        if (this.registry.adaptive) {
          if (!this.#adopt(packets, 'client')) return;
          this.#send(READY, '{}');
        } else {
          // A strict client of an adaptive server: the server takes these ids.
          this.#send(READY, JSON.stringify((body as { adaptive?: unknown }).adaptive === true ? { packets: this.registry.table() } : {}));
        }
        this.#becomeReady();
      }
    }

    /** Take the peer's ids for this connection; false (and refused) if they cannot be taken. */
    #adopt(packets: unknown, we: 'server' | 'client'): boolean {
      if (!this.registry.adaptive) {
        this.#refuse('unexpected packet table in READY: this side does not adopt ids');
        return false;
      }
      try {
        this.#adopted = this.registry.adopt(packets, we);
        return true;
      } catch (err) {
        this.#refuse(err instanceof Error ? err.message : String(err));
        return false;
      }
    }

    #becomeReady(): void {
      this.#timer?.cancel();
      this.#timer = null;
      this.#ready = true;
      this._hook('onReady');
    }

    /** Tell the peer why, then fail the handshake here too. */
    #refuse(reason: string): void {
      this.#reason ??= reason;
      if (this.connected) {
        this.#send(REFUSE, JSON.stringify({ reason }));
        this.flush(); // on its way before any close the error hook makes
      }
      this.#fail(new HandshakeError(reason, false));
    }

    #fail(err: HandshakeError): void {
      this.#timer?.cancel();
      this.#timer = null;
      this.#reason ??= err.reason;
      this.#byeSent = true; // REFUSE (or silence) says it all
      this._fail('onHandshakeError', err);
      if (!this.closing && !this.closed) void this.close();
    }

    override close(options: boolean | RegistryCloseOptions = true): Promise<void> {
      const opts: RegistryCloseOptions = typeof options === 'boolean' ? { flush: options } : options;
      const { reason } = opts;
      if (reason !== undefined && typeof reason !== 'string') throw new TypeError(`a close reason must be a string, got ${typeof reason}`);
      if (opts.flush !== false && this.connected && !this.#byeSent) {
        this.#byeSent = true;
        this.#reason ??= reason;
        this.#send(BYE, JSON.stringify(reason === undefined ? {} : { reason }));
      }
      return super.close(opts);
    }

    protected override _hook(hook: string, ...args: unknown[]): boolean {
      if (hook !== 'onClose') return super._hook(hook, ...args);
      this.#timer?.cancel();
      return super._hook('onClose', this.#reason);
    }
  }
  // The class has the members; the cast adds the event typing.
  return RegistryStream as unknown as Constructor<RegistryChannel> & T;
}

/** A typed-packet channel accepted by a Server (the authoritative side of the handshake). */
export class RegistryConnection extends Registry(Packets(Connection)) {
  constructor(options?: RegistryOptions) {
    super(options);
  }
}

/** A typed-packet channel for outgoing connections (checks the server's packet table). */
export class RegistryClient extends Registry(Packets(Client)) {
  constructor(options?: RegistryOptions) {
    super(options);
  }
}
