/**
 * The chat example (examples/chat), driven by real node:net clients over TCP and a Unix
 * socket, and `npm start`'s entry point run as a child process. No sleeps: every wait is
 * for an event, bounded by a timeout that fails the test.
 */
import net from 'node:net';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/index.js';
import { startChat, type RunningChat } from '../../examples/chat/chat.js';
import { freePort, onCleanup, tempDir } from '../helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TIMEOUT = 5000;
const GREETING = 'Welcome to trews chat! What is your nickname?';

/** Resolve when `promise` does, or fail with `what` after `ms`. */
function within<T>(promise: Promise<T>, what: string, ms = TIMEOUT): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A chat user: a node:net socket read line by line. */
class LineClient {
  readonly lines: string[] = [];
  ended = false;
  readonly closed: Promise<void>;
  #partial = '';
  #wake: (() => void) | null = null;

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      const parts = (this.#partial + chunk).split('\n');
      this.#partial = parts.pop()!;
      this.lines.push(...parts);
      this.#wake?.();
    });
    socket.on('end', () => {
      this.ended = true;
      this.#wake?.();
    });
    socket.on('error', () => {}); // a reset shows up as 'close'
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    onCleanup(() => socket.destroy());
  }

  static connect(address: number | string): Promise<LineClient> {
    const socket = typeof address === 'number' ? net.connect(address, '127.0.0.1') : net.connect(address);
    return within(
      new Promise<LineClient>((resolve, reject) => {
        socket.once('connect', () => resolve(new LineClient(socket)));
        socket.once('error', reject);
      }),
      `a connection to ${address}`,
    );
  }

  send(line: string): void {
    this.socket.write(line + '\n');
  }

  /** The next line received; fails if none comes within the timeout or the server closes. */
  async readLine(): Promise<string> {
    while (this.lines.length === 0) {
      if (this.ended) throw new Error(`connection ended while waiting for a line (partial: ${JSON.stringify(this.#partial)})`);
      await within(new Promise<void>((resolve) => (this.#wake = resolve)), `a line (partial: ${JSON.stringify(this.#partial)})`);
    }
    return this.lines.shift()!;
  }

  /** Wait until the server has closed the connection, with no more lines on the way. */
  async expectEnd(): Promise<void> {
    await within(this.closed, 'the connection to close');
    expect(this.ended).toBe(true);
    expect(this.lines).toEqual([]);
  }
}

/** Start a chat on a free TCP port and a Unix socket in a temp dir, in its own engine. */
async function start(): Promise<RunningChat> {
  const logged: string[] = [];
  const engine = new Engine({ log: (line) => logged.push(line) });
  const chat = await startChat({ port: 0, path: path.join(tempDir(), 'chat.sock'), engine });
  onCleanup(async () => {
    await chat.close();
    await engine.stop();
    expect(logged).toEqual([]); // nothing went wrong quietly
  });
  return chat;
}

/** Connect and pick a nickname; returns once the chat has said hello. */
async function join(address: number | string, nick: string): Promise<LineClient> {
  const client = await LineClient.connect(address);
  expect(await client.readLine()).toBe(GREETING);
  client.send(nick);
  expect(await client.readLine()).toMatch(new RegExp(`^\\* hello ${nick}, `));
  return client;
}

/** alice joins at `aliceAt`, then bob at `bobAt`; returns once alice has been told that bob joined. */
async function aliceAndBob(aliceAt: number | string, bobAt: number | string = aliceAt): Promise<{ alice: LineClient; bob: LineClient }> {
  const alice = await join(aliceAt, 'alice');
  const bob = await join(bobAt, 'bob');
  expect(await alice.readLine()).toBe('* bob has joined');
  return { alice, bob };
}

describe('chat example', () => {
  it('greets and asks for a nickname', async () => {
    const chat = await start();
    const client = await LineClient.connect(chat.port!);
    expect(await client.readLine()).toBe(GREETING);
    client.send('alice');
    expect(await client.readLine()).toBe('* hello alice, nobody else is here yet. Type /help for commands.');
  });

  it('refuses invalid and taken nicknames with a reason, then asks again', async () => {
    const chat = await start();
    await join(chat.port!, 'alice');
    const client = await LineClient.connect(chat.port!);
    expect(await client.readLine()).toBe(GREETING);
    for (const bad of ['bad nick!', 'x'.repeat(21), 'café']) {
      client.send(bad);
      expect(await client.readLine()).toBe('Sorry, a nickname is 1-20 letters, digits, _ or -. What is your nickname?');
    }
    client.send('ALICE');
    expect(await client.readLine()).toBe('Sorry, ALICE is taken. What is your nickname?');
    client.send('b_o-b' + 'x'.repeat(15));
    expect(await client.readLine()).toBe(`* hello b_o-b${'x'.repeat(15)}, also here: alice. Type /help for commands.`);
  });

  it('delivers messages to everyone else, not to the sender', async () => {
    const chat = await start();
    const alice = await join(chat.port!, 'alice');
    const bob = await join(chat.port!, 'bob');
    const carol = await join(chat.port!, 'carol');
    expect(await alice.readLine()).toBe('* bob has joined');
    expect(await alice.readLine()).toBe('* carol has joined');
    expect(await bob.readLine()).toBe('* carol has joined');

    bob.send('hi all');
    expect(await alice.readLine()).toBe('<bob> hi all');
    expect(await carol.readLine()).toBe('<bob> hi all');
    // Had bob received his own message, it would come before the answer to /who.
    bob.send('/who');
    expect(await bob.readLine()).toBe('* here: alice, bob, carol');
  });

  it('strips a trailing \\r and ignores empty lines', async () => {
    const chat = await start();
    const { alice, bob } = await aliceAndBob(chat.port!);
    alice.socket.write('telnet style\r\n\n\r\n   \nnext\n');
    expect(await bob.readLine()).toBe('<alice> telnet style');
    expect(await bob.readLine()).toBe('<alice> next');
  });

  it('tells the others when someone leaves, however they go', async () => {
    const chat = await start();
    const alice = await join(chat.port!, 'alice');
    const bob = await join(chat.port!, 'bob');
    const carol = await join(chat.port!, 'carol');
    expect(await alice.readLine()).toBe('* bob has joined');
    expect(await alice.readLine()).toBe('* carol has joined');

    bob.socket.end(); // FIN
    expect(await alice.readLine()).toBe('* bob has left');
    carol.socket.resetAndDestroy(); // RST
    expect(await alice.readLine()).toBe('* carol has left');
    expect(chat.room.nicknames).toEqual(['alice']);

    // Someone who never chose a nickname leaves without a notice.
    const shy = await LineClient.connect(chat.port!);
    expect(await shy.readLine()).toBe(GREETING);
    shy.socket.end();
    await within(shy.closed, 'the nameless client to close');
    alice.send('/who');
    expect(await alice.readLine()).toBe('* here: alice');
  });

  it('/quit says bye and closes the connection', async () => {
    const chat = await start();
    const { alice, bob } = await aliceAndBob(chat.port!);
    bob.send('/quit');
    expect(await bob.readLine()).toBe('* bye!');
    await bob.expectEnd();
    expect(await alice.readLine()).toBe('* bob has left');
    expect(chat.room.nicknames).toEqual(['alice']);
    expect(chat.servers[0]!.connections.size).toBe(1);
  });

  it('/who, /nick, /help and unknown commands', async () => {
    const chat = await start();
    const { alice, bob } = await aliceAndBob(chat.port!);

    alice.send('/who');
    expect(await alice.readLine()).toBe('* here: alice, bob');

    alice.send('/nick bob');
    expect(await alice.readLine()).toBe('* sorry, bob is taken');
    alice.send('/nick no way');
    expect(await alice.readLine()).toBe('* usage: /nick NAME');
    alice.send('/nick !!');
    expect(await alice.readLine()).toBe('* sorry, a nickname is 1-20 letters, digits, _ or -');
    alice.send('/nick Alice'); // a change of case is allowed
    expect(await alice.readLine()).toBe('* alice is now known as Alice');
    expect(await bob.readLine()).toBe('* alice is now known as Alice');
    alice.send('/nick ally');
    expect(await bob.readLine()).toBe('* Alice is now known as ally');
    alice.send('hello');
    expect(await bob.readLine()).toBe('<ally> hello');
    // The old name is free again.
    const newcomer = await join(chat.port!, 'alice');
    newcomer.send('/who');
    expect(await newcomer.readLine()).toBe('* here: ally, bob, alice');
    expect(await bob.readLine()).toBe('* alice has joined');

    bob.send('/help');
    const help = [];
    for (let i = 0; i < 6; i++) help.push(await bob.readLine());
    expect(help[0]).toBe('* commands:');
    expect(help.join('\n')).toMatch(/\/who[\s\S]*\/nick NAME[\s\S]*\/quit[\s\S]*\/help/);
    bob.send('/dance');
    expect(await bob.readLine()).toBe('* unknown command /dance; try /help');
  });

  it('refuses a line longer than 4096 bytes and keeps the connection', async () => {
    const chat = await start();
    const { alice, bob } = await aliceAndBob(chat.port!);
    alice.send('a'.repeat(5000));
    expect(await alice.readLine()).toBe('* line too long (the limit is 4096 bytes); it was not sent');
    alice.send('b'.repeat(4096)); // exactly at the limit
    expect(await bob.readLine()).toBe(`<alice> ${'b'.repeat(4096)}`);
    alice.send('short again');
    expect(await bob.readLine()).toBe('<alice> short again');
  });

  it('lets a TCP user and a Unix-socket user chat with each other', async () => {
    const chat = await start();
    expect(chat.path).not.toBeNull();
    const { alice, bob } = await aliceAndBob(chat.port!, chat.path!);
    alice.send('hello over TCP');
    expect(await bob.readLine()).toBe('<alice> hello over TCP');
    bob.send('hello over Unix');
    expect(await alice.readLine()).toBe('<bob> hello over Unix');
    bob.send('/who');
    expect(await bob.readLine()).toBe('* here: alice, bob');
    // The nickname is unique across both servers.
    const other = await LineClient.connect(chat.path!);
    expect(await other.readLine()).toBe(GREETING);
    other.send('alice');
    expect(await other.readLine()).toBe('Sorry, alice is taken. What is your nickname?');
    bob.send('/quit');
    expect(await bob.readLine()).toBe('* bye!');
    expect(await alice.readLine()).toBe('* bob has left');
  });

  it('startChat rejects, closing what it opened, when an address is taken', async () => {
    const chat = await start();
    const logged: string[] = [];
    const engine = new Engine({ log: (line) => logged.push(line) });
    onCleanup(() => engine.stop());
    const elsewhere = path.join(tempDir(), 'other.sock');
    await expect(startChat({ port: chat.port!, engine })).rejects.toMatchObject({ code: 'ERR_TREWS_LISTEN', systemCode: 'EADDRINUSE' });
    // A live socket at the path is never replaced; the TCP server opened first is closed again.
    await expect(startChat({ port: 0, path: chat.path!, engine })).rejects.toMatchObject({ code: 'ERR_TREWS_LISTEN' });
    await expect(startChat({ port: 0, path: elsewhere, engine }).then((other) => other.close())).resolves.toBeUndefined();
    expect(engine.channels.size).toBe(0);
    expect(logged).toEqual([]); // awaited failures are not logged as well
  });

  it('closes every connection on close()', async () => {
    const chat = await start();
    const { alice, bob } = await aliceAndBob(chat.port!, chat.path!);
    await within(chat.close(), 'chat.close()');
    await alice.expectEnd();
    await bob.expectEnd();
    expect(chat.servers.every((server) => server.closed)).toBe(true);
  });
});

/** A real `nc` process as a chat user: what a person types, what they see. */
class NcUser {
  readonly child;
  output = '';
  #waiters: Array<() => void> = [];

  constructor(args: string[]) {
    this.child = spawn('nc', args, { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child.stdout.on('data', (d: Buffer) => {
      this.output += d.toString();
      for (const wake of this.#waiters.splice(0)) wake();
    });
    onCleanup(() => {
      this.child.kill();
    });
  }

  type(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  sees(text: string): Promise<void> {
    const check = (resolve: () => void) => (this.output.includes(text) ? resolve() : this.#waiters.push(() => check(resolve)));
    return within(new Promise<void>(check), `nc to show ${JSON.stringify(text)}`);
  }
}

const hasNc = (() => {
  try {
    return spawnSync('nc', ['-h'], { stdio: 'ignore' }).error === undefined;
  } catch {
    return false;
  }
})();

describe.runIf(hasNc)('chat with real nc clients', () => {
  it('two people chat over TCP and the Unix socket with nc, and /quit ends nc', async () => {
    const chat = await start();
    const alice = new NcUser(['127.0.0.1', String(chat.port)]);
    await alice.sees(GREETING);
    alice.type('alice');
    await alice.sees('* hello alice');
    const bob = new NcUser(['-U', chat.path!]);
    await bob.sees(GREETING);
    bob.type('bob');
    await alice.sees('* bob has joined');
    bob.type('hi alice, this is nc');
    await alice.sees('<bob> hi alice, this is nc');
    alice.type('/quit');
    await bob.sees('* alice has left');
    const exited = new Promise<number | null>((resolve) => alice.child.once('exit', resolve));
    alice.child.stdin.end();
    expect(await within(exited, 'nc to exit')).toBe(0);
  });
});

describe('npm start (examples/chat/main.ts)', () => {
  it('listens on TCP, a Unix socket and a web port, and stops cleanly on SIGINT', async () => {
    const port = await freePort();
    const webPort = await freePort();
    const socketPath = path.join(tempDir(), 'chat.sock');
    // What `npm start` runs (tsx examples/chat/main.ts), minus the wrappers, so that the
    // signal reaches main.ts and its exit code reaches us unchanged: `npm exec` ignores a
    // SIGINT sent to it alone and dies of one sent to its group, and the tsx CLI SIGKILLs its
    // child (exit 130) if the child does not confirm a relayed signal within 30 ms.
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/chat/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, PORT: String(port), WEB_PORT: String(webPort), CHAT_SOCKET: socketPath },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, so cleanup can kill everything it started
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    onCleanup(() => {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const listening = new Promise<void>((resolve, reject) => {
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        if (stdout.includes('\n')) resolve();
      });
      void exited.then(() => reject(new Error(`main.ts exited early: ${stdout}${stderr}`)));
    });
    await within(listening, 'the "listening" line', 15_000);
    expect(stdout).toBe(`trews chat listening on tcp port ${port} and unix:${socketPath} — try: nc localhost ${port} — or a browser at http://localhost:${webPort}/\n`);

    const { alice, bob } = await aliceAndBob(port, socketPath);
    bob.send('hi');
    expect(await alice.readLine()).toBe('<bob> hi');

    child.kill('SIGINT'); // Ctrl-C
    expect(await alice.readLine()).toBe('* the server is shutting down');
    expect(await bob.readLine()).toBe('* the server is shutting down');
    await alice.expectEnd();
    await bob.expectEnd();
    expect(await within(exited, 'main.ts to exit')).toEqual({ code: 0, signal: null });
    expect(stdout).toMatch(/\nbye\n$/);
    expect(stderr).not.toMatch(/error/i);
    expect(existsSync(socketPath)).toBe(false);
  });
});
