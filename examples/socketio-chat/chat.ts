/**
 * The chat over Socket.IO: browsers with socket.io-client join the same room as the TCP chat
 * (examples/chat), speaking its protocol one `line` event at a time. The page and
 * socket.io-client's bundle are served by the same HTTP server the SocketIOServer attaches to.
 *
 * In your own project, import from 'trews/socket.io' instead of '../../src/socket.io/...'.
 */
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Engine } from '../../src/index.js';
import { SocketConnection, SocketIOServer, event, type CloseReason, type TransportName } from '../../src/socket.io/index.js';
import { chatLine, greet, type ChatRoom, type Chatter } from '../chat/chat.js';
import { SOCKETIO_PAGE } from './page.js';

/** A SocketIOServer whose connections share a chat room. */
export class ChatIOServer extends SocketIOServer {
  constructor(
    readonly room: ChatRoom,
    options: { engine?: Engine; transports?: readonly TransportName[] } = {},
  ) {
    super(ChatIOConnection, options);
  }
}

/** One chatter in a browser: each `line` event is a line of the chat protocol; lines come back as `line` events. */
export class ChatIOConnection extends SocketConnection implements Chatter {
  declare server: ChatIOServer;
  nick: string | null = null;

  get room(): ChatRoom {
    return this.server.room;
  }

  get closing(): boolean {
    return this.closed;
  }

  override onOpen(): void {
    greet(this);
  }

  @event('line')
  onLine(text: unknown): void {
    // A line of at most 4096 characters, as over TCP; anything else is not a line.
    if (typeof text !== 'string' || text.length > 4096) return;
    for (const line of text.split('\n')) chatLine(this, line);
  }

  /** The chat writes lines ending in '\n'; the page shows one line per event. */
  write(text: string): boolean {
    for (const line of text.replace(/\n$/, '').split('\n')) this.emit('line', line);
    return true;
  }

  override onClose(_reason: CloseReason): void {
    this.room.leave(this);
  }
}

const require = createRequire(import.meta.url);
const BUNDLE = path.join(path.dirname(require.resolve('socket.io-client/package.json')), 'dist/socket.io.min.js');

export interface RunningSocketChat {
  server: ChatIOServer;
  /** The HTTP port: the page at `/`, Socket.IO at `/socket.io/`. */
  port: number;
  close(): Promise<void>;
}

/**
 * Serve the page, socket.io-client's bundle and the Socket.IO endpoint on one HTTP port, in
 * `room`. `transports: ['websocket']` (the server's and the page's) suits processes sharing a
 * port (node:cluster): one WebSocket stays with one process, where polling requests would not.
 */
export async function startSocketChat(room: ChatRoom, port: number, engine?: Engine, { transports }: { transports?: readonly TransportName[] } = {}): Promise<RunningSocketChat> {
  const bundle = readFileSync(BUNDLE);
  const page = transports === undefined ? SOCKETIO_PAGE : SOCKETIO_PAGE.replace('io()', `io({ transports: ${JSON.stringify(transports)} })`);
  const web = http.createServer((request, response) => {
    if (request.url === '/' || request.url === '/index.html') {
      response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(page);
    } else if (request.url === '/socket.io.min.js') {
      response.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' }).end(bundle);
    } else {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    web.once('error', reject);
    web.listen(port, () => {
      web.off('error', reject);
      resolve();
    });
  });
  const server = new ChatIOServer(room, { engine, ...(transports !== undefined && { transports }) }).attach(web);
  const close = async () => {
    await server.close();
    await new Promise<void>((resolve) => {
      web.close(() => resolve());
      web.closeAllConnections();
    });
  };
  return { server, port: (web.address() as { port: number }).port, close };
}
