/**
 * `npm start`: the chat on TCP port $PORT (default 4040, all interfaces) and on the Unix
 * socket $CHAT_SOCKET (default <tmpdir>/trews-chat.sock). Ctrl-C stops it.
 */
import os from 'node:os';
import path from 'node:path';
import { startChat, type RunningChat } from './chat.js';

const port = Number(process.env.PORT ?? 4040);
const socketPath = process.env.CHAT_SOCKET ?? path.join(os.tmpdir(), 'trews-chat.sock');
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be a TCP port number, got ${JSON.stringify(process.env.PORT)}`);
  process.exit(2);
}

let chat: RunningChat;
try {
  chat = await startChat({ port, path: socketPath });
} catch (err) {
  console.error(`trews chat: ${(err as Error).message}`); // e.g. the port is in use
  process.exit(1);
}
console.log(`trews chat listening on tcp port ${chat.port} and unix:${chat.path} — try: nc localhost ${chat.port}`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return; // npm and tsx may pass the same Ctrl-C on again
  stopping = true;
  chat.room.send('* the server is shutting down\n');
  await chat.close();
  console.log('bye');
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
