/**
 * Async iteration over a stream's frames (`for await (const line of client)`), for scripts
 * and request/response clients. Frames come from the `'read'` event, so the stream's own
 * `onRead` still runs first. At most `highWaterMark` frames wait for the loop: above that the
 * stream's reading is paused (`pauseReading()` stops delivery at once), and resumed once the
 * loop has taken half of them, so a fast peer meets TCP backpressure instead of filling memory.
 */
import type { Stream } from './stream.js';
import { Struct } from './struct.js';

export interface FramesOptions {
  /** The most frames kept waiting for the loop before reading pauses (default 16). */
  highWaterMark?: number;
}

const DEFAULT_HIGH_WATER_MARK = 16;

/** Yields `Frame`s: a stream's iterator is typed from its class (see FrameOf). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export class FrameIterator<Frame = any> implements AsyncIterableIterator<Frame> {
  readonly #stream: Stream;
  readonly #highWaterMark: number;
  readonly #frames: Frame[] = [];
  /** Loops waiting in next() for a frame. */
  readonly #waiting: Array<{ resolve: (result: IteratorResult<Frame>) => void; reject: (err: unknown) => void }> = [];
  /** No more frames will come (the peer finished, the stream closed, or the loop left). */
  #ended = false;
  /** The error that reached the stream's onError, thrown once the frames before it are taken. */
  #failure: Error | null = null;
  /** Reading is paused by this iterator (not by the user), so it is this iterator's to resume. */
  #paused = false;

  constructor(stream: Stream, options: FramesOptions = {}) {
    const highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
    if (!Number.isSafeInteger(highWaterMark) || highWaterMark < 1) {
      throw new RangeError(`readFrames() highWaterMark must be an integer >= 1, got ${String(highWaterMark)}`);
    }
    this.#stream = stream;
    this.#highWaterMark = highWaterMark;
    if (stream.closed) {
      this.#ended = true;
      return;
    }
    stream.on('read', this.#onRead);
    stream.on('end', this.#onEnd);
    // Listening for 'error' also tells the default onError not to log: the loop throws it.
    stream.on('error', this.#onError);
    stream.on('close', this.#onClose);
  }

  /** Frames received and waiting for the loop (at most `highWaterMark`). */
  get queued(): number {
    return this.#frames.length;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Frame>> {
    if (this.#frames.length > 0) {
      const value = this.#frames.shift()!;
      this.#maybeResume();
      return Promise.resolve({ value, done: false });
    }
    if (this.#ended) return this.#finish();
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  /** Leaving the loop (`break`, `return`, a throw in its body) closes the stream, flushing what was written. */
  return(): Promise<IteratorResult<Frame>> {
    const open = !this.#ended;
    this.#end();
    this.#frames.length = 0;
    this.#failure = null;
    if (open) void this.#stream.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  #onRead = (...args: unknown[]): void => {
    // As 'read' delivers it: one value, or a Struct's values as an array.
    const frame = (args.length === 1 && !(this.#stream.readDelimiter instanceof Struct) ? args[0] : args) as Frame;
    const waiter = this.#waiting.shift();
    if (waiter !== undefined) {
      waiter.resolve({ value: frame, done: false });
      return;
    }
    this.#frames.push(frame);
    if (this.#frames.length >= this.#highWaterMark && !this.#stream.readingPaused) {
      this.#paused = true;
      this.#stream.pauseReading();
    }
  };

  #onEnd = (): void => {
    this.#end();
  };

  #onError = (err: Error): void => {
    this.#failure ??= err;
  };

  #onClose = (): void => {
    this.#end();
  };

  /** No more frames: stop listening for them, and settle the loops still waiting. */
  #end(): void {
    if (!this.#ended) {
      this.#ended = true;
      const stream = this.#stream;
      stream.off('read', this.#onRead);
      stream.off('end', this.#onEnd);
      stream.off('close', this.#onClose);
      // Errors count until the stream has closed (a failure may follow the peer's FIN).
      if (stream.closed) stream.off('error', this.#onError);
      else stream.once('close', () => stream.off('error', this.#onError));
    }
    for (const waiter of this.#waiting.splice(0)) void this.#finish().then(waiter.resolve, waiter.reject);
  }

  #finish(): Promise<IteratorResult<Frame>> {
    const failure = this.#failure;
    if (failure === null) return Promise.resolve({ value: undefined, done: true });
    this.#failure = null; // thrown once; then the iterator is done
    return Promise.reject(failure);
  }

  #maybeResume(): void {
    if (this.#paused && this.#frames.length <= this.#highWaterMark >> 1) {
      this.#paused = false;
      if (!this.#ended) this.#stream.resumeReading();
    }
  }
}
