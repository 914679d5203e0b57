/**
 * The HTTP side of Engine.IO: long-polling requests (a held GET, a POST of packets), the
 * handshake's reply, error replies in Engine.IO's JSON form, and CORS headers.
 */
import type * as http from 'node:http';

/** Cross-origin access for browsers on other origins (polling requests; WebSocket is not subject to CORS). */
export interface CorsOptions {
  /** Allowed origins: `true` reflects any, a string or list allows those, a function decides. */
  origin: true | string | readonly string[] | ((origin: string) => boolean);
  /** Send `Access-Control-Allow-Credentials: true` (cookies, `withCredentials`). */
  credentials?: boolean;
  /** Extra request headers a preflight may allow (e.g. `['authorization']`). */
  allowedHeaders?: readonly string[];
}

/** Engine.IO's error codes and messages (the client shows them). */
export const EngineError = {
  UNKNOWN_TRANSPORT: { code: 0, message: 'Transport unknown' },
  UNKNOWN_SID: { code: 1, message: 'Session ID unknown' },
  BAD_HANDSHAKE_METHOD: { code: 2, message: 'Bad handshake method' },
  BAD_REQUEST: { code: 3, message: 'Bad request' },
  FORBIDDEN: { code: 4, message: 'Forbidden' },
  UNSUPPORTED_PROTOCOL_VERSION: { code: 5, message: 'Unsupported protocol version' },
} as const;

export type EngineErrorReply = (typeof EngineError)[keyof typeof EngineError];

/** The CORS headers for a request's origin, or none when it is not allowed (or there is no CORS option). */
export function corsHeaders(cors: CorsOptions | undefined, request: http.IncomingMessage): Record<string, string> {
  const origin = request.headers.origin;
  if (cors === undefined || origin === undefined || !originAllowed(cors, origin)) return {};
  const headers: Record<string, string> = { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' };
  if (cors.credentials === true) headers['Access-Control-Allow-Credentials'] = 'true';
  return headers;
}

function originAllowed(cors: CorsOptions, origin: string): boolean {
  const allowed = cors.origin;
  if (allowed === true) return true;
  if (typeof allowed === 'string') return allowed === origin;
  if (typeof allowed === 'function') return allowed(origin);
  return allowed.includes(origin);
}

/** Answer a CORS preflight (OPTIONS). */
export function answerPreflight(cors: CorsOptions | undefined, request: http.IncomingMessage, response: http.ServerResponse): void {
  const headers = corsHeaders(cors, request);
  if (headers['Access-Control-Allow-Origin'] !== undefined) {
    headers['Access-Control-Allow-Methods'] = 'GET, POST';
    const wanted = request.headers['access-control-request-headers'];
    const allowed = cors?.allowedHeaders?.join(', ') ?? wanted;
    if (allowed !== undefined) headers['Access-Control-Allow-Headers'] = allowed;
  }
  response.writeHead(204, { ...headers, 'Content-Length': '0' });
  response.end();
}

/** A polling payload (packets joined by `\x1e`), answering a GET. */
export function sendPayload(response: http.ServerResponse, payload: string): void {
  if (response.writableEnded || response.destroyed) return;
  response.writeHead(200, { 'Content-Type': 'text/plain; charset=UTF-8', 'Content-Length': String(Buffer.byteLength(payload)), ...corsOf(response) });
  response.end(payload);
}

export function sendOk(response: http.ServerResponse): void {
  response.writeHead(200, { 'Content-Type': 'text/html', 'Content-Length': '2', ...corsOf(response) });
  response.end('ok');
}

/** An Engine.IO error reply: `{ code, message }` as JSON. */
export function sendError(response: http.ServerResponse, status: number, error: EngineErrorReply): void {
  const body = JSON.stringify(error);
  response.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), ...corsOf(response) });
  response.end(body);
}

const CORS = Symbol('trews.cors');
type WithCors = http.ServerResponse & { [CORS]?: Record<string, string> };

/** Remember the CORS headers for whatever answers this response later (a held GET). */
export function rememberCors(response: http.ServerResponse, headers: Record<string, string>): void {
  (response as WithCors)[CORS] = headers;
}

function corsOf(response: http.ServerResponse): Record<string, string> {
  return (response as WithCors)[CORS] ?? {};
}

/**
 * Read a request body as UTF-8, at most `limit` bytes: resolves with the text, or null when the
 * body was too big (the request is answered 413 and the connection closed) or was cut short.
 */
export function readBody(request: http.IncomingMessage, response: http.ServerResponse, limit: number): Promise<string | null> {
  return new Promise((resolve) => {
    const declared = Number(request.headers['content-length']);
    const tooBig = () => {
      response.writeHead(413, { Connection: 'close', 'Content-Length': '0', ...corsOf(response) });
      response.end();
      request.destroy();
      resolve(null);
    };
    if (declared > limit) {
      tooBig();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        request.removeAllListeners('data');
        tooBig();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(size > limit ? null : Buffer.concat(chunks).toString('utf8')));
    request.on('error', () => resolve(null));
    request.on('close', () => {
      if (!request.complete) resolve(null);
    });
  });
}
