/**
 * Datagram: a UDP channel. Incoming datagrams are framed per sender (each sender's bytes go
 * through their own ReadBuffer), with the per-sender state bounded in count (LRU eviction),
 * in bytes (`bufferSize`) and in time (`senderTimeout`), so spoofed senders cannot grow
 * memory without limit. With `readDelimiter = null` every datagram is one `onRead`, whole,
 * and no per-sender state exists at all.
 *
 * In UDP every failure after listening concerns one datagram or one sender, so unlike
 * Stream the defaults of `onReadError`, `onWriteError` and `onOverflowError` log (at most a
 * line a second) and keep the channel open.
 */
import * as dgram from 'node:dgram';
import * as dns from 'node:dns';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Channel, Outcome, defineFieldAccessors, describeBriefly, eventOf, type ChannelEvents, type ChannelOptions } from './channel.js';
import { observingClose, publishClose, publishError } from './diagnostics.js';
import { debug, type Timer } from './engine.js';
import { formatAddress, mappedIPv4, parseAddress, toAddress, type AddressInput, type Family, type InetAddress } from './address.js';
import {
  ClosedError,
  ListenError,
  OverflowError,
  ReadError,
  StateError,
  TruncatedFrameError,
  UnsupportedError,
  WriteError,
  type SystemErrorLike,
} from './errors.js';
import { ReadBuffer, compileDelimiter, decodeMatch, type CompiledDelimiter, type Delimiter, type FrameArgs } from './framing.js';
import type { CloseOptions } from './stream.js';

/** Resolves host names for sends (and the bind address); `dns.lookup` semantics. */
export type DatagramLookup = (
  hostname: string,
  family: 0 | 4 | 6,
  callback: (err: Error | null, address: string, family: number) => void,
) => void;

export interface DatagramOptions extends ChannelOptions {
  /** How each sender's bytes are cut into messages (default null: each datagram whole). */
  readDelimiter?: Delimiter;
  /** Deliver strings in this encoding instead of Buffers (default null). */
  encoding?: BufferEncoding | null;
  /** The most bytes one frame, or one sender's unframed remainder, may hold (default 65536). */
  bufferSize?: number;
  /** The most senders with an unfinished frame kept at once; the least recently heard is evicted (default 1024). */
  maxSenders?: number;
  /** An unfinished frame is dropped after this many ms without more bytes from its sender (default 30000). */
  senderTimeout?: number;
  /** How long a flushing close waits for sends in flight (ms, default 5000). */
  closeTimeout?: number;
  /** `write()` returns false once this many bytes are in flight (default 65536). */
  writeHighWaterMark?: number;
  /** Host name resolution for write addresses (default `dns.lookup`). */
  lookup?: DatagramLookup;
}

/** Options for `datagram.listen(address, options)`. */
export interface DatagramListenOptions {
  /** On '::': receive IPv6 only (default false: dual stack). */
  ipv6Only?: boolean;
  /** SO_REUSEADDR, so several sockets can bind one port (multicast receivers). */
  reuseAddr?: boolean;
  /** SO_RCVBUF / SO_SNDBUF in bytes (the kernel may cap them). */
  recvBufferSize?: number;
  sendBufferSize?: number;
}

/** Where a datagram goes: what `onWriteError` reports. */
export interface Destination {
  address: string;
  port: number;
}

/** Every TCP address form, plus the `{ address, port, family }` objects `onRead` hands out. */
export type DatagramAddressInput = AddressInput | { readonly address: string; readonly port: number; readonly family?: Family };

/** The events a `Datagram` emits: one per hook, with the hook's arguments. */
export interface DatagramEvents extends ChannelEvents {
  listen: [];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  read: any[];
  write: [];
  listenError: [err: ListenError];
  readError: [err: ReadError, address: InetAddress | null];
  writeError: [err: WriteError, destination: Destination];
  overflowError: [err: OverflowError, address: InetAddress];
}

type State = 'idle' | 'binding' | 'open' | 'closing' | 'closed';

/** A parsed destination; `address` '' means the loopback address of the socket's family. */
interface Target {
  address: string;
  port: number;
  v4: boolean;
}

interface Sender {
  rb: ReadBuffer;
  address: InetAddress;
  seen: number;
  /** An oversized frame is being discarded up to its end: keep the state even when empty. */
  skipping: boolean;
}

interface Queued {
  data: string | Uint8Array;
  target: Target;
  size: number;
}

/** Largest UDP payloads: 65535 - 20 (IPv4 header) - 8, and 65535 - 8 (IPv6 payload length). */
export const MAX_DATAGRAM_IPV4 = 65507;
export const MAX_DATAGRAM_IPV6 = 65527;

const V6_UNAVAILABLE = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL', 'EPROTONOSUPPORT']);
const ENCODINGS = new Set(['utf8', 'utf-8', 'utf16le', 'utf-16le', 'ucs2', 'ucs-2', 'latin1', 'binary', 'ascii', 'base64', 'base64url', 'hex']);

const dnsLookup: DatagramLookup = (hostname, family, callback) => dns.lookup(hostname, { family }, callback);

/** DatagramEvents of a datagram class T: `'read'` carries what T's `onRead` receives. */
export type DatagramEventsOf<T extends Datagram> = Omit<DatagramEvents, 'read'> & { read: Parameters<T['onRead']> };

// Listener types follow the class (`this`), so a `'read'` listener is typed like `onRead`.
export interface Datagram {
  /** Listen for an event: each hook `onXxx` emits `'xxx'` with its arguments right after it runs (a `'read'` listener gets what this class's `onRead` receives). */
  on<E extends keyof DatagramEvents>(event: E, fn: (...args: DatagramEventsOf<this>[E]) => void, context?: unknown): this;
  addListener<E extends keyof DatagramEvents>(event: E, fn: (...args: DatagramEventsOf<this>[E]) => void, context?: unknown): this;
  once<E extends keyof DatagramEvents>(event: E, fn: (...args: DatagramEventsOf<this>[E]) => void, context?: unknown): this;
  off<E extends keyof DatagramEvents>(event: E, fn?: (...args: DatagramEventsOf<this>[E]) => void, context?: unknown, once?: boolean): this;
  removeListener<E extends keyof DatagramEvents>(event: E, fn?: (...args: DatagramEventsOf<this>[E]) => void, context?: unknown, once?: boolean): this;
}

/**
 * A UDP socket: `listen(address)`, then `onRead(data, from)` per datagram (or per frame, with
 * a `readDelimiter` applied to each sender's bytes) and `write(data, address)` to send.
 *
 * @example
 * ```ts
 * class Echo extends Datagram {
 *   override onRead(data: Buffer, from: InetAddress) {
 *     this.write(data, from);
 *   }
 * }
 * await new Echo().listen(4041);
 * ```
 */
export class Datagram extends Channel<DatagramEvents> {
  /** How each sender's bytes are cut into messages; takes effect for bytes already buffered. */
  declare readDelimiter: Delimiter;
  /** Deliver strings in this encoding (null: Buffers). */
  // `string & {}`: a subclass's `encoding = 'utf8'` is typed string, not 'utf8' (the runtime check names the accepted ones).
  declare encoding: BufferEncoding | (string & {}) | null;
  /** The most bytes one frame or one sender's unframed remainder may hold. */
  declare bufferSize: number;

  /** The most senders with an unfinished frame kept at once; the least recently heard is evicted (default 1024). */
  maxSenders: number;
  /** An unfinished frame is dropped after this many ms without more bytes from its sender (default 30000). */
  senderTimeout: number;
  /** How long a flushing close waits for sends in flight (ms, default 5000). */
  closeTimeout: number;
  /** `write()` returns false once this many bytes are in flight (default 65536). */
  writeHighWaterMark: number;
  readonly #lookup: DatagramLookup;

  #state: State = 'idle';
  #socket: dgram.Socket | null = null;
  #socketClosing = false;
  #local: InetAddress | null = null;
  /** Sends to a bare port number go here: the loopback of the socket's family. */
  #loopback = '127.0.0.1';
  #v4Socket = false;
  #default: Target | null = null;

  #delimiter: Delimiter = null;
  #compiled: CompiledDelimiter = compileDelimiter(null);
  #encoding: BufferEncoding | null = null;
  #bufferSize = 65536;
  /** Senders with an unfinished frame, least recently heard first. */
  readonly #senders = new Map<string, Sender>();
  /** A clean sender state reused for datagrams that leave nothing behind. */
  #spare: Sender | null = null;
  #sweep: Timer | null = null;

  #queue: Queued[] = [];
  #queueBytes = 0;
  /** The first error handed to an error hook: the close report's reason. */
  #failure: Error | null = null;
  #inFlight = 0;
  #inFlightBytes = 0;
  #wantDrain = false;
  #closeTimer: Timer | null = null;
  #forced = false;
  #binding: ReturnType<typeof Outcome.create<void>> | null = null;
  readonly #closedOutcome = Outcome.create<void>();
  #lastLog = -Infinity;
  #suppressed = 0;

  constructor(options: DatagramOptions = {}) {
    super(options);
    this.#lookup = options.lookup ?? dnsLookup;
    try {
      this.maxSenders = checkCount('maxSenders', options.maxSenders ?? 1024);
      this.senderTimeout = checkMs('senderTimeout', options.senderTimeout ?? 30_000);
      this.closeTimeout = checkMs('closeTimeout', options.closeTimeout ?? 5000);
      this.writeHighWaterMark = options.writeHighWaterMark ?? 65536;
      if (options.encoding !== undefined) this.encoding = options.encoding;
      if (options.bufferSize !== undefined) this.bufferSize = options.bufferSize;
      if (options.readDelimiter !== undefined) this.readDelimiter = options.readDelimiter;
    } catch (err) {
      // A bad option: leave no half-made channel registered with the engine.
      this.engine._unregister(this);
      throw err;
    }
  }

  // ---- state -------------------------------------------------------------------------------

  /** True once bound (by `listen()`, or implicitly by `connect()` or the first `write()`). */
  get listening(): boolean {
    return this.#state === 'open';
  }

  /** True from `close()` until the channel has closed. */
  get closing(): boolean {
    return this.#state === 'closing';
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** Where the socket is bound: `{ address, port, family }` (so `listen(0)` tells its port). */
  get localAddress(): InetAddress | null {
    return this.#local;
  }

  /** How many senders have an unfinished frame buffered (at most `maxSenders`). */
  get senderCount(): number {
    return this.#senders.size;
  }

  /** Bytes written and not yet handed to the OS. */
  get bufferedBytes(): number {
    return this.#queueBytes + this.#inFlightBytes;
  }

  /** The underlying socket, for what trews does not wrap (null before listening). */
  get socket(): dgram.Socket | null {
    return this.#socket;
  }

  // ---- hooks (override these) --------------------------------------------------------------

  /** The socket is bound; `localAddress` is known. Also runs after an implicit bind. */
  onListen(): void {}

  /**
   * A whole frame arrived from `address` (the last argument). `Struct` delimiters:
   * `onRead(...values, address)`; sticky RegExp: `onRead(match, address)`. Typed as for Stream.
   */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  onRead(...args: FrameArgs<this['readDelimiter'], this['encoding'], [address: InetAddress]>): void {}

  /** Every datagram written has been handed to the OS: the drain signal. */
  onWrite(): void {}

  /** Binding failed (`EADDRINUSE`, `EACCES`, ...); `onClose` follows. Default: `onError(err)`. */
  onListenError(err: ListenError): void {
    this._toOnError(err);
  }

  /** A receive failed, or a sender's unfinished frame was dropped (expired or evicted). Default: log. */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  onReadError(err: ReadError, address: InetAddress | null): void {
    this.#logQuietly('onReadError', err);
  }

  /** One datagram could not be sent (`err.systemCode`: EMSGSIZE, EACCES, ENOTFOUND, ...). Default: log. */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  onWriteError(err: WriteError, destination: Destination): void {
    this.#logQuietly('onWriteError', err);
  }

  /** A frame from `address` exceeded `bufferSize`; the rest of it is discarded. Default: log. */
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  onOverflowError(err: OverflowError, address: InetAddress): void {
    this.#logQuietly('onOverflowError', err);
  }

  // ---- binding -----------------------------------------------------------------------------

  /**
   * Bind to an address: a port number binds all interfaces (IPv6 dual stack where available,
   * else IPv4); a host picks udp4 or udp6 by its address. Resolves after `onListen`; rejects
   * with the error `onListenError` saw. Unix paths throw `UnsupportedError`.
   */
  listen(address: DatagramAddressInput, options: DatagramListenOptions = {}): Promise<void> {
    if (this.#state !== 'idle') throw new StateError(`listen() needs a new ${this.constructor.name}; ${String(this)} is ${this.#state}`);
    const target = parseTarget(address, 'listen', true);
    return this.#bind(target, options);
  }

  /**
   * Make `address` the destination of `write(data)` without an address. Binds the socket
   * first if needed (like `listen(0)`); resolves once bound. Datagrams from other senders
   * are still received.
   */
  connect(address: DatagramAddressInput): Promise<void> {
    this.#checkWritable('connect');
    this.#default = parseTarget(address, 'connect', false);
    if (this.#state === 'idle') return this.#bind({ address: '', port: 0, v4: false }, {});
    if (this.#state === 'binding') return this.#binding!.outcome;
    const { outcome, resolve } = Outcome.create<void>();
    resolve();
    return outcome;
  }

  #bind(target: Target, options: DatagramListenOptions): Promise<void> {
    this.#syncFields();
    this.#state = 'binding';
    const binding = (this.#binding = Outcome.create<void>());
    const where = target.address === '' ? `port ${target.port}` : formatAddress({ kind: 'inet', host: target.address, port: target.port });
    this.#openSocket(target, options).then(
      (socket) => this.#bound(socket, binding, options.ipv6Only === true),
      (err: SystemErrorLike) => {
        this.#socket = null;
        this.#binding = null;
        if (this.#state === 'binding') {
          const listenErr = new ListenError(`listen on ${where} failed: ${err.code ?? err.message}`, { cause: err });
          this._fail('onListenError', listenErr, binding.outcome.observed);
          binding.reject(listenErr);
        } else {
          binding.reject(new ListenError(`${String(this)} was closed while binding`, { cause: err }));
        }
        this.#finalize();
      },
    );
    return binding.outcome;
  }

  async #openSocket(target: Target, options: DatagramListenOptions): Promise<dgram.Socket> {
    if (target.address === '') {
      try {
        return await this.#bindOnce('udp6', '::', target.port, options);
      } catch (err) {
        if (!V6_UNAVAILABLE.has((err as SystemErrorLike).code ?? '') || this.#state !== 'binding') throw err;
        debug('%s: no IPv6 (%s), binding udp4', String(this), (err as SystemErrorLike).code);
        return await this.#bindOnce('udp4', '0.0.0.0', target.port, options);
      }
    }
    // A host name: resolve it first, since its family decides between udp4 and udp6.
    let { address } = target;
    let family = net.isIP(address);
    if (family === 0) {
      [address, family] = await new Promise<[string, number]>((resolve, reject) =>
        this.#lookup(target.address, 0, (err, resolved, fam) => (err ? reject(err) : resolve([resolved, fam]))),
      );
    }
    return await this.#bindOnce(family === 6 ? 'udp6' : 'udp4', address, target.port, options);
  }

  #bindOnce(type: 'udp4' | 'udp6', address: string, port: number, options: DatagramListenOptions): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket({
        type,
        lookup: socketLookup(this.#lookup, type === 'udp4') as never,
        ...(options.reuseAddr !== undefined && { reuseAddr: options.reuseAddr }),
        ...(options.ipv6Only !== undefined && { ipv6Only: options.ipv6Only }),
        ...(options.recvBufferSize !== undefined && { recvBufferSize: options.recvBufferSize }),
        ...(options.sendBufferSize !== undefined && { sendBufferSize: options.sendBufferSize }),
      });
      this.#socket = socket;
      this.#socketClosing = false;
      const done = (err: Error | null) => {
        socket.off('listening', onListening);
        socket.off('error', onError);
        socket.off('close', onClose);
        if (err === null) return resolve(socket);
        if (!this.#socketClosing) socket.close();
        reject(err);
      };
      const onListening = () => done(null);
      const onError = (err: Error) => done(err);
      const onClose = () => {
        this.#socketClosing = true;
        done(new ClosedError('closed while binding'));
      };
      socket.on('listening', onListening);
      socket.on('error', onError);
      socket.on('close', onClose);
      socket.bind({ port, address });
    });
  }

  #bound(socket: dgram.Socket, binding: ReturnType<typeof Outcome.create<void>>, v6Only: boolean): void {
    this.#binding = null;
    if (this.#state === 'closed') {
      // Closed while a host name was being resolved: the socket came too late.
      socket.close();
      binding.reject(new ListenError(`${String(this)} was closed while binding`));
      return;
    }
    socket.on('message', this.#onMessage);
    socket.on('error', this.#onSocketError);
    socket.on('close', this.#onSocketClose);
    const bound = socket.address();
    this.#local = toAddress(bound) as InetAddress;
    this.#v4Socket = bound.family === 'IPv4';
    // '::' without ipv6Only reaches IPv4 peers too: a bare port means 127.0.0.1 there as well.
    this.#loopback = this.#v4Socket || (this.#local.address === '::' && !v6Only) ? '127.0.0.1' : '::1';
    const queue = this.#queue;
    this.#queue = [];
    this.#queueBytes = 0;
    if (this.#state === 'binding') {
      this.#state = 'open';
      this._hook('onListen');
      binding.resolve();
    } else {
      binding.reject(new ListenError(`${String(this)} was closed while binding`));
    }
    // Writes made before the socket was bound (or while a flushing close waited for it).
    if (this.#state === 'open' || this.#state === 'closing') for (const q of queue) this.#send(q.data, q.target, q.size);
    if (this.#state === 'closing') this.#closeIfDrained();
  }

  /**
   * Class fields (`readDelimiter = '\n'` in a subclass) and prototype assignments create data
   * properties that hide the validating accessor: route the nearest such value through it.
   */
  /**
   * Class fields (`readDelimiter = '\n'`) and prototype assignments define plain data
   * properties that hide the validating accessors. They are read, never deleted (deleting one
   * would drop the object into V8's slow dictionary mode): applied when the socket is bound,
   * for each datagram, and `readDelimiter` by identity before every frame.
   */
  #syncFields(): void {
    const { encoding, bufferSize, readDelimiter } = this;
    if (encoding !== this.#encoding) this.#applyEncoding(encoding);
    if (bufferSize !== this.#bufferSize) this.#applyBufferSize(bufferSize);
    if (readDelimiter !== this.#delimiter) this.#applyDelimiter(readDelimiter);
  }

  #applyDelimiter(value: Delimiter): void {
    this.#compiled = compileDelimiter(value, this.#encoding);
    this.#delimiter = value;
  }

  #applyEncoding(value: string | null): void {
    if (value !== null && !ENCODINGS.has(value)) {
      throw new TypeError(`encoding must be null (Buffers) or a Buffer encoding such as 'utf8', got ${String(value)}`);
    }
    const encoding = value as BufferEncoding | null; // checked just above
    this.#encoding = encoding;
    // A string delimiter's bytes depend on the encoding.
    if (typeof this.#delimiter === 'string' || this.#delimiter instanceof RegExp) this.#compiled = compileDelimiter(this.#delimiter, encoding);
  }

  #applyBufferSize(value: number): void {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(`bufferSize must be a positive integer number of bytes, got ${String(value)}`);
    }
    this.#bufferSize = value;
  }


  // ---- broadcast and multicast -------------------------------------------------------------
  // Thin wrappers over node:dgram; they need a bound socket, and a refusal by the OS throws
  // Node's system error (with `code`) synchronously.

  /** Allow sending to broadcast addresses (SO_BROADCAST). */
  setBroadcast(flag: boolean): void {
    this.#boundSocket('setBroadcast').setBroadcast(flag);
  }

  /** Join `group` on the interface with address `iface` (default: the OS picks one). */
  addMembership(group: string, iface?: string): void {
    this.#boundSocket('addMembership').addMembership(group, iface);
  }

  /** Leave multicast `group` on the interface with address `iface`. */
  dropMembership(group: string, iface?: string): void {
    this.#boundSocket('dropMembership').dropMembership(group, iface);
  }

  /** Hops a multicast datagram may travel (0: this host only). */
  setMulticastTTL(ttl: number): void {
    this.#boundSocket('setMulticastTTL').setMulticastTTL(ttl);
  }

  /** Whether this host's own members of a group receive what it sends to the group. */
  setMulticastLoopback(flag: boolean): void {
    this.#boundSocket('setMulticastLoopback').setMulticastLoopback(flag);
  }

  /** The interface (by its address; IPv6: `'::%eth0'`) outgoing multicast leaves by. */
  setMulticastInterface(iface: string): void {
    this.#boundSocket('setMulticastInterface').setMulticastInterface(iface);
  }

  #boundSocket(what: string): dgram.Socket {
    if (this.#state !== 'open') throw new StateError(`${what}() needs a bound ${this.constructor.name} (await listen() first); ${String(this)} is ${this.#state}`);
    return this.#socket!;
  }

  // ---- reading -----------------------------------------------------------------------------

  #onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    if (this.#state !== 'open') return;
    try {
      this.#syncFields();
    } catch (err) {
      this._hookThrew('onRead', err);
      return;
    }
    // An IPv4 peer of a dual-stack socket arrives as ::ffff:a.b.c.d: report it as IPv4.
    const v4 = rinfo.family === 'IPv6' ? mappedIPv4(rinfo.address) : null;
    const address: InetAddress = v4 === null ? { address: rinfo.address, port: rinfo.port, family: rinfo.family as Family } : { address: v4, port: rinfo.port, family: 'IPv4' };
    if (this.#compiled.kind !== 'chunk') return this.#frame(msg, address);
    // Fast path: each datagram whole, no per-sender state (unless left from an earlier delimiter).
    if (this.#senders.size !== 0) this.#flushSender(address);
    if (this.#state !== 'open') return;
    const data = this.#encoding === null ? msg : msg.toString(this.#encoding);
    try {
      this._awaitHook('onRead', (this as Datagram).onRead(data, address));
      if (this._listened('read')) this.emit('read', data, address);
    } catch (err) {
      this._hookThrew('onRead', err);
    }
  };

  /** Frame a datagram with its sender's earlier unfinished bytes. */
  #frame(msg: Buffer, address: InetAddress): void {
    const key = `${address.port} ${address.address}`;
    const senders = this.#senders;
    let sender = senders.get(key);
    if (sender !== undefined) senders.delete(key); // re-added last (most recent) if unfinished
    else {
      sender = this.#spare ?? { rb: new ReadBuffer(), address, seen: 0, skipping: false };
      this.#spare = null;
    }
    sender.address = address;
    const rb = sender.rb;
    rb.bufferSize = this.#bufferSize;
    rb.push(msg);
    while (this.#state === 'open') {
      // Re-read per frame: onRead may change it (through the accessor, or a class field).
      const wanted = this.readDelimiter;
      if (wanted !== this.#delimiter) {
        try {
          this.#applyDelimiter(wanted);
        } catch (err) {
          this._hookThrew('onRead', err);
          break;
        }
      }
      rb.setDelimiter(this.#compiled);
      const frame = rb.next();
      if (frame === null) {
        if (rb.overflow === 0) break;
        sender.skipping = true;
        this.#failPacket('onOverflowError', new OverflowError(rb.bufferSize, rb.overflow), address);
        continue;
      }
      sender.skipping = false;
      this.#deliver(frame, rb, address);
    }
    if (this.#state !== 'open') return;
    if (rb.length === 0 && !sender.skipping) {
      this.#spare = sender;
      return;
    }
    rb.compact();
    sender.seen = this.engine.now();
    senders.set(key, sender);
    while (senders.size > this.maxSenders && this.#state === 'open') {
      const [oldKey, old] = senders.entries().next().value!;
      senders.delete(oldKey);
      this.#dropSender(old, `was evicted: more than maxSenders (${this.maxSenders}) senders had unfinished frames`);
    }
    this.#armSweep();
  }

  #deliver(frame: Buffer, rb: ReadBuffer, address: InetAddress): void {
    const d = rb.delimiter;
    try {
      if (d.kind === 'struct') {
        const values = d.struct.unpack(frame);
        this._awaitHook('onRead', (this as Datagram).onRead.apply(this, [...values, address]));
        if (this._listened('read')) this.emit('read', ...values, address);
        return;
      }
      let data: unknown;
      if (d.kind === 'regex' && d.sticky) data = decodeMatch(rb.match!, this.#encoding);
      else data = this.#encoding === null ? frame : frame.toString(this.#encoding);
      this._awaitHook('onRead', (this as Datagram).onRead(data, address));
      if (this._listened('read')) this.emit('read', data, address);
    } catch (err) {
      this._hookThrew('onRead', err);
    }
  }

  /** readDelimiter became null: deliver what a sender had buffered before its next datagram. */
  #flushSender(address: InetAddress): void {
    const key = `${address.port} ${address.address}`;
    const sender = this.#senders.get(key);
    if (sender === undefined) return;
    this.#senders.delete(key);
    if (sender.rb.length === 0) return;
    const rest = sender.rb.drain();
    const data = this.#encoding === null ? rest : rest.toString(this.#encoding);
    try {
      this._awaitHook('onRead', (this as Datagram).onRead(data, address));
      if (this._listened('read')) this.emit('read', data, address);
    } catch (err) {
      this._hookThrew('onRead', err);
    }
  }

  /** Forget a sender's unfinished frame, and say so: nothing is lost silently. */
  #dropSender(sender: Sender, why: string): void {
    if (sender.rb.length === 0) return; // only discarding an oversized frame: nothing to lose
    const rest = sender.rb.drain();
    const err = new TruncatedFrameError(`${formatAddress(sender.address)} sent ${rest.length} bytes of an unfinished frame, then ${why}`, rest);
    this.#failPacket('onReadError', err, sender.address);
  }

  /** One timer, due when the least recently heard sender expires. */
  #armSweep(): void {
    if (this.#sweep !== null || this.#senders.size === 0) return;
    const oldest = this.#senders.values().next().value!;
    const wait = Math.max(1, oldest.seen + this.senderTimeout - this.engine.now());
    this.#sweep = this.engine.defer(wait, this.#expire);
  }

  #expire = (): void => {
    this.#sweep = null;
    const deadline = this.engine.now() - this.senderTimeout;
    for (const [key, sender] of this.#senders) {
      if (sender.seen > deadline || this.#state !== 'open') break;
      this.#senders.delete(key);
      this.#dropSender(sender, `sent nothing more for ${this.senderTimeout} ms (senderTimeout)`);
    }
    if (this.#state === 'open') this.#armSweep();
  };

  #onSocketError = (err: SystemErrorLike): void => {
    debug('%s: socket error in state %s: %s', String(this), this.#state, err.message);
    if (this.#state !== 'open') return;
    this.#failPacket('onReadError', new ReadError(`receive failed: ${err.code ?? err.message}`, { cause: err }), null);
  };

  // ---- writing -----------------------------------------------------------------------------

  /**
   * Send `data` as one datagram to `address` (default: the `connect()` destination). A bare
   * port number means that port on the loopback address (127.0.0.1; ::1 on an IPv6-only
   * socket). Binds the socket first if needed. A send that fails (too large, refused by the
   * OS, unresolvable host) goes to `onWriteError`; the channel stays open. Returns false
   * once `bufferedBytes` reaches `writeHighWaterMark`: wait for `onWrite`.
   */
  write(data: string | Uint8Array, address?: DatagramAddressInput): boolean {
    this.#checkWritable('write');
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
      throw new TypeError(`write() takes a string, Buffer or Uint8Array, got ${data === null ? 'null' : typeof data}`);
    }
    const target = address === undefined ? this.#default : parseTarget(address, 'write', false);
    if (target === null) throw new StateError(`write() needs an address, or connect() first`);
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    if (this.#state === 'idle') void this.#bind({ address: '', port: 0, v4: false }, {});
    if (this.#state === 'binding') {
      this.#queue.push({ data, target, size });
      this.#queueBytes += size;
    } else {
      this.#send(data, target, size);
    }
    if (this.bufferedBytes < this.writeHighWaterMark) return true;
    this.#wantDrain = true;
    return false;
  }

  #send(data: string | Uint8Array, target: Target, size: number): void {
    const host = target.address || this.#loopback;
    const v4 = this.#v4Socket || (target.address === '' ? this.#loopback === '127.0.0.1' : target.v4);
    const limit = v4 ? MAX_DATAGRAM_IPV4 : MAX_DATAGRAM_IPV6;
    if (size > limit) {
      // Checked here rather than left to the OS, which may fragment or refuse depending on the route.
      const cause = Object.assign(new Error(`a datagram of ${size} bytes exceeds the UDP limit of ${limit} bytes`), { code: 'EMSGSIZE', syscall: 'send' });
      process.nextTick(() => this.#sendFailed(cause, host, target.port));
      return;
    }
    this.#inFlight++;
    this.#inFlightBytes += size;
    const sent = (err: Error | null): void => {
      this.#inFlight--;
      this.#inFlightBytes -= size;
      if (err) this.#sendFailed(err, host, target.port);
      this.#afterSend();
    };
    try {
      this.#socket!.send(data, target.port, host, sent);
    } catch (err) {
      process.nextTick(sent, err as Error);
    }
  }

  #sendFailed(err: SystemErrorLike, host: string, port: number): void {
    // Closing: the user asked to close; a failure changes nothing they can act on.
    if (this.#state !== 'open') return;
    const destination = { address: host, port };
    const where = formatAddress({ kind: 'inet', host, port });
    this.#failPacket('onWriteError', new WriteError(`send to ${where} failed: ${err.code ?? err.message}`, { cause: err }), destination);
  }

  /** A failure of one datagram: published (trews:error), but the channel stays open, so it is not the close report's reason. */
  #failPacket(hook: string, err: Error, where: unknown): void {
    publishError(this, hook, err);
    this._hook(hook, err, where);
  }

  #afterSend(): void {
    if (this.#inFlight !== 0 || this.#queue.length !== 0) return;
    if (this.#state === 'closing') return this.#closeIfDrained();
    if (this.#state !== 'open') return;
    if (!this.#wantDrain && this.onWrite === Datagram.prototype.onWrite && this.listenerCount('write') === 0) return;
    this.#wantDrain = false;
    this._hook('onWrite');
  }

  #checkWritable(what: string): void {
    if (this.#state === 'closing' || this.#state === 'closed') throw new ClosedError(`${what}() on ${String(this)} after close`);
  }

  // ---- errors ------------------------------------------------------------------------------

  /** Default of the per-datagram error hooks: log unless someone listens, at most a line a second. */
  #logQuietly(hook: string, err: Error): void {
    if (this.listenerCount(eventOf(hook) as never) > 0) return;
    const now = performance.now();
    if (now - this.#lastLog < 1000) {
      this.#suppressed++;
      return;
    }
    const more = this.#suppressed > 0 ? ` (${this.#suppressed} similar lines suppressed)` : '';
    this.#lastLog = now;
    this.#suppressed = 0;
    this.engine.log(`${String(this)}: ${describeBriefly(err)}${more}`);
  }

  // ---- closing -----------------------------------------------------------------------------

  /**
   * Close the channel. With `flush` (default) datagrams already written are handed to the OS
   * first, forced after `timeout` (default `closeTimeout`) ms; unfinished frames of senders
   * are dropped. `close(false)` closes at once. Resolves after `onClose`.
   */
  close(options: boolean | CloseOptions = true): Promise<void> {
    const { flush = true, timeout = this.closeTimeout } = typeof options === 'boolean' ? { flush: options } : options;
    checkMs('close timeout', timeout);
    const state = this.#state;
    if (state === 'closed' || (state === 'closing' && flush)) return this.#closedOutcome.outcome;
    this.#state = 'closing';
    this.#senders.clear();
    this.#sweep?.cancel();
    this.#sweep = null;
    if (!flush || state === 'idle' || (state === 'binding' && this.#queue.length === 0)) this.#abort();
    else if (state !== 'closing') {
      this.#closeTimer = this.engine.defer(timeout, () => {
        this.#forced = true;
        debug('%s: flushing close timed out after %d ms', String(this), timeout);
        this.#abort();
      });
      if (state === 'open') this.#closeIfDrained();
      // Binding: #bound sends the queue, then closes.
    }
    return this.#closedOutcome.outcome;
  }

  /**
   * Flush, then close (Pants' `end()`): datagrams already written, including those waiting
   * for the socket to bind, are handed to the OS, then the socket closes. Resolves after
   * `onClose`. The same as `close()` with its default `flush`, under the name Pants code
   * uses; a datagram socket has no half-close (`Stream.end()` sends FIN and keeps reading).
   */
  end(): Promise<void> {
    return this.close(true);
  }

  /** True if the last flushing close ran out of time and was forced. */
  override get forced(): boolean {
    return this.#forced;
  }

  /** Close at once, dropping anything queued; `err`, if given, goes to `onError` first. */
  destroy(err?: Error): void {
    if (this.#state === 'closed') return;
    if (this.#state !== 'closing') this.#state = 'closing';
    if (err !== undefined) {
      this._errorReported('onError', err);
      this._hook('onError', err);
    }
    this.#abort();
  }

  /** Resolves once the channel has closed (after `onClose`). */
  whenClosed(): Promise<void> {
    return this.#closedOutcome.outcome;
  }

  #closeIfDrained(): void {
    if (this.#inFlight === 0 && this.#queue.length === 0) this.#abort();
  }

  #abort(): void {
    this.#state = this.#state === 'closed' ? 'closed' : 'closing';
    this.#queue = [];
    this.#queueBytes = 0;
    const socket = this.#socket;
    if (socket !== null && !this.#socketClosing) {
      this.#socketClosing = true;
      socket.close(); // 'close' finalizes (or, while binding, fails the bind, which finalizes)
    } else if (socket === null) {
      process.nextTick(() => this.#finalize());
    }
  }

  #onSocketClose = (): void => {
    this.#finalize();
  };

  #finalize(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closeTimer?.cancel();
    this.#closeTimer = null;
    this.#sweep?.cancel();
    this.#sweep = null;
    this.#senders.clear();
    this.#spare = null;
    this.#queue = [];
    this.#queueBytes = 0;
    this.#binding?.reject(new ListenError(`${String(this)} was closed while binding`));
    this.#binding = null;
    this.engine._unregister(this);
    if (observingClose()) publishClose({ channel: this, reason: this.#failure === null ? 'local' : 'error', error: this.#failure, bytesRead: 0, bytesWritten: 0, forced: false });
    this._hook('onClose');
    this.#closedOutcome.resolve();
  }

  protected override _errorReported(hook: string, err: Error): void {
    this.#failure ??= err;
    super._errorReported(hook, err);
  }

  override toString(): string {
    return this.#local === null ? super.toString() : `${super.toString()}(${formatAddress(this.#local)})`;
  }

  static {
    // Validating accessors on the prototype. Subclasses may still declare them as class
    // fields (`readDelimiter = '\n'`): see #syncFields.
    defineFieldAccessors<Datagram>(Datagram.prototype, (o) => #senders in o, {
      readDelimiter: { fallback: null, get: (d) => d.#delimiter, set: (d, v: Delimiter) => d.#applyDelimiter(v) },
      encoding: { fallback: null, get: (d) => d.#encoding, set: (d, v: string | null) => d.#applyEncoding(v) },
      bufferSize: { fallback: undefined, get: (d) => d.#bufferSize, set: (d, v: number) => d.#applyBufferSize(v) },
    });
  }
}

// ---- helpers -------------------------------------------------------------------------------

/** Parse any accepted address form; a bare port means all interfaces (listen) or loopback (write). */
function parseTarget(input: DatagramAddressInput, what: string, portZeroOk: boolean): Target {
  let address: string;
  let port: number;
  if (typeof input === 'object' && input !== null && !Array.isArray(input) && 'address' in input && typeof input.address === 'string') {
    address = input.address;
    port = input.port;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`invalid port ${String(port)}: a port is an integer 0..65535`);
  } else {
    const endpoint = parseAddress(input as AddressInput);
    if (endpoint.kind === 'unix') {
      throw new UnsupportedError(
        `${what}(${JSON.stringify(endpoint.path)}): Unix datagram sockets are not supported, Node's dgram module has none; ` +
          `for UDP give a port, [host, port] or 'host:port'`,
      );
    }
    if (endpoint.kind !== 'inet') throw new UnsupportedError(`${what}(): a Datagram takes UDP addresses only, got a ${endpoint.kind} address`);
    address = endpoint.host ?? '';
    port = endpoint.port;
  }
  if (port === 0 && !portZeroOk) throw new RangeError(`${what}() needs a destination port 1..65535, got 0`);
  return { address, port, v4: net.isIPv4(address) };
}

/**
 * dgram resolves every send address with this. An IPv4 result on an IPv6 socket is mapped
 * (`::ffff:a.b.c.d`) so a dual-stack socket reaches IPv4 peers; dgram would send it as is
 * and fail with EINVAL.
 */
function socketLookup(lookup: DatagramLookup, v4: boolean) {
  return (hostname: string, _family: number, callback: (err: Error | null, address?: string, family?: number) => void): void => {
    lookup(hostname, v4 ? 4 : 0, (err, address, family) => {
      if (err) return callback(err);
      if (family === 4 && !v4) return callback(null, `::ffff:${address}`, 6);
      if (family === 6 && v4) {
        const wrong = Object.assign(new Error(`${hostname} is an IPv6 address; this socket is IPv4`), { code: 'EAFNOSUPPORT' });
        return callback(wrong);
      }
      callback(null, address, family);
    });
  };
}

function checkCount(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be an integer >= 0, got ${String(value)}`);
  return value;
}

function checkMs(name: string, value: number): number {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`${name} must be a finite number of ms > 0, got ${String(value)}`);
  }
  return value;
}

