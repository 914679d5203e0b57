/**
 * A small request/reply service on trews messages. A request is `{ method, params }`:
 *
 *   add(...numbers)     -> their sum
 *   echo(value)         -> value
 *   slow(ms, value)     -> value, after ms (on the Engine clock: other requests go on meanwhile)
 *
 * An unknown method or bad params answer with a failure `{ message, code }`, which the caller
 * receives as a `RemoteError` (`remoteCode` 'ERR_UNKNOWN_METHOD' or 'ERR_BAD_PARAMS').
 * `main.ts` runs it; `client.ts` calls it; tests start it in-process.
 *
 * In your own project, import from 'trews' instead of '../../src/index.js'.
 */
import { MessageConnection, Server, type AddressInput, type Engine } from '../../src/index.js';

export interface Call {
  method: string;
  params?: unknown[];
}

/** A failure with a code the caller can test (`err.remoteCode`). */
function failure(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

const METHODS: Record<string, (this: RpcConnection, ...params: unknown[]) => unknown> = {
  add(...numbers) {
    if (!numbers.every((n) => typeof n === 'number')) throw failure('ERR_BAD_PARAMS', 'add() takes numbers');
    return (numbers as number[]).reduce((a, b) => a + b, 0);
  },
  echo(value) {
    return value;
  },
  slow(ms, value) {
    if (typeof ms !== 'number' || !(ms > 0 && ms <= 60_000)) throw failure('ERR_BAD_PARAMS', 'slow() takes a delay of 1 to 60000 ms');
    return new Promise((resolve) => this.engine.defer(ms, () => resolve(value)));
  },
};

export class RpcConnection extends MessageConnection {
  override onRequest(content: unknown): unknown {
    const { method, params = [] } = (content ?? {}) as Partial<Call>;
    const fn = typeof method === 'string' && Object.hasOwn(METHODS, method) ? METHODS[method] : undefined;
    if (fn === undefined) throw failure('ERR_UNKNOWN_METHOD', `no method ${JSON.stringify(method)}; try ${Object.keys(METHODS).join(', ')}`);
    if (!Array.isArray(params)) throw failure('ERR_BAD_PARAMS', 'params must be an array');
    return fn.apply(this, params);
  }
}

export interface RpcServerOptions {
  /** Where to listen (default: TCP port 4043 on all interfaces). */
  address?: AddressInput;
  engine?: Engine;
}

/** Start the service; resolves once it listens. `server.close()` lets answers in progress finish. */
export async function startRpcServer(options: RpcServerOptions = {}): Promise<Server<RpcConnection>> {
  const server = new Server<RpcConnection>(RpcConnection, options.engine === undefined ? {} : { engine: options.engine });
  await server.listen(options.address ?? 4043);
  return server;
}
