/**
 * A line-based chat server you can use with `nc` or `telnet`, over TCP and a Unix socket, and
 * from a browser over WebSocket, all in one room. The reusable part: `ChatConnection`,
 * `WebChatConnection`, `ChatRoom` and `startChat()`; `main.ts` runs it.
 *
 * In your own project, import from 'trews' and 'trews/websocket' instead of '../../src/...'.
 */
import * as http from 'node:http';
import { Connection, Server, type Engine, type OverflowError } from '../../src/index.js';
import { WebSocketConnection, WebSocketServer } from '../../src/websocket/index.js';
import type { RedisBus } from '../../src/redis/index.js';
import { CHAT_PAGE } from './page.js';

const NICK = /^[A-Za-z0-9_-]{1,20}$/;
const HELP = [
  '* commands:',
  '*   /who          list who is here',
  '*   /nick NAME    change your nickname',
  '*   /quit         leave the chat',
  '*   /help         this help',
  '* anything else is sent to everyone',
];

/** What the chat needs of a member, whatever carries their lines (TCP, Unix socket, WebSocket). */
export interface Chatter {
  /** Null until the user has chosen a valid nickname. */
  nick: string | null;
  readonly room: ChatRoom;
  readonly connected: boolean;
  readonly closing: boolean;
  /** Bytes written to this member and not yet taken by the network, and the most we queue for them (if the transport tells). */
  readonly bufferedBytes?: number;
  readonly writeHighWaterMark?: number;
  write(text: string): unknown;
  close(): Promise<unknown>;
}

/**
 * Who is in the chat. One room is shared by all the servers of a chat (TCP and Unix), since
 * each server only knows its own connections. `share()` joins it with the same room in other
 * processes; nicknames and `/who` stay per process.
 */
export class ChatRoom {
  /** Members with a nickname, in order of arrival. */
  readonly #members = new Set<Chatter>();
  /** Carries what is said here to the room's other processes; null while the room is not shared. */
  #relay: ((text: string) => void) | null = null;

  /** Share the room with every process whose room shares `topic` on the same Redis: each hears what the others say. */
  share(bus: RedisBus, topic = 'chat'): void {
    bus.subscribe(topic, (text) => this.deliver(text.toString()));
    this.#relay = (text) => bus.publish(topic, text);
  }

  get nicknames(): string[] {
    return [...this.#members].map((member) => member.nick!);
  }

  /** Why `member` cannot be called `nick`, or null if they can. */
  refuse(nick: string, member: Chatter): string | null {
    if (!NICK.test(nick)) return 'a nickname is 1-20 letters, digits, _ or -';
    const lower = nick.toLowerCase();
    for (const other of this.#members) {
      if (other !== member && other.nick!.toLowerCase() === lower) return `${nick} is taken`;
    }
    return null;
  }

  join(member: Chatter, nick: string): void {
    member.nick = nick;
    this.#members.add(member);
    this.send(`* ${nick} has joined\n`, member);
  }

  rename(member: Chatter, nick: string): void {
    const old = member.nick;
    member.nick = nick;
    this.send(`* ${old} is now known as ${nick}\n`);
  }

  leave(member: Chatter): void {
    if (this.#members.delete(member)) this.send(`* ${member.nick} has left\n`);
  }

  /** Send `text` to every member, except `except`, here and in the room's other processes. */
  send(text: string, except?: Chatter): void {
    this.#relay?.(text);
    this.deliver(text, except);
  }

  /**
   * Send `text` to this process's members still connected, except `except`. A member who is not
   * reading (their write buffer is at its high-water mark) misses the line: queueing the whole
   * room's traffic for them would grow memory without bound.
   */
  deliver(text: string, except?: Chatter): void {
    for (const member of this.#members) {
      if (member !== except && member.connected && !fallenBehind(member)) member.write(text);
    }
  }
}

function fallenBehind(member: Chatter): boolean {
  return member.bufferedBytes !== undefined && member.writeHighWaterMark !== undefined && member.bufferedBytes >= member.writeHighWaterMark;
}

/** A server whose connections share one room. */
export class ChatServer extends Server<ChatConnection> {
  constructor(
    readonly room: ChatRoom,
    options: { engine?: Engine } = {},
  ) {
    super(ChatConnection, options);
  }
}

/** One chatter over TCP or a Unix socket: the first line is their nickname, later lines are messages or commands. */
export class ChatConnection extends Connection implements Chatter {
  declare server: ChatServer;
  override readDelimiter = '\n';
  override encoding = 'utf8';
  override bufferSize = 4096; // the longest line accepted, in bytes
  // A graceful close flushes, sends FIN and waits for the peer's FIN. An interactive `nc`
  // keeps its side open until its user types Ctrl-D, so do not wait the default 10 s.
  override closeTimeout = 1000;

  nick: string | null = null;

  get room(): ChatRoom {
    return this.server.room;
  }

  override onConnect(): void {
    greet(this);
  }

  override onRead(line: string): void {
    chatLine(this, line);
  }

  /**
   * A line longer than bufferSize. The default would close the connection; a chat can do
   * better: the framer has already dropped that line (up to its '\n'), so say so and go on.
   */
  override onOverflowError(err: OverflowError): void {
    this.write(`* line too long (the limit is ${err.limit} bytes); it was not sent\n`);
  }

  /** A peer that vanishes (a reset) is routine in a chat: close without logging it. */
  override onReadError(): void {
    void this.close(false);
  }

  override onClose(): void {
    this.room.leave(this);
  }
}

/**
 * One chatter in a browser: the same protocol over WebSocket. `readDelimiter = '\n'` frames
 * lines across messages (as Pants does), so the page sends text ending in '\n' and a line may
 * span messages. A message over bufferSize closes the connection with code 1009.
 */
export class WebChatConnection extends WebSocketConnection implements Chatter {
  declare server: WebChatServer;
  override readDelimiter = '\n';
  override encoding = 'utf8';
  override bufferSize = 4096;
  override closeTimeout = 1000;
  // Browsers behind proxies go quiet without telling: ping them.
  override pingInterval = 30_000;

  nick: string | null = null;

  get room(): ChatRoom {
    return this.server.room;
  }

  override onConnect(): void {
    greet(this);
  }

  override onRead(line: string): void {
    chatLine(this, line);
  }

  override onOverflowError(err: OverflowError): void {
    // A line over the limit that spans messages: the framer dropped it, go on (as over TCP).
    if (!this.closing) this.write(`* line too long (the limit is ${err.limit} bytes); it was not sent\n`);
  }

  override onReadError(): void {
    void this.close(false);
  }

  override onClose(): void {
    this.room.leave(this);
  }
}

// ---- the chat protocol, the same for every transport ----------------------------------------

export function greet(member: Chatter): void {
  member.write('Welcome to trews chat! What is your nickname?\n');
}

export function chatLine(member: Chatter, line: string): void {
  if (line.endsWith('\r')) line = line.slice(0, -1); // telnet sends \r\n
  if (line.trim() === '') return;
  if (member.nick === null) chooseNick(member, line.trim());
  else if (line.startsWith('/')) command(member, line);
  else member.room.send(`<${member.nick}> ${line}\n`, member);
}

function chooseNick(member: Chatter, nick: string): void {
  const { room } = member;
  const refused = room.refuse(nick, member);
  if (refused !== null) {
    member.write(`Sorry, ${refused}. What is your nickname?\n`);
    return;
  }
  const others = room.nicknames;
  room.join(member, nick);
  const here = others.length === 0 ? 'nobody else is here yet' : `also here: ${others.join(', ')}`;
  member.write(`* hello ${nick}, ${here}. Type /help for commands.\n`);
}

function command(member: Chatter, line: string): void {
  const { room } = member;
  const [name = '', ...args] = line.trim().split(/\s+/);
  switch (name) {
    case '/quit':
      member.write('* bye!\n');
      room.leave(member);
      void member.close(); // flush the goodbye, then close
      return;
    case '/who':
      member.write(`* here: ${room.nicknames.join(', ')}\n`);
      return;
    case '/nick': {
      const nick = args[0] ?? '';
      const refused = room.refuse(nick, member);
      if (args.length !== 1) member.write('* usage: /nick NAME\n');
      else if (refused !== null) member.write(`* sorry, ${refused}\n`);
      else if (nick !== member.nick) room.rename(member, nick);
      return;
    }
    case '/help':
      member.write(HELP.join('\n') + '\n');
      return;
    default:
      member.write(`* unknown command ${name}; try /help\n`);
  }
}

/**
 * The browser side: an HTTP server that serves the chat page at `/` and takes WebSocket
 * upgrades at `/chat` (a WebSocketServer attached to it), in the same room.
 */
export class WebChatServer extends WebSocketServer<WebChatConnection> {
  constructor(
    readonly room: ChatRoom,
    options: { engine?: Engine } = {},
  ) {
    super(WebChatConnection, { ...options, path: '/chat' });
  }
}

/** Serve the page and the chat's WebSocket endpoint on one HTTP port. */
async function startWebChat(room: ChatRoom, port: number, engine: Engine | undefined): Promise<{ server: WebChatServer; http: http.Server; port: number }> {
  const web = http.createServer((request, response) => {
    if (request.url !== '/' && request.url !== '/index.html') {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(CHAT_PAGE);
  });
  await new Promise<void>((resolve, reject) => {
    web.once('error', reject);
    web.listen(port, () => {
      web.off('error', reject);
      resolve();
    });
  });
  const server = new WebChatServer(room, { engine }).attach(web);
  return { server, http: web, port: (web.address() as { port: number }).port };
}

export interface ChatOptions {
  /** TCP port on all interfaces (0: any free port). Omit for no TCP. */
  port?: number;
  /** Unix socket path. Omit for no Unix socket. */
  path?: string;
  /** HTTP port for browsers (the page at `/`, WebSocket at `/chat`; 0: any free port). Omit for none. */
  webPort?: number;
  /** The engine to run in (default: the process-wide one). */
  engine?: Engine;
  /** A `redis://` URL: share the room with every chat process using this Redis (trews/redis). Omit for a chat of its own. */
  redis?: string;
}

export interface RunningChat {
  room: ChatRoom;
  servers: ChatServer[];
  /** The browsers' WebSocket server, or null. */
  web: WebChatServer | null;
  /** The TCP port listened on, or null. */
  port: number | null;
  /** The Unix socket path listened on, or null. */
  path: string | null;
  /** The HTTP port of the web page, or null. */
  webPort: number | null;
  /** The bus the room is shared through, or null. */
  bus: RedisBus | null;
  /** Stop listening and close every connection. */
  close(): Promise<void>;
}

/** Start a chat on a TCP port, a Unix socket path and a web port (any of them), sharing one room. */
export async function startChat({ port, path, webPort, engine, redis }: ChatOptions): Promise<RunningChat> {
  const room = new ChatRoom();
  const servers: ChatServer[] = [];
  let web: Awaited<ReturnType<typeof startWebChat>> | null = null;
  let bus: RedisBus | null = null;
  const close = async () => {
    await Promise.all([...servers.map((server) => server.close()), web?.server.close()]);
    if (web !== null) {
      const { http: page } = web;
      await new Promise<void>((resolve) => {
        page.close(() => resolve());
        page.closeAllConnections(); // browsers keep page loads alive
      });
    }
    await bus?.close(); // last: the other processes hear who left
  };
  let tcp: number | null = null;
  try {
    if (redis !== undefined) {
      // Loaded only when asked for: ioredis is an optional dependency of trews.
      const { RedisBus } = await import('../../src/redis/index.js');
      bus = new RedisBus({ redis, channel: 'trews-chat', engine });
      room.share(bus);
      await reachRedis(bus, redis);
    }
    if (port !== undefined) {
      const server = new ChatServer(room, { engine });
      servers.push(server);
      await server.listen(port);
      const address = server.localAddress;
      tcp = typeof address === 'object' && address !== null ? address.port : null;
    }
    if (path !== undefined) {
      const server = new ChatServer(room, { engine });
      servers.push(server);
      await server.listen(path);
    }
    if (webPort !== undefined) web = await startWebChat(room, webPort, engine);
  } catch (err) {
    await close();
    throw err;
  }
  return { room, servers, web: web?.server ?? null, port: tcp, path: path ?? null, webPort: web?.port ?? null, bus, close };
}

/** Wait for the bus to connect and subscribe; a chat that cannot reach Redis at start is misconfigured. */
async function reachRedis(bus: RedisBus, url: string, ms = 10_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`cannot reach Redis at ${url} within ${ms / 1000} s`)), ms);
  });
  try {
    await Promise.race([bus.ready(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
