/**
 * Every error trews raises or reports. Each class has a stable `code` (`ERR_TREWS_*`);
 * a system error behind it (`ECONNREFUSED`, `EADDRINUSE`, ...) is kept as `cause`, and its
 * code is also readable as `systemCode`.
 */

export interface SystemErrorLike extends Error {
  code?: string;
  errno?: number;
  syscall?: string;
}

/** The base of every trews error: `code` is a stable `ERR_TREWS_*` string, `cause` the system error behind it, if any. */
export class TrewsError extends Error {
  readonly code: string = 'ERR_TREWS';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }

  /** The system error code behind this error (`'ECONNREFUSED'`, ...), if any. */
  get systemCode(): string | undefined {
    const cause = this.cause as SystemErrorLike | undefined;
    return typeof cause?.code === 'string' ? cause.code : undefined;
  }
}

/** Connecting failed: refused, unreachable, unresolvable host, timed out. */
export class ConnectError extends TrewsError {
  override readonly code = 'ERR_TREWS_CONNECT';
}

/** Listening failed: `EADDRINUSE`, `EACCES`, a live or non-socket file at a Unix path. */
export class ListenError extends TrewsError {
  override readonly code = 'ERR_TREWS_LISTEN';
}

/** Reading failed: a peer reset, or the peer closed in the middle of a fixed-size frame. */
export class ReadError extends TrewsError {
  override readonly code: string = 'ERR_TREWS_READ';
}

/** The peer closed before a fixed-size frame (byte count, Struct) was complete. */
export class TruncatedFrameError extends ReadError {
  override readonly code = 'ERR_TREWS_TRUNCATED';
  constructor(
    message: string,
    /** The bytes received after the last whole frame. */
    readonly remainder: Buffer,
  ) {
    super(message);
  }
}

/** Writing failed: `EPIPE`, a reset during a write, an oversized datagram. */
export class WriteError extends TrewsError {
  override readonly code = 'ERR_TREWS_WRITE';
}

/** A frame (complete or not) exceeded `bufferSize`. */
export class OverflowError extends TrewsError {
  override readonly code = 'ERR_TREWS_OVERFLOW';
  constructor(
    /** The `bufferSize` in force. */
    readonly limit: number,
    /** The frame size seen (for an incomplete frame, the bytes buffered so far). */
    readonly size: number,
  ) {
    super(`frame of ${size} bytes exceeds bufferSize ${limit}`);
  }
}

/** A TLS handshake or record failed. */
export class TLSError extends TrewsError {
  override readonly code = 'ERR_TREWS_TLS';
}

/** A user hook threw; the thrown value is `cause`. */
export class HookError extends TrewsError {
  override readonly code = 'ERR_TREWS_HOOK';
  constructor(
    /** The hook that threw, e.g. `'onRead'`. */
    readonly hook: string,
    cause: unknown,
  ) {
    super(`${hook} threw: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** The operation needs an open channel (write after close, connect twice, ...). */
export class ClosedError extends TrewsError {
  override readonly code = 'ERR_TREWS_CLOSED';
}

/** The operation is invalid in the channel's current state (connect while connected, ...). */
export class StateError extends TrewsError {
  override readonly code = 'ERR_TREWS_STATE';
}

/** A bounded wait ran out (a graceful close whose peer never finished). */
export class TimeoutError extends TrewsError {
  override readonly code = 'ERR_TREWS_TIMEOUT';
}

/** The runtime or platform does not offer this (Unix datagram sockets, ...). */
export class UnsupportedError extends TrewsError {
  override readonly code = 'ERR_TREWS_UNSUPPORTED';
}

/**
 * An operation was aborted through its `AbortSignal`: Node's shape (`name` `'AbortError'`,
 * `code` `'ABORT_ERR'`), with the signal's reason as `cause`.
 */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';

  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/** The system error code of any error (`err.code` of a Node system error, or of its trews wrapper's cause). */
export function systemCodeOf(err: unknown): string | undefined {
  if (err instanceof TrewsError) return err.systemCode;
  const code = (err as SystemErrorLike | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
