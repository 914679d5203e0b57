/**
 * WebSocketConnection: a trews Stream that speaks RFC 6455 over its socket. Bytes read go to
 * ws's frame parser (a server reads the common whole data frames itself); messages come out whole (or, with a readDelimiter, their bytes are framed
 * across messages by the Stream's own framer, as Pants does). Frames written go through the
 * Stream's write queue, so every message written in one dispatch leaves in one system call,
 * with the Stream's backpressure, accounting and close bounds.
 */
import { Buffer, isUtf8 } from 'node:buffer';
import { readFile, type FileHandle } from 'node:fs/promises';
import { Stream, type CloseOptions, type StreamOptions, type WriteFileOptions } from '../stream.js';
import type { Timer } from '../engine.js';
import type { WebSocketServer } from './server.js';
import { ClosedError, OverflowError, ReadError } from '../errors.js';
import { BINARY, CLOSE, CloseCode, PING, PONG, TEXT, closePayload, frame, isSendableCloseCode, betweenMessages, makeReceiver, makeSender, serverFrameHeader, simpleFrameSize, statusCodeOf, unmask, type FrameSink, type PerMessageDeflate, type Receiver, type Sender } from './protocol.js';

export interface WebSocketOptions extends StreamOptions {
  /** Send a ping every this many ms (0: never, the default), on the Engine clock. */
  pingInterval?: number;
  /** After a ping, wait this many ms for a pong before `onTimeout('ping')` (default 10000). */
  pingTimeout?: number;
}

/** A message as delivered with the default readDelimiter: text as a string, binary as a Buffer. */
export type WebSocketMessage = string | Buffer;

// Bits of #flags: the state of the current WebSocket session.
/** The opening handshake is done: frames flow. */
const OPEN = 1 << 0;
const CLOSE_SENT = 1 << 2;
const CLOSE_RECEIVED = 1 << 3;
/** The peer broke the protocol: a close frame is out, the stream is closing. */
const FAILED = 1 << 4;

const OWNER = Symbol('trews.websocket');
type OwnedReceiver = Receiver & { [OWNER]: WebSocketConnection | null; _totalPayloadLength?: number };

/** The most bytes of a close reason (a close frame's payload is at most 125 bytes). */
const MAX_REASON = 123;

/** permessage-deflate, when negotiated: ws's Sender orders frames around asynchronous deflate. */
interface Compression {
  deflate: PerMessageDeflate;
  sender: Sender;
}

/** Ping state, made only when pinging is on. */
/**
 * A WebSocketConnection's state that most idle connections never set, kept out of it (memory).
 * Not what every message reads (#held, #compression): a private accessor costs CPU there.
 */
class Rare {
  closeCode: number | null = null;
  closeReason = '';
  early: Buffer[] | null = null;
  pinger: Pinger | null = null;
}

interface Pinger {
  cycle: Timer;
  overdue: Timer | null;
}

export class WebSocketConnection extends Stream {
  /** Send a ping every this many ms (0: never). Read when the connection opens. */
  declare pingInterval: number;
  /** How long to wait for a pong after a ping, in ms. */
  declare pingTimeout: number;
  /**
   * The server that accepted this connection (undefined on a client). Narrow it in a subclass
   * with `declare server: MyServer`.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  declare server: WebSocketServer<any>;
  /** The subprotocol agreed in the handshake, or null. */
  protocol: string | null = null;

  #flags = 0;
  #receiver: OwnedReceiver | null = null;
  /** Whole messages parsed while reading is paused, delivered on resumeReading(). */
  #held: WebSocketMessage[] | null = null;
  #compression: Compression | null = null;
  /** The rest, made when first set to other than its default (see Rare): an idle connection has none. */
  #rare: Rare | null = null;

  get #closeCode(): number | null {
    return this.#rare?.closeCode ?? null;
  }

  set #closeCode(code: number | null) {
    if (code !== null || this.#rare !== null) this.#more.closeCode = code;
  }

  get #closeReason(): string {
    return this.#rare?.closeReason ?? '';
  }

  set #closeReason(reason: string) {
    if (reason !== '' || this.#rare !== null) this.#more.closeReason = reason;
  }

  /** Frames written before the handshake finished (a client), sent once it has. */
  get #early(): Buffer[] | null {
    return this.#rare?.early ?? null;
  }

  set #early(early: Buffer[] | null) {
    if (early !== null || this.#rare !== null) this.#more.early = early;
  }

  get #pinger(): Pinger | null {
    return this.#rare?.pinger ?? null;
  }

  set #pinger(pinger: Pinger | null) {
    if (pinger !== null || this.#rare !== null) this.#more.pinger = pinger;
  }

  get #more(): Rare {
    return (this.#rare ??= new Rare());
  }

  constructor(options: WebSocketOptions = {}) {
    super(options);
    if (options.pingInterval !== undefined) this.pingInterval = checkMs('pingInterval', options.pingInterval);
    if (options.pingTimeout !== undefined) this.pingTimeout = checkMs('pingTimeout', options.pingTimeout);
  }

  /**
   * The close code of the closing handshake: the peer's if it closed first, ours if we did;
   * 1006 once closed without one (the connection dropped). Null while open.
   */
  get closeCode(): number | null {
    return this.#closeCode ?? (this.closed ? CloseCode.ABNORMAL : null);
  }

  /** The reason that came with `closeCode` ('' if none). */
  get closeReason(): string {
    return this.#closeReason;
  }

  /** True when permessage-deflate was agreed in the handshake (messages may be compressed). */
  get compressed(): boolean {
    return this.#compression !== null;
  }

  /** True from `close()` (or the peer's close frame) until the channel has closed. */
  override get closing(): boolean {
    return super.closing || (this.#flags & CLOSE_SENT) !== 0;
  }

  // ---- hooks -------------------------------------------------------------------------------

  /** A whole message (default readDelimiter: text as a string, binary as a Buffer), or a frame of the delimiter in force. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any, @typescript-eslint/no-unused-vars
  override onRead(data: any, ...rest: any[]): void {}

  /**
   * `'ping'`: no pong came `pingTimeout` ms after a ping; the default drops the connection
   * (close code 1006). `'idle'`, `'read'`: as on every Stream; the default closes with 1000.
   */
  override onTimeout(kind: 'idle' | 'read' | 'ping'): void {
    if (kind === 'ping') this.destroy();
    else void this.close();
  }

  // ---- session -----------------------------------------------------------------------------

  /** @internal */
  override _opened(): void {
    this._resetSession();
    this._beginSession();
  }

  /** @internal Forget the last session (a reconnecting client opens several). */
  protected _resetSession(): void {
    this.#flags = 0;
    this.#receiver = null;
    this.#closeCode = null;
    this.#closeReason = '';
    this.#held = null;
    this.#pinger?.cycle.cancel();
    this.#pinger?.overdue?.cancel();
    this.#pinger = null;
  }

  /** @internal Compress with this negotiated extension (null: not at all). */
  _useDeflate(deflate: PerMessageDeflate | null): void {
    this.#compression?.deflate.cleanup();
    this.#compression = null;
    if (deflate === null) return;
    const sink: FrameSink = {
      destroyed: false,
      cork() {},
      uncork() {},
      write: (chunk, cb) => {
        try {
          super.write(chunk);
        } catch {
          // Closing meanwhile: the frame is dropped, as on any closed socket.
        }
        if (cb !== undefined) process.nextTick(cb);
        return true;
      },
    };
    Object.defineProperty(sink, 'destroyed', { get: () => !this.connected });
    this.#compression = { deflate, sender: makeSender(sink, deflate) };
    Promise.prototype.then.call(this.whenClosed(), () => deflate.cleanup());
  }

  /** @internal The handshake is done: frames flow, `onConnect` runs. */
  protected _beginSession(): void {
    this.#flags |= OPEN;
    const interval = this.pingInterval;
    if (interval > 0) {
      const pinger: Pinger = { cycle: this.engine.cycle(interval, WebSocketConnection.#pingTick, this), overdue: null };
      this.#pinger = pinger;
      // Stop at once when closed: a pending timer would keep the connection in memory.
      Promise.prototype.then.call(this.whenClosed(), () => {
        pinger.cycle.cancel();
        pinger.overdue?.cancel();
      });
    }
    super._opened();
    const early = this.#early;
    this.#early = null;
    if (early !== null && this.connected) for (const bytes of early) super.write(bytes);
  }

  /** @internal Bytes from the socket: WebSocket frames. */
  override _received(chunk: Buffer): void {
    if ((this.#flags & (OPEN | CLOSE_RECEIVED | FAILED)) !== OPEN) return;
    if (this.#receiver === null && this.#compression === null && this.accepted) {
      // A client's common frames need no Receiver: read here; one reads from the first other.
      const at = this.#readSimpleFrames(chunk);
      if (at === chunk.length) {
        this.flush();
        return;
      }
      if (at > 0) chunk = chunk.subarray(at);
    }
    const side = this.accepted ? 0 : 1;
    let receiver = this.#receiver;
    if (receiver === null) {
      const deflate = this.#compression?.deflate ?? null;
      receiver = deflate === null ? WebSocketConnection.#spare[side] : null;
      if (receiver !== null) WebSocketConnection.#spare[side] = null;
      else receiver = WebSocketConnection.#makeReceiver(this.accepted, this.bufferSize, deflate);
      receiver[OWNER] = this;
      this.#receiver = receiver;
    }
    receiver._maxPayload = this.bufferSize;
    receiver.write(chunk);
    // Between messages an uncompressed connection holds no parser (one costs ~700 B): it
    // becomes the spare the next chunk of any connection takes.
    if (this.#receiver === receiver && this.#compression === null && betweenMessages(receiver)) {
      this.#receiver = null;
      receiver[OWNER] = null;
      WebSocketConnection.#spare[side] = receiver;
    }
    // Everything written while this chunk's messages were delivered leaves in one write.
    this.flush();
  }

  /** Deliver the whole data frames at the start of `chunk` (see simpleFrameSize); returns where the rest begins. */
  #readSimpleFrames(chunk: Buffer): number {
    const maxPayload = this.bufferSize;
    let at = 0;
    for (let size = simpleFrameSize(chunk, at, maxPayload); size > 0; size = simpleFrameSize(chunk, at, maxPayload)) {
      const end = at + size;
      const start = at + ((chunk[at + 1]! & 0x7f) === 126 ? 8 : 6);
      unmask(chunk, start, end, start - 4);
      const data = chunk.subarray(start, end);
      const isBinary = chunk[at] === (0x80 | BINARY);
      if (!isBinary && !isUtf8(data)) {
        // Masked again: the Receiver reads it and fails the connection (1007).
        unmask(chunk, start, end, start - 4);
        break;
      }
      at = end;
      this.#onMessage(data, isBinary);
    }
    return at;
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (!this.connected) return;
    if (this.readDelimiter !== null) {
      // Framing across messages: their bytes go to the Stream's framer.
      if (data.length > 0) super._received(data);
      return;
    }
    const message = isBinary ? data : data.toString('utf8');
    if (this.#held !== null || this.readingPaused) (this.#held ??= []).push(message);
    else this.#deliver(message);
  }

  #deliver(message: WebSocketMessage): void {
    try {
      this._awaitHook('onRead', this.onRead(message));
      if (this._listened('read')) this.emit('read', message);
    } catch (err) {
      this._hookThrew('onRead', err);
    }
  }

  override resumeReading(): void {
    const wasPaused = this.readingPaused;
    super.resumeReading();
    if (wasPaused && this.#held !== null) process.nextTick(() => this.#deliverHeld());
  }

  #deliverHeld(): void {
    const held = this.#held;
    while (held !== null && held.length > 0 && !this.readingPaused && this.connected) this.#deliver(held.shift()!);
    if (held !== null && held.length === 0 && this.#held === held) this.#held = null;
    this.flush();
  }

  /**
   * Answer a ping, unless our writes are backed up: a peer that pings without reading must not
   * grow the queue (RFC 6455 5.5.3 allows answering only the latest ping).
   */
  #onPing(data: Buffer): void {
    if ((this.#flags & CLOSE_SENT) !== 0 || !this.connected || this.bufferedBytes >= this.writeHighWaterMark) return;
    this.#sendFrame(PONG, data, false);
  }

  #onPong(): void {
    const pinger = this.#pinger;
    pinger?.overdue?.cancel();
    if (pinger !== null) pinger.overdue = null;
  }

  #pingDue(): void {
    const pinger = this.#pinger!;
    if (!this.connected || (this.#flags & CLOSE_SENT) !== 0) {
      pinger.cycle.cancel();
      return;
    }
    this.#sendFrame(PING, Buffer.alloc(0), true);
    pinger.overdue ??= this.engine.defer(this.pingTimeout, WebSocketConnection.#pongLate, this);
  }

  #pongOverdue(): void {
    const pinger = this.#pinger!;
    pinger.overdue = null;
    if (this.connected) this._hook('onTimeout', 'ping');
  }

  /**
   * The peer's close frame: answer it, then end our side of the socket (FIN) and let the
   * Stream finish as after any peer's FIN: `onEnd`, then close (or, for a reconnecting client,
   * connect again). Bounded by `closeTimeout` should the peer never finish.
   */
  #onConclude(code: number, reason: Buffer): void {
    this.#flags |= CLOSE_RECEIVED;
    this.#closeCode = code;
    this.#closeReason = reason.toString('utf8');
    if (!this.connected) return;
    const socket = this.socket!;
    const end = () => {
      if (this.socket !== socket || !this.connected) return;
      super.end();
      this.engine._defer(this.closeTimeout, () => {
        if (this.socket === socket && !socket.destroyed) socket.destroy();
      });
    };
    if ((this.#flags & CLOSE_SENT) === 0) this.#sendClose(code, this.#closeReason, end);
    else end();
  }

  /** The peer broke the protocol (1002), sent invalid UTF-8 (1007) or too big a message (1009). */
  #onProtocolError(err: Error & { code?: string }): void {
    if (!this.connected || (this.#flags & FAILED) !== 0) return;
    this.#flags |= FAILED;
    const code = statusCodeOf(err);
    const close = () => void super.close();
    if ((this.#flags & CLOSE_SENT) === 0) this.#sendClose(code, '', close);
    else close();
    this.#closeReason = err.message;
    if (code === CloseCode.TOO_BIG) {
      const seen = this.#receiver?._totalPayloadLength ?? this.bufferSize + 1;
      this._fail('onOverflowError', new OverflowError(this.bufferSize, seen));
    } else {
      this._fail('onReadError', new ReadError(`WebSocket protocol error (close ${code}): ${err.message}`, { cause: err }));
    }
  }

  // ---- writing -----------------------------------------------------------------------------

  /**
   * Send a message: a string as text, a Buffer or Uint8Array as binary. Messages written in one
   * dispatch leave in one system call. Returns false above `writeHighWaterMark`.
   */
  override write(data: string | Uint8Array): boolean {
    if (typeof data === 'string') {
      if (this.accepted && this.#compression === null && (this.#flags & (OPEN | CLOSE_SENT)) === OPEN) {
        // A server's text frame: its header, then the string itself, encoded once as the queue goes out.
        super.write(serverFrameHeader(TEXT, Buffer.byteLength(data)));
        return super.write(data);
      }
      return this.#sendFrame(TEXT, Buffer.from(data), true);
    }
    if (data instanceof Uint8Array) {
      const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      return this.#sendFrame(BINARY, bytes, false);
    }
    throw new TypeError(`write() takes a string (text) or a Buffer/Uint8Array (binary), got ${data === null ? 'null' : typeof data}`);
  }

  /** Send a file (or part of it) as one binary message. Resolves with the bytes sent. */
  override async writeFile(file: string | FileHandle, options: WriteFileOptions = {}): Promise<number> {
    const { offset = 0, length } = options;
    let bytes = typeof file === 'string' ? await readFile(file) : await file.readFile();
    bytes = bytes.subarray(offset, length === undefined ? undefined : offset + length);
    this.write(bytes);
    return bytes.length;
  }

  /** A WebSocket has no half-close: `end()` closes (code 1000). */
  override end(): void {
    void this.close();
  }

  #sendFrame(opcode: number, payload: Buffer, ownPayload: boolean): boolean {
    if ((this.#flags & CLOSE_SENT) !== 0 && opcode !== CLOSE) throw new ClosedError(`write() on ${String(this)} after close`);
    const compression = this.#compression;
    if (compression !== null && (this.#flags & OPEN) !== 0) {
      const mask = !this.accepted;
      if (opcode === PING) compression.sender.ping(payload, mask);
      else if (opcode === PONG) compression.sender.pong(payload, mask);
      else compression.sender.send(payload, { binary: opcode === BINARY, compress: true, fin: true, mask });
      return this.bufferedBytes < this.writeHighWaterMark;
    }
    const frames = frame(opcode, payload, !this.accepted, ownPayload);
    if ((this.#flags & OPEN) === 0) {
      // Before the handshake has finished (a client): held, sent once it has.
      if (this.closed || super.closing) throw new ClosedError(`write() on ${String(this)} after close`);
      const early = (this.#early ??= []);
      for (const bytes of frames) early.push(bytes);
      return true;
    }
    let room = true;
    for (const bytes of frames) room = super.write(bytes);
    return room;
  }

  /** Send a close frame, then `then()` once it is queued behind every message before it. */
  #sendClose(code: number, reason: string, then: () => void): void {
    this.#flags |= CLOSE_SENT;
    this.#closeCode ??= code;
    const compression = this.#compression;
    if (compression !== null) {
      compression.sender.close(code === CloseCode.NO_STATUS ? undefined : code, reason, !this.accepted, () => {
        this.flush();
        then();
      });
      return;
    }
    this.#sendFrame(CLOSE, closePayload(code, reason), true);
    this.flush();
    then();
  }

  // ---- closing -----------------------------------------------------------------------------

  /**
   * Close with the WebSocket closing handshake: send a close frame with `code` (default 1000)
   * and `reason` (at most 123 bytes), flush, and close the socket once the peer has finished
   * (bounded by `closeTimeout`). `close(false)` drops the connection at once (code 1006), as
   * on every Stream. Resolves after `onClose`.
   */
  override close(code?: number | boolean | CloseOptions, reason = ''): Promise<void> {
    if (typeof code === 'boolean' || typeof code === 'object') {
      const flush = typeof code === 'boolean' ? code : (code.flush ?? true);
      // After a protocol error the close is already under way (a close frame out, then FIN).
      if (!flush && (this.#flags & FAILED) !== 0) return this.whenClosed();
      if (!flush || (this.#flags & OPEN) === 0) return super.close(code);
      return this.#closeWith(CloseCode.NORMAL, '', typeof code === 'object' ? code : {});
    }
    if (code !== undefined && !isSendableCloseCode(code)) throw new RangeError(`close code must be 1000-1014 (not 1004-1006) or 3000-4999, got ${String(code)}`);
    if (Buffer.byteLength(reason) > MAX_REASON) throw new RangeError(`a close reason may hold at most ${MAX_REASON} bytes`);
    if ((this.#flags & OPEN) === 0) return super.close();
    return this.#closeWith(code ?? CloseCode.NORMAL, reason, {});
  }

  #closeWith(code: number, reason: string, options: CloseOptions): Promise<void> {
    if ((this.#flags & (CLOSE_SENT | FAILED)) !== 0 || !this.connected) return super.closing || this.closed ? this.whenClosed() : super.close(options);
    const socket = this.socket;
    if (socket !== null && socket.readableEnded) {
      // The peer closed TCP without a closing handshake: nothing to answer.
      this.#closeCode ??= CloseCode.ABNORMAL;
      return super.close(options);
    }
    this.#closeReason = reason;
    this.#sendClose(code, reason, () => void super.close(options));
    return this.whenClosed();
  }

  /** An idle Receiver per side (server, client), taken by the next connection needing one. */
  static #spare: [OwnedReceiver | null, OwnedReceiver | null] = [null, null];

  static #makeReceiver(isServer: boolean, maxPayload: number, deflate: PerMessageDeflate | null): OwnedReceiver {
    const receiver = makeReceiver(isServer, maxPayload, deflate) as OwnedReceiver;
    receiver.on('message', WebSocketConnection.#receiverMessage);
    receiver.on('ping', WebSocketConnection.#receiverPing);
    receiver.on('pong', WebSocketConnection.#receiverPong);
    receiver.on('conclude', WebSocketConnection.#receiverConclude);
    receiver.on('error', WebSocketConnection.#receiverError);
    return receiver;
  }

  // Receiver listeners shared by every connection (a closure per connection would cost memory).
  static #receiverMessage(this: OwnedReceiver, data: Buffer, isBinary: boolean): void {
    this[OWNER]!.#onMessage(data, isBinary);
  }

  static #receiverPing(this: OwnedReceiver, data: Buffer): void {
    this[OWNER]!.#onPing(data);
  }

  static #receiverPong(this: OwnedReceiver): void {
    this[OWNER]!.#onPong();
  }

  static #receiverConclude(this: OwnedReceiver, code: number, reason: Buffer): void {
    this[OWNER]!.#onConclude(code, reason);
  }

  static #receiverError(this: OwnedReceiver, err: Error & { code?: string }): void {
    this[OWNER]!.#onProtocolError(err);
  }

  static #pingTick(connection: WebSocketConnection): void {
    connection.#pingDue();
  }

  static #pongLate(connection: WebSocketConnection): void {
    connection.#pongOverdue();
  }

  static {
    Object.assign(WebSocketConnection.prototype, { pingInterval: 0, pingTimeout: 10_000 });
    // A server's connection reads its server through the stream's owner, as Connection does.
    Object.defineProperty(WebSocketConnection.prototype, 'server', {
      configurable: true,
      get(this: WebSocketConnection) {
        return this._owner ?? undefined;
      },
    });
  }
}

function checkMs(name: string, ms: number): number {
  if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms)) throw new RangeError(`${name} must be a finite number of ms >= 0, got ${String(ms)}`);
  return ms;
}
