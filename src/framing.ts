/**
 * Framing: bytes in, frames out. Pure (no sockets, no timers), so it is tested on its own.
 *
 * The ReadBuffer keeps received chunks in a queue and never concatenates a growing buffer:
 * a frame inside one chunk is delivered as a view of it (zero copy), a frame spanning chunks
 * is copied once. Searches for a byte delimiter resume where the last search stopped, so
 * framing is O(n) in bytes received whatever the chunking (Netty #759, Pants' 3.9 MB/s).
 */
import { Buffer } from 'node:buffer';
import { Struct, type StructValue, type StructValues } from './struct.js';
import { stickyMatcher, type StickyMatcher } from './sticky-matcher.js';

/** What `readDelimiter` accepts. */
export type Delimiter = null | string | Uint8Array | number | RegExp | Struct;

/**
 * The arguments `onRead` receives, from the types a channel class gives `readDelimiter` (D)
 * and `encoding` (E), then `Tail` (a datagram's sender address): a Struct's values
 * (`Struct<'!2H'>`: `[number, number]`); `[match]` for a RegExp typed
 * `RegExp & { sticky: true }`; else `[string]` when E is a string, `[Buffer]` when it is
 * `null`. `any` where the types do not tell: the base class's `Delimiter`, a plain RegExp
 * (sticky or not), a union of kinds, or an encoding the class does not declare.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type FrameArgs<D, E, Tail extends any[] = []> = FrameTuples<D, Tail>[FrameKind<D, E>];

// A lookup by key, not a conditional type: while `this` is unresolved (a subclass's
// `override onRead(line: string)`, `this.on('read', ...)` in a class body) the lookup's
// constraint includes `any`, so TypeScript accepts what the subclass writes.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
interface FrameTuples<D, Tail extends any[]> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  unknown: any;
  struct: [...(D extends Struct<infer F> ? StructValues<F> : StructValue[]), ...Tail];
  // The rest is labelled too: TypeScript before 5.2 rejects tuples that mix labelled and bare members.
  match: [match: RegExpExecArray, ...rest: Tail];
  bytes: [data: Buffer, ...rest: Tail];
  text: [data: string, ...rest: Tail];
}

type FrameKind<D, E> = Delimiter extends D
  ? 'unknown'
  : [D] extends [Struct]
    ? 'struct'
    : [D] extends [RegExp & { readonly sticky: true }]
      ? 'match'
      : [D] extends [null | string | Uint8Array | number]
        ? [E] extends [null] ? 'bytes' : [E] extends [string] ? 'text' : 'unknown'
        : 'unknown';

export type CompiledDelimiter =
  | { readonly kind: 'chunk' }
  | { readonly kind: 'bytes'; readonly bytes: Buffer }
  | { readonly kind: 'count'; readonly size: number }
  | { readonly kind: 'struct'; readonly size: number; readonly struct: Struct }
  | { readonly kind: 'regex'; readonly search: RegExp; readonly sticky: boolean; readonly extend: RegExp; readonly utf8: boolean };

export const CHUNKS: CompiledDelimiter = { kind: 'chunk' };

const ACCEPTED =
  'null (each chunk as it arrives), a non-empty string or Buffer (bytes up to it), a positive integer (that many bytes), a RegExp, or a Struct';

const counts = new Map<number, CompiledDelimiter>();
/** Compiled text delimiters: UTF-8 ones by the text itself (no key to build per connection). */
const utf8Texts = new Map<string, CompiledDelimiter>();
const otherTexts = new Map<string, CompiledDelimiter>();
const structs = new WeakMap<Struct, CompiledDelimiter>();

/**
 * The longest RegExp delimiter match allowed for: a non-sticky search resumes this far back
 * from where the last one failed (so framing stays O(n)), and an unmatched remainder may
 * exceed bufferSize by this much before it overflows (the match may have begun in it).
 */
export const REGEX_MATCH_LIMIT = 256;

/** Encodings whose bytes for a text delimiter differ from UTF-8's. */
const TEXT_ENCODINGS = new Set<string>(['latin1', 'binary', 'ascii', 'utf16le', 'ucs2', 'utf-16le', 'ucs-2']);

/** Validate a `readDelimiter` value and prepare it for framing; `TypeError` names what is accepted. */
export function compileDelimiter(value: Delimiter, encoding: BufferEncoding | null = null): CompiledDelimiter {
  if (value === null || value === undefined) return CHUNKS;
  if (typeof value === 'string') {
    if (value.length === 0) throw new TypeError(`readDelimiter must not be an empty string: expected ${ACCEPTED}`);
    const enc = encoding !== null && TEXT_ENCODINGS.has(encoding) ? encoding : 'utf8';
    // Every connection of a server usually has the same delimiter: share the compiled one.
    const cache = enc === 'utf8' ? utf8Texts : otherTexts;
    const key = enc === 'utf8' ? value : `${enc}:${value}`;
    let compiled = cache.get(key);
    if (compiled === undefined) {
      if (cache.size >= 1024) cache.clear();
      compiled = { kind: 'bytes', bytes: Buffer.from(value, enc) };
      cache.set(key, compiled);
    }
    return compiled;
  }
  if (value instanceof Uint8Array) {
    if (value.length === 0) throw new TypeError(`readDelimiter must not be an empty Buffer: expected ${ACCEPTED}`);
    // Copied so that a caller reusing their buffer cannot change the delimiter under us.
    return { kind: 'bytes', bytes: Buffer.from(value) };
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new TypeError(`readDelimiter ${value} is not a positive integer: expected ${ACCEPTED}`);
    }
    // Length-prefixed protocols switch to a new count for every message: reuse the object.
    let compiled = counts.get(value);
    if (compiled === undefined) {
      if (counts.size >= 4096) counts.clear();
      compiled = { kind: 'count', size: value };
      counts.set(value, compiled);
    }
    return compiled;
  }
  if (value instanceof RegExp) {
    const utf8 = encoding === 'utf8' || encoding === 'utf-8';
    // Matching runs on bytes (a latin1 view): a non-ASCII character in the pattern would
    // name latin1 bytes, never the UTF-8 text the user means.
    if (utf8 && NON_ASCII_PATTERN.test(value.source)) {
      throw new TypeError(
        `readDelimiter ${String(value)} names non-ASCII characters: with encoding '${encoding}', a RegExp delimiter is matched against the bytes and may name only ASCII characters (use a string or Buffer delimiter for non-ASCII text)`,
      );
    }
    // A private copy with only the flags we drive: the user's regex keeps no hidden state
    // (lastIndex) between frames, and 'g'/'y' on theirs change nothing but stickiness.
    const sticky = value.sticky;
    const base = value.flags.replace(/[gy]/g, '');
    return {
      kind: 'regex',
      search: new RegExp(value.source, base + (sticky ? 'y' : 'g')),
      sticky,
      extend: new RegExp(value.source, `${base}y`),
      utf8,
    };
  }
  if (value instanceof Struct) {
    // A frame of no bytes would be delivered forever without consuming anything.
    if (value.size === 0) throw new RangeError(`readDelimiter Struct '${value.format}' has size 0: a Struct delimiter must take at least one byte`);
    let compiled = structs.get(value);
    if (compiled === undefined) {
      compiled = { kind: 'struct', size: value.size, struct: value };
      structs.set(value, compiled);
    }
    return compiled;
  }
  throw new TypeError(`invalid readDelimiter ${describe(value)}: expected ${ACCEPTED}`);
}

function describe(value: unknown): string {
  if (typeof value === 'object' && value !== null) return `(${value.constructor?.name ?? 'object'})`;
  return `${String(value)} (${typeof value})`;
}

/** A sticky match is made on latin1 text; re-decode its groups in the channel's encoding. */
export function decodeMatch(match: RegExpExecArray, encoding: BufferEncoding | null): RegExpExecArray {
  // `input` is the whole buffered text: do not let a kept match pin it.
  match.input = match[0];
  if (encoding === null || encoding === 'latin1' || encoding === 'binary') return match;
  const decode = (s: string | undefined) => (s === undefined ? s : Buffer.from(s, 'latin1').toString(encoding));
  for (let i = 0; i < match.length; i++) match[i] = decode(match[i])!;
  if (match.groups !== undefined) {
    for (const key of Object.keys(match.groups)) match.groups[key] = decode(match.groups[key])!;
  }
  match.input = match[0];
  return match;
}

/** A literal non-ASCII character, or an escape naming one (\xNN, \uNNNN, \u{...} above 0x7f). */
const NON_ASCII_PATTERN = /[^\x00-\x7f]|\\x[89a-fA-F]|\\u(?:00[89a-fA-F]|0[1-9a-fA-F]|[1-9a-fA-F])|\\u\{0*[89a-fA-F][0-9a-fA-F]|\\u\{0*[0-9a-fA-F]{3}/;

/** UTF-8 continuation bytes are 10xxxxxx. */
function isContinuation(code: number): boolean {
  return (code & 0xc0) === 0x80;
}

/**
 * Whether text[start, end) (latin1 text of UTF-8 bytes) would cut a character: it starts or
 * ends inside one, or ends at the end of the data with a character still incomplete.
 */
export function cutsCharacter(text: string, start: number, end: number): boolean {
  if (start < text.length && isContinuation(text.charCodeAt(start))) return true;
  return endCutsCharacter(text, start, end);
}

/** Whether text[start, end) ends inside a character (the start is not checked). */
function endCutsCharacter(text: string, start: number, end: number): boolean {
  if (end < text.length) return isContinuation(text.charCodeAt(end));
  // At the end of the data: the last character must be complete.
  for (let i = end - 1, seen = 1; i >= start && i >= end - 4; i--, seen++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) return false;
    if (!isContinuation(code)) return seen < (code >= 0xf0 ? 4 : code >= 0xe0 ? 3 : 2);
  }
  return false;
}

/** The first match at or after `from` that makes progress (an empty match at 0 does not), and with `utf8` cuts no character. */
function findDelimiter(search: RegExp, text: string, from: number, utf8 = false): RegExpExecArray | null {
  for (let at = from; at <= text.length; ) {
    search.lastIndex = at;
    const m = search.exec(text);
    if (m === null) return null;
    if (utf8 && cutsCharacter(text, m.index, m.index + m[0].length)) {
      at = m.index + 1;
      continue;
    }
    if (m[0].length > 0) return m;
    // An empty match at 0 makes no progress; one at the very end may yet grow with more bytes.
    if (m.index > 0 && m.index < text.length) return m;
    at = m.index + 1;
  }
  return null;
}

/**
 * Chunks up to this size that arrive behind buffered bytes are copied into blocks of
 * MIN_BLOCK to MAX_BLOCK bytes: a peer sending one byte per segment would otherwise cost a
 * Buffer (some 400 bytes) per byte held.
 */
const SMALL_CHUNK = 512;
const MIN_BLOCK = 1024;
const MAX_BLOCK = 16 * 1024;

/** A zero-length Buffer, shared. */
export const NO_BYTES = Buffer.alloc(0);

/** How the search for a spanning delimiter ended. */
const NO = 0;
const YES = 1;
const INCOMPLETE = 2;

/**
 * V8 re-runs a sticky RegExp from the frame's start on each arrival while its failed
 * attempts at that frame have scanned (the buffered length, each) at most `perByte` bytes
 * per byte buffered, plus `base`; past that, a StickyMatcher takes over. A frame in k equal
 * chunks costs V8 about n(k-1)/2, so frames in up to ~17 chunks (1 MiB in 64 KiB reads)
 * stay with V8 at today's speed. The matcher costs some 7 (1 MiB frames) to 20 (64 KiB)
 * times what a charged byte costs V8, so spending 8n on V8 before switching keeps either
 * kind of frame within a small factor of the cheaper way, whatever the chunking.
 * Tests lower these to run the matcher on short input.
 */
export const stickyRetry = { perByte: 8, base: 4096 };

/**
 * The framer behind `readDelimiter`, usable on its own: push bytes in, take whole frames out.
 * Pure (no sockets), O(n) in the bytes pushed.
 */
export class ReadBuffer {
  /** The largest frame (or unframed remainder) allowed, in bytes. */
  bufferSize: number;
  /** Bytes buffered and not yet framed. */
  length = 0;
  /** After `next()` returned null: the size of an oversized frame just discarded, else 0. */
  overflow = 0;
  /** After `next()` returned a frame with a sticky RegExp delimiter: the match (latin1). */
  match: RegExpExecArray | null = null;

  #delimiter: CompiledDelimiter = CHUNKS;
  /** Received chunks from #head on; before it, consumed ones (or the placeholder, see #clearChunks). */
  #chunks: Buffer[] = [NO_BYTES];
  /** Index of the first live chunk in #chunks, and the bytes of it already consumed. */
  #head = 1;
  #offset = 0;
  /** Search state for byte delimiters: no delimiter starts before #scanPos (relative to the
   * head); #scanChunk is the chunk holding that position and #scanBase where it starts. */
  #scanPos = 0;
  #scanChunk = 0;
  #scanBase = 0;
  /** After an overflow: discard through the next delimiter (-1) or this many more bytes. */
  #skip = 0;
  /** latin1 view of the buffered bytes, kept only while a RegExp delimiter is in use. */
  #text: string | null = null;
  /** A non-sticky RegExp match that ended at the end of the data: more bytes may extend it. */
  #openMatch: string | null = null;
  /** Where the next non-sticky RegExp search starts (see REGEX_MATCH_LIMIT). */
  #regexFrom = 0;
  /**
   * Bytes V8 scanned in failed sticky attempts at this frame (see stickyRetry);
   * -Infinity when the pattern is beyond the StickyMatcher: V8 on every arrival, as ever.
   */
  #stickyCost = 0;
  /** The matcher that took over this frame from V8, fed the frame's bytes so far. */
  #sticky: StickyMatcher | null = null;
  /** Where small chunks are gathered (see #gather): the block, and how much of it is filled. */
  #block: Buffer | null = null;
  #blockUsed = 0;

  constructor(bufferSize = 65536) {
    this.bufferSize = bufferSize;
  }

  /**
   * Nothing buffered and no framing state to carry over (a discard in progress, a RegExp
   * match that more bytes may extend): a new ReadBuffer with the same settings would act the same.
   */
  get empty(): boolean {
    return this.length === 0 && this.#skip === 0 && this.#openMatch === null;
  }

  get delimiter(): CompiledDelimiter {
    return this.#delimiter;
  }

  /** Change how the bytes already buffered (and all later ones) are framed. */
  setDelimiter(delimiter: CompiledDelimiter): void {
    if (delimiter === this.#delimiter) return;
    this.#delimiter = delimiter;
    this.#text = null;
    this.#openMatch = null;
    this.#resetScan();
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    // A chunk that completes a frame on its own stays a zero-copy view; small pieces that
    // pile up behind others are gathered, so memory follows the bytes, not the chunk count.
    if (chunk.length <= SMALL_CHUNK && this.length !== 0) this.#gather(chunk);
    else this.#chunks.push(chunk);
    this.length += chunk.length;
    if (this.#text !== null) this.#text += chunk.toString('latin1');
  }

  /**
   * The next whole frame, or null when more bytes are needed. A frame inside one received
   * chunk is a view of it; the buffer never writes into memory it has handed out.
   */
  next(): Buffer | null {
    this.overflow = 0;
    if (this.length === 0) return null;
    if (this.#skip !== 0 && (!this.#skipOversized() || this.length === 0)) return null;
    const d = this.#delimiter;
    switch (d.kind) {
      case 'chunk':
        return this.#take(this.#chunks[this.#head]!.length - this.#offset);
      case 'bytes':
        return this.#nextInOneChunk(d.bytes) ?? this.#nextDelimited(d.bytes);
      case 'count':
      case 'struct':
        return this.#nextCount(d.size);
      case 'regex':
        this.match = null;
        if (this.#openMatch !== null && !this.#extendOpenMatch(d.extend)) return null;
        return this.#nextRegex(d.search, d.sticky, d.utf8);
    }
  }

  /** Forget every buffered byte and search state; the delimiter and bufferSize stay. */
  reset(): void {
    this.#consume(this.length);
    this.#skip = 0;
    this.#openMatch = null;
    this.#text = this.#text === null ? null : '';
  }

  /**
   * Copy a small chunk into a block this buffer owns: appended to the last chunk when that
   * ends where the block is filled to, else into a new block as large as what is buffered
   * (within bounds). Each byte is copied once; only bytes never handed out are written.
   */
  #gather(chunk: Buffer): void {
    const chunks = this.#chunks;
    const last = chunks[chunks.length - 1]!;
    let block = this.#block;
    const used = this.#blockUsed;
    if (block !== null && used + chunk.length <= block.length && last.buffer === block.buffer && last.byteOffset + last.length === block.byteOffset + used) {
      chunk.copy(block, used);
      this.#blockUsed = used + chunk.length;
      chunks[chunks.length - 1] = block.subarray(last.byteOffset - block.byteOffset, this.#blockUsed);
      return;
    }
    block = this.#block = Buffer.allocUnsafeSlow(Math.min(MAX_BLOCK, Math.max(MIN_BLOCK, this.length)));
    chunk.copy(block, 0);
    this.#blockUsed = chunk.length;
    chunks.push(block.subarray(0, chunk.length));
  }

  /** Remove and return every buffered byte (the unframed remainder). */
  drain(): Buffer {
    return this.#take(this.length);
  }

  /**
   * Called when the buffer is left waiting for more data: copy a small unconsumed tail out
   * of a large received chunk, so an idle connection does not pin a 64 KiB chunk for a few
   * bytes. A tail is copied only when it is under half its chunk, so each byte is copied a
   * bounded number of times.
   */
  compact(): void {
    const chunk = this.#chunks[this.#head];
    if (chunk === undefined || this.#chunks.length - this.#head !== 1) return;
    const tail = chunk.length - this.#offset;
    if (chunk.length < 1024 || tail * 2 >= chunk.length) return;
    this.#chunks[this.#head] = Buffer.from(chunk.subarray(this.#offset));
    this.#offset = 0;
    this.#scanBase = 0;
    this.#block = null; // the tail was copied out of it: nothing more is gathered there
  }

  // ---- delimiters --------------------------------------------------------------------------

  #nextDelimited(delim: Buffer): Buffer | null {
    const at = this.#indexOf(delim);
    if (at === -1) {
      // The frame is at least this long: no delimiter starts before the last dlen-1 bytes.
      const least = this.length - delim.length + 1;
      if (least > this.bufferSize) this.#overflowed(this.length, -1);
      return null;
    }
    if (at > this.bufferSize) {
      this.#consume(at + delim.length);
      this.overflow = at;
      return null;
    }
    const frame = this.#take(at);
    this.#consume(delim.length);
    return frame;
  }

  /**
   * The common case, kept lean: everything buffered is one chunk and the delimiter is in it.
   * Null sends the caller down the general path (which also records where the search ended).
   */
  #nextInOneChunk(delim: Buffer): Buffer | null {
    const head = this.#head;
    if (head !== this.#chunks.length - 1) return null;
    const chunk = this.#chunks[head]!;
    const start = this.#offset;
    // A one-byte delimiter searched as a number is a plain byte scan (a Buffer needle is not).
    const at = delim.length === 1 ? chunk.indexOf(delim[0]!, start + this.#scanPos) : chunk.indexOf(delim, start + this.#scanPos);
    if (at === -1 || at - start > this.bufferSize) return null;
    const end = at + delim.length;
    this.length -= end - start;
    if (this.length === 0) {
      this.#clearChunks();
    } else {
      this.#offset = end;
    }
    if (this.#scanPos !== 0 || this.#scanChunk !== this.#head) this.#resetScan();
    return chunk.subarray(start, at);
  }

  #nextCount(size: number): Buffer | null {
    if (size > this.bufferSize) {
      this.#overflowed(size, size);
      return null;
    }
    return this.length >= size ? this.#take(size) : null;
  }

  #nextRegex(search: RegExp, sticky: boolean, utf8: boolean): Buffer | null {
    let m: RegExpExecArray | null;
    if (sticky) {
      m = this.#stickyMatch(search, utf8);
    } else if (this.#regexFrom === 0) {
      this.#text ??= this.#latin1();
      m = findDelimiter(search, this.#text, 0, utf8);
    } else {
      // A resumed search decodes only its window (and a little context before it for
      // lookbehinds): flattening all the text for every chunk would be quadratic.
      const back = Math.min(this.#regexFrom, REGEX_MATCH_LIMIT);
      const start = this.#regexFrom - back;
      m = findDelimiter(search, this.#latin1(start), back, utf8);
      if (m !== null) m.index += start;
    }
    if (m === null) {
      // Resume the next search near the end: earlier starts were tried against all these bytes.
      if (!sticky) this.#regexFrom = Math.max(0, this.length - REGEX_MATCH_LIMIT);
      if (this.length > this.bufferSize + (sticky ? 0 : REGEX_MATCH_LIMIT)) this.#overflowed(this.length, sticky ? this.length : -1);
      return null;
    }
    const len = m[0].length;
    const frameLen = sticky ? len : m.index;
    if (frameLen > this.bufferSize) {
      this.#consume(m.index + len);
      this.overflow = frameLen;
      return null;
    }
    if (sticky) {
      this.match = m;
      return this.#take(len);
    }
    const frame = this.#take(m.index);
    this.#consume(len);
    // Delivered now (a request must not wait for more bytes), but remembered: with
    // /\r\n|\r|\n/, a '\r' ending this chunk may be the start of a '\r\n'.
    if (len > 0 && this.length === 0) this.#openMatch = m[0];
    return frame;
  }

  /**
   * V8's sticky match at the head, if it makes a frame. While the retry budget lasts, V8
   * runs on every arrival; then a StickyMatcher is fed each byte once, and V8 runs only when
   * the matcher says a frame is there (V8 has the last word): linear whatever the chunking.
   */
  #stickyMatch(search: RegExp, utf8: boolean): RegExpExecArray | null {
    let matcher = this.#sticky;
    // The cost is 0 for a frame's first attempt (the common case): no budget to work out.
    if (matcher === null && this.#stickyCost !== 0 && this.#stickyCost > stickyRetry.perByte * this.length + stickyRetry.base) {
      matcher = this.#sticky = stickyMatcher(search);
      if (matcher === null) this.#stickyCost = -Infinity;
      else this.#text = null; // not kept up to date on every push while the matcher reads the bytes
    }
    if (matcher !== null) {
      matcher.feed(this.#latin1(matcher.length));
      if (matcher.end <= 0 || (utf8 && this.#matcherCutsCharacter(matcher))) return null;
    }
    this.#text ??= this.#latin1();
    search.lastIndex = 0;
    const m = search.exec(this.#text);
    // An empty match makes no progress, and one that cuts a character may yet grow: wait.
    if (m !== null && m[0].length !== 0 && !(utf8 && cutsCharacter(this.#text, 0, m[0].length))) return m;
    this.#stickyCost += this.length;
    return null;
  }

  /** cutsCharacter for the matcher's match, from the bytes it kept around the end. */
  #matcherCutsCharacter(matcher: StickyMatcher): boolean {
    if (isContinuation(this.#chunks[this.#head]![this.#offset]!)) return true;
    return endCutsCharacter(matcher.aroundEnd(), 0, Math.min(matcher.end, 4));
  }

  /**
   * New bytes arrived after a match that ended at the end of the data: if the match
   * continues into them, consume the continuation as part of that delimiter. False when
   * every byte was consumed that way.
   */
  #extendOpenMatch(extend: RegExp): boolean {
    const open = this.#openMatch!;
    this.#openMatch = null;
    this.#text ??= this.#latin1();
    extend.lastIndex = 0;
    const m = extend.exec(open + this.#text);
    if (m === null || m[0].length <= open.length) return true;
    const extra = m[0].length - open.length;
    const reachesEnd = extra === this.length;
    this.#consume(extra);
    if (reachesEnd) this.#openMatch = m[0];
    return !reachesEnd;
  }

  /**
   * The buffered bytes from `from` on, as latin1 text (byte offsets = string offsets). Walks
   * back from the newest chunk, so a resumed search costs its window, not the chunk count.
   */
  #latin1(from = 0): string {
    let text = '';
    let want = this.length - from;
    for (let i = this.#chunks.length - 1; want > 0 && i >= this.#head; i--) {
      const c = this.#chunks[i]!;
      const start = Math.max(i === this.#head ? this.#offset : 0, c.length - want);
      text = c.toString('latin1', start) + text;
      want -= c.length - start;
    }
    return text;
  }

  /** Report an oversized incomplete frame once, and discard it as it keeps arriving. */
  #overflowed(size: number, skip: number): void {
    this.overflow = size;
    this.#skip = skip;
    this.#skipOversized();
  }

  /** Discard the rest of an oversized frame; true once it is gone. */
  #skipOversized(): boolean {
    if (this.#skip > 0) {
      const n = Math.min(this.#skip, this.length);
      this.#consume(n);
      this.#skip -= n;
      return this.#skip === 0;
    }
    const d = this.#delimiter;
    if (d.kind === 'regex' && !d.sticky) {
      this.#text ??= this.#latin1();
      const m = findDelimiter(d.search, this.#text, 0, d.utf8);
      if (m === null) {
        // Keep a tail: the match that ends the oversized frame may have begun in it.
        this.#consume(Math.max(0, this.length - REGEX_MATCH_LIMIT));
        return false;
      }
      this.#consume(m.index + m[0].length);
      this.#skip = 0;
      return true;
    }
    if (d.kind !== 'bytes') {
      // No way to find the end of an oversized frame: drop what is buffered and start afresh.
      this.#consume(this.length);
      this.#skip = 0;
      return false;
    }
    const at = this.#indexOf(d.bytes);
    if (at === -1) {
      // Keep the last dlen-1 bytes: they may begin the delimiter that ends the frame.
      this.#consume(Math.max(0, this.length - d.bytes.length + 1));
      return false;
    }
    this.#consume(at + d.bytes.length);
    this.#skip = 0;
    return true;
  }

  /** Offset (from the head) of the first `delim`, or -1; resumes where the last search ended. */
  #indexOf(delim: Buffer): number {
    const chunks = this.#chunks;
    const dlen = delim.length;
    let pos = this.#scanPos;
    let base = this.#scanBase;
    let i = this.#scanChunk;
    for (; i < chunks.length; i++) {
      const c = chunks[i]!;
      const start = i === this.#head ? this.#offset : 0;
      const clen = c.length - start;
      const local = pos - base;
      if (local < clen) {
        const hit = dlen === 1 ? c.indexOf(delim[0]!, start + local) : c.indexOf(delim, start + local);
        if (hit !== -1) return base + hit - start;
        // A delimiter may start near the end of this chunk and finish in the next ones.
        for (let p = Math.max(local, clen - dlen + 1); p < clen; p++) {
          const found = this.#matchesAt(i, start + p, delim);
          if (found === YES) return base + p;
          if (found === INCOMPLETE) {
            this.#saveScan(base + p, i, base);
            return -1;
          }
        }
        pos = base + clen;
      }
      if (i === chunks.length - 1) break;
      base += clen;
    }
    this.#saveScan(Math.max(this.#scanPos, this.length - dlen + 1), i, base);
    return -1;
  }

  /** Remember where the next search starts, with the chunk that holds that position. */
  #saveScan(pos: number, chunk: number, base: number): void {
    // pos lies at most dlen-1 bytes back, so this walks back over at most that many chunks.
    while (pos < base && chunk > this.#head) {
      chunk--;
      base -= this.#chunks[chunk]!.length - (chunk === this.#head ? this.#offset : 0);
    }
    this.#scanPos = pos;
    this.#scanChunk = chunk;
    this.#scanBase = base;
  }

  #matchesAt(chunkIndex: number, at: number, delim: Buffer): number {
    let c = this.#chunks[chunkIndex]!;
    let k = at;
    for (let j = 0; j < delim.length; j++, k++) {
      while (k >= c.length) {
        const next = this.#chunks[++chunkIndex];
        if (next === undefined) return INCOMPLETE;
        c = next;
        k = 0;
      }
      if (c[k] !== delim[j]) return NO;
    }
    return YES;
  }

  // ---- the chunk queue ---------------------------------------------------------------------

  /** Remove and return the first n bytes: a view when they lie in one chunk, else a copy. */
  #take(n: number): Buffer {
    const head = this.#chunks[this.#head];
    if (head !== undefined && this.#offset + n <= head.length) {
      const frame = head.subarray(this.#offset, this.#offset + n);
      this.#consume(n);
      return frame;
    }
    const frame = Buffer.allocUnsafe(n);
    let copied = 0;
    for (let i = this.#head; copied < n; i++) {
      const c = this.#chunks[i]!;
      const start = i === this.#head ? this.#offset : 0;
      copied += c.copy(frame, copied, start, Math.min(c.length, start + n - copied));
    }
    this.#consume(n);
    return frame;
  }

  #consume(n: number): void {
    if (n === 0) return;
    this.length -= n;
    if (this.#text !== null) this.#text = this.length === 0 ? '' : this.#text.slice(n);
    if (this.length === 0) {
      this.#clearChunks();
    } else {
      let offset = this.#offset + n;
      let head = this.#head;
      while (offset >= this.#chunks[head]!.length) offset -= this.#chunks[head++]!.length;
      this.#head = head;
      this.#offset = offset;
      if (head > 64 && head * 2 > this.#chunks.length) {
        this.#chunks.splice(0, head);
        this.#head = 0;
      }
    }
    this.#resetScan();
  }

  /**
   * Forget every chunk. One placeholder stays in the array: emptied to length 0, V8 would
   * free its storage, and the next chunk would allocate it again.
   */
  #clearChunks(): void {
    this.#block = null;
    this.#chunks.length = 1;
    this.#chunks[0] = NO_BYTES;
    this.#head = 1;
    this.#offset = 0;
  }

  #resetScan(): void {
    this.#regexFrom = 0;
    this.#stickyCost = 0;
    this.#sticky = null;
    this.#scanPos = 0;
    this.#scanChunk = this.#head;
    this.#scanBase = 0;
  }
}
