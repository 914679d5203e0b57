/**
 * RegExp delimiters: the pure framer first (every chunking, flags, byte offsets, hidden
 * state, empty matches, limits), then a few scenarios over real loopback sockets.
 *
 * Contract (DESIGN.md): without `y`, the bytes before the first match are a frame and the
 * match is stripped; with `y`, the match must start at the head and `onRead` receives the
 * match array. Matching runs on a latin1 view, so offsets are byte offsets.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ReadBuffer, compileDelimiter, type Delimiter } from '../src/framing.js';
import { Connection, Server, type Engine, type OverflowError } from '../src/index.js';
import { Peer, deferred, portOf, testEngine } from './helpers.js';

// ---------------------------------------------------------------------------
// Pure framer helpers

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

type Out = string | { overflow: number } | { match: string[] };

/** Push each chunk, collect frames (latin1 strings), sticky matches and overflows. */
function frames(delimiter: Delimiter, chunks: Iterable<Buffer | string>, bufferSize?: number, rb = newBuffer(delimiter, bufferSize)): Out[] {
  const out: Out[] = [];
  for (const chunk of chunks) {
    rb.push(typeof chunk === 'string' ? latin1(chunk) : chunk);
    drain(rb, out);
  }
  return out;
}

function newBuffer(delimiter: Delimiter, bufferSize?: number): ReadBuffer {
  const rb = new ReadBuffer(bufferSize);
  rb.setDelimiter(compileDelimiter(delimiter));
  return rb;
}

/** Take every frame now available. A guard turns an endless loop into a failure. */
function drain(rb: ReadBuffer, out: Out[] = []): Out[] {
  for (let guard = 0; ; guard++) {
    if (guard > 1_000_000) throw new Error('ReadBuffer made no progress (endless loop)');
    const frame = rb.next();
    if (frame !== null) {
      if (rb.match !== null) {
        // The frame of a sticky match is exactly the match's bytes.
        expect(frame.toString('latin1')).toBe(rb.match[0]);
        out.push({ match: [...rb.match].map((g) => g ?? '<undefined>') });
      } else out.push(frame.toString('latin1'));
    } else if (rb.overflow > 0) out.push({ overflow: rb.overflow });
    else return out;
  }
}

/** Every way of cutting `data` once, plus byte by byte. */
function cuts(data: Buffer): Buffer[][] {
  const out: Buffer[][] = [[data]];
  for (let i = 1; i < data.length; i++) out.push([data.subarray(0, i), data.subarray(i)]);
  out.push([...data].map((byte) => Buffer.from([byte])));
  return out;
}

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');
/** A latin1-view string (what the framer matched) read back as UTF-8. */
const asUtf8 = (s: string): string => Buffer.from(s, 'latin1').toString('utf8');

// ---------------------------------------------------------------------------

describe('RegExp without y: bytes before the first match, the match consumed', () => {
  it("Pants' /\\s\\s+/ on 'This is  a test.  ' gives 'This is', 'a test.', whatever the chunking", () => {
    for (const chunks of cuts(latin1('This is  a test.  '))) {
      const rb = newBuffer(/\s\s+/);
      expect(frames(/\s\s+/, chunks, undefined, rb), JSON.stringify(chunks.map(String))).toEqual(['This is', 'a test.']);
      // The trailing match is consumed too: nothing is left over.
      expect(rb.length).toBe(0);
    }
  });

  it('only the first match ends the frame; the bytes after it stay buffered', () => {
    const rb = newBuffer(/;+/);
    expect(frames(/;+/, ['abc;;;def'], undefined, rb)).toEqual(['abc']);
    expect(rb.length).toBe(3);
    expect(rb.drain().toString()).toBe('def');
  });

  it('a match at the very start gives an empty frame', () => {
    expect(frames(/;/, [';a;'])).toEqual(['', 'a']);
  });

  it('a match that grows over later pushes is one delimiter (/\\s\\s+/ with its spaces split)', () => {
    expect(frames(/\s\s+/, ['a ', ' ', ' ', 'b  '])).toEqual(['a', 'b']);
  });
});

describe('RegExp with y: the match must start at the head; the frame is the match', () => {
  it('delivers the match array with its groups, for every chunking', () => {
    for (const chunks of cuts(latin1('k=12;x=7;'))) {
      expect(frames(/(\w)=(\d+);/y, chunks), JSON.stringify(chunks.map(String))).toEqual([
        { match: ['k=12;', 'k', '12'] },
        { match: ['x=7;', 'x', '7'] },
      ]);
    }
  });

  it('a head that cannot match yet waits for more bytes (nothing is skipped to find a match)', () => {
    const rb = newBuffer(/(\d+)\n/y, 16);
    expect(frames(/(\d+)\n/y, ['12'], 16, rb)).toEqual([]);
    expect(rb.length).toBe(2);
    expect(frames(/(\d+)\n/y, ['3\n4'], 16, rb)).toEqual([{ match: ['123\n', '123'] }]);
    // 'x' can never start a match: it waits, the match later in the buffer is not taken.
    const stuck = newBuffer(/(\d+)\n/y, 16);
    expect(frames(/(\d+)\n/y, ['x12\n'], 16, stuck)).toEqual([]);
    expect(stuck.length).toBe(4);
  });

  it('the stuck head is bounded by bufferSize: one overflow, then framing starts afresh', () => {
    const rb = newBuffer(/(\d+)\n/y, 16);
    const out = frames(/(\d+)\n/y, ['x12\n', '0123456789ab', 'c'], 16, rb);
    expect(out).toEqual([{ overflow: 17 }]);
    expect(rb.length).toBe(0);
    expect(frames(/(\d+)\n/y, ['42\n'], 16, rb)).toEqual([{ match: ['42\n', '42'] }]);
  });

  it('a sticky match of exactly bufferSize bytes is delivered; one byte more overflows once', () => {
    const at = '1'.repeat(15) + '\n'; // 16 bytes
    expect(frames(/(\d+)\n/y, [at.slice(0, 7), at.slice(7)], 16)).toEqual([{ match: [at, '1'.repeat(15)] }]);
    const past = '1'.repeat(16) + '\n';
    expect(frames(/(\d+)\n/y, [past.slice(0, 7), past.slice(7)], 16)).toEqual([{ overflow: 17 }]);
    // Arriving whole, the oversized match is reported with its own size and consumed.
    expect(frames(/(\d+)\n/y, [past + '5\n'], 16)).toEqual([{ overflow: 17 }, { match: ['5\n', '5'] }]);
  });
});

describe('offsets are byte offsets', () => {
  it('a multi-byte UTF-8 payload before a non-sticky match: frames are the exact bytes', () => {
    const data = utf8('Grüße, €100;naïve;😀;');
    const want = ['Grüße, €100', 'naïve', '😀'].map((s) => utf8(s).toString('latin1'));
    for (const chunks of cuts(data)) expect(frames(/;/, chunks)).toEqual(want);
  });

  it('a sticky match over UTF-8: the frame is exact bytes, and the groups read back as UTF-8', () => {
    const data = utf8('name=Zoë Łukasz;city=Zürich;');
    for (const chunks of cuts(data)) {
      const out = frames(/(\w+)=([^;]*);/y, chunks) as Array<{ match: string[] }>;
      expect(out.map((o) => o.match.map(asUtf8))).toEqual([
        ['name=Zoë Łukasz;', 'name', 'Zoë Łukasz'],
        ['city=Zürich;', 'city', 'Zürich'],
      ]);
    }
  });

  it('the d flag: match indices are byte offsets', () => {
    const rb = newBuffer(/(\w+)=([^;]*);/dy);
    rb.push(utf8('k=€;'));
    const frame = rb.next()!;
    expect(frame.length).toBe(6);
    expect(rb.match!.indices![2]).toEqual([2, 5]); // '€' is 3 bytes
  });
});

describe('flags', () => {
  it('g changes nothing: the same frames as without it', () => {
    expect(frames(/;/g, ['a;b;', 'c;'])).toEqual(['a', 'b', 'c']);
  });

  it('y together with g is still sticky', () => {
    expect(frames(/(\d);/gy, ['1;2;x;3;'])).toEqual([{ match: ['1;', '1'] }, { match: ['2;', '2'] }]);
  });

  it('i is kept', () => {
    expect(frames(/end/i, ['aENDbEndcend'])).toEqual(['a', 'b', 'c']);
    expect(frames(/end/, ['aENDbEndcend'])).toEqual(['aENDbEndc']);
  });

  it('m is kept: ^ and $ match at line boundaries (an SMTP-like "." line)', () => {
    const data = 'line 1\nline 2\n.\nsecond\n.\n';
    expect(frames(/^\.\n/m, [data])).toEqual(['line 1\nline 2\n', 'second\n']);
    // Without m, ^ only matches at the head of the buffered bytes.
    expect(frames(/^\.\n/, [data])).toEqual([]);
  });

  it('s is kept: . matches newlines', () => {
    const data = '<m>a\nb</m><m>c</m>';
    expect(frames(/<m>(.*?)<\/m>/sy, [data])).toEqual([
      { match: ['<m>a\nb</m>', 'a\nb'] },
      { match: ['<m>c</m>', 'c'] },
    ]);
    // Without s the first message can never match: it waits (and would overflow in time).
    expect(frames(/<m>(.*?)<\/m>/y, [data])).toEqual([]);
  });

  it('u: the view is latin1, so . and classes see single bytes and a non-latin1 literal never matches', () => {
    // An ASCII regex with u works as without it.
    expect(frames(/;/u, ['a;b;'])).toEqual(['a', 'b']);
    // '.' under u matches ONE BYTE of the latin1 view, not one UTF-8 character: 'é' is 2 bytes.
    const [first] = frames(/(.)/suy, [utf8('é')]) as Array<{ match: string[] }>;
    expect(first!.match[1]!.length).toBe(1);
    expect(asUtf8(first!.match[1]!)).toBe('\ufffd'); // half a character
    // A literal outside latin1 ('€' is U+20AC) can never occur in a latin1 view: no frame ever.
    expect(frames(/€/u, [utf8('a€b€')])).toEqual([]);
    expect(frames(/\u{20ac}/u, [utf8('a€b€')])).toEqual([]);
    // Its UTF-8 bytes written as latin1 escapes do match.
    expect(frames(/\xe2\x82\xac/u, [utf8('a€b€')])).toEqual(['a', 'b']);
  });

  it('v (unicodeSets) is kept', () => {
    expect(frames(new RegExp('[\\d--[5]];', 'v'), ['a1;b5;c2;'])).toEqual(['a', 'b5;c']);
  });

  it('known limitation of the latin1 view: \\s also matches byte 0xA0, a UTF-8 continuation byte', () => {
    // 'à' is C3 A0 in UTF-8: /\s\s+/ sees '\xA0 ' as two spaces and cuts the character in half.
    const out = frames(/\s\s+/, [utf8('voilà  x  ')]) as string[];
    expect(out.map(asUtf8)).toEqual(['voil\ufffd', 'x']);
    // A class of ASCII whitespace does not.
    expect((frames(/[ \t\r\n]{2,}/, [utf8('voilà  x  ')]) as string[]).map(asUtf8)).toEqual(['voilà', 'x']);
  });
});

describe("the user's RegExp keeps no hidden state", () => {
  it('lastIndex is untouched after framing, sticky or not, with g or y', () => {
    for (const re of [/;/g, /;/, /(\w);/y, /(\w);/gy]) {
      re.lastIndex = 5;
      const out = frames(re, ['a;b', ';c;']);
      expect(out).toHaveLength(3);
      expect(re.lastIndex, String(re)).toBe(5);
    }
  });

  it('the user using their RegExp between frames does not disturb the framer', () => {
    const re = /,/g;
    const rb = newBuffer(re);
    rb.push(latin1('a,b'));
    expect(drain(rb)).toEqual(['a']);
    re.exec('x,y,z');
    re.lastIndex = 1000;
    rb.push(latin1(',c,'));
    expect(drain(rb)).toEqual(['b', 'c']);
  });

  it('one RegExp object shared by two buffers gives independent, correct results (interleaved)', () => {
    for (const shared of [/[;,]/g, /(\d+)[;,]/gy]) {
      const a = newBuffer(shared);
      const b = newBuffer(shared);
      const outA: Out[] = [];
      const outB: Out[] = [];
      const feedA = ['1', '1;22', ',', '333;'];
      const feedB = ['9', '', '8;7', '7,6;'];
      for (let i = 0; i < feedA.length; i++) {
        a.push(latin1(feedA[i]!));
        drain(a, outA);
        if (feedB[i] !== '') b.push(latin1(feedB[i]!));
        drain(b, outB);
      }
      const values = (out: Out[]) => out.map((o) => (typeof o === 'string' ? o : 'match' in o ? o.match[1] : o));
      expect(values(outA), String(shared)).toEqual(['11', '22', '333']);
      expect(values(outB), String(shared)).toEqual(['98', '77', '6']);
    }
  });
});

describe('RegExps that can match the empty string never loop forever', () => {
  it('/x*/ without y cuts like String.split (the last piece stays buffered)', () => {
    const rb = newBuffer(/x*/);
    expect(frames(/x*/, ['abxxc'], undefined, rb)).toEqual(['a', 'b']);
    expect(rb.drain().toString()).toBe('c');
    expect('abxxc'.split(/x*/)).toEqual(['a', 'b', 'c']);
  });

  it('/x*/y: a non-empty match is a frame; an empty one waits (then overflows at the limit)', () => {
    const rb = newBuffer(/x*/y, 8);
    expect(frames(/x*/y, ['xxab'], 8, rb)).toEqual([{ match: ['xx'] }]);
    expect(rb.length).toBe(2);
    expect(frames(/x*/y, ['cdefgh', 'i'], 8, rb)).toEqual([{ overflow: 9 }]);
  });

  it('zero-width-only patterns terminate: /(?:)/, /$/, /^/, /\\b/, /(?=;)/, /(?<=;)/, /x*?/, /x??/', () => {
    for (const re of [/(?:)/, /$/, /^/, /\b/, /(?=;)/, /(?<=;)/, /x*?/, /x??/, /(?:)/y, /$/y, /\b/y, /(?=;)/y]) {
      const started = performance.now();
      frames(re, ['ab;c', 'd;;e', 'f'], 64); // the guard in drain() fails an endless loop
      expect(performance.now() - started, String(re)).toBeLessThan(1000);
    }
  });

  it('property: any of these patterns on random input and chunking terminates and frames only input bytes', () => {
    const patterns = [/x*/, /x*/y, /(?:)/, /;*/, /(?=;)/, /\b/, /x?/, /(;)?/y, /(?:;|)/, /\s*/];
    fc.assert(
      fc.property(
        fc.constantFrom(...patterns),
        fc.string({ unit: fc.constantFrom('a', 'x', ';', ' '), maxLength: 40 }),
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 5 }),
        (re, data, sizes) => {
          const chunks: string[] = [];
          for (let i = 0, k = 0; i < data.length; k++) {
            const n = sizes[k % sizes.length]!;
            chunks.push(data.slice(i, i + n));
            i += n;
          }
          const rb = newBuffer(re, 16);
          const out = frames(re, chunks, 16, rb); // the guard in drain() fails an endless loop
          let delivered = 0;
          for (const o of out) {
            if (typeof o === 'string') delivered += o.length;
            else if ('match' in o) delivered += o.match[0]!.length;
          }
          expect(delivered + rb.length).toBeLessThanOrEqual(data.length);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('bufferSize with a non-sticky RegExp', () => {
  it('a frame of exactly bufferSize bytes is delivered when its delimiter arrives whole', () => {
    expect(frames(/\r\n/, ['a'.repeat(16), '\r\n'], 16)).toEqual(['a'.repeat(16)]);
    expect(frames(/;/, ['a'.repeat(16), ';'], 16)).toEqual(['a'.repeat(16)]);
    expect(frames(/;/, ['a'.repeat(17) + ';'], 16)).toEqual([{ overflow: 17 }]);
  });

  // BUG (src/framing.ts #nextRegex, the `this.length > this.bufferSize` check after the
  // loop): a remainder of bufferSize bytes plus the first byte of a multi-byte match is
  // reported as an overflow, so a legal frame is lost depending on how TCP cut the stream.
  // The string delimiter '\r\n' gets this right (see framing.test.ts).
  it('a frame of exactly bufferSize bytes whose match is split across pushes is delivered (as for string delimiters)', () => {
    expect(frames('\r\n', ['a'.repeat(16) + '\r', '\n'], 16)).toEqual(['a'.repeat(16)]);
    expect(frames(/\r\n/, ['a'.repeat(16) + '\r', '\n'], 16)).toEqual(['a'.repeat(16)]);
  });

  // BUG (src/framing.ts #nextRegex -> #overflowed(this.length, this.length) and
  // #skipOversized for non-'bytes' kinds): after an incomplete oversized frame, only the
  // bytes buffered so far are dropped; the rest of that frame, arriving later, is then
  // delivered as if it were a whole frame. String delimiters skip through the next delimiter.
  it('after an incomplete oversized frame, the rest of that frame is skipped, not delivered (as for string delimiters)', () => {
    // One overflow (its size: at least the 17 bytes seen), then the next real frame only.
    const shape = (out: Out[]) => out.map((o) => (typeof o === 'object' && 'overflow' in o ? (o.overflow >= 17 ? 'overflow' : o) : o));
    expect(shape(frames(';', ['a'.repeat(17), 'bbb;ok;'], 16))).toEqual(['overflow', 'ok']);
    expect(shape(frames(/;/, ['a'.repeat(17), 'bbb;ok;'], 16))).toEqual(['overflow', 'ok']);
    // The same with nothing after the limit but the delimiter: no empty "frame" comes out.
    expect(shape(frames(/;/, ['a'.repeat(17), ';', 'ok;'], 16))).toEqual(['overflow', 'ok']);
  });
});

// ---------------------------------------------------------------------------
// Over real loopback sockets

async function serve<C extends Connection>(engine: Engine, Conn: new (o?: object) => C, options: object = {}): Promise<number> {
  const server = new Server<C>(Conn, { engine, ...options });
  await server.listen(['127.0.0.1', 0]);
  return portOf(server.localAddress);
}

async function waitUntil(predicate: () => boolean, what = 'condition', ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

describe('RegExp delimiters over sockets', () => {
  it("non-sticky with encoding 'utf8': multi-byte text before the match arrives as correct strings", async () => {
    const engine = testEngine();
    const got: string[] = [];
    class Words extends Connection {
      override readDelimiter = /\s\s+/;
      override encoding = 'utf8' as const;
      override onRead(text: string) {
        got.push(text);
      }
    }
    const port = await serve(engine, Words);
    const peer = new Peer(port);
    const data = utf8('Grüße aus Köln  €100 😀  ');
    // Cut inside 'ü', inside '€' and inside the emoji.
    for (const [from, to] of [[0, 3], [3, 17], [17, 26], [26, data.length]] as const) {
      await peer.write(data.subarray(from, to));
    }
    await waitUntil(() => got.length >= 2);
    expect(got).toEqual(['Grüße aus Köln', '€100 😀']);
  });

  it("sticky with encoding 'utf8': onRead gets the match array with UTF-8 groups", async () => {
    const engine = testEngine();
    const got: string[][] = [];
    class Pairs extends Connection {
      override readDelimiter = /(\w+)=([^;]*);/y;
      override encoding = 'utf8' as const;
      override onRead(match: RegExpExecArray, ...rest: unknown[]) {
        got.push([...match, ...rest.map(() => '<extra argument>')]);
      }
    }
    const port = await serve(engine, Pairs);
    const peer = new Peer(port);
    const data = utf8('name=Zoë Łukasz;city=Zürich;');
    await peer.write(data.subarray(0, 8)); // cuts 'ë'
    await peer.write(data.subarray(8));
    await waitUntil(() => got.length >= 2);
    expect(got).toEqual([
      ['name=Zoë Łukasz;', 'name', 'Zoë Łukasz'],
      ['city=Zürich;', 'city', 'Zürich'],
    ]);
  });

  // BUG (src/stream.ts #decodeMatch): only the indexed entries are re-decoded; the named
  // groups (match.groups) are left as latin1 text, so a UTF-8 value comes out as mojibake.
  it("sticky with encoding 'utf8': named groups are correct UTF-8 too", async () => {
    const engine = testEngine();
    const got: Array<Record<string, string | undefined>> = [];
    class Named extends Connection {
      override readDelimiter = /(?<key>\w+)=(?<value>[^;]*);/y;
      override encoding = 'utf8' as const;
      override onRead(match: RegExpExecArray) {
        got.push({ ...match.groups });
      }
    }
    const port = await serve(engine, Named);
    const peer = new Peer(port);
    await peer.write(utf8('city=Zürich;'));
    await waitUntil(() => got.length >= 1);
    expect(got).toEqual([{ key: 'city', value: 'Zürich' }]);
  });

  it('a sticky head that cannot match waits until bufferSize, then onOverflowError once, then closes', async () => {
    const engine = testEngine();
    const overflows: OverflowError[] = [];
    const frames: unknown[] = [];
    const accepted = deferred<Connection>();
    const closed = deferred();
    class Numbers extends Connection {
      override readDelimiter = /(\d+)\n/y;
      override onConnect() {
        accepted.resolve(this);
      }
      override onRead(match: RegExpExecArray) {
        frames.push(match[1]);
      }
      override onOverflowError(err: OverflowError) {
        overflows.push(err);
        super.onOverflowError(err);
      }
      override onClose() {
        closed.resolve();
      }
    }
    const port = await serve(engine, Numbers, { connectionOptions: { bufferSize: 32 } });
    const peer = new Peer(port);
    const conn = await accepted.promise;
    await peer.write('1\nx2\n');
    await waitUntil(() => conn.bytesRead === 5);
    await peer.write('3'.repeat(20)); // 23 bytes buffered: still waiting
    await waitUntil(() => conn.bytesRead === 25);
    expect(frames).toEqual(['1']);
    expect(overflows).toEqual([]);
    expect(conn.connected).toBe(true);
    await peer.write('4'.repeat(10)); // 33 > 32
    await closed.promise;
    expect(overflows).toHaveLength(1);
    expect(overflows[0]).toMatchObject({ code: 'ERR_TREWS_OVERFLOW', limit: 32, size: 33 });
    expect(frames).toEqual(['1']);
  });

  it('an overriding onOverflowError keeps the channel; framing starts afresh after the overflow', async () => {
    const engine = testEngine();
    let overflows = 0;
    const frames: unknown[] = [];
    const accepted = deferred<Connection>();
    class Numbers extends Connection {
      override readDelimiter = /(\d+)\n/y;
      override onConnect() {
        accepted.resolve(this);
      }
      override onRead(match: RegExpExecArray) {
        frames.push(match[1]);
      }
      override onOverflowError() {
        overflows++;
      }
    }
    const port = await serve(engine, Numbers, { connectionOptions: { bufferSize: 16 } });
    const peer = new Peer(port);
    const conn = await accepted.promise;
    await peer.write('garbage that never matches');
    await waitUntil(() => overflows === 1);
    await waitUntil(() => conn.bytesRead === 26);
    await peer.write('42\n');
    await waitUntil(() => frames.length >= 1);
    expect(frames).toEqual(['42']);
    expect(overflows).toBe(1);
  });

  it('one RegExp object shared by every connection of a server: independent results, lastIndex untouched', async () => {
    const engine = testEngine();
    const SHARED = /(\w+)=(\d+);/gy;
    SHARED.lastIndex = 7;
    const got = new Map<number, string[]>();
    const NONSTICKY = /[;,]+/g;
    class Shared extends Connection {
      override readDelimiter = SHARED;
      override encoding = 'utf8' as const;
      override onRead(m: RegExpExecArray) {
        const list = got.get(this.id) ?? [];
        list.push(`${m[1]}:${m[2]}`);
        got.set(this.id, list);
      }
    }
    class SharedPlain extends Connection {
      override readDelimiter = NONSTICKY;
      override encoding = 'utf8' as const;
      override onRead(text: string) {
        const list = got.get(this.id) ?? [];
        list.push(text);
        got.set(this.id, list);
      }
    }
    const port = await serve(engine, Shared);
    const plainPort = await serve(engine, SharedPlain);
    const a = new Peer(port);
    const b = new Peer(port);
    const c = new Peer(plainPort);
    const d = new Peer(plainPort);
    // Interleave partial writes so each connection's regex work overlaps the others'.
    await a.write('alpha=1');
    await c.write('one;');
    await b.write('beta=');
    await d.write('uno,');
    await a.write('2;gamma=');
    await c.write(';two');
    await b.write('34;delta=5');
    await d.write('dos;;');
    await a.write('3;');
    await b.write('6;');
    await c.write(',');
    await waitUntil(() => [...got.values()].flat().length >= 8);
    const lists = [...got.values()].map((l) => l.join(' ')).sort();
    expect(lists).toEqual(['alpha:12 gamma:3', 'beta:34 delta:56', 'one two', 'uno dos'].sort());
    expect(SHARED.lastIndex).toBe(7);
    expect(NONSTICKY.lastIndex).toBe(0);
  });
});
