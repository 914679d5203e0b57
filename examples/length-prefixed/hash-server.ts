/**
 * A tiny length-prefixed service: every message gets one message back, the SHA-256 of its
 * body as 64 hex characters. `main.ts` runs it; tests start it in-process on port 0.
 *
 * In your own project, import from 'trews' instead of '../../src/index.js'.
 */
import { createHash } from 'node:crypto';
import { Server, type AddressInput, type Engine } from '../../src/index.js';
import { DEFAULT_MAX_MESSAGE_SIZE, LengthPrefixedConnection } from './protocol.js';

export class HashConnection extends LengthPrefixedConnection {
  override onMessage(body: Buffer): void {
    this.sendMessage(createHash('sha256').update(body).digest('hex'));
  }
}

export interface HashServerOptions {
  /** Where to listen (default: port 4042 on all interfaces). */
  address?: AddressInput;
  /** The largest message accepted (default 1 MiB). */
  maxMessageSize?: number;
  engine?: Engine;
}

/** Start the hash service; resolves once it listens. */
export async function startHashServer(options: HashServerOptions = {}): Promise<Server<HashConnection>> {
  const limit = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  class Conn extends HashConnection {
    override maxMessageSize = limit;
  }
  const server = new Server<HashConnection>(Conn, options.engine === undefined ? {} : { engine: options.engine });
  await server.listen(options.address ?? 4042);
  return server;
}
