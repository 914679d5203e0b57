/**
 * Codecs turn message values into packet payloads and back. JSON is built in; MessagePack is
 * plugged in by the user (trews has no runtime dependency on it):
 *
 *   import * as msgpack from '@msgpack/msgpack';
 *   class Rpc extends MessageConnection { override codec = msgpackCodec(msgpack); }
 *
 * Any `{ encode(value), decode(bytes) }` object works.
 */
import { ReadError } from './errors.js';

export interface Codec {
  /** Shown in error messages ('json', 'msgpack', ...). */
  readonly name?: string;
  /** The payload for `value`: bytes, or a string sent as UTF-8. Throws if it cannot be encoded. */
  encode(value: unknown): Uint8Array | string;
  /** The value a payload holds. Throws if the bytes are not a valid encoding. */
  decode(payload: Buffer): unknown;
}

/**
 * A value could not be encoded (thrown, or rejected, by the sending call) or an incoming packet
 * could not be decoded into a message (reported to `onReadError`, which by default closes).
 */
export class CodecError extends ReadError {
  override readonly code = 'ERR_TREWS_CODEC';
}

/** JSON as UTF-8. `undefined` (alone), functions and symbols are not encodable; cycles and bigints throw. */
export const jsonCodec: Codec = {
  name: 'json',
  encode(value: unknown): string {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`${typeof value} is not representable in JSON`);
    return text;
  },
  decode(payload: Buffer): unknown {
    return JSON.parse(payload.toString('utf8'));
  },
};

/** The part of `@msgpack/msgpack` (or a compatible library) that `msgpackCodec` needs. */
export interface MessagePackLike {
  encode(value: unknown): Uint8Array;
  decode(data: Uint8Array): unknown;
}

/** MessagePack through a library the user supplies: `msgpackCodec(await import('@msgpack/msgpack'))`. */
export function msgpackCodec(lib: MessagePackLike): Codec {
  if (typeof lib?.encode !== 'function' || typeof lib.decode !== 'function') {
    throw new TypeError('msgpackCodec() needs a MessagePack library with encode() and decode(), e.g. @msgpack/msgpack');
  }
  return { name: 'msgpack', encode: (value) => lib.encode(value), decode: (payload) => lib.decode(payload) };
}

/** Encode with `codec`, turning any failure into a CodecError that names `what`. */
export function encodeWith(codec: Codec, value: unknown, what: string): Uint8Array | string {
  try {
    return codec.encode(value);
  } catch (err) {
    throw new CodecError(`${what} could not be encoded as ${codec.name ?? 'the codec'}: ${messageOf(err)}`, { cause: err });
  }
}

/** Decode with `codec`, turning any failure into a CodecError. */
export function decodeWith(codec: Codec, payload: Buffer): unknown {
  try {
    return codec.decode(payload);
  } catch (err) {
    throw new CodecError(`a ${payload.length}-byte packet is not valid ${codec.name ?? 'codec'} data: ${messageOf(err)}`, { cause: err });
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
