/**
 * Packets: each frame is a 4-byte big-endian length, then that many payload bytes (simpy.io's
 * `Packet`, the mosaik wire format; Python: `struct.pack('!I', len(p)) + p`).
 *
 * `Packets(Base)` adds them to any Stream class; `PacketConnection` (for a Server) and
 * `PacketClient` are ready to subclass. Override `onPacket(payload)` (or listen for
 * `'packet'`) and call `sendPacket(payload)`. Framing switches `readDelimiter` between the
 * 4-byte header and the length it announces; do not override `onRead` or set `readDelimiter`
 * on a packet channel.
 */
import { Client } from './client.js';
import { Connection } from './connection.js';
import { OverflowError } from './errors.js';
import type { Stream, StreamEvents, StreamOptions } from './stream.js';
import { Struct } from './struct.js';

/** The packet header: one unsigned 32-bit big-endian length (for `writePacked`, or a peer of your own). */
export const PACKET_HEADER = new Struct('!I');
const HEADER_SIZE = 4;

/** Default `maxPacketSize`: 1 MiB. */
export const DEFAULT_MAX_PACKET_SIZE = 1024 * 1024;

/** The largest length the 4-byte header can announce. */
export const MAX_PACKET_SIZE = 0xffffffff;

export interface PacketOptions extends StreamOptions {
  /** The largest payload sent or accepted, in bytes (default 1 MiB). */
  maxPacketSize?: number;
}

export interface PacketEvents extends StreamEvents {
  packet: [payload: Buffer];
}

// A mixin's base must be a constructor taking any arguments (TypeScript's rule for mixins).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Constructor<T> = new (...args: any[]) => T;

/** `on`/`once`/`off` typed for the events a layer adds (merged with the Stream's own overloads). */
export interface TypedEvents<Ev extends { [K in keyof Ev]: unknown[] }> {
  on<E extends keyof Ev & string>(event: E, fn: (...args: Ev[E]) => void, context?: unknown): this;
  once<E extends keyof Ev & string>(event: E, fn: (...args: Ev[E]) => void, context?: unknown): this;
  off<E extends keyof Ev & string>(event: E, fn?: (...args: Ev[E]) => void, context?: unknown, once?: boolean): this;
}

/** What `Packets(Base)` adds to a Stream class. */
export interface PacketChannel extends PacketMembers, TypedEvents<PacketEvents> {}

export interface PacketMembers {
  /**
   * The largest payload, in bytes. `sendPacket` throws an `OverflowError` above it (nothing is
   * written); a header announcing more calls `onOverflowError` (default: the channel closes)
   * before any of the payload is buffered. `bufferSize` is raised as needed up to it.
   */
  maxPacketSize: number;
  /** A whole packet arrived (also for zero-length packets). Followed by the `'packet'` event. */
  onPacket(payload: Buffer): void;
  /** Send one packet: header and payload in one `write()`. Returns what `write()` returns. */
  sendPacket(payload: Uint8Array | string): boolean;
}

/** Add length-prefixed packets to a Stream class (Connection, Client, or your own). */
export function Packets<T extends Constructor<Stream>>(Base: T): Constructor<PacketChannel> & T {
  class PacketStream extends Base implements PacketMembers {
    maxPacketSize: number;
    /** The next frame is a header (else a payload, or bytes to skip). */
    #atHeader = true;
    /** Payload bytes still to skip after an oversized header whose error hook kept the channel. */
    #discarding = 0;

    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    constructor(...args: any[]) {
      // Checked before the channel exists (and registers with its engine).
      const maxPacketSize = checkPacketSize((args[0] as PacketOptions | undefined)?.maxPacketSize ?? DEFAULT_MAX_PACKET_SIZE);
      super(...args);
      this.maxPacketSize = maxPacketSize;
      this.#expectHeader();
      // A reconnecting client's new connection starts with a header.
      this.on('reconnecting', () => {
        this.#discarding = 0;
        this.#expectHeader();
      });
    }

    onPacket(payload: Buffer): void {
      void payload;
    }

    sendPacket(payload: Uint8Array | string): boolean {
      return this.write(framePacket(payload, this.maxPacketSize));
    }

    // A 4-byte count delimiter rather than Struct('!I'): no values array per header.
    override onRead(data: Buffer): void {
      if (this.#atHeader) this.#header(data.readUInt32BE(0));
      else if (this.#discarding > 0) this.#discard(data.length);
      else {
        // Back to headers first, so that onPacket sees a channel ready for the next packet.
        this.#expectHeader();
        this.#deliver(data);
      }
    }

    /** What `_hook('onPacket', payload)` does, without its generic dispatch: this runs per packet. */
    #deliver(payload: Buffer): void {
      try {
        this._awaitHook('onPacket', this.onPacket(payload));
        (this.emit as (event: string, ...args: unknown[]) => boolean)('packet', payload);
      } catch (err) {
        this._hookThrew('onPacket', err);
      }
    }

    #expectHeader(): void {
      this.#atHeader = true;
      this.readDelimiter = HEADER_SIZE;
    }

    #header(length: number): void {
      // A readDelimiter of 0 is not allowed: an empty packet is complete with its header.
      if (length === 0) {
        this.#deliver(Buffer.alloc(0));
        return;
      }
      if (length > this.maxPacketSize) {
        this._fail('onOverflowError', packetOverflow(this.maxPacketSize, length));
        // Kept open by an overriding hook: skip the payload, at most bufferSize bytes at a time.
        if (this.connected) this.#discard(-length);
        return;
      }
      if (length > this.bufferSize) this.bufferSize = length;
      this.#atHeader = false;
      this.readDelimiter = length;
    }

    /** Account for skipped payload bytes (negative: start skipping that many), then read on. */
    #discard(bytes: number): void {
      this.#discarding = bytes < 0 ? -bytes : this.#discarding - bytes;
      if (this.#discarding === 0) return this.#expectHeader();
      this.#atHeader = false;
      this.readDelimiter = Math.min(this.#discarding, this.bufferSize);
    }
  }
  // The class has the members; the cast adds the event typing.
  return PacketStream as unknown as Constructor<PacketChannel> & T;
}

/** A packet channel accepted by a Server: `new Server(MyPacketConnection)`. */
export class PacketConnection extends Packets(Connection) {
  constructor(options?: PacketOptions) {
    super(options);
  }
}

/** A packet channel for outgoing connections: `await new MyPacketClient().connect(address)`. */
export class PacketClient extends Packets(Client) {
  constructor(options?: PacketOptions) {
    super(options);
  }
}

/**
 * One packet's bytes: the header and the payload (a string is sent as UTF-8) in one Buffer.
 * Throws an `OverflowError` if the payload exceeds `limit`.
 */
export function framePacket(payload: Uint8Array | string, limit: number): Buffer {
  const text = typeof payload === 'string';
  if (!text && !(payload instanceof Uint8Array)) {
    throw new TypeError(`a packet payload must be a string, Buffer or Uint8Array, got ${payload === null ? 'null' : typeof payload}`);
  }
  const size = text ? Buffer.byteLength(payload) : payload.length;
  if (size > limit) throw packetOverflow(limit, size);
  const frame = Buffer.allocUnsafe(4 + size);
  frame.writeUInt32BE(size, 0);
  if (text) frame.write(payload, 4);
  else frame.set(payload, 4);
  return frame;
}

/** The OverflowError for a packet over `maxPacketSize` (sent or announced by the peer). */
export function packetOverflow(limit: number, size: number): OverflowError {
  const err = new OverflowError(limit, size);
  err.message = `packet of ${size} bytes exceeds maxPacketSize ${limit}`;
  return err;
}

function checkPacketSize(size: number): number {
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_PACKET_SIZE) {
    throw new RangeError(`maxPacketSize must be an integer from 0 to ${MAX_PACKET_SIZE} (what a 4-byte header can say), got ${String(size)}`);
  }
  return size;
}
