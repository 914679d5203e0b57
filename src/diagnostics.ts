/**
 * Observability: `node:diagnostics_channel` channels (as undici publishes its own) and the
 * `NODE_DEBUG=trews` trace of the same events. Messages are built only when someone
 * subscribes, and trace lines only when the trace is on: a connection costs nothing extra
 * otherwise.
 *
 * - `trews:connect` `{ channel, remoteAddress, localAddress }`: an outgoing stream is open
 *   (with TLS: handshaken), just before its `onConnect`; again after each reconnect.
 * - `trews:accept` `{ channel, server, remoteAddress, localAddress }`: a server's connection is
 *   open (with TLS: handshaken), just before its `onConnect`.
 * - `trews:close` `{ channel, reason, error, bytesRead, bytesWritten, forced }`: a channel has
 *   closed, just before its `onClose`. Byte counts are a stream's (servers and datagram
 *   channels report 0).
 * - `trews:error` `{ channel, hook, error }`: an error is handed to a channel's error hook
 *   (`hook` names it: `'onConnectError'`, `'onReadError'`, ..., `'onError'` for a hook that threw).
 */
import * as diagnosticsChannel from 'node:diagnostics_channel';
import { formatAddress, type Address } from './address.js';
import type { Channel } from './channel.js';
import { debug } from './engine.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyChannel = Channel<any>;

/** Why a channel closed: an error hook ran (`'error'`), the peer finished or went away first (`'peer'`), or this side closed it (`'local'`: `close()`, `destroy()`, a timeout, an abort, `engine.stop()`). */
export type CloseReason = 'local' | 'peer' | 'error';

export interface ConnectDiagnostic {
  channel: AnyChannel;
  remoteAddress: Address | null;
  localAddress: Address | null;
}

export interface AcceptDiagnostic extends ConnectDiagnostic {
  /** The server that accepted the connection. */
  server: AnyChannel | null;
}

export interface CloseDiagnostic {
  channel: AnyChannel;
  reason: CloseReason;
  /** The first error reported to the channel's error hooks, if `reason` is `'error'`. */
  error: Error | null;
  bytesRead: number;
  bytesWritten: number;
  /** The graceful close stalled and was forced. */
  forced: boolean;
}

export interface ErrorDiagnostic {
  channel: AnyChannel;
  /** The hook the error was handed to. */
  hook: string;
  error: Error;
}

/** The channels trews publishes on, by name: subscribe with `diagnostics_channel.subscribe(name, fn)` or through these. */
export const diagnostics = {
  connect: diagnosticsChannel.channel('trews:connect'),
  accept: diagnosticsChannel.channel('trews:accept'),
  close: diagnosticsChannel.channel('trews:close'),
  error: diagnosticsChannel.channel('trews:error'),
} as const;

/** True when an open stream should be published or traced (read before building anything). */
export function observingOpen(): boolean {
  return debug.enabled || diagnostics.connect.hasSubscribers || diagnostics.accept.hasSubscribers;
}

/** A stream is open: an outgoing one (`trews:connect`), or one a server accepted (`trews:accept`). */
export function publishOpen(channel: AnyChannel, accepted: boolean, server: unknown, remoteAddress: Address | null, localAddress: Address | null): void {
  if (!accepted) {
    debug('%s: connected from %s', String(channel), formatAddress(localAddress));
    if (diagnostics.connect.hasSubscribers) diagnostics.connect.publish({ channel, remoteAddress, localAddress } satisfies ConnectDiagnostic);
  } else {
    debug('%s: accepted by %s', String(channel), String(server));
    if (diagnostics.accept.hasSubscribers) diagnostics.accept.publish({ channel, server: (server ?? null) as AnyChannel | null, remoteAddress, localAddress } satisfies AcceptDiagnostic);
  }
}

/** True when a close should be published or traced. */
export function observingClose(): boolean {
  return debug.enabled || diagnostics.close.hasSubscribers;
}

export function publishClose(message: CloseDiagnostic): void {
  const { channel, reason, error, bytesRead, bytesWritten, forced } = message;
  debug('%s: closed (%s%s%s; read %d B, wrote %d B)', String(channel), reason, forced ? ', forced' : '', error === null ? '' : `: ${error.name}: ${error.message}`, bytesRead, bytesWritten);
  if (diagnostics.close.hasSubscribers) diagnostics.close.publish(message);
}

/** An error is handed to `hook` of `channel`. */
export function publishError(channel: AnyChannel, hook: string, error: Error): void {
  if (debug.enabled) debug('%s: %s(%s: %s)', String(channel), hook, error.name, error.message);
  if (diagnostics.error.hasSubscribers) diagnostics.error.publish({ channel, hook, error } satisfies ErrorDiagnostic);
}
