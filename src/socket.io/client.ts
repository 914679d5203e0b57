/**
 * The Socket.IO v5 layer of one Engine.IO session: decodes packets (socket.io-parser), opens
 * one SocketConnection per namespace on CONNECT, routes events and acks to them, and closes the
 * whole session on any invalid packet.
 */
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { Decoder, PacketType, type Packet } from 'socket.io-parser';
import { debug, type Timer } from '../engine.js';
import { ConnectRefusedError, SocketConnection, type OpenInfo } from './connection.js';
import type { CloseReason, EngineSession, SessionListener } from './engine-session.js';
import { decodeEventOrAck, encode, validFromClient } from './packets.js';
import type { SocketIOServer } from './server.js';

/**
 * What the first HTTP request of a session told (its query string, headers and the client's
 * address), kept as one JSON string: an object per header and per query parameter would cost
 * each idle session some 450 B. `info` objects are made from it when first read.
 */
export type Handshake = string & { readonly __handshake: never };

export function handshakeOf(search: string, headers: OpenInfo['headers'], address: OpenInfo['address']): Handshake {
  // V8 builds JSON.stringify's result as a tree of string pieces (about 400 B here), copied
  // into one flat string; latin1 keeps every character, as Node reads URLs and headers as latin1.
  return Buffer.from(JSON.stringify([search, headers, address]), 'latin1').toString('latin1') as Handshake;
}

/**
 * Text packets are decoded by one shared decoder (decoding is synchronous: `add` emits before
 * it returns); a binary packet, whose attachments follow in later messages, gets a decoder of
 * its own until it is whole. An idle session holds no decoder.
 */
const shared = new Decoder();
let decodingFor: SocketIOClient | null = null;
shared.on('decoded', (packet: Packet) => decodingFor!._onPacket(packet));

export class SocketIOClient implements SessionListener {
  /** The decoder of a binary packet waiting for its attachments. */
  #binary: Decoder | null = null;
  /**
   * Open and opening connections: most sessions use one namespace, held here with no Map; a
   * Map by namespace is made only for a second one.
   */
  #connections: SocketConnection | Map<string, SocketConnection> | null = null;
  #connectTimer: Timer | null;

  constructor(
    readonly server: SocketIOServer,
    readonly session: EngineSession,
    readonly request: Handshake,
  ) {
    // A shared function, not a closure: a cancelled timer may be held until its time.
    this.#connectTimer = server.engine.defer(server.connectTimeout, SocketIOClient.#connectLate, this);
  }

  static #connectLate(client: SocketIOClient): void {
    client.#connectTimer = null;
    if (client.#connections === null) client.session.close('transport close');
  }

  /** @internal A connection's `info`: `auth` is the CONNECT's data (undefined: none). */
  _openInfo(auth: Record<string, unknown> | undefined, namespace: string): OpenInfo {
    const [search, headers, address] = JSON.parse(this.request) as [string, OpenInfo['headers'], OpenInfo['address']];
    return { auth: auth ?? {}, query: Object.fromEntries(new URLSearchParams(search)), headers, address, namespace };
  }

  #get(nsp: string): SocketConnection | undefined {
    const connections = this.#connections;
    if (connections instanceof Map) return connections.get(nsp);
    return connections?.namespace === nsp ? connections : undefined;
  }

  #set(connection: SocketConnection): void {
    const connections = this.#connections;
    if (connections === null) this.#connections = connection;
    else if (connections instanceof Map) connections.set(connection.namespace, connection);
    else this.#connections = new Map([[connections.namespace, connections], [connection.namespace, connection]]);
  }

  #delete(nsp: string): void {
    const connections = this.#connections;
    if (connections instanceof Map) {
      connections.delete(nsp);
      if (connections.size === 0) this.#connections = null;
    } else if (connections?.namespace === nsp) {
      this.#connections = null;
    }
  }

  onEngineMessage(data: string | Buffer): void {
    try {
      if (this.#binary === null && typeof data === 'string' && !isBinaryHeader(data)) {
        const packet = decodeEventOrAck(data);
        if (packet !== null) {
          this._onPacket(packet);
          return;
        }
        decodingFor = this;
        try {
          shared.add(data);
        } finally {
          decodingFor = null;
        }
        return;
      }
      if (this.#binary === null) {
        const decoder = (this.#binary = new Decoder());
        decoder.on('decoded', (packet: Packet) => {
          if (this.#binary === decoder) this.#binary = null;
          this._onPacket(packet);
        });
      }
      this.#binary.add(data);
    } catch (err) {
      debug('socket.io session %s: invalid packet: %s', this.session.sid, (err as Error).message);
      this.session.close('parse error');
    }
  }

  onEngineClose(reason: CloseReason): void {
    this.#connectTimer?.cancel();
    this.#binary?.destroy();
    this.#binary = null;
    const open = this.#connections;
    this.#connections = null;
    for (const connection of open instanceof Map ? [...open.values()] : open === null ? [] : [open]) connection._closed(reason);
  }

  /** @internal A whole decoded packet. */
  _onPacket(packet: Packet): void {
    if (!validFromClient(packet)) throw new Error(`invalid packet of type ${packet.type}`);
    const connection = this.#get(packet.nsp);
    switch (packet.type) {
      case PacketType.CONNECT:
        if (connection !== undefined) throw new Error(`a second CONNECT to ${packet.nsp}`);
        this.#connect(packet.nsp, packet.data as Record<string, unknown> | undefined);
        return;
      case PacketType.DISCONNECT:
        if (connection === undefined) return;
        this.#delete(packet.nsp);
        connection._closed('client namespace disconnect');
        return;
      case PacketType.EVENT: {
        // Events for a namespace not (yet) connected are dropped, as socket.io does.
        if (connection === undefined) return;
        const data = packet.data as unknown[];
        connection._event(String(data[0]), data.slice(1), packet.id);
        return;
      }
      case PacketType.ACK:
        connection?._acked(packet.id!, packet.data as unknown[]);
        return;
      default:
        throw new Error(`unexpected packet type ${packet.type}`);
    }
  }

  #connect(nsp: string, auth: Record<string, unknown> | undefined): void {
    const Class = this.server._endpoint(nsp);
    if (Class === undefined) {
      this.#send({ type: PacketType.CONNECT_ERROR, nsp, data: { message: 'Invalid namespace' } });
      return;
    }
    let connection: SocketConnection;
    try {
      connection = new Class();
    } catch (err) {
      this.server.engine.reportError(err);
      this.#send({ type: PacketType.CONNECT_ERROR, nsp, data: { message: 'Internal error' } });
      return;
    }
    connection.id = randomBytes(15).toString('base64url');
    connection._client = this;
    connection._namespace = this.server.of(nsp);
    connection._opening(auth);
    this.#set(connection);
    this.#connectTimer?.cancel();
    this.#connectTimer = null;
    let verdict: unknown;
    try {
      // A class without its own onOpen never reads `info`: it is made only if read later.
      if (connection.onOpen !== SocketConnection.prototype.onOpen) verdict = connection.onOpen(connection.info);
    } catch (err) {
      this.#refuse(connection, err);
      return;
    }
    if (verdict !== null && typeof verdict === 'object' && typeof (verdict as Promise<unknown>).then === 'function') {
      (verdict as Promise<unknown>).then(
        (value) => this.#decided(connection, value),
        (err: unknown) => this.#refuse(connection, err),
      );
    } else {
      this.#decided(connection, verdict);
    }
  }

  #decided(connection: SocketConnection, verdict: unknown): void {
    if (this.session.closed || this.#get(connection.namespace) !== connection) return;
    if (verdict === false) {
      this.#refuse(connection, new ConnectRefusedError('Connection refused'));
      return;
    }
    this.#send({ type: PacketType.CONNECT, nsp: connection.namespace, data: { sid: connection.id } });
    connection._opened();
  }

  #refuse(connection: SocketConnection, err: unknown): void {
    if (this.#get(connection.namespace) !== connection) return;
    this.#delete(connection.namespace);
    connection._closed('server namespace disconnect');
    const message = err instanceof Error ? err.message : String(err);
    const data = err instanceof ConnectRefusedError && err.data !== undefined ? { message, data: err.data } : { message };
    this.#send({ type: PacketType.CONNECT_ERROR, nsp: connection.namespace, data });
  }

  #send(packet: Packet): void {
    for (const part of encode(packet)) this.session.send(part);
  }

  /** @internal The connection disconnected itself. */
  _forget(connection: SocketConnection): void {
    if (this.#get(connection.namespace) === connection) this.#delete(connection.namespace);
  }
}

/** BINARY_EVENT (5) or BINARY_ACK (6): attachments follow. */
function isBinaryHeader(text: string): boolean {
  const type = text.charCodeAt(0);
  return type === 0x35 || type === 0x36;
}
