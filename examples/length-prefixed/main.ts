/**
 * `npx tsx examples/length-prefixed/main.ts`: the SHA-256 service on TCP port $PORT (default
 * 4042, all interfaces). Send it length-prefixed messages; each reply is the SHA-256 hex of
 * the body, length-prefixed too. Ctrl-C stops it.
 */
import { startHashServer } from './hash-server.js';
import type { InetAddress } from '../../src/index.js';

const port = Number(process.env.PORT ?? 4042);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be a TCP port number, got ${JSON.stringify(process.env.PORT)}`);
  process.exit(2);
}

const server = await startHashServer({ address: port });
const actual = (server.localAddress as InetAddress).port;
console.log(`trews length-prefixed SHA-256 service listening on tcp port ${actual}`);
console.log('try it (Python 3):');
console.log(
  `  python3 -c "import socket,struct;s=socket.create_connection(('localhost',${actual}));m=b'hello';` +
    `s.sendall(struct.pack('!I',len(m))+m);f=s.makefile('rb');n,=struct.unpack('!I',f.read(4));print(f.read(n).decode())"`,
);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return; // npm and tsx may pass the same Ctrl-C on again
  stopping = true;
  await server.close();
  console.log('bye');
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
