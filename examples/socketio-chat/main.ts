/**
 * `npm run example:socketio`: the chat for browsers over Socket.IO on HTTP port $SIO_PORT
 * (default 4042: the page at /), in one room with the TCP chat on port $PORT (default 4040:
 * `nc localhost 4040`). Ctrl-C stops it.
 */
import { startChat } from '../chat/chat.js';
import { startSocketChat } from './chat.js';

const port = Number(process.env.PORT ?? 4040);
const sioPort = Number(process.env.SIO_PORT ?? 4042);
for (const [name, value] of [['PORT', port], ['SIO_PORT', sioPort]] as const) {
  if (!Number.isInteger(value) || value < 0 || value > 65535) {
    console.error(`${name} must be a TCP port number, got ${JSON.stringify(process.env[name])}`);
    process.exit(2);
  }
}

let chat: Awaited<ReturnType<typeof startChat>>;
let web: Awaited<ReturnType<typeof startSocketChat>>;
try {
  chat = await startChat({ port });
  web = await startSocketChat(chat.room, sioPort);
} catch (err) {
  console.error(`trews socket.io chat: ${(err as Error).message}`); // e.g. a port is in use
  process.exit(1);
}
console.log(`trews socket.io chat: a browser at http://localhost:${web.port}/ and nc localhost ${chat.port}, in one room`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  chat.room.send('* the server is shutting down\n');
  await Promise.all([web.close(), chat.close()]);
  console.log('bye');
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
