/**
 * The chat on every core: `REDIS_URL=redis://127.0.0.1:6379 npx tsx examples/cluster/main.ts`.
 *
 * The primary process forks $WORKERS workers (default: one per core). Each worker runs the
 * chat of examples/chat (TCP on $PORT, default 4040; the web page and its WebSocket on
 * $WEB_PORT, default 4041) and of examples/socketio-chat (Socket.IO on $SIO_PORT, default
 * 4042). node:cluster shares each listening socket among the workers, handing connections to
 * them in turn; the workers share one chat room through Redis (trews/redis).
 *
 * Socket.IO is served WebSocket-only (server and page: `transports: ['websocket']`): a
 * WebSocket is one connection and stays with one worker, whereas long-polling's separate
 * HTTP requests would land on workers that do not hold the session (that needs sticky routing).
 *
 * Ctrl-C (or SIGINT/SIGTERM to the primary) stops every worker gracefully, then the primary.
 */
import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import { startChat, type RunningChat } from '../chat/chat.js';
import { startSocketChat, type RunningSocketChat } from '../socketio-chat/chat.js';

const redis = process.env.REDIS_URL || undefined;
const ports = { PORT: Number(process.env.PORT ?? 4040), WEB_PORT: Number(process.env.WEB_PORT ?? 4041), SIO_PORT: Number(process.env.SIO_PORT ?? 4042) };
const workers = Number(process.env.WORKERS ?? os.availableParallelism());

function fail(message: string): never {
  console.error(`trews cluster: ${message}`);
  process.exit(2);
}

if (redis === undefined) fail('set REDIS_URL (e.g. redis://127.0.0.1:6379): the workers share the chat room through Redis');
for (const [name, value] of Object.entries(ports)) {
  if (!Number.isInteger(value) || value <= 0 || value > 65535) fail(`${name} must be a TCP port number (not 0: every worker must get the same one), got ${JSON.stringify(process.env[name])}`);
}
if (!Number.isInteger(workers) || workers < 1) fail(`WORKERS must be a positive integer, got ${JSON.stringify(process.env.WORKERS)}`);

if (cluster.isPrimary) runPrimary();
else await runWorker();

function runPrimary(): void {
  const started = new Set<Worker>();
  let stopping = false;
  for (let i = 0; i < workers; i++) {
    const worker = cluster.fork();
    worker.on('message', (message) => {
      if (message !== 'listening') return;
      started.add(worker);
      if (started.size === workers) {
        console.log(`trews cluster: ${workers} workers listening on port ${ports.PORT} (nc), ${ports.WEB_PORT} (web page) and ${ports.SIO_PORT} (Socket.IO), sharing the room through ${redis}`);
      }
    });
  }
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) console.error(`trews cluster: worker ${worker.process.pid} exited (${signal ?? code})`);
    if (Object.keys(cluster.workers ?? {}).length === 0) {
      if (stopping) console.log('bye');
      process.exit(stopping ? 0 : 1);
    }
  });
  const stop = () => {
    if (stopping) return;
    stopping = true;
    // A Ctrl-C in a terminal reaches the workers too; a signal to the primary alone is passed on.
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

async function runWorker(): Promise<void> {
  let chat: RunningChat;
  let io: RunningSocketChat;
  try {
    chat = await startChat({ port: ports.PORT, webPort: ports.WEB_PORT, redis });
    io = await startSocketChat(chat.room, ports.SIO_PORT, undefined, { transports: ['websocket'] });
  } catch (err) {
    console.error(`trews cluster worker ${process.pid}: ${(err as Error).message}`);
    process.exit(1);
  }
  process.send!('listening');
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    chat.room.deliver('* the server is shutting down\n'); // this worker's users
    await io.close();
    await chat.close(); // the bus last: other workers hear who left
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}
