/**
 * `npm start`: the chat on TCP port $PORT (default 4040, all interfaces), on the Unix
 * socket $CHAT_SOCKET (default <tmpdir>/trews-chat.sock), and for browsers on HTTP port
 * $WEB_PORT (default 4041: the page at /, WebSocket at /chat). With $REDIS_URL (e.g.
 * redis://127.0.0.1:6379), the room is shared with every chat process using that Redis.
 * Ctrl-C stops it.
 */
import os from 'node:os';
import path from 'node:path';
import { startChat, type RunningChat } from './chat.js';

const port = Number(process.env.PORT ?? 4040);
const socketPath = process.env.CHAT_SOCKET ?? path.join(os.tmpdir(), 'trews-chat.sock');
const webPort = Number(process.env.WEB_PORT ?? 4041);
const redis = process.env.REDIS_URL || undefined;
for (const [name, value] of [['PORT', port], ['WEB_PORT', webPort]] as const) {
  if (!Number.isInteger(value) || value < 0 || value > 65535) {
    console.error(`${name} must be a TCP port number, got ${JSON.stringify(process.env[name])}`);
    process.exit(2);
  }
}

let chat: RunningChat;
try {
  chat = await startChat({ port, path: socketPath, webPort, redis });
} catch (err) {
  console.error(`trews chat: ${(err as Error).message}`); // e.g. the port is in use
  process.exit(1);
}
console.log(`trews chat listening on tcp port ${chat.port} and unix:${chat.path} — try: nc localhost ${chat.port} — or a browser at http://localhost:${chat.webPort}/${redis === undefined ? '' : ` — sharing the room through ${redis}`}`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return; // npm and tsx may pass the same Ctrl-C on again
  stopping = true;
  chat.room.deliver('* the server is shutting down\n'); // this process's users only
  await chat.close();
  console.log('bye');
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
