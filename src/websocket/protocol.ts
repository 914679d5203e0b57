/**
 * The RFC 6455 pieces trews takes from `ws`: its frame parser (Receiver: fragmentation,
 * control frames, UTF-8 validation, maxPayload) and its frame builder (Sender.frame). trews
 * owns the socket; these only turn bytes into messages and messages into bytes.
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
}

interface FrameOptions {
  fin: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
  rsv1: boolean;
}

interface WsInternals {
  Receiver: new (options: { isServer: boolean; maxPayload: number; allowSynchronousEvents?: boolean }) => Receiver;
  Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] };
  subprotocol: { parse(header: string): Set<string> };
}

// ESM: ws's named exports; CommonJS (the cjs build): properties of its module object.
const namespace = ws as unknown as Partial<WsInternals> & { default?: WsInternals };
const internals = (namespace.Receiver !== undefined ? namespace : namespace.default!) as WsInternals;
const { Receiver: ReceiverClass, Sender } = internals;
export const parseProtocols = internals.subprotocol.parse;

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

export function makeReceiver(isServer: boolean, maxPayload: number): Receiver {
  return new ReceiverClass({ isServer, maxPayload, allowSynchronousEvents: true });
}

/**
 * One frame as buffers (header, payload). A client masks: a payload of the caller's is then
 * copied (readOnly), one made here is masked in place.
 */
export function frame(opcode: number, payload: Buffer, mask: boolean, ownPayload: boolean): Buffer[] {
  return Sender.frame(payload, { fin: true, opcode, mask, readOnly: !ownPayload, rsv1: false });
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
