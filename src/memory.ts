/**
 * The in-memory transport: `listen({ memory: 'name' })` and `connect('memory:name')` on any
 * Engine, with no OS sockets. A MemorySocket is a Duplex that looks to Stream like a
 * net.Socket. Writes are copied and delivered on a later turn (never the same object),
 * through a simulated link: latency, bandwidth and a bounded in-flight buffer, all timed on
 * the Engine clock, so with `{ clock: 'virtual' }` slow links and timeouts play out
 * deterministically under `engine.advance(ms)`.
 */
import { Duplex } from 'node:stream';
import { EventEmitter } from 'node:events';
import type { Engine } from './engine.js';

/** One connection's link, the same both ways. */
export interface LinkOptions {
  /** One-way delay in ms (default 0: the next turn). */
  latency?: number;
  /** Bytes per second (default Infinity). */
  bandwidth?: number;
  /** Bytes a side may have in flight (sent, not yet read by the peer) before its writes stall (default 262144). */
  buffer?: number;
}

const DEFAULT_LINK: Required<LinkOptions> = { latency: 0, bandwidth: Infinity, buffer: 256 * 1024 };

/** What arrives at the reader: bytes, the end of the stream, or a reset. */
type Arrival = Buffer | null | 'reset';

function systemError(code: string, syscall: string, message: string): Error {
  return Object.assign(new Error(`${syscall} ${code} ${message}`), { code, syscall });
}

/** One end of an in-memory connection (`'memory:name'` addresses): a `Duplex` shaped like `net.Socket`. */
export class MemorySocket extends Duplex {
  connecting = false;
  #peer: MemorySocket | null = null;
  #bytesRead = 0;
  #bytesWritten = 0;
  /** Bytes this side sent that the peer has not yet taken in. */
  #inFlight = 0;
  /** The rest of the current write, waiting for room in flight, and its callback. */
  #outbox: Buffer | null = null;
  #outboxDone: (() => void) | null = null;
  /** Arrivals not yet pushed because the reader is not asking (paused or full). */
  readonly #backlog: Arrival[] = [];
  #wantsData = false;
  #linkFreeAt = 0;
  #sentFin = false;

  constructor(
    readonly engine: Engine,
    readonly link: Required<LinkOptions>,
    readonly name: string,
  ) {
    super({ allowHalfOpen: true });
  }

  get bytesRead(): number {
    return this.#bytesRead;
  }

  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** Bytes of the current write not yet put on the link (what net sockets call the write queue). */
  get unsentBytes(): number {
    return this.#outbox?.length ?? 0;
  }

  /** net.Socket compatibility: there is no Nagle on a memory link. */
  setNoDelay(): this {
    return this;
  }

  /** @internal make the other end of a connection, once a listener has accepted it. */
  _answer(): MemorySocket {
    const other = new MemorySocket(this.engine, this.link, this.name);
    other.#peer = this;
    this.#peer = other;
    return other;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    const peer = this.#peer;
    if (peer === null || peer.destroyed) {
      callback(systemError('EPIPE', 'write', this.name));
      return;
    }
    if (chunk.length === 0) {
      // Writes reach _write one at a time: everything before this one is on the link.
      callback();
      return;
    }
    // A copying transport: the reader never sees the writer's buffer.
    this.#outbox = Buffer.from(chunk);
    this.#outboxDone = () => callback();
    this.#bytesWritten += chunk.length;
    this.#sendOutbox();
  }

  /** Put as much of the current write in flight as the link's buffer has room for. */
  #sendOutbox(): void {
    const outbox = this.#outbox;
    const peer = this.#peer;
    const room = this.link.buffer - this.#inFlight;
    if (outbox === null || peer === null || room <= 0) return;
    const piece = outbox.length <= room ? outbox : outbox.subarray(0, room);
    this.#inFlight += piece.length;
    this.#send(peer, piece);
    if (piece.length < outbox.length) {
      this.#outbox = outbox.subarray(piece.length);
      return;
    }
    const done = this.#outboxDone!;
    this.#outbox = this.#outboxDone = null;
    done();
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.#sentFin = true;
    if (this.#peer !== null) this.#send(this.#peer, null);
    callback();
  }

  override _read(): void {
    this.#wantsData = true;
    this.#pump();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const peer = this.#peer;
    if (peer !== null && !this.#sentFin) {
      // Like TCP: a close with unread data (or on error) resets the peer; otherwise it sees EOF.
      this.#sentFin = true;
      const unread = this.readableLength > 0 || this.#backlog.some((a) => a !== null && a !== 'reset');
      this.#send(peer, err !== null || unread ? 'reset' : null);
    }
    this.#backlog.length = 0;
    this.#outbox = this.#outboxDone = null;
    callback(err);
  }

  /** Schedule an arrival at the peer after serialisation (bandwidth) and latency. */
  #send(peer: MemorySocket, arrival: Arrival): void {
    const now = this.engine.now();
    const bytes = Buffer.isBuffer(arrival) ? arrival.length : 0;
    const departure = Math.max(now, this.#linkFreeAt);
    this.#linkFreeAt = departure + (this.link.bandwidth === Infinity ? 0 : (bytes / this.link.bandwidth) * 1000);
    const delay = this.#linkFreeAt + this.link.latency - now;
    const deliver = () => peer.#arrive(arrival);
    if (delay > 0) this.engine._defer(delay, deliver);
    else this.engine._callback(deliver);
  }

  #arrive(arrival: Arrival): void {
    if (this.destroyed) return;
    if (arrival === 'reset') {
      this.destroy(systemError('ECONNRESET', 'read', this.name));
      return;
    }
    this.#backlog.push(arrival);
    this.#pump();
  }

  /** Hand arrivals to the reader while it asks for more; each one frees the sender's buffer. */
  #pump(): void {
    while (this.#wantsData && this.#backlog.length > 0) {
      const arrival = this.#backlog.shift()!;
      if (arrival !== null && arrival !== 'reset') {
        this.#bytesRead += arrival.length;
        if (this.#peer !== null) this.#peer.#taken(arrival.length);
      }
      this.#wantsData = this.push(arrival);
    }
  }

  #taken(n: number): void {
    this.#inFlight -= n;
    this.#sendOutbox();
  }
}

/** A listening memory address: looks to StreamServer like a net.Server. */
export class MemoryListener extends EventEmitter {
  #open = true;

  constructor(
    readonly engine: Engine,
    readonly name: string,
    readonly onConnection: (socket: MemorySocket) => void,
  ) {
    super();
  }

  address(): string {
    return `memory:${this.name}`;
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    listeners(this.engine).delete(this.name);
    process.nextTick(() => this.emit('close'));
  }
}

const registries = new WeakMap<Engine, Map<string, MemoryListener>>();

function listeners(engine: Engine): Map<string, MemoryListener> {
  let map = registries.get(engine);
  if (map === undefined) {
    map = new Map();
    registries.set(engine, map);
  }
  return map;
}

/** Listen on a memory name in this engine; `EADDRINUSE` if someone already does. */
export function listenMemory(engine: Engine, name: string, onConnection: (socket: MemorySocket) => void): Promise<MemoryListener> {
  const map = listeners(engine);
  if (map.has(name)) return Promise.reject(systemError('EADDRINUSE', 'listen', `memory:${name}`));
  const listener = new MemoryListener(engine, name, onConnection);
  map.set(name, listener);
  return Promise.resolve(listener);
}

/** Connect to a memory name on the next turn; `ECONNREFUSED` if nobody listens there. */
export function connectMemory(engine: Engine, name: string, link: LinkOptions = {}): MemorySocket {
  const options = { ...DEFAULT_LINK, ...link };
  checkLink(options);
  const client = new MemorySocket(engine, options, `memory:${name}`);
  client.connecting = true;
  engine._callback(() => {
    if (client.destroyed) return;
    const listener = listeners(engine).get(name);
    client.connecting = false;
    if (listener === undefined) {
      client.destroy(systemError('ECONNREFUSED', 'connect', `memory:${name}`));
      return;
    }
    listener.onConnection(client._answer());
    client.emit('connect');
  });
  return client;
}

function checkLink(link: Required<LinkOptions>): void {
  if (!(link.latency >= 0) || !Number.isFinite(link.latency)) throw new RangeError(`link latency must be a finite number of ms >= 0, got ${link.latency}`);
  if (!(link.bandwidth > 0)) throw new RangeError(`link bandwidth must be > 0 bytes per second, got ${link.bandwidth}`);
  if (!(link.buffer > 0)) throw new RangeError(`link buffer must be > 0 bytes, got ${link.buffer}`);
}
