/** trews/websocket against independent peers: the `ws` client and server. */
import { Buffer } from 'node:buffer';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer as WsServer } from 'ws';
import { WebSocketClient, WebSocketConnection, WebSocketServer } from '../../src/websocket/index.js';
import { deferred, onCleanup, portOf, pseudoRandomBytes, sha256, tempDir, testEngine } from '../helpers.js';
import { Struct } from '../../src/struct.js';
import type { Engine } from '../../src/engine.js';

class Echo extends WebSocketConnection {
  override onRead(message: string | Buffer): void {
    this.write(message);
  }
}

async function serve<C extends WebSocketConnection>(engine: Engine, Conn: new (o?: object) => C, options: ConstructorParameters<typeof WebSocketServer>[1] = {}) {
  const server = new WebSocketServer<C>(Conn, { engine, ...options });
  await server.listen(['127.0.0.1', 0]);
  return { server, url: `ws://127.0.0.1:${portOf(server.localAddress)}` };
}

/** A `ws` client that records messages (as [data, isBinary]) and its close. */
async function wsClient(url: string, options: WebSocket.ClientOptions = {}) {
  const socket = new WebSocket(url, options);
  onCleanup(() => socket.terminate());
  const messages: Array<[Buffer, boolean]> = [];
  const waiters: Array<() => void> = [];
  socket.on('message', (data: Buffer, isBinary) => {
    messages.push([data, isBinary]);
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const until = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => (messages.length >= n ? resolve() : waiters.push(check));
      check();
    });
  return { socket, messages, closed, until };
}

describe('WebSocketServer with the ws client', () => {
  it('echoes text as text and binary as binary, hooks in order', async () => {
    const engine = testEngine();
    const events: string[] = [];
    class Conn extends Echo {
      override onConnect(): void {
        events.push('connect');
      }
      override onRead(message: string | Buffer): void {
        events.push(typeof message === 'string' ? `text:${message}` : `binary:${message.toString('hex')}`);
        super.onRead(message);
      }
      override onClose(): void {
        events.push(`close:${this.closeCode}`);
      }
    }
    const { server, url } = await serve(engine, Conn);
    server.on('accept', () => events.push('accept'));
    const client = await wsClient(url);
    client.socket.send('héllo');
    client.socket.send(Buffer.from([0, 1, 0xff]));
    client.socket.send('');
    await client.until(3);
    expect(client.messages.map(([d, b]) => [d.toString('hex'), b])).toEqual([
      [Buffer.from('héllo').toString('hex'), false],
      ['0001ff', true],
      ['', false],
    ]);
    client.socket.close(1000);
    expect((await client.closed).code).toBe(1000);
    await server.close();
    expect(events).toEqual(['connect', 'accept', 'text:héllo', 'binary:0001ff', 'text:', 'close:1000']);
  });

  it('delivers a fragmented message whole, and a 1 MiB message intact', async () => {
    const engine = testEngine();
    const { server, url } = await serve(engine, Echo, { connectionOptions: { bufferSize: 2 << 20 } });
    const client = await wsClient(url);
    client.socket.send('frag', { fin: false });
    client.socket.send('men', { fin: false });
    client.socket.send('ted', { fin: true });
    const big = pseudoRandomBytes(1 << 20, 7);
    client.socket.send(big);
    await client.until(2);
    expect(client.messages[0]![0].toString()).toBe('fragmented');
    expect(client.messages[1]![0].length).toBe(1 << 20);
    expect(sha256(client.messages[1]![0])).toBe(sha256(big));
    await server.close();
  });

  it('frames bytes across messages with a readDelimiter, as Pants does', async () => {
    const engine = testEngine();
    const lines: string[] = [];
    class Lines extends WebSocketConnection {
      override readDelimiter = '\n';
      override encoding = 'utf8';
      override onRead(line: string): void {
        lines.push(line);
        this.write(`${line.toUpperCase()}\n`);
      }
    }
    const { server, url } = await serve(engine, Lines);
    const client = await wsClient(url);
    for (const piece of ['ab', 'c\nd', Buffer.from('e\n'), '\n']) client.socket.send(piece);
    await client.until(3);
    expect(lines).toEqual(['abc', 'de', '']);
    expect(client.messages.map(([d]) => d.toString())).toEqual(['ABC\n', 'DE\n', '\n']);
    await server.close();
  });

  it('frames binary messages with a Struct; writePacked and writeFile send binary messages', async () => {
    const engine = testEngine();
    const dir = tempDir();
    const file = path.join(dir, 'payload.bin');
    writeFileSync(file, 'file contents, sent as one binary message');
    const values: number[][] = [];
    class Packed extends WebSocketConnection {
      override readDelimiter = new Struct('!HI');
      override onRead(a: number, b: number): void {
        values.push([a, b]);
        this.writePacked(a + 1, b + 1);
        if (values.length === 2) void this.writeFile(file, { offset: 5, length: 8 });
      }
    }
    const { server, url } = await serve(engine, Packed);
    const client = await wsClient(url);
    const struct = new Struct('!HI');
    const both = Buffer.concat([struct.pack(1, 2), struct.pack(3, 4)]);
    client.socket.send(both.subarray(0, 4)); // a frame split across messages
    client.socket.send(both.subarray(4));
    await client.until(3);
    expect(values).toEqual([[1, 2], [3, 4]]);
    expect(client.messages.map(([d, binary]) => [binary, d.length === 6 ? struct.unpack(d) : d.toString()])).toEqual([
      [true, [2, 3]],
      [true, [4, 5]],
      [true, 'contents'],
    ]);
    await server.close();
  });

  it('pauseReading stops delivering whole messages at once; resumeReading delivers the rest in order', async () => {
    const engine = testEngine();
    const seen: string[] = [];
    const paused = deferred<WebSocketConnection>();
    let handshakeBytes = 0;
    class Pausing extends WebSocketConnection {
      override onConnect(): void {
        handshakeBytes = this.bytesRead; // the upgrade request
      }
      override onRead(message: string): void {
        seen.push(message);
        if (message === 'a') {
          this.pauseReading();
          paused.resolve(this);
        }
        if (message === 'd') this.write('done');
      }
    }
    const { server, url } = await serve(engine, Pausing);
    const client = await wsClient(url);
    const frames = ['a', 'b', 'c', 'd'].map((m) => Buffer.concat([Buffer.from([0x81, 0x81, 0, 0, 0, 0]), Buffer.from(m)]));
    // All four in one TCP write: one chunk for the server, parsed at once.
    (client.socket as unknown as { _socket: { write(b: Buffer): void } })._socket.write(Buffer.concat(frames));
    const connection = await paused.promise;
    await new Promise((resolve) => setImmediate(resolve));
    expect(connection.bytesRead - handshakeBytes).toBe(28); // all four frames were read, three of them held
    expect(seen).toEqual(['a']);
    connection.resumeReading();
    await client.until(1);
    expect(seen).toEqual(['a', 'b', 'c', 'd']);
    await server.close();
  });

  it('sends every message written in one dispatch in one socket write', async () => {
    const engine = testEngine();
    let writes = 0;
    class Burst extends WebSocketConnection {
      override onConnect(): void {
        const socket = this.socket!;
        const write = socket.write.bind(socket) as (...a: unknown[]) => boolean;
        socket.write = ((...args: unknown[]) => {
          if ((args[0] as Buffer).length > 0) writes++;
          return write(...args);
        }) as typeof socket.write;
      }
      override onRead(count: string): void {
        for (let i = 0; i < Number(count); i++) this.write(i % 2 === 0 ? `m${i}` : Buffer.from([i]));
      }
    }
    const { server, url } = await serve(engine, Burst);
    const client = await wsClient(url);
    writes = 0;
    client.socket.send('100');
    await client.until(100);
    expect(client.messages[0]![0].toString()).toBe('m0');
    expect(client.messages[99]![0]).toEqual(Buffer.from([99]));
    expect(writes).toBe(1);
    await server.close();
  });

  it('makes close codes and reasons readable in onClose, both ways', async () => {
    const engine = testEngine();
    const seen = deferred<[number | null, string]>();
    class Conn extends WebSocketConnection {
      override onRead(message: string): void {
        if (message === 'close please') void this.close(4001, 'as you wish');
      }
      override onClose(): void {
        seen.resolve([this.closeCode, this.closeReason]);
      }
    }
    const { server, url } = await serve(engine, Conn);
    const first = await wsClient(url);
    first.socket.close(4000, 'bye');
    expect(await seen.promise).toEqual([4000, 'bye']);
    const second = await wsClient(url);
    second.socket.send('close please');
    expect(await second.closed).toEqual({ code: 4001, reason: 'as you wish' });
    await server.close();
  });

  it('close() sends 1001 to every connection and resolves once all have closed', async () => {
    const engine = testEngine();
    const { server, url } = await serve(engine, Echo);
    const clients = await Promise.all([1, 2, 3].map(() => wsClient(url)));
    expect(server.connections.size).toBe(3);
    await server.close();
    expect(server.connections.size).toBe(0);
    for (const client of clients) expect((await client.closed).code).toBe(1001);
  });
});

describe('WebSocketClient', () => {
  it('talks to a ws server: text, binary, close code', async () => {
    const engine = testEngine();
    const wss = new WsServer({ host: '127.0.0.1', port: 0 });
    onCleanup(() => new Promise((r) => wss.close(r)));
    await new Promise((r) => wss.once('listening', r));
    const serverClosed = deferred<number>();
    wss.on('connection', (socket) => {
      socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
      socket.on('close', (code) => serverClosed.resolve(code));
    });
    const received: Array<string | Buffer> = [];
    const done = deferred();
    const order: string[] = [];
    class Client extends WebSocketClient {
      override onConnect(): void {
        order.push('connect');
        this.write('one');
        this.write(Buffer.from('two'));
      }
      override onRead(message: string | Buffer): void {
        received.push(message);
        if (received.length === 2) done.resolve();
      }
      override onClose(): void {
        order.push(`close:${this.closeCode}`);
      }
    }
    const client = new Client({ engine });
    await client.connect(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/chat?x=1`);
    await done.promise;
    expect(received).toEqual(['one', Buffer.from('two')]);
    await client.close(4002, 'done');
    expect(await serverClosed.promise).toBe(4002);
    expect(order).toEqual(['connect', 'close:4002']);
  });

  it('talks to a trews server, writes before the handshake held until it is done', async () => {
    const engine = testEngine();
    const { server, url } = await serve(engine, Echo);
    const received: string[] = [];
    const done = deferred();
    class Client extends WebSocketClient {
      override onRead(message: string): void {
        received.push(message);
        if (received.length === 3) done.resolve();
      }
    }
    const client = new Client({ engine });
    const connecting = client.connect(url);
    client.write('early');
    await connecting;
    client.write('a');
    client.write('b');
    await done.promise;
    expect(received).toEqual(['early', 'a', 'b']);
    await client.close();
    await server.close();
  });
});
