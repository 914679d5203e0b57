/**
 * A line-based chat server you can use with `nc` or `telnet`, over TCP and a Unix socket at
 * once. The reusable part: `ChatConnection`, `ChatRoom` and `startChat()`; `main.ts` runs it.
 *
 * In your own project, import from 'trews' instead of '../../src/index.js'.
 */
import { Connection, Server, type Engine, type OverflowError } from '../../src/index.js';

const NICK = /^[A-Za-z0-9_-]{1,20}$/;
const HELP = [
  '* commands:',
  '*   /who          list who is here',
  '*   /nick NAME    change your nickname',
  '*   /quit         leave the chat',
  '*   /help         this help',
  '* anything else is sent to everyone',
];

/**
 * Who is in the chat. One room is shared by all the servers of a chat (TCP and Unix), since
 * each server only knows its own connections.
 */
export class ChatRoom {
  /** Members with a nickname, in order of arrival. */
  readonly #members = new Set<ChatConnection>();

  get nicknames(): string[] {
    return [...this.#members].map((member) => member.nick!);
  }

  /** Why `member` cannot be called `nick`, or null if they can. */
  refuse(nick: string, member: ChatConnection): string | null {
    if (!NICK.test(nick)) return 'a nickname is 1-20 letters, digits, _ or -';
    const lower = nick.toLowerCase();
    for (const other of this.#members) {
      if (other !== member && other.nick!.toLowerCase() === lower) return `${nick} is taken`;
    }
    return null;
  }

  join(member: ChatConnection, nick: string): void {
    member.nick = nick;
    this.#members.add(member);
    this.send(`* ${nick} has joined\n`, member);
  }

  rename(member: ChatConnection, nick: string): void {
    const old = member.nick;
    member.nick = nick;
    this.send(`* ${old} is now known as ${nick}\n`);
  }

  leave(member: ChatConnection): void {
    if (this.#members.delete(member)) this.send(`* ${member.nick} has left\n`);
  }

  /** Send `text` to every member still connected, except `except`. */
  send(text: string, except?: ChatConnection): void {
    for (const member of this.#members) {
      if (member !== except && member.connected) member.write(text);
    }
  }
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

/** One chatter: the first line is their nickname, later lines are messages or commands. */
export class ChatConnection extends Connection {
  declare server: ChatServer;
  override readDelimiter = '\n';
  override encoding = 'utf8';
  override bufferSize = 4096; // the longest line accepted, in bytes
  // A graceful close flushes, sends FIN and waits for the peer's FIN. An interactive `nc`
  // keeps its side open until its user types Ctrl-D, so do not wait the default 10 s.
  override closeTimeout = 1000;

  /** Null until the user has chosen a valid nickname. */
  nick: string | null = null;

  get room(): ChatRoom {
    return this.server.room;
  }

  override onConnect(): void {
    this.write('Welcome to trews chat! What is your nickname?\n');
  }

  override onRead(line: string): void {
    if (line.endsWith('\r')) line = line.slice(0, -1); // telnet sends \r\n
    if (line.trim() === '') return;
    if (this.nick === null) this.#chooseNick(line.trim());
    else if (line.startsWith('/')) this.#command(line);
    else this.room.send(`<${this.nick}> ${line}\n`, this);
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

  #chooseNick(nick: string): void {
    const refused = this.room.refuse(nick, this);
    if (refused !== null) {
      this.write(`Sorry, ${refused}. What is your nickname?\n`);
      return;
    }
    const others = this.room.nicknames;
    this.room.join(this, nick);
    const here = others.length === 0 ? 'nobody else is here yet' : `also here: ${others.join(', ')}`;
    this.write(`* hello ${nick}, ${here}. Type /help for commands.\n`);
  }

  #command(line: string): void {
    const [command = '', ...args] = line.trim().split(/\s+/);
    switch (command) {
      case '/quit':
        this.write('* bye!\n');
        this.room.leave(this);
        void this.close(); // flush the goodbye, then FIN
        return;
      case '/who':
        this.write(`* here: ${this.room.nicknames.join(', ')}\n`);
        return;
      case '/nick': {
        const nick = args[0] ?? '';
        const refused = this.room.refuse(nick, this);
        if (args.length !== 1) this.write('* usage: /nick NAME\n');
        else if (refused !== null) this.write(`* sorry, ${refused}\n`);
        else if (nick !== this.nick) this.room.rename(this, nick);
        return;
      }
      case '/help':
        this.write(HELP.join('\n') + '\n');
        return;
      default:
        this.write(`* unknown command ${command}; try /help\n`);
    }
  }
}

export interface ChatOptions {
  /** TCP port on all interfaces (0: any free port). Omit for no TCP. */
  port?: number;
  /** Unix socket path. Omit for no Unix socket. */
  path?: string;
  /** The engine to run in (default: the process-wide one). */
  engine?: Engine;
}

export interface RunningChat {
  room: ChatRoom;
  servers: ChatServer[];
  /** The TCP port listened on, or null. */
  port: number | null;
  /** The Unix socket path listened on, or null. */
  path: string | null;
  /** Stop listening and close every connection. */
  close(): Promise<void>;
}

/** Start a chat on a TCP port, a Unix socket path, or both, sharing one room. */
export async function startChat({ port, path, engine }: ChatOptions): Promise<RunningChat> {
  const room = new ChatRoom();
  const servers: ChatServer[] = [];
  const close = async () => {
    await Promise.all(servers.map((server) => server.close()));
  };
  let tcp: number | null = null;
  try {
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
  } catch (err) {
    await close();
    throw err;
  }
  return { room, servers, port: tcp, path: path ?? null, close };
}
