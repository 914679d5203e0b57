/**
 * Framer benchmark: frames per second through `ReadBuffer` alone (push/next, no sockets),
 * next to the best hand-written loop over the same input in the same run.
 *
 * Input is pre-built as 64 KiB chunks (the size of Node's 'data' chunks), the first one
 * 7 bytes short so that frames straddle every chunk boundary, as they do on a real socket.
 * Each measurement frames BENCH_FRAMER_MB MiB (default 16); the rounds alternate trews and
 * the bare loop, BENCH_FRAMER_ROUNDS times (default 9). Frames/s are the best round of each;
 * the trews/bare ratio is the median of the rounds' back-to-back ratios (robust to a busy box).
 *
 * Cases, at 64-byte and 1 KiB frames (sizes on the wire):
 * - '\n' lines: trews `readDelimiter = '\n'` vs `indexOf(0x0a, pos)` + `subarray`.
 * - byte count: `readDelimiter = n` vs slicing every n bytes.
 * - length prefix: a `Struct('!I')` header, then the body as a byte count, then back, as a
 *   Stream does it (unpack the header, re-compile the delimiter on each switch) vs
 *   `readUInt32BE` + `subarray`.
 * Then scale checks: one 64 MiB frame vs one 16 MiB frame (time ratio ~4 means linear),
 * 1,000,000 small frames in one buffer, and (for information) RegExp delimiters.
 *
 * The trews side also calls `compact()` after each chunk, as Stream does after a dispatch.
 */
import { ReadBuffer, compileDelimiter, type Delimiter } from '../src/framing.js';
import { Struct } from '../src/struct.js';
import { envNumber, fmtInt, fmtRatio, table } from './lib.js';

export const description = 'frames/s through ReadBuffer alone (no sockets) vs a bare Buffer.indexOf loop; large-frame and 1M-frame scaling';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;
const SKEW = 7; // the first chunk is this much shorter: frames straddle chunk boundaries
const NL = 0x0a;
const HEADER = new Struct('!I');

/** What a framing loop reports: how many frames, and a checksum so nothing is optimised away. */
interface Tally {
  frames: number;
  bytes: number;
}

// ---- input -----------------------------------------------------------------------------------

/** Cut a stream into 64 KiB chunks (each a separate Buffer, as sockets deliver them). */
function chunked(stream: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  let at = 0;
  let size = CHUNK - SKEW;
  while (at < stream.length) {
    chunks.push(Buffer.from(stream.subarray(at, Math.min(at + size, stream.length))));
    at += size;
    size = CHUNK;
  }
  return chunks;
}

/** Lines of `size` bytes each, '\n' included. */
function lineStream(total: number, size: number): { stream: Buffer; frames: number } {
  const frames = Math.floor(total / size);
  const stream = Buffer.allocUnsafe(frames * size);
  for (let i = 0; i < frames; i++) {
    const at = i * size;
    stream.fill(0x61 + (i % 26), at, at + size - 1);
    stream[at + size - 1] = NL;
  }
  return { stream, frames };
}

/** Frames of `size` bytes on the wire: a 4-byte length, then size-4 body bytes. */
function prefixedStream(total: number, size: number): { stream: Buffer; frames: number } {
  const frames = Math.floor(total / size);
  const stream = Buffer.allocUnsafe(frames * size);
  for (let i = 0; i < frames; i++) {
    const at = i * size;
    stream.writeUInt32BE(size - 4, at);
    stream.fill(0x61 + (i % 26), at + 4, at + size);
  }
  return { stream, frames };
}

// ---- trews -----------------------------------------------------------------------------------

function trewsDelimited(chunks: Buffer[], delimiter: Delimiter, bufferSize = 65536): Tally {
  const rb = new ReadBuffer(bufferSize);
  rb.setDelimiter(compileDelimiter(delimiter));
  let frames = 0;
  let bytes = 0;
  for (let c = 0; c < chunks.length; c++) {
    rb.push(chunks[c]!);
    for (let f = rb.next(); f !== null; f = rb.next()) {
      frames++;
      bytes += f.length;
    }
    if (rb.length !== 0) rb.compact();
  }
  return { frames, bytes };
}

function trewsPrefixed(chunks: Buffer[]): Tally {
  const rb = new ReadBuffer(65536);
  rb.setDelimiter(compileDelimiter(HEADER));
  let frames = 0;
  let bytes = 0;
  let header = true;
  for (let c = 0; c < chunks.length; c++) {
    rb.push(chunks[c]!);
    for (let f = rb.next(); f !== null; f = rb.next()) {
      if (header) {
        // What Stream does for a Struct frame, and for `readDelimiter = length` in onRead.
        const [length] = HEADER.unpack(f) as [number];
        rb.setDelimiter(compileDelimiter(length));
        header = false;
      } else {
        frames++;
        bytes += f.length;
        rb.setDelimiter(compileDelimiter(HEADER));
        header = true;
      }
    }
    if (rb.length !== 0) rb.compact();
  }
  return { frames, bytes };
}

// ---- the best hand-written loops -------------------------------------------------------------

/** indexOf('\n', pos) + subarray; a line straddling chunks is copied once (its pieces kept in a list). */
function bareLines(chunks: Buffer[]): Tally {
  let frames = 0;
  let bytes = 0;
  let rest: Buffer[] = [];
  for (let c = 0; c < chunks.length; c++) {
    const chunk = chunks[c]!;
    let pos = 0;
    if (rest.length !== 0) {
      const i = chunk.indexOf(NL);
      if (i === -1) {
        rest.push(chunk);
        continue;
      }
      rest.push(chunk.subarray(0, i));
      const line = Buffer.concat(rest);
      frames++;
      bytes += line.length;
      rest = [];
      pos = i + 1;
    }
    for (let i = chunk.indexOf(NL, pos); i !== -1; i = chunk.indexOf(NL, pos)) {
      const line = chunk.subarray(pos, i);
      frames++;
      bytes += line.length;
      pos = i + 1;
    }
    if (pos < chunk.length) rest.push(chunk.subarray(pos));
  }
  return { frames, bytes };
}

/** Slice every n bytes; a frame straddling chunks is copied once. */
function bareCount(chunks: Buffer[], n: number): Tally {
  let frames = 0;
  let bytes = 0;
  let rest: Buffer | null = null;
  for (let c = 0; c < chunks.length; c++) {
    const chunk = chunks[c]!;
    let pos = 0;
    if (rest !== null) {
      const need = n - rest.length;
      if (chunk.length < need) {
        rest = Buffer.concat([rest, chunk]);
        continue;
      }
      const frame = Buffer.concat([rest, chunk.subarray(0, need)]);
      frames++;
      bytes += frame.length;
      rest = null;
      pos = need;
    }
    while (chunk.length - pos >= n) {
      const frame = chunk.subarray(pos, pos + n);
      frames++;
      bytes += frame.length;
      pos += n;
    }
    if (pos < chunk.length) rest = chunk.subarray(pos);
  }
  return { frames, bytes };
}

/** readUInt32BE + subarray; a header or body straddling chunks is copied once. */
function barePrefixed(chunks: Buffer[]): Tally {
  let frames = 0;
  let bytes = 0;
  let rest: Buffer | null = null;
  for (let c = 0; c < chunks.length; c++) {
    let buf = chunks[c]!;
    if (rest !== null) {
      // Join the straddling frame with as much of this chunk as it needs (copied once).
      const have = rest.length;
      const need = have >= 4 ? 4 + rest.readUInt32BE(0) - have : 4 - have;
      if (buf.length < need) {
        rest = Buffer.concat([rest, buf]);
        continue;
      }
      if (have >= 4) {
        const body = Buffer.concat([rest.subarray(4), buf.subarray(0, need)]);
        frames++;
        bytes += body.length;
        buf = buf.subarray(need);
      } else {
        // Only the header was cut: rebuild the start of the stream and go on from it.
        const head = Buffer.concat([rest, buf.subarray(0, need)]);
        const length = head.readUInt32BE(0);
        buf = buf.subarray(need);
        if (buf.length < length) {
          rest = Buffer.concat([head, buf]);
          continue;
        }
        const body = buf.subarray(0, length);
        frames++;
        bytes += body.length;
        buf = buf.subarray(length);
      }
      rest = null;
    }
    let pos = 0;
    while (buf.length - pos >= 4) {
      const length = buf.readUInt32BE(pos);
      if (buf.length - pos - 4 < length) break;
      const body = buf.subarray(pos + 4, pos + 4 + length);
      frames++;
      bytes += body.length;
      pos += 4 + length;
    }
    if (pos < buf.length) rest = buf.subarray(pos);
  }
  return { frames, bytes };
}

// ---- measuring -------------------------------------------------------------------------------

interface Timing {
  /** Best time in ms of each function. */
  best: number[];
  /** For two functions: the median over rounds of time[1] / time[0] (paired, so robust to load). */
  ratio: number;
}

/**
 * Run each function `rounds` times, interleaved (the order flips every round so neither side
 * always runs first), checking every run frames what was expected. On a busy machine the
 * best-of frames/s of each side can come from different quiet moments; the ratio is the
 * median of the per-round ratios, each measured back to back.
 */
function measure(rounds: number, fns: Array<() => Tally>, expected: Tally): Timing {
  const best = fns.map(() => Infinity);
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const times: number[] = [];
    const order = r % 2 === 0 ? fns.map((_, k) => k) : fns.map((_, k) => fns.length - 1 - k);
    for (const k of order) {
      const started = performance.now();
      const tally = fns[k]!();
      const ms = performance.now() - started;
      if (tally.frames !== expected.frames || tally.bytes !== expected.bytes) {
        throw new Error(`framer bench: run ${k} framed ${tally.frames} frames / ${tally.bytes} bytes, expected ${expected.frames} / ${expected.bytes}`);
      }
      best[k] = Math.min(best[k]!, ms);
      times[k] = ms;
    }
    if (fns.length === 2) ratios.push(times[1]! / times[0]!);
  }
  ratios.sort((a, b) => a - b);
  const mid = ratios.length >> 1;
  const ratio = ratios.length === 0 ? NaN : ratios.length % 2 === 1 ? ratios[mid]! : (ratios[mid - 1]! + ratios[mid]!) / 2;
  return { best, ratio };
}

function row(name: string, size: number, frames: number, t: Timing): string[] {
  const [trews, bare] = t.best;
  return [name, `${size} B`, fmtInt(frames / (trews! / 1000)), fmtInt(frames / (bare! / 1000)), fmtRatio(t.ratio)];
}

function target(label: string, ratio: number, goal: number): string {
  return `${label} = ${fmtRatio(ratio)} (target >= ${goal}x)  ${ratio >= goal ? 'met' : 'MISSED'}`;
}

export async function run(): Promise<void> {
  const total = Math.round(envNumber('BENCH_FRAMER_MB', 16) * MiB);
  const rounds = Math.max(1, Math.round(envNumber('BENCH_FRAMER_ROUNDS', 9)));
  console.log(
    `framer alone: ${fmtInt(total / MiB)} MiB per measurement in 64 KiB chunks, ${rounds} rounds: frames/s best of, ` +
      `trews/bare the median of back-to-back pairs (node ${process.version})`,
  );
  console.log();

  const rows: string[][] = [];
  let newlineRatio64 = NaN;
  for (const size of [64, 1024]) {
    const lines = lineStream(total, size);
    const lineChunks = chunked(lines.stream);
    const lineTally = { frames: lines.frames, bytes: lines.frames * (size - 1) };
    const nl = measure(rounds, [() => trewsDelimited(lineChunks, '\n'), () => bareLines(lineChunks)], lineTally);
    if (size === 64) newlineRatio64 = nl.ratio;
    rows.push(row(`'\\n' lines`, size, lines.frames, nl));

    const countTally = { frames: lines.frames, bytes: lines.frames * size };
    rows.push(row(`count ${size}`, size, lines.frames, measure(rounds, [() => trewsDelimited(lineChunks, size), () => bareCount(lineChunks, size)], countTally)));

    const prefixed = prefixedStream(total, size);
    const prefixedChunks = chunked(prefixed.stream);
    const prefixedTally = { frames: prefixed.frames, bytes: prefixed.frames * (size - 4) };
    rows.push(row(`Struct('!I') + body`, size, prefixed.frames, measure(rounds, [() => trewsPrefixed(prefixedChunks), () => barePrefixed(prefixedChunks)], prefixedTally)));

    // For information: a RegExp delimiter doing the same job as '\n'.
    rows.push(row(`RegExp /\\n/ (info)`, size, lines.frames, measure(Math.min(rounds, 5), [() => trewsDelimited(lineChunks, /\n/), () => bareLines(lineChunks)], lineTally)));
  }
  console.log(table(['case', 'frame', 'trews frames/s', 'bare frames/s', 'trews/bare (median)'], rows, new Set([1, 2, 3, 4])));
  console.log();
  console.log(target(`'\\n' 64 B trews/bare`, newlineRatio64, 0.8));
  console.log();

  // ---- one huge frame: linear in its size? ----
  // Split in two: the scan (every push and search before the delimiter arrives), which is the
  // framer's own work, and the final next() that copies the frame out of its chunks. The copy
  // is compared with Buffer.concat of the same chunks: allocating 64 MiB costs page faults
  // (glibc mmaps it fresh) that 16 MiB (recycled heap) may not, so the copy is not exactly 4x.
  const big: string[][] = [];
  const scanMs: number[] = [];
  const totalMs: number[] = [];
  const concatMs: number[] = [];
  for (const size of [16 * MiB, 64 * MiB]) {
    // The same 64 KiB chunk again and again (cache-resident), then one ending in '\n': the
    // scan then measures the framer's own work, not how fast RAM streams 64 MiB past it.
    const body = Buffer.alloc(CHUNK, 0x62);
    const last = Buffer.alloc(CHUNK, 0x62);
    last[CHUNK - 1] = NL;
    const chunks: Buffer[] = Array.from({ length: size / CHUNK - 1 }, () => body);
    chunks.push(last);
    let scan = Infinity;
    let total = Infinity;
    let concat = Infinity;
    for (let r = 0; r < Math.max(3, Math.min(rounds, 5)); r++) {
      const rb = new ReadBuffer(size);
      rb.setDelimiter(compileDelimiter('\n'));
      const t0 = performance.now();
      for (let i = 0; i < chunks.length - 1; i++) {
        rb.push(chunks[i]!);
        if (rb.next() !== null) throw new Error('framer bench: a frame before the delimiter');
      }
      rb.push(chunks[chunks.length - 1]!);
      const t1 = performance.now();
      const frame = rb.next();
      const t2 = performance.now();
      if (frame?.length !== size - 1) throw new Error(`framer bench: the ${size}-byte frame came out as ${frame?.length}`);
      const c0 = performance.now();
      const joined = Buffer.concat(chunks);
      const c1 = performance.now();
      if (joined.length !== size) throw new Error('framer bench: concat');
      scan = Math.min(scan, t1 - t0);
      total = Math.min(total, t2 - t0);
      concat = Math.min(concat, c1 - c0);
    }
    scanMs.push(scan);
    totalMs.push(total);
    concatMs.push(concat);
    big.push([`1 frame of ${size / MiB} MiB, '\\n' at the end`, `${scan.toFixed(2)} ms`, `${total.toFixed(1)} ms`, `${concat.toFixed(1)} ms`, `${fmtInt(size / MiB / (total / 1000))} MiB/s`]);
  }
  console.log(table(['one big frame, 64 KiB chunks', 'trews scan', 'trews total', 'Buffer.concat alone', 'trews throughput'], big, new Set([1, 2, 3, 4])));
  const scanRatio = scanMs[1]! / scanMs[0]!;
  const totalRatio = totalMs[1]! / totalMs[0]!;
  const concatRatio = concatMs[1]! / concatMs[0]!;
  // The scan is the framer's own work: it must grow 4x. The copy out costs what Buffer.concat
  // of the same chunks costs (allocation and page faults included), whatever its ratio.
  const copyOk = totalMs[1]! <= 1.5 * concatMs[1]! + 2;
  console.log(
    `64 MiB / 16 MiB: scan ${scanRatio.toFixed(1)}x (4 = linear) ${scanRatio <= 6 ? 'linear' : 'NOT LINEAR'}; ` +
      `total ${totalRatio.toFixed(1)}x vs Buffer.concat ${concatRatio.toFixed(1)}x; ` +
      `64 MiB total within 1.5x of Buffer.concat: ${copyOk ? 'yes' : 'NO'}`,
  );
  console.log();

  // ---- 1,000,000 small frames in one buffer ----
  const million = lineStream(8 * 1_000_000, 8);
  const one = [million.stream];
  const m = measure(5, [() => trewsDelimited(one, '\n', 65536), () => bareLines(one)], { frames: 1_000_000, bytes: 7_000_000 });
  const [tM, bM] = m.best;
  console.log(`1,000,000 8-byte lines in one 8 MB buffer: trews ${tM!.toFixed(1)} ms (${fmtInt(1e6 / (tM! / 1000))} frames/s), bare ${bM!.toFixed(1)} ms, trews/bare ${fmtRatio(m.ratio)}`);

  // ---- RegExp scaling (information): a regex cannot resume a search, so each push rescans ----
  const reMs: number[] = [];
  for (const size of [256 * KiB, MiB]) {
    const stream = Buffer.alloc(size, 0x62);
    stream[size - 1] = NL;
    const chunks: Buffer[] = [];
    for (let at = 0; at < size; at += KiB) chunks.push(stream.subarray(at, at + KiB));
    reMs.push(measure(1, [() => trewsDelimited(chunks, /\n/, size)], { frames: 1, bytes: size - 1 }).best[0]!);
  }
  const reRatio = reMs[1]! / reMs[0]!;
  console.log(
    `RegExp /\\n/, one frame in 1 KiB chunks: 256 KiB ${reMs[0]!.toFixed(1)} ms, 1 MiB ${reMs[1]!.toFixed(1)} ms: ` +
      `ratio ${reRatio.toFixed(1)} (4 = linear, 16 = quadratic) (info)`,
  );
}
