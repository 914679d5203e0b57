/** Socket.IO v5 packets: one shared encoder, and the checks socket.io-parser leaves to us. */
import type { Buffer } from 'node:buffer';
import { Encoder, PacketType, type Packet } from 'socket.io-parser';

const encoder = new Encoder();

/** A packet as Engine.IO messages: its text, then one binary message per attachment. */
export type Encoded = Array<string | Buffer>;

export function encode(packet: Packet): Encoded {
  const { type, data } = packet;
  if ((type === PacketType.EVENT || type === PacketType.ACK) && isPlain(data)) {
    // What the encoder makes of it, without its walk for binary: strings, numbers, booleans
    // and null hold none (nor a toJSON to call).
    let text = type === PacketType.EVENT ? '2' : '3';
    if (packet.nsp && packet.nsp !== '/') text += `${packet.nsp},`;
    if (packet.id != null) text += packet.id;
    return [text + plainJSON(data)];
  }
  return encoder.encode(packet) as Encoded;
}

/** A character JSON.stringify escapes in a string (a surrogate only when lone; here any). */
const ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;

/** JSON.stringify(data) for an array of plain values: a string with nothing to escape is quoted as it is (faster). */
function plainJSON(data: unknown[]): string {
  let json = '[';
  for (let i = 0; i < data.length; i++) {
    const value = data[i];
    if (i > 0) json += ',';
    json += typeof value === 'string' && !ESCAPED.test(value) ? `"${value}"` : (JSON.stringify(value) ?? 'null');
  }
  return `${json}]`;
}

function isPlain(data: unknown): data is unknown[] {
  if (!Array.isArray(data)) return false;
  for (let i = 0; i < data.length; i++) {
    const value: unknown = data[i];
    const kind = typeof value;
    if (kind !== 'string' && kind !== 'number' && kind !== 'boolean' && value != null) return false;
  }
  return true;
}

/**
 * The common text packets, `2["name",...]` and `3<id>[...]` (with `/nsp,` before the id, if
 * any), as the Decoder makes them, with one JSON.parse. Null for any other shape or an invalid
 * payload: the Decoder then decides (and throws what it throws).
 */
export function decodeEventOrAck(text: string): Packet | null {
  const type = text.charCodeAt(0) - 0x30;
  if (type !== PacketType.EVENT && type !== PacketType.ACK) return null;
  let at = 1;
  let nsp = '/';
  if (text.charCodeAt(1) === 0x2f /* '/' */) {
    const comma = text.indexOf(',', 1);
    if (comma === -1) return null;
    nsp = text.slice(1, comma);
    at = comma + 1;
  }
  const idStart = at;
  while (isDigit(text.charCodeAt(at))) at++;
  if (text.charCodeAt(at) !== 0x5b /* '[' */) return null;
  let data: unknown;
  try {
    data = JSON.parse(text.slice(at));
  } catch {
    return null;
  }
  if (!Array.isArray(data)) return null;
  if (type === PacketType.EVENT) {
    const name: unknown = data[0];
    if (typeof name !== 'number' && (typeof name !== 'string' || RESERVED.has(name))) return null;
  }
  return at === idStart ? { type, nsp, data } : { type, nsp, id: Number(text.slice(idStart, at)), data };
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/** Whether a decoded packet may come from a client (CONNECT_ERROR may not; ack ids are integers). */
export function validFromClient(packet: Packet): boolean {
  if (packet.type === PacketType.CONNECT_ERROR) return false;
  if (packet.id !== undefined && !(Number.isSafeInteger(packet.id) && packet.id >= 0)) return false;
  if ((packet.type === PacketType.ACK || packet.type === PacketType.BINARY_ACK) && packet.id === undefined) return false;
  return true;
}

/** Event names socket.io-client keeps for itself: an event of that name would never reach the app. */
const RESERVED: ReadonlySet<string> = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);

/** Refuse to send an event the client could not receive. */
export function checkEventName(name: string): void {
  if (typeof name !== 'string') throw new TypeError(`an event name is a string, got ${typeof name}`);
  if (RESERVED.has(name)) throw new TypeError(`'${name}' is a reserved event name in socket.io-client`);
}
