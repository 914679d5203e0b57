/**
 * TLS: turning a connected plain socket into a TLS one, as a client or as a server. One
 * path serves TLS from the first byte and STARTTLS upgrades alike: trews always connects or
 * accepts in plain TCP and wraps the socket afterwards, so undelivered bytes can be handed
 * back to the TLS layer and errors are told apart (TCP connect vs handshake).
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Endpoint } from './address.js';

/** Options for the client side: any of `tls.connect`'s (ca, cert, key, servername, ALPNProtocols, ...). */
export type TLSClientOptions = Omit<tls.ConnectionOptions, 'socket' | 'host' | 'port' | 'path'> & {
  /** Give up on a handshake that has not completed after this many ms (default 30000). */
  handshakeTimeout?: number;
};

/** Options for the server side: a key and certificate (or a secureContext), and client-certificate policy. */
export type TLSServerOptions = tls.SecureContextOptions &
  Pick<tls.TlsOptions, 'requestCert' | 'rejectUnauthorized' | 'ALPNProtocols' | 'SNICallback' | 'secureContext'> & {
    /** Give up on a handshake that has not completed after this many ms (default 30000). */
    handshakeTimeout?: number;
  };

/** Server options prepared once (the secure context is built once per server, not per connection). */
export interface ServerTLS {
  readonly context: tls.SecureContext;
  readonly options: TLSServerOptions;
}

export const DEFAULT_HANDSHAKE_TIMEOUT = 30_000;

export function prepareServerTLS(options: TLSServerOptions): ServerTLS {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('tls options must be an object such as { key, cert } (PEM strings or Buffers)');
  }
  if (options.secureContext === undefined && (options.key === undefined || options.cert === undefined) && options.pfx === undefined) {
    throw new TypeError('a TLS server needs { key, cert } (or pfx, or a secureContext)');
  }
  return { context: options.secureContext ?? tls.createSecureContext(options), options };
}

/** Wrap an accepted (or server-side upgraded) socket; the handshake starts with the client's hello. */
export function wrapServer(raw: net.Socket, prepared: ServerTLS): tls.TLSSocket {
  const { options } = prepared;
  return new tls.TLSSocket(raw, {
    isServer: true,
    secureContext: prepared.context,
    requestCert: options.requestCert ?? false,
    rejectUnauthorized: options.rejectUnauthorized ?? true,
    ...(options.ALPNProtocols !== undefined && { ALPNProtocols: options.ALPNProtocols }),
    ...(options.SNICallback !== undefined && { SNICallback: options.SNICallback }),
  });
}

/**
 * Wrap a connected socket as a TLS client. The peer's certificate and host name are checked
 * unless `rejectUnauthorized: false` is given; SNI carries the host name (never an IP).
 */
export function wrapClient(raw: net.Socket, options: TLSClientOptions, endpoint: Endpoint | null): tls.TLSSocket {
  const host = endpoint?.kind === 'inet' ? (endpoint.host ?? 'localhost') : undefined;
  const servername = options.servername ?? (host !== undefined && net.isIP(host) === 0 ? host : undefined);
  const { handshakeTimeout: _ignored, ...rest } = options;
  return tls.connect({
    ...rest,
    socket: raw,
    ...(host !== undefined && { host }),
    ...(servername !== undefined && { servername }),
  });
}

/**
 * A server that asked for client certificates and rejects unauthorized ones must check the
 * verification result itself: a bare TLSSocket (no tls.Server) does not.
 */
export function clientCertificateError(socket: tls.TLSSocket, options: TLSServerOptions): Error | null {
  if (!options.requestCert || options.rejectUnauthorized === false) return null;
  const handle = (socket as unknown as { _handle?: { verifyError?: () => Error | null } })._handle;
  return handle?.verifyError?.() ?? null;
}
