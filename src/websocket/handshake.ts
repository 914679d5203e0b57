/**
 * The HTTP/1.1 opening handshake of RFC 6455 (section 4), both sides. The server side checks a
 * request node:http has parsed; the client side builds the request and checks the 101 reply.
 */
import { createHash, randomBytes } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import { parseProtocols } from './protocol.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const KEY = /^[+/0-9A-Za-z]{22}==$/;
/** The most bytes of a handshake reply a client reads before giving up. */
export const MAX_REPLY_BYTES = 16 * 1024;

export function acceptKey(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

/** A refusal: the status to answer with and why. */
export interface Refusal {
  status: number;
  reason: string;
  headers?: Record<string, string>;
}

/** Why a request is not a valid WebSocket upgrade, or null if it is. */
export function checkUpgrade(request: IncomingMessage): Refusal | null {
  if (request.method !== 'GET') return { status: 405, reason: 'the method must be GET' };
  if (request.headers.upgrade?.toLowerCase() !== 'websocket') return { status: 400, reason: 'Upgrade: websocket is missing' };
  const key = request.headers['sec-websocket-key'];
  if (key === undefined || !KEY.test(key)) return { status: 400, reason: 'Sec-WebSocket-Key is missing or invalid' };
  const version = request.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') {
    return { status: 400, reason: 'Sec-WebSocket-Version must be 13', headers: { 'Sec-WebSocket-Version': '13, 8' } };
  }
  return null;
}

/** The subprotocol to answer with: the first the client offers that the server speaks. */
export function chooseProtocol(request: IncomingMessage, supported: readonly string[]): string | null {
  const header = request.headers['sec-websocket-protocol'];
  if (header === undefined || supported.length === 0) return null;
  let offered: Set<string>;
  try {
    offered = parseProtocols(header);
  } catch {
    return null;
  }
  for (const protocol of offered) if (supported.includes(protocol)) return protocol;
  return null;
}

/** The 101 reply accepting the upgrade. */
export function acceptReply(request: IncomingMessage, protocol: string | null, extensions: string | null = null): string {
  const lines = [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${acceptKey(request.headers['sec-websocket-key']!)}`,
  ];
  if (protocol !== null) lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
  if (extensions !== null) lines.push(`Sec-WebSocket-Extensions: ${extensions}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** A complete HTTP reply refusing the upgrade; the connection closes after it. */
export function refusalReply({ status, reason, headers = {} }: Refusal): string {
  const text = STATUS_CODES[status] ?? 'Refused';
  const body = `${reason}\n`;
  const fields = { Connection: 'close', 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)), ...headers };
  return `HTTP/1.1 ${status} ${text}\r\n${Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`;
}

// ---- client side ----------------------------------------------------------------------------

export interface ClientRequest {
  /** The bytes to send. */
  text: string;
  /** The Sec-WebSocket-Accept value the server must answer with. */
  expectedAccept: string;
}

export function clientRequest(url: URL, headers: Record<string, string>, protocols: readonly string[]): ClientRequest {
  const key = randomBytes(16).toString('base64');
  const fields: Record<string, string> = {
    Host: url.host,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13',
    ...(protocols.length > 0 && { 'Sec-WebSocket-Protocol': protocols.join(', ') }),
    ...headers,
  };
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, ...Object.entries(fields).map(([k, v]) => `${k}: ${v}`)];
  return { text: `${lines.join('\r\n')}\r\n\r\n`, expectedAccept: acceptKey(key) };
}

/** The server's reply to the opening handshake. */
export interface HandshakeReply {
  status: number;
  headers: Record<string, string>;
  /** Bytes after the reply's header (the first frames). */
  rest: Buffer;
}

/** Parse an HTTP reply header from `bytes`; null until the blank line has arrived. */
export function parseReply(bytes: Buffer): HandshakeReply | null {
  const end = bytes.indexOf('\r\n\r\n');
  if (end === -1) return null;
  const [statusLine = '', ...fieldLines] = bytes.toString('latin1', 0, end).split('\r\n');
  const match = /^HTTP\/1\.1 (\d{3})(?: .*)?$/.exec(statusLine);
  const headers: Record<string, string> = {};
  for (const line of fieldLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: match === null ? 0 : Number(match[1]), headers, rest: bytes.subarray(end + 4) };
}

/** Why a reply does not accept the upgrade, or null if it does. */
export function checkReply(reply: HandshakeReply, expectedAccept: string, protocols: readonly string[], offeredExtensions: boolean): string | null {
  if (reply.status !== 101) return reply.status === 0 ? 'the reply is not HTTP/1.1' : `the server answered HTTP ${reply.status}`;
  const { headers } = reply;
  if (headers.upgrade?.toLowerCase() !== 'websocket') return 'the reply lacks Upgrade: websocket';
  if (headers['sec-websocket-accept'] !== expectedAccept) return 'the reply has a wrong Sec-WebSocket-Accept';
  const protocol = headers['sec-websocket-protocol'];
  if (protocol !== undefined && !protocols.includes(protocol)) return `the server chose a subprotocol not offered: ${protocol}`;
  if (headers['sec-websocket-extensions'] !== undefined && !offeredExtensions) return 'the server chose an extension not offered';
  return null;
}
