/**
 * One Engine.IO v4 session: the packets of one client, over HTTP long-polling or a WebSocket,
 * and the upgrade from the first to the second (`2probe`, `3probe`, a noop to release the held
 * GET, then `5`). Liveness is server-driven: a ping every `pingInterval`, a pong due within
 * `pingTimeout`, on the Engine clock. The layer above (Socket.IO) sees only whole messages.
 */
import type { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import type * as http from 'node:http';
import { decodePacket, encodePayload, type Packet } from 'engine.io-parser';
import { debug, type Engine, type Timer } from '../engine.js';
import { WebSocketConnection } from '../websocket/connection.js';
import { sendPayload } from './polling.js';

/** Why a session ended, as Socket.IO names it (`onClose(reason)` sees it). */
export type CloseReason =
  | 'transport close'
  | 'transport error'
  | 'ping timeout'
  | 'parse error'
  | 'forced close'
  | 'server shutting down'
  | 'client namespace disconnect'
  | 'server namespace disconnect';

export type TransportName = 'polling' | 'websocket';

/** The Engine.IO settings a session follows (the server's options, resolved). */
export interface EngineSettings {
  pingInterval: number;
  pingTimeout: number;
  maxPayload: number;
  upgradeTimeout: number;
  /** Packets a polling session may hold for its next GET before it is closed. */
  maxBufferedPackets: number;
  /** Bytes a WebSocket session may have queued (a peer not reading what the server sends it) before it is closed. */
  maxBufferedBytes: number;
  /** Transports offered as upgrades in the handshake. */
  upgrades: readonly TransportName[];
}

/** What a session needs of its server: one object shared by all its sessions (not three fields in each). */
export interface SessionHost {
  readonly engine: Engine;
  readonly settings: EngineSettings;
  /** Told once, when a session ends. */
  sessionEnded(session: EngineSession): void;
}

/** What the session reports to the layer above. */
export interface SessionListener {
  onEngineMessage(data: string | Buffer): void;
  onEngineClose(reason: CloseReason): void;
}

/** A WebSocket that carries an Engine.IO session (made by the server's WebSocketServer). */
export class EngineWebSocket extends WebSocketConnection {
  /** @internal The session this socket carries, or probes for. */
  _session: EngineSession | null = null;

  override onRead(message: string | Buffer): void {
    this._session?._fromSocket(this, message);
  }

  /** Writes drained: a session paused for backpressure reads again. */
  override onWrite(): void {
    if (this.readingPaused) this.resumeReading();
  }

  override onClose(): void {
    this._session?._socketClosed(this);
  }
}

const NOOP_PAYLOAD = '6';
/** The empty queue every session starts with (most never poll, or rarely hold packets). */
const NO_PACKETS: Packet[] = [];

/** An EngineSession's polling and upgrade state, kept out of it: most sessions use only a WebSocket. */
class Polling {
  /** A WebSocket probing for the upgrade. */
  probe: EngineWebSocket | null = null;
  probeTimer: Timer | null = null;
  /** Packets waiting for the next GET, and the GET held open. */
  queue: Packet[] = NO_PACKETS;
  poll: http.ServerResponse | null = null;
  posting = false;
  flushScheduled = false;
  /** A probe asked for the held GET to be released (a noop) and none was held yet. */
  noopDue = false;
}

export class EngineSession {
  /** The Engine.IO session id (sent in the handshake; not the Socket.IO socket id). */
  readonly sid = randomBytes(15).toString('base64url');
  listener: SessionListener | null = null;
  readonly #host: SessionHost;
  /** The WebSocket transport, once in use (from the start or after the upgrade). */
  #socket: EngineWebSocket | null = null;
  /** Polling and upgrade state, made when first set (see Polling): a WebSocket-only session has none. */
  #polling: Polling | null = null;
  #pongDue: Timer | null = null;
  #closed = false;

  constructor(host: SessionHost) {
    this.#host = host;
  }

  get #more(): Polling {
    return (this.#polling ??= new Polling());
  }

  // Each reads the default with no Polling, and setting a default makes none.
  get #probe(): EngineWebSocket | null {
    return this.#polling?.probe ?? null;
  }

  set #probe(probe: EngineWebSocket | null) {
    if (probe !== null || this.#polling !== null) this.#more.probe = probe;
  }

  get #probeTimer(): Timer | null {
    return this.#polling?.probeTimer ?? null;
  }

  set #probeTimer(timer: Timer | null) {
    if (timer !== null || this.#polling !== null) this.#more.probeTimer = timer;
  }

  get #queue(): Packet[] {
    return this.#polling?.queue ?? NO_PACKETS;
  }

  set #queue(queue: Packet[]) {
    if (queue !== NO_PACKETS || this.#polling !== null) this.#more.queue = queue;
  }

  get #poll(): http.ServerResponse | null {
    return this.#polling?.poll ?? null;
  }

  set #poll(poll: http.ServerResponse | null) {
    if (poll !== null || this.#polling !== null) this.#more.poll = poll;
  }

  get #posting(): boolean {
    return this.#polling?.posting ?? false;
  }

  set #posting(posting: boolean) {
    if (posting || this.#polling !== null) this.#more.posting = posting;
  }

  get #flushScheduled(): boolean {
    return this.#polling?.flushScheduled ?? false;
  }

  set #flushScheduled(scheduled: boolean) {
    if (scheduled || this.#polling !== null) this.#more.flushScheduled = scheduled;
  }

  get #noopDue(): boolean {
    return this.#polling?.noopDue ?? false;
  }

  set #noopDue(due: boolean) {
    if (due || this.#polling !== null) this.#more.noopDue = due;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get transport(): TransportName {
    return this.#socket === null ? 'polling' : 'websocket';
  }

  /** The open packet's JSON: what the client learns in the handshake. */
  handshake(): string {
    const { pingInterval, pingTimeout, maxPayload, upgrades } = this.#host.settings;
    return `0${JSON.stringify({ sid: this.sid, upgrades: this.#socket === null ? upgrades : [], pingInterval, pingTimeout, maxPayload })}`;
  }

  // ---- sending -----------------------------------------------------------------------------

  /** Send one Engine.IO message (a string, or a Buffer as a binary message). */
  send(data: string | Buffer): void {
    if (this.#closed) return;
    const socket = this.#socket;
    if (socket !== null) {
      if (!socket.connected || socket.closing) return;
      // A peer that sends but never reads is paused until our writes drain: memory stays bounded.
      if (!socket.write(typeof data === 'string' ? `4${data}` : data) && !socket.readingPaused) socket.pauseReading();
      // What the server sends on its own (broadcasts) is bounded too.
      if (socket.bufferedBytes > this.#host.settings.maxBufferedBytes) {
        debug('socket.io session %s: %d bytes queued, closing', this.sid, socket.bufferedBytes);
        this.close('transport error');
      }
      return;
    }
    this.#enqueue({ type: 'message', data });
  }

  #enqueue(packet: Packet): void {
    if (this.#queue.length >= this.#host.settings.maxBufferedPackets) {
      debug('socket.io session %s: %d packets buffered, closing', this.sid, this.#queue.length);
      this.close('transport error');
      return;
    }
    if (this.#queue === NO_PACKETS) this.#queue = [];
    this.#queue.push(packet);
    if (this.#poll !== null && !this.#flushScheduled) {
      // Packets queued in the same turn leave in one payload.
      this.#flushScheduled = true;
      process.nextTick(EngineSession.#flushLater, this);
    }
  }

  #flushPoll(): void {
    this.#flushScheduled = false;
    const response = this.#poll;
    if (response === null || (this.#queue.length === 0 && !this.#noopDue)) return;
    this.#poll = null;
    this.#noopDue = false;
    if (this.#queue.length === 0) {
      sendPayload(response, NOOP_PAYLOAD);
      return;
    }
    const packets = this.#queue;
    this.#queue = NO_PACKETS;
    encodePayload(packets, (payload) => sendPayload(response, payload));
  }

  // ---- polling -----------------------------------------------------------------------------

  /** @internal A long-polling GET: answered now if packets wait, held otherwise. False: refused (a GET is already held). */
  _poll(response: http.ServerResponse): boolean {
    if (this.#poll !== null) return false;
    this.#poll = response;
    response.once('close', () => {
      if (this.#poll === response) this.#poll = null;
    });
    if (this.#queue.length > 0 || this.#noopDue) this.#flushPoll();
    return true;
  }

  /** @internal A POST may start (only one at a time). */
  _beginPost(): boolean {
    if (this.#posting) return false;
    this.#posting = true;
    return true;
  }

  /** @internal A POST's body: a `\x1e`-joined payload of packets. */
  _endPost(body: string | null): void {
    this.#posting = false;
    if (body === null) return;
    for (const packet of decodePayload(body)) {
      if (this.#closed) return;
      this.#onPacket(packet);
    }
  }

  // ---- WebSocket ---------------------------------------------------------------------------

  /** @internal A WebSocket opened with this session's sid: the upgrade begins. False: refused. */
  _beginProbe(socket: EngineWebSocket): boolean {
    if (this.#closed || this.#socket !== null || this.#probe !== null) return false;
    this.#probe = socket;
    socket._session = this;
    this.#probeTimer = this.#host.engine.defer(this.#host.settings.upgradeTimeout, () => {
      if (this.#probe === socket) void socket.close();
    });
    return true;
  }

  /** @internal A new session opened over a WebSocket (no polling first). */
  _useSocket(socket: EngineWebSocket): void {
    this.#socket = socket;
    socket._session = this;
    socket.write(this.handshake());
  }

  /** @internal A message from one of this session's WebSockets. */
  _fromSocket(socket: EngineWebSocket, message: string | Buffer): void {
    if (socket === this.#socket) {
      if (typeof message !== 'string') this.#onMessage(message);
      else if (message.charCodeAt(0) === 0x34 /* '4' */) this.#onMessage(message.slice(1));
      else this.#onPacket(decodePacket(message));
      return;
    }
    if (socket !== this.#probe) return;
    if (message === '2probe') {
      socket.write('3probe');
      // The client pauses polling before it upgrades: release the held GET.
      this.#noopDue = true;
      this.#flushPoll();
    } else if (message === '5') {
      this.#upgraded(socket);
    } else {
      void socket.close();
    }
  }

  #upgraded(socket: EngineWebSocket): void {
    this.#probeTimer?.cancel();
    this.#probeTimer = null;
    this.#probe = null;
    this.#socket = socket;
    this.#noopDue = true;
    this.#flushPoll();
    this.#noopDue = false;
    const queued = this.#queue;
    this.#queue = NO_PACKETS;
    for (const packet of queued) {
      if (packet.type === 'message') this.send(packet.data as string | Buffer);
      else socket.write(`${packetCode(packet.type)}${(packet.data as string | undefined) ?? ''}`);
    }
  }

  /** @internal */
  _socketClosed(socket: EngineWebSocket): void {
    if (socket === this.#probe) {
      this.#probeTimer?.cancel();
      this.#probe = null;
    } else if (socket === this.#socket) {
      this.close('transport close');
    }
  }

  // ---- packets -----------------------------------------------------------------------------

  #onPacket(packet: Packet): void {
    switch (packet.type) {
      case 'message':
        this.#onMessage(packet.data as string | Buffer);
        return;
      case 'pong':
        this.#pongDue?.cancel();
        this.#pongDue = null;
        return;
      case 'close':
        this.close('transport close');
        return;
      case 'noop':
        return;
      default:
        // 'error' (undecodable), or a packet a client never sends here (open, ping, upgrade).
        debug('socket.io session %s: invalid Engine.IO packet %s', this.sid, packet.type);
        this.close('parse error');
    }
  }

  #onMessage(data: string | Buffer): void {
    try {
      this.listener?.onEngineMessage(data);
    } catch (err) {
      this.#host.engine.reportError(err);
      this.close('transport error');
    }
  }

  /** @internal Time for a ping (the server pings all its sessions every `pingInterval`). */
  _ping(): void {
    if (this.#closed) return;
    if (this.#socket !== null) this.#socket.connected && !this.#socket.closing && this.#socket.write('2');
    else this.#enqueue({ type: 'ping' });
    this.#pongDue ??= this.#host.engine.defer(this.#host.settings.pingTimeout, EngineSession.#pongLate, this);
  }

  // ---- closing -----------------------------------------------------------------------------

  /**
   * End the session: for reasons of the server's own (`forced close`, `server shutting
   * down`), send what is queued and a close packet first. The listener's `onEngineClose` runs once.
   */
  close(reason: CloseReason): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pongDue?.cancel();
    this.#probeTimer?.cancel();
    const polite = reason === 'forced close' || reason === 'server shutting down';
    const socket = this.#socket;
    if (socket !== null) {
      socket._session = null;
      if (polite && socket.connected && !socket.closing) socket.write('1');
      void socket.close();
    } else if (this.#poll !== null) {
      if (polite) this.#queue = [...this.#queue, { type: 'close' }];
      this.#noopDue = true;
      this.#flushPoll();
    }
    if (this.#probe !== null) {
      this.#probe._session = null;
      void this.#probe.close();
    }
    this.#queue = NO_PACKETS;
    this.#host.sessionEnded(this);
    try {
      this.listener?.onEngineClose(reason);
    } catch (err) {
      this.#host.engine.reportError(err);
    }
  }

  static #pongLate(session: EngineSession): void {
    session.#pongDue = null;
    session.close('ping timeout');
  }

  static #flushLater(session: EngineSession): void {
    session.#flushPoll();
  }
}

function packetCode(type: Packet['type']): number {
  return ['open', 'close', 'ping', 'pong', 'message', 'upgrade', 'noop'].indexOf(type);
}

/** Decode a polling payload; an undecodable packet ends the list as an 'error' packet. */
function decodePayload(body: string): Packet[] {
  const packets: Packet[] = [];
  for (const encoded of body.split('\x1e')) {
    const packet = decodePacket(encoded);
    packets.push(packet);
    if (packet.type === 'error') break;
  }
  return packets;
}
