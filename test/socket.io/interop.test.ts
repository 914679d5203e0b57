/** trews/socket.io with the official socket.io-client, over each transport. */
import { describe, expect, it } from 'vitest';
import { ConnectRefusedError, SocketConnection, SocketIOServer, type OpenInfo } from '../../src/socket.io/index.js';
import { deferred, testEngine } from '../helpers.js';
import { TRANSPORTS, client, connected, next, serve } from './helpers.js';

class Echo extends SocketConnection {
  static override events = { echo: 'echoBack', add: (a: number, b: number) => a + b };
  echoBack(...args: unknown[]) {
    this.emit('echo', ...args);
    return args[0];
  }
}

describe.each(Object.entries(TRANSPORTS))('socket.io-client over %s', (_name, transports) => {
  it('connects, echoes events and answers acks', async () => {
    const engine = testEngine();
    const { url } = await serve(engine, Echo);
    const socket = client(url, { transports: [...transports] });
    await connected(socket);
    expect(socket.id).toMatch(/^[\w-]{20}$/);
    // The Socket.IO socket id is not the Engine.IO session id.
    expect(socket.io.engine.id).toMatch(/^[\w-]{20}$/);
    expect(socket.id).not.toBe(socket.io.engine.id);
    const echoed = next(socket, 'echo');
    socket.emit('echo', 'hello', { n: 1 });
    expect(await echoed).toEqual(['hello', { n: 1 }]);
    expect(await socket.emitWithAck('add', 2, 3)).toBe(5);
    expect(await socket.emitWithAck('echo', 'acked')).toBe('acked');
    if (transports.length === 2) {
      // The default: polling first, then the upgrade to WebSocket.
      if (socket.io.engine.transport.name !== 'websocket') await new Promise((resolve) => socket.io.engine.once('upgrade', resolve));
      expect(await socket.emitWithAck('add', 40, 2)).toBe(42);
    }
    expect(socket.io.engine.transport.name).toBe(transports.at(-1));
  });
});

describe.each(Object.entries(TRANSPORTS))('Socket.IO features with socket.io-client over %s', (_name, transports) => {
  const options = { transports: [...transports] };

  it('carries binary payloads both ways, in events and acks', async () => {
    const engine = testEngine();
    class Binary extends SocketConnection {
      static override events = {
        blob(this: Binary, data: Buffer, label: string) {
          this.emit('blob', Buffer.concat([data, data]), label, { nested: [data.subarray(0, 1)] });
          return { reversed: Buffer.from(data).reverse() };
        },
      };
    }
    const { url } = await serve(engine, Binary);
    const socket = client(url, options);
    await connected(socket);
    const bytes = Buffer.from([0, 1, 2, 254, 255]);
    const echoed = next(socket, 'blob');
    const acked = (await socket.emitWithAck('blob', bytes, 'five')) as { reversed: Buffer };
    expect(Buffer.from(acked.reversed)).toEqual(Buffer.from([255, 254, 2, 1, 0]));
    const [doubled, label, nested] = (await echoed) as [Buffer, string, { nested: Buffer[] }];
    expect(Buffer.from(doubled)).toEqual(Buffer.concat([bytes, bytes]));
    expect(label).toBe('five');
    expect(Buffer.from(nested.nested[0]!)).toEqual(Buffer.from([0]));
  });

  it('emitWithAck from the server: the client answers, a silent client times out, close rejects the rest', async () => {
    const engine = testEngine();
    const results = deferred<unknown[]>();
    class Asker extends SocketConnection {
      override onOpen(): void {
        engine.callback(async () => {
          const answer = await this.emitWithAck('question', 20);
          const late = await this.timeout(50).emitWithAck('silent').then(() => 'answered', (err: Error) => err.constructor.name);
          const pending = this.emitWithAck('silent');
          this.emit('close-me');
          const closed = await pending.then(() => 'answered', (err: Error) => err.constructor.name);
          results.resolve([answer, late, closed]);
        });
      }
    }
    const { url } = await serve(engine, Asker);
    const socket = client(url, options);
    socket.on('question', (n: number, ack: (v: number) => void) => ack(n + 1));
    socket.on('silent', () => {});
    socket.on('close-me', () => socket.disconnect());
    await connected(socket);
    expect(await results.promise).toEqual([21, 'TimeoutError', 'ClosedError']);
  });

  it("the client's ack timeout: a handler that never settles sends no ack, later acks still come", async () => {
    const engine = testEngine();
    class Slow extends SocketConnection {
      static override events = {
        never: () => new Promise(() => {}),
        quick: () => 'quick',
      };
    }
    const { url } = await serve(engine, Slow);
    const socket = client(url, options);
    await connected(socket);
    await expect(socket.timeout(50).emitWithAck('never')).rejects.toThrow('operation has timed out');
    expect(await socket.timeout(5000).emitWithAck('quick')).toBe('quick');
  });

  it('a refused onOpen is a connect_error with message and data; throwing refuses too', async () => {
    const engine = testEngine();
    class Guarded extends SocketConnection {
      override onOpen(info: OpenInfo) {
        if (info.auth.token === 'no') return false;
        if (info.auth.token !== 'secret') throw new ConnectRefusedError('bad token', { retry: false });
      }
    }
    const { url } = await serve(engine, Guarded);
    const refused = client(url, { ...options, auth: { token: 'no' } });
    await expect(connected(refused)).rejects.toMatchObject({ message: 'Connection refused' });
    const thrown = client(url, { ...options, auth: { token: 'guess' } });
    await expect(connected(thrown)).rejects.toMatchObject({ message: 'bad token', data: { retry: false } });
    const welcome = client(url, { ...options, auth: { token: 'secret' } });
    await connected(welcome);
    expect(welcome.connected).toBe(true);
  });

  it('info holds the handshake request (query, headers, address) and the auth, in onOpen and when read later without one', async () => {
    const engine = testEngine();
    const seen: OpenInfo[] = [];
    class Later extends SocketConnection {
      static override events = { info: function (this: Later) { return this.info; } };
    }
    class Checked extends SocketConnection {
      static override endpoints = { '/later': Later };
      static override events = { same: function (this: Checked) { return this.info === seen[0]; } };
      override onOpen(info: OpenInfo) {
        seen.push(info);
      }
    }
    const { url } = await serve(engine, Checked);
    const socket = client(url, { ...options, query: { room: 'lobby', n: '2' }, extraHeaders: { 'x-trews': 'yes', 'x-latin1': 'café' }, auth: { user: 'ann' } });
    await connected(socket);
    const later = socket.io.socket('/later');
    await connected(later);
    expect(await socket.emitWithAck('same')).toBe(true);
    const [info] = seen;
    expect(info).toMatchObject({ auth: { user: 'ann' }, query: { room: 'lobby', n: '2', EIO: '4', transport: transports[0] }, headers: { 'x-trews': 'yes', 'x-latin1': 'café' }, address: { address: '127.0.0.1', family: 'IPv4' }, namespace: '/' });
    expect(info!.address!.port).toBeGreaterThan(0);
    // No onOpen: the same request, the namespace's own name and an empty auth.
    expect(await later.emitWithAck('info')).toEqual({ ...info, auth: {}, namespace: '/later' });
  });

  it('routes namespaces to their endpoint classes; an unknown namespace is refused; one namespace disconnects, the other stays', async () => {
    const engine = testEngine();
    const closes: string[] = [];
    class Chat extends SocketConnection {
      static override events = { where: function (this: Chat) { return `${this.namespace} ${this.info.auth.user as string}`; } };
      override onClose(reason: string): void {
        closes.push(`chat:${reason}`);
      }
    }
    class Root extends SocketConnection {
      static override endpoints = { '/chat': Chat };
      static override events = { where: function (this: Root) { return this.namespace; } };
    }
    const { url, server } = await serve(engine, Root);
    const root = client(url, options);
    await connected(root);
    const chat = root.io.socket('/chat', { auth: { user: 'ann' } });
    await connected(chat);
    expect(chat.id).not.toBe(root.id);
    expect(await chat.emitWithAck('where')).toBe('/chat ann');
    expect(await root.emitWithAck('where')).toBe('/');
    const nowhere = root.io.socket('/nowhere');
    await expect(connected(nowhere)).rejects.toMatchObject({ message: 'Invalid namespace' });
    const chatClosed = new Promise<void>((resolve) => {
      const check = () => (closes.length > 0 ? resolve() : engine.callback(check));
      check();
    });
    chat.disconnect();
    await chatClosed;
    expect(closes).toEqual(['chat:client namespace disconnect']);
    expect(await root.emitWithAck('where')).toBe('/');
    expect(server.of('/chat').connections.size).toBe(0);
    expect(server.of('/').connections.size).toBe(1);
  });

  it('reconnects after the server restarts on the same port', async () => {
    const engine = testEngine();
    const first = await serve(engine, Echo);
    const port = Number(new URL(first.url).port);
    const socket = client(first.url, { ...options, reconnection: true, reconnectionDelay: 20, reconnectionDelayMax: 50 });
    await connected(socket);
    const firstId = socket.id;
    const gone = next(socket, 'disconnect');
    await first.server.close();
    // The session ends (an Engine.IO close, or over polling possibly a 400 on the next request),
    // not the namespace: the client reconnects by itself.
    expect((await gone)[0]).toMatch(/^transport (close|error)$/);
    expect(socket.active).toBe(true);
    const second = new SocketIOServer(Echo, { engine });
    await second.listen(['127.0.0.1', port]);
    await connected(socket);
    expect(socket.id).not.toBe(firstId);
    expect(await socket.emitWithAck('add', 1, 1)).toBe(2);
  });

  it('rooms: join, leave, server.to(room).emit, except, and a connection broadcasting to the others', async () => {
    const engine = testEngine();
    class Member extends SocketConnection {
      static override events = {
        join(this: Member, room: string) {
          this.join(room);
          return [...this.rooms];
        },
        leave(this: Member, room: string) {
          this.leave(room);
          return [...this.rooms];
        },
        shout(this: Member, text: string) {
          return this.broadcast.emit('heard', text);
        },
      };
    }
    const { url, server } = await serve(engine, Member);
    const [a, b, c] = [client(url, options), client(url, options), client(url, options)];
    await Promise.all([connected(a), connected(b), connected(c)]);
    expect(await a.emitWithAck('join', 'red')).toEqual(['red']);
    expect(await b.emitWithAck('join', 'red')).toEqual(['red']);
    expect(await c.emitWithAck('join', 'blue')).toEqual(['blue']);
    const got: string[] = [];
    for (const [name, socket] of [['a', a], ['b', b], ['c', c]] as const) socket.on('news', (text: string) => got.push(`${name}:${text}`));
    const bId = [...server.of('/').connections.values()].find((conn) => conn.id === b.id)!;
    expect(server.to('red').emit('news', 'red')).toBe(2);
    expect(server.to(['red', 'blue']).except(bId).emit('news', 'most')).toBe(2);
    expect(server.except('red').emit('news', 'not red')).toBe(1);
    expect(await b.emitWithAck('leave', 'red')).toEqual([]);
    expect(server.to('red').emit('news', 'only a')).toBe(1);
    const heard = Promise.all([next(b, 'heard'), next(c, 'heard')]);
    expect(await a.emitWithAck('shout', 'hey')).toBe(2);
    expect(await heard).toEqual([['hey'], ['hey']]);
    expect(await a.emitWithAck('join', 'red')).toEqual(['red']); // the events above were sent before this ack
    expect(got.sort()).toEqual(['a:most', 'a:only a', 'a:red', 'b:red', 'c:most', 'c:not red'].sort());
  });
});
