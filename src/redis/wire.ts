/**
 * The bus's message format on a Redis channel: the sender's 8-byte id, then each part as a
 * tag byte (0 text, 1 bytes), a 4-byte big-endian length and the bytes. Compact, and Buffers
 * (Socket.IO attachments too) travel as they are, with no base64 or JSON around them.
 */
import { Buffer } from 'node:buffer';
import type { RelayParts } from '../relay.js';

export const ID_BYTES = 8;
const TEXT = 0;
const BYTES = 1;
const PART_HEAD = 5;

/** One message: `sender` then `parts`. */
export function pack(sender: Buffer, parts: RelayParts): Buffer {
  const bodies = parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : part));
  let size = ID_BYTES;
  for (const body of bodies) size += PART_HEAD + body.byteLength;
  const message = Buffer.allocUnsafe(size);
  sender.copy(message, 0, 0, ID_BYTES);
  let at = ID_BYTES;
  bodies.forEach((body, i) => {
    message[at] = typeof parts[i] === 'string' ? TEXT : BYTES;
    message.writeUInt32BE(body.byteLength, at + 1);
    message.set(body, at + PART_HEAD);
    at += PART_HEAD + body.byteLength;
  });
  return message;
}

/** Whether `message` was sent by `sender`. */
export function sentBy(message: Buffer, sender: Buffer): boolean {
  return message.length >= ID_BYTES && message.compare(sender, 0, ID_BYTES, 0, ID_BYTES) === 0;
}

/** The parts of a message (bytes as views into it), or null if it is not one of ours. */
export function unpack(message: Buffer): Array<string | Buffer> | null {
  const parts: Array<string | Buffer> = [];
  let at = ID_BYTES;
  if (message.length < at) return null;
  while (at < message.length) {
    if (message.length - at < PART_HEAD) return null;
    const tag = message[at];
    const end = at + PART_HEAD + message.readUInt32BE(at + 1);
    if ((tag !== TEXT && tag !== BYTES) || end > message.length) return null;
    const body = message.subarray(at + PART_HEAD, end);
    parts.push(tag === TEXT ? body.toString() : body);
    at = end;
  }
  return parts;
}
