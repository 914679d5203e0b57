import { execFileSync } from 'node:child_process';
import { endianness } from 'node:os';
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Struct, type StructInput, type StructValue } from '../src/struct.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const hex = (h: string): Buffer => Buffer.from(h, 'hex');

// ---------------------------------------------------------------------------
// Independent half-float oracle: decode bits by formula, round by searching the
// (monotonic) positive bit patterns for the nearest value, ties to even bits.
function halfValue(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (e === 0 ? m / 1024 * 2 ** -14 : (1 + m / 1024) * 2 ** (e - 15));
}
function halfRound(x: number): number {
  if (Number.isNaN(x) || !Number.isFinite(x)) return x;
  const sign = x < 0 || Object.is(x, -0) ? -1 : 1;
  const a = Math.abs(x);
  let lo = 0, hi = 0x7c00; // find largest bits with value <= a (0x7c00 acts as 65536)
  const val = (k: number): number => (k === 0x7c00 ? 65536 : halfValue(k));
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (val(mid) <= a) lo = mid; else hi = mid;
  }
  const d1 = a - val(lo), d2 = val(lo + 1) - a;
  const k = d1 < d2 ? lo : d2 < d1 ? lo + 1 : lo % 2 === 0 ? lo : lo + 1;
  if (k === 0x7c00) throw new Error('overflow');
  return sign * halfValue(k);
}

// ---------------------------------------------------------------------------
describe('Struct basics', () => {
  it("Pants' case: '!2H'", () => {
    const s = new Struct('!2H');
    expect(s.size).toBe(4);
    expect(s.count).toBe(2);
    expect(s.format).toBe('!2H');
    const packed = s.pack(42, 81);
    expect(packed).toEqual(hex('002a0051'));
    expect(s.unpack(packed)).toEqual([42, 81]);
  });

  it('uses the byte order of each prefix', () => {
    const native = endianness() === 'LE' ? '0201' : '0102';
    expect(new Struct('<H').pack(0x0102).toString('hex')).toBe('0201');
    expect(new Struct('>H').pack(0x0102).toString('hex')).toBe('0102');
    expect(new Struct('!H').pack(0x0102).toString('hex')).toBe('0102');
    expect(new Struct('=H').pack(0x0102).toString('hex')).toBe(native);
    expect(new Struct('@H').pack(0x0102).toString('hex')).toBe(native);
    expect(new Struct('H').pack(0x0102).toString('hex')).toBe(native);
  });

  it('computes sizes, native alignment and counts', () => {
    const cases: [string, number, number][] = [
      ['', 0, 0], ['<', 0, 0], ['x', 1, 0], ['3x', 3, 0], ['0s', 0, 1], ['10s', 10, 1], ['5p', 5, 1],
      ['@bi', 8, 2], ['=bi', 5, 2], ['@hq', 16, 2], ['@ci', 8, 2], ['@ib', 5, 2], ['@b0i', 4, 1],
      ['llh0l', 24, 3], ['@l', 8, 1], ['<l', 4, 1], ['@n', 8, 1], ['@be', 4, 2], ['@?d', 16, 2],
      ['<4H2q', 24, 6], ['@b3s i', 8, 3], ['< 2H\tI\n', 8, 3],
    ];
    for (const [fmt, size, count] of cases) {
      const s = new Struct(fmt);
      expect([fmt, s.size, s.count]).toEqual([fmt, size, count]);
    }
  });

  it('returns bigints for 8-byte integers and numbers for the rest', () => {
    expect(new Struct('<l').unpack(hex('ffffffff'))).toEqual([-1]);
    expect(new Struct('@l').unpack(hex('ffffffffffffffff'))).toEqual([-1n]);
    expect(new Struct('@L').unpack(hex('ffffffffffffffff'))).toEqual([2n ** 64n - 1n]);
    expect(new Struct('@nN').unpack(hex('ffffffffffffffff0100000000000000'))).toEqual([-1n, 1n]);
    expect(new Struct('<qQ').unpack(Buffer.alloc(16))).toEqual([0n, 0n]);
  });

  it('treats whitespace between codes as insignificant', () => {
    const a = new Struct('< 2H\tI\n q');
    const c = new Struct('<2HIq');
    expect(a.size).toBe(c.size);
    expect(a.pack(1, 2, 3, 4n)).toEqual(c.pack(1, 2, 3, 4n));
  });

  it('packs s/p/c from Buffers, Uint8Arrays and UTF-8 strings', () => {
    expect(new Struct('5s').pack('hé').toString('hex')).toBe('68c3a90000');
    expect(new Struct('2s').pack('héllo').toString('hex')).toBe('68c3'); // truncated bytewise
    expect(new Struct('4p').pack(new Uint8Array([1, 2, 3, 4, 5])).toString('hex')).toBe('03010203');
    expect(new Struct('c').pack('A')).toEqual(b('A'));
    expect(new Struct('0s').pack('abc')).toEqual(Buffer.alloc(0));
    expect(new Struct('0s').unpack(Buffer.alloc(0))).toEqual([Buffer.alloc(0)]);
    expect(new Struct('0p').unpack(Buffer.alloc(0))).toEqual([Buffer.alloc(0)]);
  });

  it('accepts safe-integer numbers for 64-bit codes and in-range bigints for small codes', () => {
    const s = new Struct('<qQH');
    expect(s.unpack(s.pack(-(2 ** 53) + 1, 2 ** 53 - 1, 65535n))).toEqual([-(2n ** 53n) + 1n, 2n ** 53n - 1n, 65535]);
    expect(new Struct('?').pack(2)).toEqual(hex('01'));
    expect(new Struct('3?').unpack(hex('000280'))).toEqual([false, true, true]);
  });

  it('unpacks at an offset and from Uint8Array views', () => {
    const s = new Struct('>HI');
    const backing = new Uint8Array(20);
    const view = backing.subarray(5, 15);
    s.packInto(view, 3, 0xbeef, 0xdeadbeef);
    expect(Buffer.from(backing.subarray(8, 14)).toString('hex')).toBe('beefdeadbeef');
    expect(s.unpack(view, 3)).toEqual([0xbeef, 0xdeadbeef]);
    expect(s.unpack(backing, 8)).toEqual([0xbeef, 0xdeadbeef]);
    // Longer buffers are fine: only `size` bytes are read.
    expect(s.unpack(Buffer.concat([hex('000100000002'), hex('ffff')]))).toEqual([1, 2]);
  });

  it('packInto zeroes pads, leaves neighbours alone and returns the end offset', () => {
    const s = new Struct('<bxH');
    const buf = Buffer.alloc(8, 0xaa);
    expect(s.packInto(buf, 2, -1, 0x1234)).toBe(6);
    expect(buf.toString('hex')).toBe('aaaaff003412aaaa');
  });

  it('returns copies for c/s/p, never views of the input', () => {
    const s = new Struct('c3s4p');
    const input = Buffer.alloc(8); // not pooled: its ArrayBuffer is its own
    hex('41' + '626364' + '03656667').copy(input);
    const out = s.unpack(input) as Buffer[];
    expect(out).toEqual([b('A'), b('bcd'), b('efg')]);
    for (const v of out) expect(v.buffer).not.toBe(input.buffer);
    input.fill(0);
    expect(out).toEqual([b('A'), b('bcd'), b('efg')]);
  });

  it('handles p length bytes larger than the field', () => {
    expect(new Struct('3p').unpack(hex('ff6162'))).toEqual([b('ab')]);
    expect(new Struct('1p').unpack(hex('05'))).toEqual([b('')]);
  });
});

// ---------------------------------------------------------------------------
describe('round trips of every code with edge values', () => {
  const edges: Record<string, StructInput[]> = {
    c: [b('\x00'), b('\xff'), b('z')],
    b: [-128, 127, 0, -1],
    B: [0, 255, 1],
    '?': [true, false],
    h: [-32768, 32767, 0, -1],
    H: [0, 65535, 1],
    i: [-(2 ** 31), 2 ** 31 - 1, 0, -1],
    I: [0, 2 ** 32 - 1, 1],
    l: [-(2 ** 31), 2 ** 31 - 1, 0, -1],
    L: [0, 2 ** 32 - 1, 1],
    q: [-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n],
    Q: [0n, 2n ** 64n - 1n, 1n],
    n: [-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n],
    N: [0n, 2n ** 64n - 1n, 1n],
    e: [0, -0, 65504, -65504, 2 ** -24, 2 ** -14, 0.5, Infinity, -Infinity, NaN],
    f: [0, -0, 3.4028234663852886e38, -(2 ** -149), 1.5, Infinity, NaN],
    d: [0, -0, Number.MAX_VALUE, 5e-324, Math.PI, -Infinity, NaN],
  };
  for (const prefix of ['<', '>', '!', '=', '@']) {
    it(`prefix '${prefix}'`, () => {
      for (const [code, values] of Object.entries(edges)) {
        if ((code === 'n' || code === 'N') && prefix !== '@') continue;
        const s = new Struct(`${prefix}${values.length}${code}`);
        const expected = prefix === '@' && (code === 'l' || code === 'L') ? values.map((v) => BigInt(v as number)) : values;
        expect([code, s.unpack(s.pack(...values))]).toEqual([code, expected]);
      }
      const strs = new Struct(`${prefix}3s4px2x`);
      expect(strs.unpack(strs.pack(b('abc'), b('xyz')))).toEqual([b('abc'), b('xyz')]);
    });
  }

  it('half floats: every bit pattern round-trips, known encodings match', () => {
    const s = new Struct('<e');
    const buf = Buffer.alloc(2);
    for (let bits = 0; bits < 0x10000; bits++) {
      buf.writeUInt16LE(bits);
      const [v] = s.unpack(buf) as [number];
      const expected = halfValue(bits);
      if (Number.isNaN(expected)) {
        expect(v).toBeNaN();
        continue;
      }
      if (!Object.is(v, expected)) expect([bits, v]).toEqual([bits, expected]);
      const back = s.pack(v).readUInt16LE();
      if (back !== bits) expect([bits, back]).toEqual([bits, bits]);
    }
    const enc = (x: number): string => new Struct('>e').pack(x).toString('hex');
    expect([1, -2, 65504, 2 ** -24, 2 ** -14, NaN, Infinity, -0, 65519.99].map(enc)).toEqual(
      ['3c00', 'c000', '7bff', '0001', '0400', '7e00', '7c00', '8000', '7bff'],
    );
  });
});

// ---------------------------------------------------------------------------
describe('errors', () => {
  it('rejects bad format characters, naming them and their position', () => {
    const msg = "Struct: bad format character 'z' at index 3 in '!HHz' (accepted: x c b B ? h H i I l L q Q n N e f d s p with optional prefix @ = < > !)";
    expect(() => new Struct('!HHz')).toThrow(TypeError);
    expect(() => new Struct('!HHz')).toThrow(msg);
    expect(() => new Struct('<H>')).toThrow("bad format character '>' at index 2");
    expect(() => new Struct('4 H')).toThrow("bad format character ' ' at index 1");
    expect(() => new Struct(' <H')).toThrow("bad format character '<' at index 1");
    expect(() => new Struct('P')).toThrow("bad format character 'P' at index 0");
    expect(() => new Struct('<2')).toThrow(/repeat count at index 1 in '<2' is not followed by a format character/);
    expect(() => new Struct('99999999999H')).toThrow(RangeError);
  });

  it('allows n/N only with native sizes', () => {
    for (const fmt of ['<n', '>N', '!n', '=N']) {
      expect(() => new Struct(fmt)).toThrow(TypeError);
      expect(() => new Struct(fmt)).toThrow(`'${fmt[1]}' at index 1 in '${fmt}' is only allowed with native sizes`);
    }
    expect(new Struct('@nN').size).toBe(16);
    expect(new Struct('nN').size).toBe(16);
  });

  it('rejects the wrong number of values', () => {
    const s = new Struct('!2H');
    expect(() => s.pack(1, 2, 3)).toThrow(TypeError);
    expect(() => s.pack(1, 2, 3)).toThrow("pack expected 2 values for '!2H', got 3");
    expect(() => s.pack(1)).toThrow("pack expected 2 values for '!2H', got 1");
    expect(() => s.packInto(Buffer.alloc(4), 0, 1)).toThrow("packInto expected 2 values for '!2H', got 1");
  });

  it('names the field of out-of-range values', () => {
    expect(() => new Struct('!H').pack(70000)).toThrow(RangeError);
    expect(() => new Struct('!H').pack(70000)).toThrow("Struct '!H': value 70000 at field 1 ('H') out of range 0..65535");
    expect(() => new Struct('!2H').pack(1, -1)).toThrow("value -1 at field 2 ('H') out of range 0..65535");
    expect(() => new Struct('<bB').pack(0, 256)).toThrow("field 2 ('B') out of range 0..255");
    expect(() => new Struct('<b').pack(-129)).toThrow("out of range -128..127");
    expect(() => new Struct('<I').pack(-1)).toThrow(RangeError);
    expect(() => new Struct('<i').pack(2 ** 31)).toThrow(RangeError);
    expect(() => new Struct('<H').pack(65536n)).toThrow(RangeError);
    expect(() => new Struct('<q').pack(2n ** 63n)).toThrow("value 9223372036854775808n at field 1 ('q') out of range -9223372036854775808..9223372036854775807");
    expect(() => new Struct('<Q').pack(-1n)).toThrow(RangeError);
    expect(() => new Struct('@L').pack(-1)).toThrow(RangeError);
    expect(() => new Struct('<f').pack(1e39)).toThrow(RangeError);
    expect(() => new Struct('<hf').pack(0, -1e39)).toThrow("field 2 ('f') is too large to pack with f format");
    expect(() => new Struct('<e').pack(65520)).toThrow("field 1 ('e') is too large to pack with e format");
    expect(() => new Struct('<e').pack(-1e6)).toThrow(RangeError);
  });

  it('names the field of values of the wrong type', () => {
    const cases: [string, unknown[], RegExp][] = [
      ['<H', ['abc'], /value "abc" at field 1 \('H'\) must be an integer/],
      ['<H', [1.5], /value 1\.5 at field 1 \('H'\) is not an integer/],
      ['<H', [NaN], /field 1 \('H'\) is not an integer/],
      ['<i', [Infinity], /is not an integer/],
      ['<b', [true], /must be an integer/],
      ['<q', [2 ** 53], /value 9007199254740992 at field 1 \('q'\) is not a safe integer; pass a bigint/],
      ['<q', [0.5], /is not an integer/],
      ['<Hq', [1, 'x'], /field 2 \('q'\) must be an integer/],
      ['<d', ['1'], /field 1 \('d'\) must be a number/],
      ['<f', [1n], /must be a number/],
      ['c', [b('ab')], /field 1 \('c'\) must be exactly 1 byte, got 2/],
      ['c', ['é'], /must be exactly 1 byte/],
      ['c', [65], /must be a Buffer, Uint8Array or string/],
      ['3s', [5], /field 1 \('s'\) must be a Buffer/],
      ['0p', [null], /field 1 \('p'\) must be a Buffer/],
      ['?', ['yes'], /field 1 \('\?'\) must be a boolean/],
    ];
    for (const [fmt, values, re] of cases) {
      const s = new Struct(fmt);
      expect(() => s.pack(...(values as StructInput[])), fmt).toThrow(TypeError);
      expect(() => s.pack(...(values as StructInput[])), fmt).toThrow(re);
    }
  });

  it('rejects short buffers and bad offsets with a RangeError', () => {
    const s = new Struct('!2H');
    expect(() => s.unpack(Buffer.alloc(3))).toThrow(RangeError);
    expect(() => s.unpack(Buffer.alloc(3))).toThrow("Struct '!2H': unpack needs 4 bytes at offset 0, got 3 (buffer length 3)");
    expect(() => s.unpack(Buffer.alloc(5), 2)).toThrow('needs 4 bytes at offset 2, got 3');
    expect(() => s.unpack(Buffer.alloc(2), 5)).toThrow('got 0');
    expect(() => s.unpack(Buffer.alloc(8), -1)).toThrow(RangeError);
    expect(() => s.unpack(Buffer.alloc(8), 1.5)).toThrow(RangeError);
    expect(() => s.packInto(Buffer.alloc(5), 2, 1, 2)).toThrow('packInto needs 4 bytes at offset 2, got 3');
    expect(() => s.unpack('abcd' as unknown as Uint8Array)).toThrow(TypeError);
  });
});

// ---------------------------------------------------------------------------
// Byte-exact comparison with CPython's struct, in one python3 run.
type PyVal = { t: 'i' | 'f' | 'b' | '?'; v: string | boolean };
function toPy(v: StructInput): PyVal {
  if (typeof v === 'boolean') return { t: '?', v };
  if (typeof v === 'bigint') return { t: 'i', v: String(v) };
  if (typeof v === 'string') return { t: 'b', v: Buffer.from(v, 'utf8').toString('hex') };
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v) && !Object.is(v, -0)) return { t: 'i', v: String(v) };
    return { t: 'f', v: Number.isNaN(v) ? 'nan' : v === Infinity ? 'inf' : v === -Infinity ? '-inf' : Object.is(v, -0) ? '-0.0' : String(v) };
  }
  return { t: 'b', v: Buffer.from(v).toString('hex') };
}
/** One comparable string per value (Python ints and JS numbers/bigints alike). */
function norm(v: StructValue): string {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  return `b:${v.toString('hex')}`;
}
function normPy(p: PyVal): string {
  if (p.t === 'f') {
    const s = p.v as string;
    return norm(s === 'inf' ? Infinity : s === '-inf' ? -Infinity : Number(s));
  }
  if (p.t === 'b') return `b:${p.v as string}`;
  return String(p.v);
}

const PY_SCRIPT = `
import sys, json, struct
def dec(v):
    t, x = v['t'], v['v']
    return int(x) if t == 'i' else float(x) if t == 'f' else bytes.fromhex(x) if t == 'b' else x
def enc(v):
    if isinstance(v, bool): return {'t': '?', 'v': v}
    if isinstance(v, int): return {'t': 'i', 'v': str(v)}
    if isinstance(v, float): return {'t': 'f', 'v': repr(v)}
    return {'t': 'b', 'v': v.hex()}
data = json.load(sys.stdin)
out = {'pack': [], 'unpack': []}
for c in data['pack']:
    raw = struct.pack(c['fmt'], *map(dec, c['values']))
    try:
        values = [enc(v) for v in struct.unpack(c['fmt'], raw)]
    except SystemError:  # CPython cannot unpack '0p'
        values = None
    out['pack'].append({'hex': raw.hex(), 'size': struct.calcsize(c['fmt']), 'values': values})
for c in data['unpack']:
    out['unpack'].append([enc(v) for v in struct.unpack(c['fmt'], bytes.fromhex(c['hex']))])
print(json.dumps(out))
`;

function pythonAvailable(): boolean {
  try {
    execFileSync('python3', ['-c', 'import struct'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!pythonAvailable())('byte-exact against CPython struct', () => {
  const I64 = [-(2n ** 63n), 2n ** 63n - 1n];
  const sample = <T,>(arb: fc.Arbitrary<T>, n: number): T[] => fc.sample(arb, { seed: 42, numRuns: n });
  const halfTies = [
    ...Array.from({ length: 20 }, (_, k) => (2 * k + 1) * 2 ** -25), // subnormal halfway points
    ...Array.from({ length: 20 }, (_, k) => 1 + (2 * k + 1) * 2 ** -11), // normal halfway points
    ...Array.from({ length: 10 }, (_, k) => -(2048 + 2 * k + 1) * 2 ** 4), // large negative halfway points
  ];
  const packCases: { fmt: string; values: StructInput[] }[] = [
    { fmt: '!2H', values: [42, 81] },
    { fmt: '@bi', values: [-1, 123456] },
    { fmt: '@hq', values: [-2, I64[0]!] },
    { fmt: '@ci', values: [b('A'), -7] },
    { fmt: '@b0i', values: [5] },
    { fmt: 'llh0l', values: [1n, -2n, 3] },
    { fmt: '@?d', values: [true, 1.25] },
    { fmt: '@be', values: [1, 0.5] },
    { fmt: '@hf', values: [1, 0.1] },
    { fmt: '@bxH', values: [1, 2] },
    { fmt: '@3sI', values: [b('ab'), 7] },
    { fmt: '@blbnbN', values: [1, -5n, 2, -6n, 3, 2n ** 64n - 1n] },
    { fmt: '@iqhd', values: [1, 2n, 3, 4] },
    { fmt: '@b2x3h', values: [1, 2, 3, 4] },
    { fmt: '@5pH', values: [b('hello world'), 9] },
    { fmt: '=bi', values: [-1, -2] },
    { fmt: '<bi', values: [-1, -2] },
    { fmt: '>hq', values: [-1, -2n] },
    { fmt: 'x', values: [] },
    { fmt: '3x', values: [] },
    { fmt: '@bBhHiIlLqQnN', values: [-128, 255, -32768, 65535, -(2 ** 31), 2 ** 32 - 1, I64[0]!, 2n ** 64n - 1n, I64[1]!, 0n, -1n, 1n] },
    { fmt: '<bBhHiIlLqQ', values: [127, 0, 32767, 0, 2 ** 31 - 1, 0, -(2 ** 31), 2 ** 32 - 1, I64[0]!, 2n ** 64n - 1n] },
    { fmt: '>bBhHiIlLqQ', values: [-1, 1, -1, 1, -1, 1, -1, 1, -1n, 1n] },
    { fmt: '!bBhHiIlLqQ', values: [-128, 255, -32768, 65535, -(2 ** 31), 2 ** 32 - 1, 2 ** 31 - 1, 0, I64[1]!, 0n] },
    { fmt: '=hHiIlLqQ', values: [-2, 2, -3, 3, -4, 4, -5n, 5n] },
    { fmt: '<??', values: [true, false] },
    { fmt: '@?h?', values: [true, 1, false] },
    { fmt: '< 2h\t3s ', values: [1, 2, b('xyz')] },
    { fmt: '<8e', values: [0, -0, 65504, 6.1e-5, 5.96e-8, 1 / 3, 65519.99, -65504] },
    { fmt: '>8e', values: [2.98e-8, 1e-8, NaN, Infinity, -Infinity, 0.1, -2, 6.097555160522461e-5] },
    { fmt: `<${halfTies.length}e`, values: halfTies },
    { fmt: '<300e', values: sample(fc.double({ min: -65519, max: 65519, noNaN: true }), 300) },
    { fmt: '>200e', values: sample(fc.double({ min: -1e-4, max: 1e-4, noNaN: true }), 200) },
    { fmt: '<9f', values: [1 / 3, 3.4028234663852886e38, -3.4e38, 1e-45, 2 ** -149, NaN, Infinity, 0.1, -0] },
    { fmt: '>300f', values: sample(fc.double({ min: -3.4e38, max: 3.4e38, noNaN: true }), 300) },
    { fmt: '<6d', values: [Math.PI, -0, 5e-324, Number.MAX_VALUE, NaN, -Infinity] },
    { fmt: '>d', values: [1] },
    { fmt: '0s', values: [b('')] },
    { fmt: '0s', values: [b('abc')] },
    { fmt: '1s', values: [b('abc')] },
    { fmt: '3s', values: [b('abcdef')] },
    { fmt: '5s', values: [b('ab')] },
    { fmt: '10s', values: ['héllo'] },
    { fmt: '0p', values: [b('abc')] },
    { fmt: '<H0pH', values: [1, b('abc'), 2] },
    { fmt: '1p', values: [b('abc')] },
    { fmt: '3p', values: [b('abcdef')] },
    { fmt: '5p', values: [b('ab')] },
    { fmt: '256p', values: [b('a'.repeat(300))] },
    { fmt: '257p', values: [b('a'.repeat(256))] },
    { fmt: '300p', values: [b('a'.repeat(400))] },
    { fmt: '<c3sc', values: [b('\x00'), b('\xff\xfe\xfd'), b('~')] },
  ];
  const allHalves = Buffer.alloc(0x20000);
  for (let i = 0; i < 0x10000; i++) allHalves.writeUInt16LE(i, 2 * i);
  const unpackCases = [
    { fmt: '<65536e', hex: allHalves.toString('hex') },
    { fmt: '3?', hex: '000280' },
    { fmt: '3p', hex: 'ff6162' },
    { fmt: '1p', hex: '05' },
    { fmt: '>4f', hex: '7f8000007fc00000ff80000000000001' },
    { fmt: '@bhiqnN', hex: 'ff' + '00' + 'feff' + 'fdffffff' + 'fcffffffffffffff'.repeat(3) },
    { fmt: '<2s2p2c', hex: '0102ff03aabb' },
  ];

  const input = JSON.stringify({
    pack: packCases.map((c) => ({ fmt: c.fmt, values: c.values.map(toPy) })),
    unpack: unpackCases,
  });
  const py = JSON.parse(execFileSync('python3', ['-c', PY_SCRIPT], { input, maxBuffer: 64 << 20 }).toString()) as {
    pack: { hex: string; size: number; values: PyVal[] | null }[];
    unpack: PyVal[][];
  };

  it('pack, calcsize and unpack agree on every case', () => {
    packCases.forEach((c, i) => {
      const want = py.pack[i]!;
      const s = new Struct(c.fmt);
      expect([c.fmt, s.size]).toEqual([c.fmt, want.size]);
      const got = s.pack(...c.values);
      expect([c.fmt, got.toString('hex')]).toEqual([c.fmt, want.hex]);
      if (want.values) expect([c.fmt, s.unpack(hex(want.hex)).map(norm)]).toEqual([c.fmt, want.values.map(normPy)]);
    });
  });

  it("unpack agrees on Python's unpack of raw bytes (including all 65536 halves)", () => {
    unpackCases.forEach((c, i) => {
      const got = new Struct(c.fmt).unpack(hex(c.hex)).map(norm);
      const want = py.unpack[i]!.map(normPy);
      // One expect per case keeps failures readable for the big half-float table.
      const diff = got.findIndex((g, k) => g !== want[k]);
      expect([c.fmt, got.length, diff, got[diff], want[diff]]).toEqual([c.fmt, want.length, -1, undefined, undefined]);
    });
  });
});

// ---------------------------------------------------------------------------
describe('property: unpack(pack(values)) round-trips', () => {
  type Item = { text: string; inputs: StructInput[]; expected: StructValue[] };
  const bytesArb = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: max });
  const ints: Record<string, [number, number]> = {
    b: [-128, 127], B: [0, 255], h: [-32768, 32767], H: [0, 65535],
    i: [-(2 ** 31), 2 ** 31 - 1], I: [0, 2 ** 32 - 1], l: [-(2 ** 31), 2 ** 31 - 1], L: [0, 2 ** 32 - 1],
  };
  const f32ok = (x: number): boolean => !Number.isFinite(x) || Number.isFinite(Math.fround(x));
  const f16ok = (x: number): boolean => !Number.isFinite(x) || Math.abs(x) < 65520;

  /** [input, expected] pairs for one value of `code`. */
  function valueArb(code: string): fc.Arbitrary<[StructInput, StructValue]> {
    const range = ints[code];
    if (range) return fc.integer({ min: range[0], max: range[1] }).map((v) => [v, v]);
    switch (code) {
      case 'q': return fc.oneof(
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((v): [StructInput, StructValue] => [v, v]),
        fc.maxSafeInteger().map((v): [StructInput, StructValue] => [v, BigInt(v)]),
      );
      case 'Q': return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((v) => [v, v]);
      case '?': return fc.boolean().map((v) => [v, v]);
      case 'c': return fc.uint8Array({ minLength: 1, maxLength: 1 }).map((v) => [v, Buffer.from(v)]);
      case 'e': return fc.double().filter(f16ok).map((v) => [v, halfRound(v)]);
      case 'f': return fc.double().filter(f32ok).map((v) => [v, Math.fround(v)]);
      default: return fc.double().map((v) => [v, v]); // 'd'
    }
  }

  const itemArb: fc.Arbitrary<Item> = fc
    .tuple(fc.constantFrom(...'xcbB?hHiIlLqQefdsp'), fc.integer({ min: 0, max: 4 }), fc.boolean(), fc.boolean())
    .chain(([code, count, omitOne, space]) => {
      const text = `${count === 1 && omitOne ? '' : count}${code}${space ? ' ' : ''}`;
      if (code === 'x') return fc.constant({ text, inputs: [], expected: [] });
      if (code === 's') {
        return bytesArb(count + 3).map((v) => {
          const out = Buffer.alloc(count);
          out.set(v.subarray(0, count));
          return { text, inputs: [v], expected: [out] };
        });
      }
      if (code === 'p') {
        return bytesArb(count + 3).map((v) => ({
          text, inputs: [v], expected: [Buffer.from(v.subarray(0, Math.max(count - 1, 0)))],
        }));
      }
      return fc.array(valueArb(code), { minLength: count, maxLength: count }).map((pairs) => ({
        text, inputs: pairs.map((p) => p[0]), expected: pairs.map((p) => p[1]),
      }));
    });

  it('for random standard-size formats and values', () => {
    fc.assert(
      fc.property(fc.constantFrom('<', '>', '!', '='), fc.array(itemArb, { maxLength: 8 }), (prefix, items) => {
        const s = new Struct(prefix + items.map((it) => it.text).join(''));
        const inputs = items.flatMap((it) => it.inputs);
        const packed = s.pack(...inputs);
        expect(packed.length).toBe(s.size);
        expect(s.count).toBe(inputs.length);
        expect(s.unpack(packed)).toEqual(items.flatMap((it) => it.expected));
      }),
      { numRuns: 500 },
    );
  });
});
