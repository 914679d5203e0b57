/**
 * The resumable matcher behind sticky RegExp delimiters (src/sticky-matcher.ts) and the
 * ReadBuffer's hand-over to it: after every chunk it must say exactly what one V8 sticky exec
 * on the bytes so far would return, and the frames must not change whatever the chunking.
 * The hostile cases (a 64 KiB frame a byte at a time) are in hostile.test.ts.
 *
 *   npx vitest run test/sticky-matcher.test.ts
 */
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ReadBuffer, compileDelimiter, cutsCharacter, stickyRetry } from '../src/framing.js';
import { stickyMatcher } from '../src/sticky-matcher.js';

// ---------------------------------------------------------------------------
// Random patterns from the subset the matcher compiles, random input, random chunking

const ATOMS = ['a', 'b', 'A', ';', '\\n', '\\r', '.', '\\d', '\\w', '\\s', '\\S', '\\W', '[ab]', '[^;\\n]', '[a-c;]', '[^]', '[]', '\\x41', '\\.', '1', '\\u0061', ' '];
const QUANTIFIERS = ['*', '+', '?', '{0}', '{1}', '{2}', '{0,2}', '{1,3}', '{2,}', '{0,}'];

const { pattern } = fc.letrec<{ pattern: string; item: string; atom: string; group: string; repeat: string }>((tie) => ({
  // A pattern: alternatives of sequences (an empty alternative included).
  pattern: fc.array(fc.array(tie('item'), { maxLength: 4 }).map((items) => items.join('')), { minLength: 1, maxLength: 3 }).map((alts) => alts.join('|')),
  item: fc.oneof({ depthSize: 'small' }, tie('atom'), tie('atom'), tie('repeat'), tie('group'), fc.constant('^')),
  atom: fc.constantFrom(...ATOMS),
  group: fc.tuple(fc.constantFrom('(', '(?:', '(?<n>'), tie('pattern')).map(([open, inner]) => `${open}${inner})`),
  repeat: fc
    .tuple(fc.oneof(tie('atom'), tie('group')), fc.constantFrom(...QUANTIFIERS), fc.boolean())
    .map(([body, q, lazy]) => body + q + (lazy ? '?' : '')),
}));

/** Named groups need distinct names. */
const distinctNames = (source: string): string => {
  let i = 0;
  return source.replace(/\(\?<n>/g, () => `(?<n${i++}>`);
};

const arbRegExp = fc
  .tuple(pattern, fc.subarray(['i', 'm', 's', 'u']), fc.constantFrom('y', 'gy', 'dy'))
  .map(([source, flags, sticky]) => new RegExp(distinctNames(source), flags.join('') + sticky));

/** Bytes as latin1 text: ASCII the atoms name, line ends, and UTF-8 pieces (lead and continuation bytes). */
const arbInput = fc.string({ unit: fc.constantFrom('a', 'b', 'A', ';', '\n', '\r', '1', ' ', '\xc3', '\xa9', '\xe9', '\x80'), maxLength: 24 });

/** Cut `text` at the given (sorted, deduplicated) offsets. */
function cut(text: string, at: number[]): string[] {
  const points = [...new Set(at.map((p) => p % (text.length + 1)))].sort((a, b) => a - b);
  const chunks: string[] = [];
  let from = 0;
  for (const p of [...points, text.length]) {
    if (p > from) chunks.push(text.slice(from, p));
    from = Math.max(from, p);
  }
  return chunks;
}

const arbCase = fc.tuple(arbRegExp, arbInput, fc.array(fc.nat(), { maxLength: 8 }));

/** What one V8 sticky exec on `text` returns: the end of the match, or -1. */
function v8End(re: RegExp, text: string): number {
  re.lastIndex = 0;
  const m = re.exec(text);
  return m === null ? -1 : m[0].length;
}

// ---------------------------------------------------------------------------

describe('the matcher says what one V8 sticky exec on the bytes so far would return', () => {
  it('property: after every chunk, the match end (or none) equals V8s; once settled, more bytes change nothing', () => {
    fc.assert(
      fc.property(arbCase, ([re, input, at]) => {
        const matcher = stickyMatcher(re);
        fc.pre(matcher !== null); // a few in 10,000 nest too many empty-matching loops (MAX_BITS)
        let fed = '';
        const check = () => {
          expect(matcher!.end, `${re} on ${JSON.stringify(fed)}`).toBe(v8End(re, fed));
          if (matcher!.end >= 0) expect(matcher!.aroundEnd()).toBe(fed.slice(Math.max(0, matcher!.end - 4), matcher!.end + 1));
          if (matcher!.settled) expect(v8End(re, input), `${re} settled on ${JSON.stringify(fed)}`).toBe(matcher!.end);
        };
        check();
        for (const chunk of cut(input, at)) {
          matcher!.feed(chunk);
          fed += chunk;
          check();
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('empty loops terminate and follow ES: an empty iteration fails and the next alternative is tried', () => {
    const cases: Array<[RegExp, string]> = [
      [/(a*)*b/y, 'aab'],
      [/(a*)+?b/y, 'aab'],
      [/(?:|a)*/y, 'aa'],
      [/(?:|a)?/y, 'a'],
      [/(?:|a)+/y, 'a'],
      [/(?:|a){0,2}/y, 'aa'],
      [/(?:a?)*?;/y, 'aa;'],
      [/(?:(?:)*)*x/y, 'x'],
      [/(?:^)*a/y, 'a'],
    ];
    for (const [re, input] of cases) {
      const matcher = stickyMatcher(re)!;
      for (const c of input) matcher.feed(c);
      expect(matcher.end, String(re)).toBe(v8End(re, input));
    }
  });

  it('^ matches at the frame start, and with m after a line end', () => {
    const at = (re: RegExp, input: string) => {
      const matcher = stickyMatcher(re)!;
      matcher.feed(input);
      return matcher.end;
    };
    expect(at(/^a/y, 'a')).toBe(1);
    expect(at(/a^b/y, 'ab')).toBe(-1);
    expect(at(/a\n^b/my, 'a\nb')).toBe(3);
    expect(at(/a\r^b/my, 'a\rb')).toBe(3);
    expect(at(/a\n^b/y, 'a\nb')).toBe(-1);
  });

  it('character sets come from V8 itself: i, s, u, \\s, \\w, latin1 bytes', () => {
    const end = (re: RegExp, input: string) => {
      const matcher = stickyMatcher(re)!;
      matcher.feed(input);
      return matcher.end;
    };
    expect(end(/k+/iy, 'kKk')).toBe(3);
    expect(end(/\u212a/iuy, 'kK')).toBe(1); // KELVIN SIGN folds to k and K under u only
    expect(end(/\u212a/iy, 'k')).toBe(-1);
    expect(end(/.+/y, 'ab\ncd')).toBe(2);
    expect(end(/.+/sy, 'ab\ncd')).toBe(5);
    expect(end(/\s+/y, ' \t\xa0\n')).toBe(4); // no-break space is \s
    expect(end(/é+/y, '\xe9\xe9')).toBe(2); // a latin1 character names that byte
    expect(end(/😀|\ud83d|a/y, 'a')).toBe(1); // outside latin1: matches no byte
  });

  it('outside the subset, stickyMatcher returns null (the ReadBuffer keeps to V8)', () => {
    for (const re of [/(a)\1;/y, /(?<x>a)\k<x>;/y, /a(?=;)/y, /a(?!;)/y, /(?<=a);/y, /(?<!a);/y, /a$/y, /a$/my, /\bword\b/y, /\Ba/y, /a{1,9999}/y, new RegExp('\\1', 'y'), new RegExp('\\07', 'y'), /a{/y, new RegExp('[\\d--[5]];', 'vy'), new RegExp('a'.repeat(5000), 'y')]) {
      expect(stickyMatcher(re), String(re)).toBeNull();
    }
    // And these are in it.
    for (const re of [/(\d+):/y, /[^\n]*\n/y, /(?<key>\w+)=(?<value>[^;]*);/y, /<m>(.*?)<\/m>/sy, /\x41\u0042\0\cJ\//y, /\u{1F600}|\p{L}+/uy, /a{2,5}?b{3}c{1,}/y]) {
      expect(stickyMatcher(re), String(re)).not.toBeNull();
    }
  });
});

// ---------------------------------------------------------------------------
// Through the ReadBuffer

const { perByte, base } = stickyRetry;
afterEach(() => Object.assign(stickyRetry, { perByte, base }));

/** The frames a sticky delimiter gives by definition: one V8 sticky exec on all the bytes buffered, after each arrival. */
function reference(re: RegExp, chunks: string[], utf8: boolean): string[][] {
  const sticky = new RegExp(re.source, `${re.flags.replace(/[gy]/g, '')}y`);
  const out: string[][] = [];
  let text = '';
  for (const chunk of chunks) {
    text += chunk;
    for (;;) {
      sticky.lastIndex = 0;
      const m = sticky.exec(text);
      if (m === null || m[0].length === 0 || (utf8 && cutsCharacter(text, 0, m[0].length))) break;
      out.push([...m].map((g) => g ?? '<undefined>'));
      text = text.slice(m[0].length);
    }
  }
  return out;
}

/** The match arrays a ReadBuffer delivers for these chunks (latin1). */
function delivered(re: RegExp, chunks: string[], utf8: boolean): string[][] {
  const rb = new ReadBuffer();
  rb.setDelimiter(compileDelimiter(re, utf8 ? 'utf8' : null));
  const out: string[][] = [];
  for (const chunk of chunks) {
    rb.push(Buffer.from(chunk, 'latin1'));
    for (let frame = rb.next(); frame !== null; frame = rb.next()) {
      expect(frame.toString('latin1')).toBe(rb.match![0]);
      out.push([...rb.match!].map((g) => g ?? '<undefined>'));
    }
  }
  return out;
}

describe('a ReadBuffer that hands a frame to the matcher delivers what V8 alone would', () => {
  it('property: with the matcher taking over after the first attempt, frames and match arrays equal the definition, for any chunking, bytes or utf8', () => {
    fc.assert(
      fc.property(arbCase, fc.boolean(), ([re, input, at], utf8) => {
        const chunks = cut(input, at);
        const want = reference(re, chunks, utf8);
        stickyRetry.perByte = 0;
        stickyRetry.base = 0;
        expect(delivered(re, chunks, utf8), `${re} on ${JSON.stringify(chunks)}`).toEqual(want);
        stickyRetry.perByte = Infinity; // V8 on every arrival, as before the matcher
        expect(delivered(re, chunks, utf8)).toEqual(want);
      }),
      { numRuns: 1000 },
    );
  });

  it('a frame matched by the matcher keeps its groups, named groups and indices', () => {
    stickyRetry.perByte = 0;
    stickyRetry.base = 0;
    const rb = new ReadBuffer();
    rb.setDelimiter(compileDelimiter(/(?<key>\w+)=(?<value>[^;]*);/dy));
    for (const c of 'name=Zoe;x') rb.push(Buffer.from(c));
    expect(rb.next()!.toString()).toBe('name=Zoe;');
    expect(rb.match!.groups).toEqual({ key: 'name', value: 'Zoe' });
    expect(rb.match!.indices![2]).toEqual([5, 8]);
    expect(rb.length).toBe(1);
  });

  it("with encoding 'utf8', a match that cuts a character is not handed to V8 again on every byte", () => {
    stickyRetry.perByte = 0;
    stickyRetry.base = 0;
    // Pairs of bytes: each match ends inside an 'é' (C3 A9) or before a continuation byte.
    const pairs = frameCounting(/(?:..)+/sy);
    pairs.push(`x${Buffer.from('é'.repeat(1000)).toString('latin1')}`);
    // A head that is a continuation byte: every match starts inside a character.
    const tail = frameCounting(/[^;]+/y);
    tail.push(`\x80${'a'.repeat(2000)}`);
    for (const { frames, scanned } of [pairs, tail]) {
      expect(frames).toEqual([]);
      expect(scanned()).toBeLessThanOrEqual(2); // the first attempt
    }
  });

  it('a head that can never match waits without V8 re-running, then overflows once at bufferSize', () => {
    stickyRetry.perByte = 0;
    stickyRetry.base = 0;
    const rb = new ReadBuffer(64);
    const d = compileDelimiter(/(\d+):/y);
    rb.setDelimiter(d);
    let scanned = 0;
    const exec = d.kind === 'regex' ? d.search.exec : null;
    if (d.kind === 'regex') d.search.exec = (text: string) => ((scanned += text.length), exec!.call(d.search, text));
    const overflows: number[] = [];
    for (const c of `x${'1'.repeat(64)}`) {
      rb.push(Buffer.from(c));
      expect(rb.next()).toBeNull();
      if (rb.overflow > 0) overflows.push(rb.overflow);
    }
    expect(overflows).toEqual([65]);
    expect(scanned).toBe(1); // the first attempt only
    rb.push(Buffer.from('42:'));
    expect(rb.next()!.toString()).toBe('42:');
  });
});

/** A utf8 ReadBuffer for `re` fed one byte at a time, counting the bytes handed to V8 (each attempt scans up to its input). */
function frameCounting(re: RegExp): { push(text: string): void; frames: string[]; scanned: () => number } {
  const rb = new ReadBuffer(4096);
  const d = compileDelimiter(re, 'utf8');
  if (d.kind !== 'regex') throw new TypeError('a RegExp delimiter');
  let scanned = 0;
  const exec = d.search.exec;
  d.search.exec = (text: string) => ((scanned += text.length), exec.call(d.search, text));
  rb.setDelimiter(d);
  const frames: string[] = [];
  return {
    frames,
    scanned: () => scanned,
    push(text) {
      for (const c of text) {
        rb.push(Buffer.from(c, 'latin1'));
        for (let frame = rb.next(); frame !== null; frame = rb.next()) frames.push(frame.toString('latin1'));
      }
    },
  };
}
