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

/** The broadcasts of a message, each as its parts (bytes as views into it), or null if it is not one of ours. */
export function unpack(message: Buffer): Array<Array<string | Buffer>> | null {
  const broadcasts: Array<Array<string | Buffer>> = [];
  let at = ID_BYTES;
  if (message.length <= at) return null;
  while (at < message.length) {
    if (message.length - at < LENGTH) return null;
    const end = at + LENGTH + message.readUInt32BE(at);
    if (end > message.length) return null;
    const parts = partsOf(message, at + LENGTH, end);
    if (parts === null) return null;
    broadcasts.push(parts);
    at = end;
  }
  return broadcasts;
}

function partsOf(message: Buffer, at: number, end: number): Array<string | Buffer> | null {
  const parts: Array<string | Buffer> = [];
  while (at < end) {
    if (end - at < PART_HEAD) return null;
    const tag = message[at];
    const partEnd = at + PART_HEAD + message.readUInt32BE(at + 1);
    if ((tag !== TEXT && tag !== BYTES) || partEnd > end) return null;
    const body = message.subarray(at + PART_HEAD, partEnd);
    parts.push(tag === TEXT ? body.toString() : body);
    at = partEnd;
  }
  return parts;
}
