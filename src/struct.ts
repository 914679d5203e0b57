/**
 * A port of Python's `struct` module: compile a format string once, then pack
 * values into bytes and unpack bytes into values.
 *
 * Values: numbers for integers up to 32 bits, bigints for 8-byte integers
 * (`q Q`, `n N`, and `l L` under native `@` sizes), booleans for `?`,
 * numbers for `e f d`, Buffers for `c s p`. Differences from Python:
 * - `s p c` also accept strings, packed as their UTF-8 bytes (`c` needs exactly one byte).
 * - 64-bit codes accept a number only if it is a safe integer (else pass a bigint);
 *   codes up to 32 bits accept in-range bigints. Booleans are not integers here.
 * - `?` accepts booleans, numbers and bigints (packed as nonzero/zero).
 * - `f` overflow is a RangeError for every prefix (native CPython silently stores inf).
 * - `unpack` reads `size` bytes at `offset` and ignores any bytes after them
 *   (like Python's `unpack_from`); `'0p'` unpacks to an empty Buffer.
 * - Offsets must be non-negative; `packInto` returns the offset after the packed bytes.
 * - Errors are TypeError (bad format, wrong count or type) or RangeError (value out
 *   of range, buffer too short) instead of `struct.error`.
 * - `P` (pointer) is not supported; native sizes assume LP64 (64-bit Linux/macOS).
 */
import { endianness } from 'node:os';

/** A value returned by `unpack`. */
export type StructValue = number | bigint | boolean | Buffer;
/** A value accepted by `pack`: strings are UTF-8 encoded for `c s p`. */
export type StructInput = StructValue | Uint8Array | string;

/**
 * The tuple `unpack` returns for a format string literal: `StructValues<'!2Hq'>` is
 * `[number, number, bigint]`. A format only known at run time, a repeat count over 99 or a
 * bad format give `StructValue[]`.
 */
export type StructValues<F extends string> = string extends F
  ? StructValue[]
  : F extends `${'=' | '<' | '>' | '!'}${infer Rest}`
    ? Fields<Rest, false>
    : Fields<F extends `@${infer Rest}` ? Rest : F, true>;

// The type-level twin of the constructor's parser below: one code at a time, digits first.
type Digit = '0' | '1' | '2' | '3' | '4' | '5' | '6' | '7' | '8' | '9';
interface CodeValues {
  c: Buffer; '?': boolean; b: number; B: number; h: number; H: number; i: number; I: number;
  q: bigint; Q: bigint; e: number; f: number; d: number; s: Buffer; p: Buffer;
}
/** What one code unpacks to (never: a bad code). `l L` are 8 bytes with native sizes; `n N` exist only there. */
type CodeValue<C extends string, Native extends boolean> = C extends keyof CodeValues
  ? CodeValues[C]
  : C extends 'l' | 'L' ? (Native extends true ? bigint : number)
  : C extends 'n' | 'N' ? (Native extends true ? bigint : never)
  : never;
type Repeat<T, N extends number, Acc extends unknown[] = []> = Acc['length'] extends N ? Acc : Repeat<T, N, [...Acc, T]>;
type Fields<S extends string, Native extends boolean, Acc extends unknown[] = [], Count extends string = ''> =
  S extends `${infer C}${infer Rest}`
    ? C extends Digit
      ? Fields<Rest, Native, Acc, `${Count}${C}`>
      : Count extends '' // no count: whitespace is skipped, like Python
        ? C extends ' ' | '\t' | '\n' | '\r' | '\v' | '\f' ? Fields<Rest, Native, Acc> : Counted<Rest, Native, Acc, C, 1>
        : Count extends `${Digit}` | `${Digit}${Digit}`
          ? Count extends `${infer N extends number}` ? Counted<Rest, Native, Acc, C, N> : StructValue[] // '07'
          : StructValue[]
    : Count extends '' ? Acc : StructValue[];
/** N of code C: `s p` are one Buffer whatever N, `x` is padding. */
type Counted<Rest extends string, Native extends boolean, Acc extends unknown[], C extends string, N extends number> =
  C extends 'x' ? Fields<Rest, Native, Acc>
  : [CodeValue<C, Native>] extends [never] ? StructValue[]
  : C extends 's' | 'p' ? Fields<Rest, Native, [...Acc, Buffer]>
  : Fields<Rest, Native, [...Acc, ...Repeat<CodeValue<C, Native>, N>]>;

// Field kinds; a switch on small ints keeps the pack/unpack loops monomorphic.
const PAD = 0, CHAR = 1, BOOL = 2, I8 = 3, U8 = 4, I16 = 5, U16 = 6, I32 = 7, U32 = 8;
const I64 = 9, U64 = 10, F16 = 11, F32 = 12, F64 = 13, STR = 14, PSTR = 15;

/** Byte size of each kind (STR/PSTR/PAD use the repeat count instead). */
const SIZE = [1, 1, 1, 1, 1, 2, 2, 4, 4, 8, 8, 2, 4, 8, 1, 1];
/** Integer ranges for kinds up to 32 bits, indexed by kind. */
const MIN = [0, 0, 0, -0x80, 0, -0x8000, 0, -0x80000000, 0];
const MAX = [0, 0, 0, 0x7f, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0xffffffff];
const I64_MIN = -(2n ** 63n), I64_MAX = 2n ** 63n - 1n, U64_MAX = 2n ** 64n - 1n;

/** code -> [kind with standard sizes, kind with native `@` sizes]; -1 = native only. */
const CODES = new Map<string, readonly [number, number]>([
  ['x', [PAD, PAD]], ['c', [CHAR, CHAR]], ['?', [BOOL, BOOL]],
  ['b', [I8, I8]], ['B', [U8, U8]], ['h', [I16, I16]], ['H', [U16, U16]],
  ['i', [I32, I32]], ['I', [U32, U32]], ['l', [I32, I64]], ['L', [U32, U64]],
  ['q', [I64, I64]], ['Q', [U64, U64]], ['n', [-1, I64]], ['N', [-1, U64]],
  ['e', [F16, F16]], ['f', [F32, F32]], ['d', [F64, F64]], ['s', [STR, STR]], ['p', [PSTR, PSTR]],
]);
const ACCEPTED = 'x c b B ? h H i I l L q Q n N e f d s p with optional prefix @ = < > !';
const SPACE = ' \t\n\r\v\f'; // Python's Py_ISSPACE
const MAX_SIZE = 0x7fffffff;
/** The most values one Struct packs or unpacks: each is an object, so a huge count is memory a format string alone could demand. */
const MAX_VALUES = 65536;
const NATIVE_LE = endianness() === 'LE';

interface Field {
  readonly kind: number;
  readonly offset: number; // relative to the start of the struct
  readonly len: number; // byte length (the count for s/p)
  readonly code: string;
}

/**
 * A compiled format. `new Struct('!2H')` is a `Struct<'!2H'>`, whose `unpack` returns
 * `[number, number]` (see StructValues); a plain `Struct` takes any format.
 */
// `any` by default so that every Struct<'...'> is a `Struct` (a `string` default would make them unrelated).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export class Struct<F extends string = any> {
  /** The format string as given. */
  readonly format: string;
  /** Packed size in bytes (Python's `calcsize`). */
  readonly size: number;
  /** Number of values `pack` takes and `unpack` returns. */
  readonly count: number;
  readonly #fields: readonly Field[];
  readonly #little: boolean;

  constructor(format: F) {
    if (typeof format !== 'string') throw new TypeError(`Struct: format must be a string, got ${typeof format}`);
    this.format = format;
    let i = 0;
    let native = true; // native sizes and alignment
    let little = NATIVE_LE;
    switch (format[0]) {
      case '@': i = 1; break;
      case '=': i = 1; native = false; break;
      case '<': i = 1; native = false; little = true; break;
      case '>': case '!': i = 1; native = false; little = false; break;
    }
    const fields: Field[] = [];
    let size = 0;
    while (i < format.length) {
      let ch = format[i]!;
      if (SPACE.includes(ch)) { i++; continue; }
      let count = 1;
      if (ch >= '0' && ch <= '9') {
        const start = i;
        count = 0;
        while (i < format.length && format[i]! >= '0' && format[i]! <= '9') {
          count = count * 10 + (format.charCodeAt(i) - 48);
          if (count > MAX_SIZE) throw new RangeError(`Struct: repeat count at index ${start} in '${format}' is too large`);
          i++;
        }
        if (i === format.length) {
          throw new TypeError(`Struct: repeat count at index ${start} in '${format}' is not followed by a format character (accepted: ${ACCEPTED})`);
        }
        ch = format[i]!;
      }
      const kinds = CODES.get(ch);
      if (kinds === undefined) {
        throw new TypeError(`Struct: bad format character '${ch}' at index ${i} in '${format}' (accepted: ${ACCEPTED})`);
      }
      const kind = native ? kinds[1] : kinds[0];
      if (kind < 0) {
        throw new TypeError(`Struct: format character '${ch}' at index ${i} in '${format}' is only allowed with native sizes (no prefix or '@'), not '${format[0]}'`);
      }
      const itemSize = SIZE[kind]!;
      // Native mode aligns each numeric field to its own size, even with a zero count (as CPython does).
      if (native && kind !== PAD && kind !== STR && kind !== PSTR) size = Math.ceil(size / itemSize) * itemSize;
      if (kind === STR || kind === PSTR) {
        fields.push({ kind, offset: size, len: count, code: ch });
        size += count;
      } else if (kind === PAD) {
        size += count;
      } else {
        // Checked before the loop: '1000000000i' must not build a billion fields first.
        if (fields.length + count > MAX_VALUES) {
          throw new RangeError(`Struct: '${format}' has more than ${MAX_VALUES} values (a repeat count of ${count} at index ${i}); use 's' for a run of bytes`);
        }
        if (size + count * itemSize > MAX_SIZE) throw new RangeError(`Struct: total size of '${format}' is too large`);
        for (let k = 0; k < count; k++, size += itemSize) fields.push({ kind, offset: size, len: itemSize, code: ch });
      }
      if (size > MAX_SIZE) throw new RangeError(`Struct: total size of '${format}' is too large`);
      i++;
    }
    this.size = size;
    this.count = fields.length;
    this.#fields = fields;
    this.#little = little;
  }

  /** Packs the values into a new Buffer of `size` bytes. */
  pack(...values: StructInput[]): Buffer {
    this.#checkCount('pack', values.length);
    const out = Buffer.allocUnsafe(this.size);
    this.#write(out, 0, values);
    return out;
  }

  /** Packs the values into `buffer` at `offset`; returns the offset just past the written bytes. */
  packInto(buffer: Uint8Array, offset: number, ...values: StructInput[]): number {
    this.#checkCount('packInto', values.length);
    this.#checkRoom('packInto', buffer, offset);
    this.#write(buffer, offset, values);
    return offset + this.size;
  }

  /** Unpacks `size` bytes of `buffer` starting at `offset`. Returned Buffers are copies. */
  unpack(buffer: Uint8Array, offset = 0): StructValues<F> {
    this.#checkRoom('unpack', buffer, offset);
    const dv = viewOf(buffer);
    const abs = buffer.byteOffset; // DataView offsets are into the whole ArrayBuffer
    const le = this.#little;
    const fields = this.#fields;
    const out: StructValue[] = [];
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      const o = offset + f.offset;
      switch (f.kind) {
        case CHAR: out.push(copyOut(buffer, o, 1)); break;
        case BOOL: out.push(buffer[o] !== 0); break;
        case I8: out.push(dv.getInt8(abs + o)); break;
        case U8: out.push(buffer[o]!); break;
        case I16: out.push(dv.getInt16(abs + o, le)); break;
        case U16: out.push(dv.getUint16(abs + o, le)); break;
        case I32: out.push(dv.getInt32(abs + o, le)); break;
        case U32: out.push(dv.getUint32(abs + o, le)); break;
        case I64: out.push(dv.getBigInt64(abs + o, le)); break;
        case U64: out.push(dv.getBigUint64(abs + o, le)); break;
        case F16: out.push(halfToNumber(dv.getUint16(abs + o, le))); break;
        case F32: out.push(dv.getFloat32(abs + o, le)); break;
        case F64: out.push(dv.getFloat64(abs + o, le)); break;
        case STR: out.push(copyOut(buffer, o, f.len)); break;
        case PSTR: {
          // The length byte is capped at count-1, like CPython (which errors on '0p' instead).
          const n = f.len === 0 ? 0 : Math.min(buffer[o]!, f.len - 1);
          out.push(copyOut(buffer, o + 1, n));
          break;
        }
      }
    }
    return out as StructValues<F>;
  }

  #checkCount(what: string, got: number): void {
    if (got !== this.count) {
      throw new TypeError(`Struct: ${what} expected ${this.count} value${this.count === 1 ? '' : 's'} for '${this.format}', got ${got}`);
    }
  }

  #checkRoom(what: string, buffer: Uint8Array, offset: number): void {
    if (!(buffer instanceof Uint8Array)) throw new TypeError(`Struct '${this.format}': ${what} needs a Uint8Array or Buffer`);
    if (!Number.isInteger(offset) || offset < 0) {
      throw new RangeError(`Struct '${this.format}': ${what} offset must be a non-negative integer, got ${show(offset)}`);
    }
    const avail = buffer.length - offset;
    if (avail < this.size) {
      throw new RangeError(`Struct '${this.format}': ${what} needs ${this.size} bytes at offset ${offset}, got ${Math.max(avail, 0)} (buffer length ${buffer.length})`);
    }
  }

  #write(buf: Uint8Array, base: number, values: readonly StructInput[]): void {
    buf.fill(0, base, base + this.size); // pad bytes and short strings are zero, as in Python
    const dv = viewOf(buf);
    const le = this.#little;
    const fields = this.#fields;
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      const v = values[i];
      const o = base + f.offset; // index into buf
      const a = buf.byteOffset + o; // offset into dv's ArrayBuffer
      switch (f.kind) {
        case CHAR: {
          const b = this.#bytes(f, i, v);
          if (b.length !== 1) throw this.#error(TypeError, f, i, v, `must be exactly 1 byte, got ${b.length}`);
          buf[o] = b[0]!;
          break;
        }
        case BOOL:
          if (typeof v !== 'boolean' && typeof v !== 'number' && typeof v !== 'bigint') {
            throw this.#error(TypeError, f, i, v, `must be a boolean, got ${kindOf(v)}`);
          }
          buf[o] = v ? 1 : 0;
          break;
        case I8: dv.setInt8(a, this.#int(f, i, v)); break;
        case U8: buf[o] = this.#int(f, i, v); break;
        case I16: dv.setInt16(a, this.#int(f, i, v), le); break;
        case U16: dv.setUint16(a, this.#int(f, i, v), le); break;
        case I32: dv.setInt32(a, this.#int(f, i, v), le); break;
        case U32: dv.setUint32(a, this.#int(f, i, v), le); break;
        case I64: dv.setBigInt64(a, this.#big(f, i, v, I64_MIN, I64_MAX), le); break;
        case U64: dv.setBigUint64(a, this.#big(f, i, v, 0n, U64_MAX), le); break;
        case F16: {
          const h = halfBits(this.#float(f, i, v));
          if (h < 0) throw this.#error(RangeError, f, i, v, 'is too large to pack with e format (max 65504)');
          dv.setUint16(a, h, le);
          break;
        }
        case F32: {
          const x = this.#float(f, i, v);
          if (Number.isFinite(x) && !Number.isFinite(Math.fround(x))) {
            throw this.#error(RangeError, f, i, v, 'is too large to pack with f format (max 3.4028234663852886e+38)');
          }
          dv.setFloat32(a, x, le);
          break;
        }
        case F64: dv.setFloat64(a, this.#float(f, i, v), le); break;
        case STR: {
          const b = this.#bytes(f, i, v);
          buf.set(b.length > f.len ? b.subarray(0, f.len) : b, o); // truncate, zero-pad
          break;
        }
        case PSTR: {
          if (f.len === 0) { this.#bytes(f, i, v); break; } // nothing to write, but still type-check
          const b = this.#bytes(f, i, v);
          const n = Math.min(b.length, f.len - 1);
          buf[o] = Math.min(n, 255);
          buf.set(b.subarray(0, n), o + 1);
          break;
        }
      }
    }
  }

  /** Validates an integer for a code up to 32 bits. */
  #int(f: Field, i: number, v: unknown): number {
    let n: number;
    if (typeof v === 'number') {
      if (!Number.isInteger(v)) throw this.#error(TypeError, f, i, v, 'is not an integer');
      n = v;
    } else if (typeof v === 'bigint') {
      n = Number(v);
    } else {
      throw this.#error(TypeError, f, i, v, `must be an integer (number or bigint), got ${kindOf(v)}`);
    }
    const min = MIN[f.kind]!, max = MAX[f.kind]!;
    if (n < min || n > max) throw this.#error(RangeError, f, i, v, `out of range ${min}..${max}`);
    return n;
  }

  /** Validates an integer for an 8-byte code. */
  #big(f: Field, i: number, v: unknown, min: bigint, max: bigint): bigint {
    let n: bigint;
    if (typeof v === 'bigint') {
      n = v;
    } else if (typeof v === 'number') {
      if (!Number.isInteger(v)) throw this.#error(TypeError, f, i, v, 'is not an integer');
      // Beyond 2**53 the number has already lost precision: make the caller say what they mean.
      if (!Number.isSafeInteger(v)) throw this.#error(TypeError, f, i, v, 'is not a safe integer; pass a bigint');
      n = BigInt(v);
    } else {
      throw this.#error(TypeError, f, i, v, `must be an integer (bigint or safe-integer number), got ${kindOf(v)}`);
    }
    if (n < min || n > max) throw this.#error(RangeError, f, i, v, `out of range ${min}..${max}`);
    return n;
  }

  #float(f: Field, i: number, v: unknown): number {
    if (typeof v !== 'number') throw this.#error(TypeError, f, i, v, `must be a number, got ${kindOf(v)}`);
    return v;
  }

  #bytes(f: Field, i: number, v: unknown): Uint8Array {
    if (v instanceof Uint8Array) return v;
    if (typeof v === 'string') return Buffer.from(v, 'utf8');
    throw this.#error(TypeError, f, i, v, `must be a Buffer, Uint8Array or string, got ${kindOf(v)}`);
  }

  #error(ctor: typeof TypeError | typeof RangeError, f: Field, i: number, v: unknown, what: string): Error {
    return new ctor(`Struct '${this.format}': value ${show(v)} at field ${i + 1} ('${f.code}') ${what}`);
  }
}

// Constructing a DataView costs more than a small unpack, so keep one per ArrayBuffer
// (Buffers share pooled ArrayBuffers); a WeakMap lets the ArrayBuffers be collected.
const views = new WeakMap<ArrayBufferLike, DataView>();
/** Frames from one received chunk share its ArrayBuffer: the last view is usually the one. */
let lastView: DataView | null = null;
function viewOf(u8: Uint8Array): DataView {
  if (lastView !== null && lastView.buffer === u8.buffer) return lastView;
  let dv = views.get(u8.buffer);
  if (dv === undefined) {
    dv = new DataView(u8.buffer);
    views.set(u8.buffer, dv);
  }
  lastView = dv;
  return dv;
}

/** A fresh Buffer holding src[o, o+n): never a view, callers may reuse their input. */
function copyOut(src: Uint8Array, o: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  b.set(src.subarray(o, o + n));
  return b;
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return 'bytes';
  return Array.isArray(v) ? 'array' : typeof v;
}

/** A short printable form of a value for error messages. */
function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  if (typeof v === 'object' && v !== null) return Array.isArray(v) ? `[array of ${v.length}]` : '[object]';
  return String(v);
}

/** Rounds a non-negative number to an integer, ties to even. */
function roundEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}

/** IEEE 754 binary16 bits of x, rounded half to even; -1 on overflow (CPython raises there). */
function halfBits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00; // CPython's quiet NaN
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a >= 65520) return -1; // halfway between 65504 and 2**16 rounds (to even) up to 2**16
  // Subnormal: units of 2**-24 (exact scaling); a round-up to 1024 is the smallest normal's encoding.
  if (a < 2 ** -14) return sign | roundEven(a * 2 ** 24);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--; // guard against log2 rounding near powers of two
  else if (2 ** (e + 1) <= a) e++;
  // A mantissa round-up to 1024 carries into the exponent, which is the right encoding.
  return sign | (((e + 15) << 10) + roundEven((a / 2 ** e - 1) * 1024));
}

function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return s * (1024 + m) * 2 ** (e - 25);
}
