/**
 * The bus's message format on a Redis channel: the sender's 8-byte id, then one or more
 * broadcasts (those made in one event-loop turn travel in one PUBLISH), each a 4-byte
 * big-endian length and its parts; a part is a tag byte (0 text, 1 bytes), a 4-byte length
 * and the bytes. Compact, and Buffers (Socket.IO attachments too) travel as they are, with no
 * base64 or JSON around them.
 */
import { Buffer } from 'node:buffer';
import type { RelayParts } from '../relay.js';

export const ID_BYTES = 8;
const TEXT = 0;
const BYTES = 1;
const LENGTH = 4;
const PART_HEAD = 1 + LENGTH;

/** One broadcast as it travels in a message: its length, then its parts. */
export function record(parts: RelayParts): Buffer {
  const bodies = parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : part));
  let size = LENGTH;
  for (const body of bodies) size += PART_HEAD + body.byteLength;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(size - LENGTH, 0);
  let at = LENGTH;
  bodies.forEach((body, i) => {
    out[at] = typeof parts[i] === 'string' ? TEXT : BYTES;
    out.writeUInt32BE(body.byteLength, at + 1);
    out.set(body, at + PART_HEAD);
    at += PART_HEAD + body.byteLength;
  });
  return out;
}

/** A message: `sender`, then `records` in order. */
export function message(sender: Buffer, records: Buffer[], bytes: number): Buffer {
  return Buffer.concat([sender, ...records], ID_BYTES + bytes);
}

/** Whether `message` was sent by `sender`. */
export function sentBy(message: Buffer, sender: Buffer): boolean {
  return message.length >= ID_BYTES && message.compare(sender, 0, ID_BYTES, 0, ID_BYTES) === 0;
}

/**
 * The most parts one broadcast may have (a Socket.IO packet and its binary attachments): a
 * message decodes into objects far larger than their 5-byte part heads, so this bounds what
 * one hostile broadcast on the channel can make a subscriber allocate.
 */
export const MAX_PARTS = 4096;

/**
 * Whether `message` is one of ours, whole and within MAX_PARTS per broadcast: read through
 * without allocating, so a malformed message delivers nothing and costs nothing.
 */
export function isBusMessage(message: Buffer): boolean {
  let at = ID_BYTES;
  if (message.length <= at) return false;
  while (at < message.length) {
    if (message.length - at < LENGTH) return false;
    const end = at + LENGTH + message.readUInt32BE(at);
    if (end > message.length) return false;
    let parts = 0;
    for (at += LENGTH; at < end; parts++) {
      if (end - at < PART_HEAD || parts === MAX_PARTS) return false;
      const tag = message[at];
      if (tag !== TEXT && tag !== BYTES) return false;
      at += PART_HEAD + message.readUInt32BE(at + 1);
    }
    if (at > end) return false;
  }
  return true;
}

/**
 * The broadcasts of a message isBusMessage() accepted, one at a time, each as its parts
 * (bytes as views into it): only one broadcast's parts exist at once.
 */
export function* broadcastsOf(message: Buffer): Generator<Array<string | Buffer>> {
  let at = ID_BYTES;
  while (at < message.length) {
    const end = at + LENGTH + message.readUInt32BE(at);
    const parts: Array<string | Buffer> = [];
    for (at += LENGTH; at < end; ) {
      const body = message.subarray(at + PART_HEAD, at + PART_HEAD + message.readUInt32BE(at + 1));
      parts.push(message[at] === TEXT ? body.toString() : body);
      at += PART_HEAD + body.length;
    }
    yield parts;
  }
}
