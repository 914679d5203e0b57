/**
 * A resumable matcher for sticky RegExp delimiters (issue 17).
 *
 * V8 cannot resume a partial match, so a sticky delimiter is matched again from the frame's
 * start on every chunk: O(bytes x chunks) for a frame that arrives in many small pieces. This
 * is a Pike VM (a Thompson NFA simulation whose threads keep their priority order, as RE2
 * runs leftmost-first patterns): it is fed each byte once, keeps its threads between chunks,
 * and tells only where the match V8 would return on the bytes so far ends, or that none can
 * come. V8 still makes the match array.
 *
 * It compiles a subset (stickyMatcher returns null for the rest): literals, escapes, classes,
 * `.`, groups, alternation, greedy and lazy quantifiers, `^`; flags i, m, s, u (d, g, y
 * change nothing here). Each single-character atom becomes the set of bytes 0..255 it
 * matches, asked of V8 itself, so case folding, `\s`, `\w` and the rest agree by construction.
 */

/**
 * Instructions. CHAR consumes a byte in set x; SPLIT forks to x, then (lower priority) y;
 * ITER_START and ITER_END bracket an optional iteration of a body that can match empty:
 * ES fails such an iteration when it consumed nothing (x is its bit in a thread's mask).
 */
const CHAR = 0;
const SPLIT = 1;
const JMP = 2;
const BOL = 3;
const ITER_START = 4;
const ITER_END = 5;
const MATCH = 6;

/**
 * A thread's state is (pc << bits) | mask: one mask bit per nesting level of optional
 * iterations that can match empty, set while that iteration has consumed a byte. The state
 * decides a thread's future, so two threads in one state are one (the first has priority).
 * Patterns of more states (a large `{n,m}`, say) are left to V8: bounds memory and time per byte.
 */
const MAX_STATES = 4096;
const MAX_BITS = 4;
/** Deeper group nesting is left to V8 (the parser recurses). */
const MAX_DEPTH = 64;

interface Program {
  readonly op: Uint8Array;
  readonly x: Int32Array;
  readonly y: Int32Array;
  readonly bits: number;
  /** How many CHAR states there are: the most threads alive at once. */
  readonly charStates: number;
  /** 256 entries per byte set, 1 where the byte matches. */
  readonly sets: Uint8Array;
  readonly multiline: boolean;
  /** Scratch for one step, by state (steps run to completion, so every matcher of the program shares it). */
  readonly visited: Float64Array;
  readonly stack: Int32Array;
}

/** A step's mark in Program.visited: never repeats, so the scratch is never cleared. */
let stepStamp = 0;

/** Where the match that V8's sticky exec would return ends, fed one chunk at a time. */
export class StickyMatcher {
  /** Bytes fed so far. */
  length = 0;
  /** End of the match V8 would return on the bytes fed so far, or -1 if it would return null. */
  end = -1;

  readonly #p: Program;
  /** Live threads (states at a CHAR) in priority order, all of higher priority than `end`'s match. */
  #threads: Int32Array;
  #next: Int32Array;
  #count: number;
  /** The last four bytes fed, the newest lowest; snapshot at `end`, and the byte at `end` once fed. */
  #recent = 0;
  #beforeEnd = 0;
  #atEnd = -1;

  constructor(program: Program) {
    this.#p = program;
    this.#threads = new Int32Array(program.charStates);
    this.#next = new Int32Array(program.charStates);
    const n = follow(program, 0, this.#threads, 0, 0, -1, ++stepStamp);
    this.#count = n < 0 ? ~n : n;
    if (n < 0) this.end = 0;
  }

  /** No thread is alive: more bytes cannot change `end`. */
  get settled(): boolean {
    return this.#count === 0;
  }

  /** Feed the next bytes (latin1 text: one character per byte). */
  feed(text: string): void {
    const p = this.#p;
    const { sets, x, bits } = p;
    const consumed = (1 << bits) - 1;
    let threads = this.#threads;
    let next = this.#next;
    let count = this.#count;
    let recent = this.#recent;
    const start = this.length;
    let k = 0;
    for (; k < text.length && count !== 0; k++) {
      const c = text.charCodeAt(k);
      const pos = start + k;
      if (pos === this.end) this.#atEnd = c;
      recent = (recent << 8) | c;
      const stamp = ++stepStamp;
      let n = 0;
      for (let t = 0; t < count; t++) {
        const pc = threads[t]! >> bits;
        if (sets[x[pc]! * 256 + c] === 0) continue;
        n = follow(p, ((pc + 1) << bits) | consumed, next, n, pos + 1, c, stamp);
        if (n < 0) {
          // A match beats every lower-priority thread: they are dropped.
          n = ~n;
          this.end = pos + 1;
          this.#beforeEnd = recent;
          this.#atEnd = -1;
          break;
        }
      }
      const swap = threads;
      threads = next;
      next = swap;
      count = n;
    }
    if (k < text.length && start + k === this.end) this.#atEnd = text.charCodeAt(k);
    this.length = start + text.length;
    this.#threads = threads;
    this.#next = next;
    this.#count = count;
    this.#recent = recent;
  }

  /** The bytes [max(0, end - 4), end], as far as fed (latin1): enough to tell whether `end` cuts a UTF-8 character. */
  aroundEnd(): string {
    let text = '';
    for (let k = Math.min(this.end, 4) - 1; k >= 0; k--) text += String.fromCharCode((this.#beforeEnd >>> (8 * k)) & 0xff);
    return this.#atEnd < 0 ? text : text + String.fromCharCode(this.#atEnd);
  }
}

/**
 * Add the threads reachable from state `start` without consuming (depth first, so in
 * priority order) to `list` from index n; returns the new count, or its complement (~n) on
 * reaching MATCH. A state already visited in this step is skipped: the earlier visit had
 * higher priority and the same future.
 */
function follow(p: Program, start: number, list: Int32Array, n: number, pos: number, prev: number, stamp: number): number {
  const { op, x, y, bits, visited, stack } = p;
  const masks = (1 << bits) - 1;
  const nextPc = 1 << bits;
  let top = 0;
  stack[top++] = start;
  while (top > 0) {
    const state = stack[--top]!;
    if (visited[state] === stamp) continue;
    visited[state] = stamp;
    const pc = state >> bits;
    const mask = state & masks;
    switch (op[pc]) {
      case CHAR:
        list[n++] = state;
        break;
      case SPLIT:
        stack[top++] = (y[pc]! << bits) | mask;
        stack[top++] = (x[pc]! << bits) | mask;
        break;
      case JMP:
        stack[top++] = (x[pc]! << bits) | mask;
        break;
      case BOL:
        if (pos === 0 || (p.multiline && (prev === 0x0a || prev === 0x0d))) stack[top++] = state + nextPc;
        break;
      case ITER_START:
        stack[top++] = ((pc + 1) << bits) | (mask & ~x[pc]!);
        break;
      case ITER_END:
        if ((mask & x[pc]!) !== 0) stack[top++] = state + nextPc;
        break;
      case MATCH:
        return ~n;
    }
  }
  return n;
}

/** A matcher for a sticky pattern, or null when the pattern is outside the subset this VM runs. */
export function stickyMatcher(pattern: RegExp): StickyMatcher | null {
  const key = `${pattern.flags}/${pattern.source}`;
  let program = programs.get(key);
  if (program === undefined) {
    if (programs.size >= 256) programs.clear();
    program = compile(pattern.source, pattern.flags);
    programs.set(key, program);
  }
  return program === null ? null : new StickyMatcher(program);
}

/** Compiled programs by flags and source: every connection of a server shares its delimiter's. */
const programs = new Map<string, Program | null>();

// ---- compiling ---------------------------------------------------------------------------------

type Node =
  | { readonly kind: 'char'; readonly set: number }
  | { readonly kind: 'bol' }
  | { readonly kind: 'seq'; readonly items: Node[] }
  | { readonly kind: 'alt'; readonly alts: Node[] }
  | { readonly kind: 'repeat'; readonly body: Node; readonly min: number; readonly max: number; readonly lazy: boolean };

/** Thrown to leave the pattern to V8. */
const UNSUPPORTED = new Error('pattern outside the sticky matcher subset');

function compile(source: string, flags: string): Program | null {
  if (flags.includes('v')) return null; // class set syntax (nested classes, strings in classes)
  try {
    const parser = new Parser(source, flags);
    const tree = parser.parse();
    const compiler = new Compiler();
    compiler.emit(tree, 0);
    compiler.push(MATCH);
    const states = compiler.op.length << compiler.bits;
    if (states > MAX_STATES) return null;
    return {
      op: Uint8Array.from(compiler.op),
      x: Int32Array.from(compiler.x),
      y: Int32Array.from(compiler.y),
      bits: compiler.bits,
      charStates: compiler.op.filter((op) => op === CHAR).length << compiler.bits,
      sets: parser.sets(),
      multiline: flags.includes('m'),
      visited: new Float64Array(states),
      // Each state is expanded at most once per step and pushes at most two.
      stack: new Int32Array(2 * states + 1),
    };
  } catch (err) {
    if (err === UNSUPPORTED) return null;
    throw err;
  }
}

/** An escape naming one character (or a class of them), per mode; anything else is UNSUPPORTED (\b, \B, backreferences, octal). */
const UNICODE_ESCAPE = /\\(?:c[A-Za-z]|x[0-9a-fA-F]{2}|u(?![dD][89abAB])[0-9a-fA-F]{4}|u\{[0-9a-fA-F]+\}|[pP]\{[\w=]+\}|0(?![0-9])|[dDwWsStnrvf^$\\.*+?()[\]{}|/-])/y;
const LEGACY_ESCAPE = /\\(?:c[A-Za-z]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|0(?![0-9])|[^bBkc0-9])/y;
const QUANTIFIER = /[*+?]|\{(\d+)(?:(,)(\d*))?\}/y;

/** A recursive-descent parser for the subset, over the RegExp's source (already valid for its flags). */
class Parser {
  #at = 0;
  #depth = 0;
  /** Atoms parsed: each is at least one instruction, so past MAX_STATES the pattern is left to V8 before its sets are asked for. */
  #atoms = 0;
  readonly #source: string;
  readonly #unicode: boolean;
  /** The flags that decide which characters an atom matches. */
  readonly #atomFlags: string;
  readonly #sets: Uint8Array[] = [];
  readonly #setIndex = new Map<string, number>();

  constructor(source: string, flags: string) {
    this.#source = source;
    this.#unicode = flags.includes('u');
    this.#atomFlags = flags.replace(/[^isu]/g, '');
  }

  parse(): Node {
    const tree = this.#alternation();
    if (this.#at !== this.#source.length) throw UNSUPPORTED;
    return tree;
  }

  sets(): Uint8Array {
    const all = new Uint8Array(this.#sets.length * 256);
    this.#sets.forEach((set, i) => all.set(set, i * 256));
    return all;
  }

  #alternation(): Node {
    const alts = [this.#sequence()];
    while (this.#source[this.#at] === '|') {
      this.#at++;
      alts.push(this.#sequence());
    }
    return alts.length === 1 ? alts[0]! : { kind: 'alt', alts };
  }

  #sequence(): Node {
    const items: Node[] = [];
    for (let c = this.#source[this.#at]; c !== undefined && c !== '|' && c !== ')'; c = this.#source[this.#at]) {
      items.push(this.#quantified(this.#atom()));
    }
    return items.length === 1 ? items[0]! : { kind: 'seq', items };
  }

  #quantified(atom: Node): Node {
    const s = this.#source;
    QUANTIFIER.lastIndex = this.#at;
    const q = QUANTIFIER.exec(s);
    if (q === null) {
      if (s[this.#at] === '{') throw UNSUPPORTED; // a literal brace (Annex B)
      return atom;
    }
    this.#at = QUANTIFIER.lastIndex;
    const lazy = s[this.#at] === '?';
    if (lazy) this.#at++;
    const [text, low, comma, high] = q;
    let min = 0;
    let max = Infinity;
    if (text === '+') min = 1;
    else if (text === '?') max = 1;
    else if (low !== undefined) {
      min = Number(low);
      max = comma === undefined ? min : high === '' ? Infinity : Number(high!);
    }
    if (min > MAX_STATES || (max !== Infinity && max > MAX_STATES)) throw UNSUPPORTED;
    return { kind: 'repeat', body: atom, min, max, lazy };
  }

  #atom(): Node {
    const s = this.#source;
    const start = this.#at;
    switch (s[start]) {
      case '(':
        return this.#group();
      case '^':
        this.#at++;
        return { kind: 'bol' };
      case '[':
        return this.#char(this.#classEnd());
      case '\\': {
        const escape = this.#unicode ? UNICODE_ESCAPE : LEGACY_ESCAPE;
        escape.lastIndex = start;
        if (!escape.test(s)) throw UNSUPPORTED;
        return this.#char(escape.lastIndex);
      }
      case '$': // matching at the end of the bytes so far would be undone by more bytes
      case '*':
      case '+':
      case '?':
      case '{':
        throw UNSUPPORTED;
      default:
        // With u, a surrogate pair is one character; without, each half is one.
        return this.#char(start + (this.#unicode && s.codePointAt(start)! > 0xffff ? 2 : 1));
    }
  }

  #group(): Node {
    const s = this.#source;
    let at = this.#at + 1;
    if (s[at] === '?') {
      if (s[at + 1] === ':') at += 2;
      else if (s[at + 1] === '<' && s[at + 2] !== '=' && s[at + 2] !== '!') at = s.indexOf('>', at) + 1;
      else throw UNSUPPORTED; // lookaround, modifiers
    }
    if (at === 0 || ++this.#depth > MAX_DEPTH) throw UNSUPPORTED;
    this.#at = at;
    const inner = this.#alternation();
    if (s[this.#at] !== ')') throw UNSUPPORTED;
    this.#at++;
    this.#depth--;
    return inner;
  }

  /** Where the class at #at ends ('[]' and '[^]' are complete classes in JS). */
  #classEnd(): number {
    const s = this.#source;
    for (let at = this.#at + 1; at < s.length; at++) {
      if (s[at] === '\\') at++;
      else if (s[at] === ']') return at + 1;
    }
    throw UNSUPPORTED;
  }

  /** The atom #at..end, which matches one character: its byte set, asked of V8. */
  #char(end: number): Node {
    const atom = this.#source.slice(this.#at, end);
    this.#at = end;
    if (++this.#atoms > MAX_STATES) throw UNSUPPORTED;
    let set = this.#setIndex.get(atom);
    if (set === undefined) {
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${atom})$`, this.#atomFlags);
      } catch {
        throw UNSUPPORTED;
      }
      const bytes = new Uint8Array(256);
      for (let b = 0; b < 256; b++) bytes[b] = re.test(String.fromCharCode(b)) ? 1 : 0;
      set = this.#sets.push(bytes) - 1;
      this.#setIndex.set(atom, set);
    }
    return { kind: 'char', set };
  }
}

/** Emits Pike VM instructions; over MAX_STATES instructions, UNSUPPORTED. */
class Compiler {
  readonly op: number[] = [];
  readonly x: number[] = [];
  readonly y: number[] = [];
  /** Mask bits used: the deepest nesting of optional iterations whose body can match empty. */
  bits = 0;

  push(op: number, x = 0): number {
    if (this.op.length >= MAX_STATES) throw UNSUPPORTED;
    this.op.push(op);
    this.x.push(x);
    this.y.push(0);
    return this.op.length - 1;
  }

  /** `level`: how many optional iterations of bodies that can match empty enclose this node. */
  emit(node: Node, level: number): void {
    switch (node.kind) {
      case 'char':
        this.push(CHAR, node.set);
        return;
      case 'bol':
        this.push(BOL);
        return;
      case 'seq':
        for (const item of node.items) this.emit(item, level);
        return;
      case 'alt': {
        const ends: number[] = [];
        node.alts.forEach((alt, i) => {
          if (i === node.alts.length - 1) return this.emit(alt, level);
          const split = this.push(SPLIT, this.op.length + 1);
          this.emit(alt, level);
          ends.push(this.push(JMP));
          this.y[split] = this.op.length;
        });
        for (const end of ends) this.x[end] = this.op.length;
        return;
      }
      case 'repeat':
        return this.#repeat(node, level);
    }
  }

  /**
   * min copies of the body, then a loop or (max - min) optional copies. ES fails an optional
   * iteration that consumed nothing (and tries the body's next alternative): a body that can
   * match empty is bracketed by ITER_START / ITER_END with a mask bit of its own.
   */
  #repeat({ body, min, max, lazy }: Node & { kind: 'repeat' }, level: number): void {
    for (let i = 0; i < min; i++) this.emit(body, level);
    if (max === min) return;
    const check = nullable(body);
    if (check && level >= MAX_BITS) throw UNSUPPORTED;
    const inner = check ? level + 1 : level;
    this.bits = Math.max(this.bits, inner);
    const iteration = () => {
      if (check) this.push(ITER_START, 1 << level);
      this.emit(body, inner);
      if (check) this.push(ITER_END, 1 << level);
    };
    const splits: number[] = [];
    if (max === Infinity) {
      const loop = this.push(SPLIT);
      iteration();
      this.push(JMP, loop);
      splits.push(loop);
    } else {
      // Nested: each further copy is tried only after the one before it matched.
      for (let i = min; i < max; i++) {
        splits.push(this.push(SPLIT));
        iteration();
      }
    }
    const exit = this.op.length;
    for (const split of splits) {
      this.x[split] = lazy ? exit : split + 1;
      this.y[split] = lazy ? split + 1 : exit;
    }
  }
}

/** Whether a node can match the empty string. */
function nullable(node: Node): boolean {
  switch (node.kind) {
    case 'char':
      return false;
    case 'bol':
      return true;
    case 'seq':
      return node.items.every(nullable);
    case 'alt':
      return node.alts.some(nullable);
    case 'repeat':
      return node.min === 0 || nullable(node.body);
  }
}
