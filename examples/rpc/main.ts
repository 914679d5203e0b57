/**
 * `npx tsx examples/rpc/main.ts`: the request/reply service on TCP port $PORT (default 4043,
 * all interfaces). Ctrl-C stops it, after answering the requests in progress.
 */
import { startRpcServer, type RpcConnection } from './service.js';
import type { InetAddress, Server } from '../../src/index.js';

const port = Number(process.env.PORT ?? 4043);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be a TCP port number, got ${JSON.stringify(process.env.PORT)}`);
  process.exit(2);
}

let server: Server<RpcConnection>;
try {
  server = await startRpcServer({ address: port });
} catch (err) {
  console.error(`rpc: ${(err as Error).message}`); // e.g. the port is in use
  process.exit(1);
}
const actual = (server.localAddress as InetAddress).port;
console.log(`trews rpc service listening on tcp port ${actual} — try: npx tsx examples/rpc/client.ts ${actual}`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return; // npx and tsx may pass the same Ctrl-C on again
  stopping = true;
  await server.close(); // each connection's default close mode, 'queue': answers in progress still go out
  console.log('bye');
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
