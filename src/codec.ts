/**
 * Codecs turn message values into packet payloads and back. JSON is built in; MessagePack is
 * plugged in by the user (trews has no runtime dependency on it):
 *
 *   import * as msgpack from '@msgpack/msgpack';
 *   class Rpc extends MessageConnection { override codec = msgpackCodec(msgpack); }
 *
 * Any `{ encode(value), decode(bytes) }` object works.
 */
import { randomBytes } from 'node:crypto';
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
    const text = payload.toString('utf8');
    try {
      return JSON.parse(text);
    } catch (err) {
      if (!hasBareNonFinite(text)) throw err;
      throw new SyntaxError(`${messageOf(err)} (for bare NaN/Infinity, as Python's json writes them, use createJsonCodec({ nonFinite: true }))`);
    }
  },
};

export interface JsonCodecOptions {
  /**
   * Speak the JSON of Python's `json` module (and so of simpy.io and mosaik): read the bare
   * tokens `NaN`, `Infinity` and `-Infinity` as those numbers, and write non-finite numbers
   * as them (instead of `null`). Default false: strict JSON, where they are a `CodecError`.
   */
  nonFinite?: boolean;
}

/** A JSON codec with options; `createJsonCodec()` behaves as `jsonCodec`. */
export function createJsonCodec(options: JsonCodecOptions = {}): Codec {
  if (typeof options !== 'object' || options === null) throw new TypeError(`createJsonCodec() takes an options object ({ nonFinite }), got ${String(options)}`);
  if (!options.nonFinite) return jsonCodec;
  return {
    name: 'json (NaN, Infinity)',
    encode(value: unknown): string {
      let found = false;
      const text = JSON.stringify(value, (_key, v: unknown) => {
        if (typeof v !== 'number' || Number.isFinite(v)) return v;
        found = true;
        return `${SENTINEL}${String(v)}`;
      });
      if (text === undefined) throw new TypeError(`${typeof value} is not representable in JSON`);
      return found ? text.replace(QUOTED_SENTINEL, '$1') : text;
    },
    decode(payload: Buffer): unknown {
      const text = payload.toString('utf8');
      if (!text.includes('NaN') && !text.includes('Infinity')) return JSON.parse(text);
      // Bare tokens outside strings become what JSON.parse takes: 1e999 is read as Infinity,
      // NaN a sentinel string turned back afterwards (a walk: a reviver costs 4x the parse).
      let nan = false;
      const rewritten = text.replace(STRING_OR_NON_FINITE, (match: string, token: string | undefined) => {
        if (token === undefined) return match;
        if (token !== 'NaN') return token === 'Infinity' ? '1e999' : '-1e999';
        nan = true;
        return NAN_LITERAL;
      });
      if (rewritten === text) return JSON.parse(text);
      let value: unknown;
      try {
        value = JSON.parse(rewritten);
      } catch {
        return JSON.parse(text); // throws, about the text as received (never the rewritten one)
      }
      return nan ? restoreNaN(value) : value;
    },
  };
}

/** `value` with every NaN sentinel string replaced by NaN (in place: it was just parsed). */
function restoreNaN(value: unknown): unknown {
  if (value === NAN_STRING) return NaN;
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = restoreNaN(value[i]);
    return value;
  }
  const object = value as Record<string, unknown>;
  for (const key of Object.keys(object)) {
    if (key === NAN_STRING) throw new SyntaxError('NaN is not a valid object key');
    const item = object[key];
    const restored = restoreNaN(item);
    // defineProperty: a key named __proto__ is an own property here, not the prototype.
    if (restored !== item) Object.defineProperty(object, key, { value: restored, writable: true, enumerable: true, configurable: true });
  }
  return object;
}

/** A JSON string literal (skipped, unrolled so it stays linear), or a bare non-finite token. */
const STRING_OR_NON_FINITE = /"[^"\\]*(?:\\.[^"\\]*)*"|(?<![\w.+-])(NaN|-?Infinity)(?![\w.])/g;

function hasBareNonFinite(text: string): boolean {
  for (const match of text.matchAll(STRING_OR_NON_FINITE)) if (match[1] !== undefined) return true;
  return false;
}

/** Marks a non-finite number inside JSON text; the random part (never sent) keeps a peer's strings from matching it. */
const SENTINEL = `\u0000trews-${randomBytes(12).toString('hex')}:`;
const NAN_STRING = `${SENTINEL}NaN`;
const NAN_LITERAL = JSON.stringify(NAN_STRING);
const QUOTED_SENTINEL = new RegExp(`"${JSON.stringify(SENTINEL).slice(1, -1).replace(/\\/g, '\\\\')}(NaN|-?Infinity)"`, 'g');

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
