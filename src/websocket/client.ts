/**
 * WebSocketClient: `connect('ws://host:port/path')` or `wss://`. The TCP (and TLS) connection
 * is the Stream's own, with its timeouts and `reconnect` option; the opening handshake runs
 * over it, and `onConnect` follows the server's 101 reply (again after each reconnect).
 */
import { Buffer } from 'node:buffer';
import { isIP } from 'node:net';
import { Outcome } from '../channel.js';
import { ConnectError, ClosedError } from '../errors.js';
import { Stream, type ConnectOptions } from '../stream.js';
import type { Timer } from '../engine.js';
import type { AddressInput } from '../address.js';
import type { TLSClientOptions } from '../tls.js';
import { WebSocketConnection } from './connection.js';
import { MAX_REPLY_BYTES, checkReply, clientRequest, parseReply } from './handshake.js';
import { offerDeflate, settleDeflate, type DeflateOptions, type PerMessageDeflate } from './protocol.js';

export interface WebSocketConnectOptions extends Omit<ConnectOptions, 'tls'> {
  /** TLS options for `wss:` (ca, cert, ...); the server name is the URL's host. */
  tls?: TLSClientOptions;
  /** Subprotocols to offer (Sec-WebSocket-Protocol); the server's choice is `protocol`. */
  protocols?: readonly string[];
  /** Extra request headers (Origin, Authorization, Cookie, ...). */
  headers?: Record<string, string>;
  /** Give up when the server has not answered the handshake after this many ms (default 30000). */
  handshakeTimeout?: number;
  /** Offer permessage-deflate (RFC 7692): `true` or ws's options. Default false. */
  perMessageDeflate?: boolean | DeflateOptions;
}

/** The handshake failed: the server refused (`status`, e.g. 403) or answered something else. */
export class HandshakeRefusedError extends ConnectError {
  constructor(
    message: string,
    /** The HTTP status the server answered with (0 if its reply was not HTTP). */
    readonly status: number,
  ) {
    super(message);
  }
}

interface Target {
  url: URL;
  protocols: readonly string[];
  headers: Record<string, string>;
  handshakeTimeout: number;
  perMessageDeflate: DeflateOptions | null;
}

interface Handshake {
  expectedAccept: string;
  /** The extension offered, if any. */
  deflate: PerMessageDeflate | null;
  reply: Buffer;
  timer: Timer;
}

export class WebSocketClient extends WebSocketConnection {
  #target: Target | null = null;
  #handshake: Handshake | null = null;
  #connected: ReturnType<typeof Outcome.create<void>> | null = null;

  /**
   * Connect to a `ws:` or `wss:` URL. Resolves after `onConnect` (the handshake is done);
   * rejects with the error `onConnectError` saw (a refusal: `HandshakeRefusedError` with the
   * HTTP status). With `reconnect`, a dropped connection is made again, handshake included;
   * a refused handshake is final.
   */
  override connect(url: string | URL | AddressInput, options: WebSocketConnectOptions = {}): Promise<void> {
    if (typeof url !== 'string' && !(url instanceof URL)) throw new TypeError(`a WebSocketClient connects to a ws: or wss: URL, got ${String(url)}`);
    const target = new URL(url);
    if (target.protocol !== 'ws:' && target.protocol !== 'wss:') throw new TypeError(`a WebSocket URL starts with ws: or wss:, got ${String(url)}`);
    const secure = target.protocol === 'wss:';
    const host = target.hostname.startsWith('[') ? target.hostname.slice(1, -1) : target.hostname;
    const port = target.port === '' ? (secure ? 443 : 80) : Number(target.port);
    const { protocols = [], headers = {}, handshakeTimeout = 30_000, tls, perMessageDeflate = false, ...connectOptions } = options;
    this.#target = { url: target, protocols, headers, handshakeTimeout, perMessageDeflate: perMessageDeflate === false ? null : perMessageDeflate === true ? {} : perMessageDeflate };
    const baseTLS = typeof this.tls === 'object' ? this.tls : {};
    const tlsOptions = secure ? { ...(isIP(host) === 0 && { servername: host }), ...baseTLS, ...tls } : false;
    const connected = (this.#connected = Outcome.create<void>());
    // Closed before the handshake completed: no timer or zlib context is left behind.
    Promise.prototype.then.call(this.whenClosed(), () => this.#forgetHandshake());
    // Not observed through Outcome#then: the caller's own awaiting decides whether hooks log.
    Promise.prototype.then.call(super.connect([host, port], { ...connectOptions, tls: tlsOptions }), undefined, connected.reject);
    Promise.prototype.then.call(this.whenClosed(), () => connected.reject(new ClosedError(`${String(this)} closed before the WebSocket handshake completed`)));
    return connected.outcome;
  }

  /** @internal The socket is open: send the opening handshake. */
  override _opened(): void {
    this._resetSession();
    this._useDeflate(null);
    const { url, headers, protocols, handshakeTimeout, perMessageDeflate } = this.#target!;
    const offer = perMessageDeflate === null ? null : offerDeflate(perMessageDeflate, this.bufferSize);
    const request = clientRequest(url, offer === null ? headers : { 'Sec-WebSocket-Extensions': offer.header, ...headers }, protocols);
    // A handshake left unfinished by a dropped connection is forgotten (a reconnect starts anew).
    this.#forgetHandshake();
    const handshake: Handshake = {
      expectedAccept: request.expectedAccept,
      deflate: offer?.deflate ?? null,
      reply: Buffer.alloc(0),
      timer: this.engine._defer(handshakeTimeout, () => {
        if (this.#handshake === handshake && this.connected) this.#refused(`no reply within ${handshakeTimeout} ms`, 0);
      }),
    };
    this.#handshake = handshake;
    Stream.prototype.write.call(this, request.text);
    this.flush();
  }

  /** @internal */
  override _received(chunk: Buffer): void {
    const handshake = this.#handshake;
    if (handshake === null) {
      super._received(chunk);
      return;
    }
    handshake.reply = handshake.reply.length === 0 ? chunk : Buffer.concat([handshake.reply, chunk]);
    const reply = parseReply(handshake.reply);
    if (reply === null) {
      if (handshake.reply.length > MAX_REPLY_BYTES) this.#refused(`its reply header exceeds ${MAX_REPLY_BYTES} bytes`, 0);
      return;
    }
    const { protocols } = this.#target!;
    let wrong = checkReply(reply, handshake.expectedAccept, protocols, handshake.deflate !== null);
    const extensions = reply.headers['sec-websocket-extensions'];
    if (wrong === null && extensions !== undefined) {
      try {
        settleDeflate(handshake.deflate!, extensions);
      } catch (err) {
        wrong = `invalid Sec-WebSocket-Extensions: ${(err as Error).message}`;
      }
    }
    if (wrong !== null) {
      handshake.deflate?.cleanup();
      this.#refused(wrong, reply.status);
      return;
    }
    this._useDeflate(extensions === undefined ? null : handshake.deflate);
    handshake.timer.cancel();
    this.#handshake = null;
    this.protocol = reply.headers['sec-websocket-protocol'] ?? null;
    this._beginSession();
    this.#connected?.resolve();
    if (reply.rest.length > 0 && this.connected) super._received(reply.rest);
  }

  #forgetHandshake(): void {
    const handshake = this.#handshake;
    this.#handshake = null;
    handshake?.timer.cancel();
    handshake?.deflate?.cleanup();
  }

  #refused(why: string, status: number): void {
    const handshake = this.#handshake;
    if (handshake === null) return;
    handshake.timer.cancel();
    this.#handshake = null;
    const err = new HandshakeRefusedError(`WebSocket handshake with ${this.#target!.url.href} failed: ${why}`, status);
    const connected = this.#connected;
    this._fail('onConnectError', err, connected?.outcome.observed);
    connected?.reject(err);
    this.destroy();
  }
}
