/** Socket.IO v5 packets: one shared encoder, and the checks socket.io-parser leaves to us. */
import type { Buffer } from 'node:buffer';
import { Encoder, PacketType, type Packet } from 'socket.io-parser';

const encoder = new Encoder();

/** A packet as Engine.IO messages: its text, then one binary message per attachment. */
export type Encoded = Array<string | Buffer>;

export function encode(packet: Packet): Encoded {
  return encoder.encode(packet) as Encoded;
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
