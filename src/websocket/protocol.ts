/**
 * The RFC 6455 pieces trews takes from `ws`: its frame parser (Receiver: fragmentation,
 * control frames, UTF-8 validation, maxPayload) and its frame builder (Sender.frame). trews
 * owns the socket; these only turn bytes into messages and messages into bytes. The frames
 * most traffic is made of (whole, final, small data frames) a server reads and writes with
 * the few lines here instead (simpleFrameSize, unmask, serverFrameHeader).
 */
import { Buffer } from 'node:buffer';
import * as ws from 'ws';

/** The parts of ws's Receiver trews uses (ws declares no types for it). */
export interface Receiver {
  write(chunk: Buffer): boolean;
  /** The largest message accepted (0: any); read per frame, so it may change. */
  _maxPayload: number;
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): this;
  on(event: 'ping' | 'pong', listener: (data: Buffer) => void): this;
  on(event: 'conclude', listener: (code: number, reason: Buffer) => void): this;
  on(event: 'error', listener: (err: Error & { code?: string }) => void): this;
  // ws internals read by betweenMessages():
  _state: number;
  _bufferedBytes: number;
  _fragmented: number;
  _opcode: number;
  _errored: boolean;
  destroyed: boolean;
}

/**
 * True when the Receiver holds nothing of a message (no partial frame, no fragments, no close
 * seen, no error): it may then serve any other connection of the same side.
 */
export function betweenMessages(receiver: Receiver): boolean {
  return receiver._state === 0 && receiver._bufferedBytes === 0 && receiver._fragmented === 0 && receiver._opcode !== CLOSE && !receiver._errored && !receiver.destroyed;
}

interface FrameOptions {
  fin: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
  rsv1: boolean;
}

/** ws's permessage-deflate (RFC 7692): negotiation, and zlib with its concurrency limit. */
export interface PerMessageDeflate {
  params: Record<string, unknown> | null;
  offer(): Record<string, unknown>;
  accept(configurations: unknown[]): Record<string, unknown>;
  cleanup(): void;
}

/** Options of ws's PerMessageDeflate (see ws's documentation). */
export interface DeflateOptions {
  serverNoContextTakeover?: boolean;
  clientNoContextTakeover?: boolean;
  serverMaxWindowBits?: boolean | number;
  clientMaxWindowBits?: boolean | number;
  /** Messages smaller than this are sent uncompressed (bytes, default 1024). */
  threshold?: number;
  concurrencyLimit?: number;
  zlibDeflateOptions?: object;
  zlibInflateOptions?: object;
}

/** ws's Sender, used only on connections that compress: it orders frames around asynchronous deflate. */
export interface Sender {
  send(data: Buffer, options: { binary: boolean; compress: boolean; fin: boolean; mask: boolean }, cb?: (err?: Error) => void): void;
  ping(data: Buffer, mask: boolean, cb?: (err?: Error) => void): void;
  pong(data: Buffer, mask: boolean, cb?: (err?: Error) => void): void;
  close(code: number | undefined, reason: string, mask: boolean, cb?: (err?: Error) => void): void;
}

/** What a Sender writes to: the connection's own write queue. */
export interface FrameSink {
  readonly destroyed: boolean;
  cork(): void;
  uncork(): void;
  write(chunk: Buffer | string, cb?: (err?: Error) => void): boolean;
}

interface WsInternals {
  Receiver: new (options: { isServer: boolean; maxPayload: number; allowSynchronousEvents?: boolean; extensions?: Record<string, PerMessageDeflate> }) => Receiver;
  Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] } & (new (sink: FrameSink, extensions: Record<string, PerMessageDeflate>) => Sender);
  subprotocol: { parse(header: string): Set<string> };
  extension: { parse(header: string): Record<string, unknown[]>; format(extensions: Record<string, unknown[]>): string };
  PerMessageDeflate: (new (options: DeflateOptions & { isServer: boolean; maxPayload: number }) => PerMessageDeflate) & { extensionName: string };
}

// ESM: ws's named exports; CommonJS (the cjs build): properties of its module object.
const namespace = ws as unknown as Partial<WsInternals> & { default?: WsInternals };
const internals = (namespace.Receiver !== undefined ? namespace : namespace.default!) as WsInternals;
const { Receiver: ReceiverClass, Sender, PerMessageDeflate: DeflateClass, extension } = internals;
export const parseProtocols = internals.subprotocol.parse;
export const DEFLATE = DeflateClass.extensionName;

export const TEXT = 0x1;
export const BINARY = 0x2;
export const CLOSE = 0x8;
export const PING = 0x9;
export const PONG = 0xa;

/** RFC 6455 7.4.1 close codes. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  INVALID_DATA: 1007,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
} as const;

export function makeReceiver(isServer: boolean, maxPayload: number, deflate: PerMessageDeflate | null): Receiver {
  return new ReceiverClass({ isServer, maxPayload, allowSynchronousEvents: true, ...(deflate !== null && { extensions: { [DEFLATE]: deflate } }) });
}

export function makeSender(sink: FrameSink, deflate: PerMessageDeflate): Sender {
  return new Sender(sink, { [DEFLATE]: deflate });
}

/**
 * Server side: accept a client's permessage-deflate offer (Sec-WebSocket-Extensions), if any.
 * Returns the extension and the header value to answer with, null when none was offered;
 * throws on an invalid header.
 */
export function acceptDeflate(header: string | undefined, options: DeflateOptions, maxPayload: number): { deflate: PerMessageDeflate; header: string } | null {
  if (header === undefined) return null;
  const offers = extension.parse(header)[DEFLATE];
  if (offers === undefined) return null;
  const deflate = new DeflateClass({ ...options, isServer: true, maxPayload });
  deflate.accept(offers);
  return { deflate, header: extension.format({ [DEFLATE]: [deflate.params] }) };
}

/** Client side: an extension to offer, and the Sec-WebSocket-Extensions value offering it. */
export function offerDeflate(options: DeflateOptions, maxPayload: number): { deflate: PerMessageDeflate; header: string } {
  const deflate = new DeflateClass({ ...options, isServer: false, maxPayload });
  return { deflate, header: extension.format({ [DEFLATE]: [deflate.offer()] }) };
}

/** Client side: take the server's answer to our offer; throws if it is invalid. */
export function settleDeflate(deflate: PerMessageDeflate, header: string): void {
  const answer = extension.parse(header);
  const names = Object.keys(answer);
  if (names.length !== 1 || names[0] !== DEFLATE) throw new Error(`the server chose an extension not offered: ${header}`);
  deflate.accept(answer[DEFLATE]!);
}

/**
 * One frame as buffers (header, payload). A client masks: a payload of the caller's is then
 * copied (readOnly), one made here is masked in place.
 */
export function frame(opcode: number, payload: Buffer, mask: boolean, ownPayload: boolean): Buffer[] {
  return Sender.frame(payload, { fin: true, opcode, mask, readOnly: !ownPayload, rsv1: false });
}

/**
 * Server side: the size of the frame at `at` (header, mask key and payload) when it is one a
 * Receiver need not parse: final and unfragmented text or binary, masked, RSV bits clear, whole
 * in `chunk`, with a 7- or 16-bit length of at most `maxPayload` (0: any). 0 for any other
 * (control frames, fragments, partial, long or invalid frames): a Receiver reads those.
 */
export function simpleFrameSize(chunk: Buffer, at: number, maxPayload: number): number {
  const left = chunk.length - at;
  if (left < 6) return 0;
  const first = chunk[at]!;
  const second = chunk[at + 1]!;
  if ((first !== (0x80 | TEXT) && first !== (0x80 | BINARY)) || second < 0x80) return 0;
  let size = second & 0x7f;
  let header = 6;
  if (size === 127) return 0;
  if (size === 126) {
    if (left < 8) return 0;
    size = chunk.readUInt16BE(at + 2);
    header = 8;
  }
  if (maxPayload > 0 && size > maxPayload) return 0;
  return left - header >= size ? header + size : 0;
}

/** XOR `chunk[start, end)` with the 4-byte mask key at `key`, in place (twice restores it). */
export function unmask(chunk: Buffer, start: number, end: number, key: number): void {
  const m0 = chunk[key]!;
  const m1 = chunk[key + 1]!;
  const m2 = chunk[key + 2]!;
  const m3 = chunk[key + 3]!;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    chunk[i] = chunk[i]! ^ m0;
    chunk[i + 1] = chunk[i + 1]! ^ m1;
    chunk[i + 2] = chunk[i + 2]! ^ m2;
    chunk[i + 3] = chunk[i + 3]! ^ m3;
  }
  if (i < end) chunk[i] = chunk[i]! ^ m0;
  if (i + 1 < end) chunk[i + 1] = chunk[i + 1]! ^ m1;
  if (i + 2 < end) chunk[i + 2] = chunk[i + 2]! ^ m2;
}

/** Unmasked headers of small final text frames, by payload size (made once, never written to). */
const SMALL_TEXT_HEADERS: Buffer[] = [];

/** The header of an unmasked final frame (a server's) of `size` payload bytes, as Sender.frame makes it. */
export function serverFrameHeader(opcode: number, size: number): Buffer {
  if (size < 126) {
    if (opcode === TEXT) return (SMALL_TEXT_HEADERS[size] ??= Buffer.from([0x80 | TEXT, size]));
    return Buffer.from([0x80 | opcode, size]);
  }
  if (size < 65536) {
    const header = Buffer.allocUnsafe(4);
    header[0] = 0x80 | opcode;
    header[1] = 126;
    header.writeUInt16BE(size, 2);
    return header;
  }
  const header = Buffer.allocUnsafe(10);
  header[0] = 0x80 | opcode;
  header[1] = 127;
  header.writeUInt16BE(0, 2);
  header.writeUIntBE(size, 4, 6);
  return header;
}

/** The payload of a close frame: the code (none for 1005) and the reason in UTF-8. */
export function closePayload(code: number, reason: string): Buffer {
  if (code === CloseCode.NO_STATUS) return Buffer.alloc(0);
  const payload = Buffer.allocUnsafe(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return payload;
}

/** A code an endpoint may send in a close frame (RFC 6455 7.4). */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** The close code ws attached to a Receiver error (1002, 1007, 1009, ...). */
export function statusCodeOf(err: Error): number {
  for (const symbol of Object.getOwnPropertySymbols(err)) {
    if (symbol.description === 'status-code') return (err as unknown as Record<symbol, number>)[symbol] ?? CloseCode.PROTOCOL_ERROR;
  }
  return CloseCode.PROTOCOL_ERROR;
}
