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
 * The server is authoritative: it sends HELLO on connect; the client checks that the protocol
 * version, the set of packet names and every id agree, and answers READY (then both sides call
 * `onReady` and may `send`) or REFUSE with the reason (then both sides call
 * `onHandshakeError` and close). `close({ reason })` sends BYE first, and the peer's
 * `onClose(reason)` receives it.
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
}

/** A protocol: its version and its packet types, by name and id. */
export class PacketRegistry {
  readonly version: number | string;
  readonly #ids = new Map<string, number>();
  readonly #names = new Map<number, string>();

  constructor(options: PacketRegistryOptions = {}) {
    this.version = options.version ?? 1;
    if (typeof this.version !== 'string' && !Number.isFinite(this.version)) {
      throw new TypeError(`a protocol version must be a number or a string, got ${String(this.version)}`);
    }
    const { packets = [] } = options;
    if (Array.isArray(packets)) for (const name of packets) this.register(name as string);
    else for (const [name, id] of Object.entries(packets)) this.register(name, id);
  }

  /** Register a packet type; without an id it gets the lowest free one. Returns the registry. */
  register(name: string, id?: number): this {
    if (typeof name !== 'string' || name === '') throw new TypeError(`a packet name must be a non-empty string, got ${String(name)}`);
    if (this.#ids.has(name)) throw new TypeError(`packet '${name}' is registered already (id ${this.#ids.get(name)})`);
    if (id === undefined) {
      id = 0;
      while (this.#names.has(id)) id++;
    }
    if (!Number.isInteger(id) || id < 0 || id > MAX_PACKET_ID) {
      throw new RangeError(`packet id for '${name}' must be an integer from 0 to ${MAX_PACKET_ID} (higher ids are trews' control packets), got ${id}`);
    }
    const taken = this.#names.get(id);
    if (taken !== undefined) throw new TypeError(`packet id ${id} is taken by '${taken}'; '${name}' needs another`);
    this.#ids.set(name, id);
    this.#names.set(id, name);
    return this;
  }

  idOf(name: string): number | undefined {
    return this.#ids.get(name);
  }

  nameOf(id: number): string | undefined {
    return this.#names.get(id);
  }

  /** The registered names, in registration order. */
  get names(): string[] {
    return [...this.#ids.keys()];
  }

  /** `{ name: id }` for every packet type (what the server sends in HELLO). */
  table(): Record<string, number> {
    return Object.fromEntries(this.#ids);
  }

  /** Why a server's HELLO does not match this registry, or null if it does. */
  mismatch(hello: unknown): string | null {
    const { version, packets } = (hello ?? {}) as { version?: unknown; packets?: unknown };
    if (typeof packets !== 'object' || packets === null || Array.isArray(packets)) return 'malformed handshake: no packet table';
    if (version !== this.version) return `protocol version differs: the server speaks ${JSON.stringify(version)}, the client ${JSON.stringify(this.version)}`;
    const theirs = new Map(Object.entries(packets as Record<string, unknown>));
    const serverOnly = [...theirs.keys()].filter((name) => !this.#ids.has(name));
    const clientOnly = this.names.filter((name) => !theirs.has(name));
    if (serverOnly.length > 0 || clientOnly.length > 0) {
      const list = (names: string[]) => (names.length === 0 ? 'none' : names.map((n) => `'${n}'`).join(', '));
      return `packet names differ: only the server has ${list(serverOnly)}; only the client has ${list(clientOnly)}`;
    }
    for (const [name, id] of this.#ids) {
      if (theirs.get(name) !== id) return `packet ids differ: '${name}' is ${JSON.stringify(theirs.get(name))} on the server, ${id} on the client`;
    }
    return null;
  }
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
  /** A packet of a registered type arrived. */
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

    get closeReason(): string | undefined {
      return this.#reason;
    }

    /** Accepted by a server: the authoritative side. */
    get #server(): boolean {
      return this.accepted;
    }

    onReady(): void {}

    onReceive(name: string, data: unknown): void {
      void name;
      void data;
    }

    onHandshakeError(err: HandshakeError): void {
      this._toOnError(err);
    }

    override onClose(reason?: string): void {
      void reason;
    }

    send(name: string, data?: unknown): boolean {
      if (!this.#ready) throw new StateError(`send('${name}') on ${String(this)} before the handshake completed: send from onReady`);
      const id = this.registry.idOf(name);
      if (id === undefined) throw new TypeError(`unknown packet type '${name}'; registered: ${this.registry.names.join(', ') || 'none'}`);
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
      if (this.#server) this.#send(HELLO, JSON.stringify({ version: this.registry.version, packets: this.registry.table() }));
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
        const name = this.registry.nameOf(id);
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
        this.#becomeReady();
      } else {
        const mismatch = this.registry.mismatch(body);
        if (mismatch !== null) {
          this.#refuse(mismatch);
          return;
        }
        this.#send(READY, '{}');
        this.#becomeReady();
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
