/**
 * Length-prefixed messages: each message is a 4-byte big-endian length, then that many bytes
 * (Python: `struct.pack('!I', len(body)) + body`). The framing is three lines of trews:
 * read a `Struct('!I')` header, set `readDelimiter` to the length it gives, read the body,
 * set the header back. Changing `readDelimiter` inside `onRead` applies to the bytes already
 * buffered, so pipelined messages in one TCP segment are cut correctly.
 *
 * `LengthPrefixed(Base)` adds the protocol to any Stream class; `LengthPrefixedConnection`
 * (for a Server) and `LengthPrefixedClient` are ready to subclass. Override `onMessage(body)`
 * and call `sendMessage(body)`.
 *
 * In your own project, import from 'trews' instead of '../../src/index.js'.
 */
import { Client, Connection, OverflowError, Struct, type Delimiter, type Stream } from '../../src/index.js';

/** The header: one unsigned 32-bit big-endian length. */
export const HEADER = new Struct('!I');

/** The default largest body accepted or sent: 1 MiB. */
export const DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024;

// A mixin needs a constructor type taking any arguments (TypeScript's rule for mixins).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type StreamConstructor = new (...args: any[]) => Stream;

/** What `LengthPrefixed` adds to a Stream class. */
export interface LengthPrefixedMembers {
  /** The largest body accepted (and sent), in bytes (default 1 MiB). */
  maxMessageSize: number;
  /** A whole message arrived. */
  onMessage(body: Buffer): void;
  /** Send one message: header and body, in one write syscall. */
  sendMessage(body: Uint8Array | string): boolean;
}

/** Add length-prefixed messages to a Stream class (Connection, Client, or your own). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function LengthPrefixed<TBase extends StreamConstructor>(Base: TBase): TBase & (new (...args: any[]) => LengthPrefixedMembers) {
  return class LengthPrefixed extends Base implements LengthPrefixedMembers {
    override readDelimiter: Delimiter = HEADER;

    /**
     * The largest body accepted (and sent), in bytes. A header announcing more calls
     * `onOverflowError` (default: the connection closes) before a byte of the body is
     * buffered. `bufferSize` is raised as needed to hold a body of up to this size.
     */
    maxMessageSize = DEFAULT_MAX_MESSAGE_SIZE;

    /** Body bytes still to discard after an oversized header whose error hook kept the channel. */
    #discarding = 0;

    /** A whole message arrived. Override this (or listen for the 'message' event). */
    onMessage(body: Buffer): void {
      void body;
    }

    /** Send one message: the header and the body go out together (one write syscall). */
    sendMessage(body: Uint8Array | string): boolean {
      const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
      if (bytes.length > this.maxMessageSize) {
        throw new RangeError(`sendMessage: a ${bytes.length}-byte message exceeds maxMessageSize ${this.maxMessageSize}`);
      }
      const below = this.writePacked(HEADER, bytes.length);
      return bytes.length === 0 ? below : this.write(bytes);
    }

    // Header frames arrive as onRead(length) (a Struct delimiter's values), bodies as onRead(Buffer).
    override onRead(data: number | Buffer): void {
      if (typeof data === 'number') this.#header(data);
      else if (this.#discarding > 0) {
        this.#discarding -= data.length;
        this.#readOn();
      } else {
        // Back to headers first, so onMessage may itself change readDelimiter.
        this.readDelimiter = HEADER;
        this._hook('onMessage', data);
      }
    }

    #header(length: number): void {
      // readDelimiter = 0 is not allowed (a frame of nothing): an empty body is a message now.
      if (length === 0) {
        this._hook('onMessage', Buffer.alloc(0));
        return;
      }
      if (length > this.maxMessageSize) {
        this._fail('onOverflowError', new OverflowError(this.maxMessageSize, length));
        // Kept open by an overriding hook: skip the body, at most bufferSize bytes at a time.
        if (this.connected) {
          this.#discarding = length;
          this.#readOn();
        }
        return;
      }
      if (length > this.bufferSize) this.bufferSize = length;
      this.readDelimiter = length;
    }

    /** While discarding, read the next piece of the oversized body; then headers again. */
    #readOn(): void {
      this.readDelimiter = this.#discarding > 0 ? Math.min(this.#discarding, this.bufferSize) : HEADER;
    }
  };
}

/** A server-side connection speaking length-prefixed messages. */
export class LengthPrefixedConnection extends LengthPrefixed(Connection) {}

/** A client speaking length-prefixed messages. */
export class LengthPrefixedClient extends LengthPrefixed(Client) {}
