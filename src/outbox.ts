/**
 * Outbox: an outgoing queue of whole frames that feeds a Stream only while the stream's
 * `bufferedBytes` is below its `writeHighWaterMark`, and remembers for each frame handed over
 * its byte range [start, end) in the stream's byte sequence. Comparing those ranges with
 * `bytesWritten` tells, at any moment (in particular at close), which frames went out whole,
 * which went out in part, and which never started: Pike's close accounting, to the byte that
 * the stream can tell.
 */

export interface OutboxItem {
  /** The bytes to write, in one `write()` call. */
  readonly frame: Buffer;
  /** Byte range in the stream, set when handed over. */
  start: number;
  end: number;
  /** Set to drop the item if it is still waiting (a request that timed out or was aborted). */
  cancelled?: boolean;
}

/** The part of a Stream the outbox uses. */
export interface OutboxSink {
  readonly bytesWritten: number;
  readonly bufferedBytes: number;
  readonly queuedBytes: number;
  readonly writeHighWaterMark: number;
  write(data: Uint8Array): boolean;
  /** Drop queued bytes from `position` (in `bytesWritten + bufferedBytes` terms) on; bytes its socket already holds stay. */
  _dropQueuedFrom?(position: number): void;
}

/** Items not (wholly) written out: in part (`incomplete`) or not at all (`queued`), in order. */
export interface Unsent<T> {
  incomplete: T[];
  queued: T[];
}

export class Outbox<T extends OutboxItem> {
  /** Items not yet handed to the stream, from index #next on. */
  #waiting: T[] = [];
  #next = 0;
  /** Items handed to the stream that may not be written out yet, from index #oldest on. */
  #handed: T[] = [];
  #oldest = 0;
  #holding = false;

  constructor(readonly sink: OutboxSink) {}

  /** Items waiting to be handed to the stream. */
  get waiting(): number {
    return this.#waiting.length - this.#next;
  }

  /** Queue an item, handing it over at once if the window has room. False once the window is full. */
  push(item: T): boolean {
    const sink = this.sink;
    if (this.#next === this.#waiting.length && !this.#holding && sink.bufferedBytes < sink.writeHighWaterMark) this.#hand(item);
    else this.#waiting.push(item);
    return this.#next === this.#waiting.length && sink.bufferedBytes < sink.writeHighWaterMark;
  }

  /** Hand waiting items over while the window has room: call it on every drain. */
  pump(): void {
    this.#forgetWritten();
    const sink = this.sink;
    while (this.#next < this.#waiting.length && !this.#holding && sink.bufferedBytes < sink.writeHighWaterMark) {
      const item = this.#waiting[this.#next++]!;
      if (!item.cancelled) this.#hand(item);
    }
    this.#compactWaiting();
  }

  /** Hand everything over now, whatever the window (a close that sends everything). */
  handAll(): void {
    this.#holding = false;
    while (this.#next < this.#waiting.length) {
      const item = this.#waiting[this.#next++]!;
      if (!item.cancelled) this.#hand(item);
    }
    this.#compactWaiting();
  }

  /**
   * Hand nothing more over, and take back from the stream's queue every item after the one
   * being written (a close that lets only that one finish): those are `queued` in `unsent()`.
   * What the stream's socket already holds of its current write cannot be taken back and still
   * goes out (TCP: libuv's write queue; see Stream#_dropQueuedFrom).
   */
  hold(): void {
    this.#holding = true;
    this.#forgetWritten();
    this.sink._dropQueuedFrom?.(this.#endOfStarted());
  }

  /** Where the items that may have started end: no byte from there on has gone out. */
  #endOfStarted(): number {
    const unstarted = this.#unstarted();
    let end = unstarted;
    for (let i = this.#oldest; i < this.#handed.length; i++) {
      const item = this.#handed[i]!;
      if (item.start >= unstarted) break;
      end = Math.max(end, item.end);
    }
    return end;
  }

  /**
   * What has not been written out: `queued` certainly never started (a resend cannot
   * duplicate it); `incomplete` went out in part, or perhaps whole where the transport cannot
   * tell (TLS).
   */
  unsent(): Unsent<T> {
    const written = this.sink.bytesWritten;
    const unstarted = this.#unstarted();
    const incomplete: T[] = [];
    const queued: T[] = [];
    for (let i = this.#oldest; i < this.#handed.length; i++) {
      const item = this.#handed[i]!;
      if (item.end <= written) continue;
      (item.start < unstarted ? incomplete : queued).push(item);
    }
    for (let i = this.#next; i < this.#waiting.length; i++) {
      const item = this.#waiting[i]!;
      if (!item.cancelled) queued.push(item);
    }
    return { incomplete, queued };
  }

  /** Where the stream's bytes that certainly did not go out begin (in `bytesWritten` terms). */
  #unstarted(): number {
    const sink = this.sink;
    return sink.bytesWritten + sink.bufferedBytes - sink.queuedBytes;
  }

  #hand(item: T): void {
    const sink = this.sink;
    this.#forgetWritten();
    item.start = sink.bytesWritten + sink.bufferedBytes;
    item.end = item.start + item.frame.length;
    sink.write(item.frame);
    this.#handed.push(item);
  }

  /** Drop records of items wholly written out (so their frames can be collected). */
  #forgetWritten(): void {
    const written = this.sink.bytesWritten;
    const handed = this.#handed;
    while (this.#oldest < handed.length && handed[this.#oldest]!.end <= written) this.#oldest++;
    if (this.#oldest === handed.length) {
      this.#handed = [];
      this.#oldest = 0;
    } else if (this.#oldest >= 1024 && this.#oldest * 2 >= handed.length) {
      this.#handed = handed.slice(this.#oldest);
      this.#oldest = 0;
    }
  }

  #compactWaiting(): void {
    if (this.#next === this.#waiting.length) {
      this.#waiting = [];
      this.#next = 0;
    } else if (this.#next >= 1024 && this.#next * 2 >= this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#next);
      this.#next = 0;
    }
  }
}
