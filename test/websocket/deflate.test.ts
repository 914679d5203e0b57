/** permessage-deflate (RFC 7692, ws's implementation), off unless asked for, with ws peers. */
import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer as WsServer } from 'ws';
import { WebSocketClient, WebSocketConnection, WebSocketServer } from '../../src/websocket/index.js';
import { deferred, onCleanup, portOf, testEngine } from '../helpers.js';

function openWs(url: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  const socket = new WebSocket(url, options);
  onCleanup(() => socket.terminate());
  socket.on('error', () => {});
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

const big = 'compressible text '.repeat(10_000); // 180,000 bytes

describe('permessage-deflate', () => {
  it('is not agreed by default, even when the client offers it', async () => {
    const engine = testEngine();
    const server = new WebSocketServer(WebSocketConnection, { engine });
    await server.listen(['127.0.0.1', 0]);
    const client = await openWs(`ws://127.0.0.1:${portOf(server.localAddress)}`, { perMessageDeflate: true });
    expect(client.extensions).toBe('');
    expect([...server.connections][0]!.compressed).toBe(false);
    await server.close();
  });

  it('server: compresses when asked, keeps the order of messages and of the close frame', async () => {
    const engine = testEngine();
    class Conn extends WebSocketConnection {
      override bufferSize = 1 << 20;
      override onRead(message: string): void {
        // Large (compressed, asynchronous) and small messages written in one dispatch, then close.
        this.write(big);
        this.write('small');
        this.write(Buffer.from(big));
        this.write(message);
        void this.close(4000, 'in order');
      }
    }
    const server = new WebSocketServer(Conn, { engine, perMessageDeflate: true });
    await server.listen(['127.0.0.1', 0]);
    const client = await openWs(`ws://127.0.0.1:${portOf(server.localAddress)}`, { perMessageDeflate: true });
    expect(client.extensions).toMatch(/^permessage-deflate/);
    expect([...server.connections][0]!.compressed).toBe(true);
    let wire = 0;
    (client as unknown as { _socket: { on(e: 'data', f: (b: Buffer) => void): void } })._socket.on('data', (chunk) => (wire += chunk.length));
    const received: Array<[string, boolean]> = [];
    client.on('message', (data: Buffer, isBinary) => received.push([data.length > 100 ? `${data.length} bytes` : data.toString(), isBinary]));
    const closed = new Promise<[number, string]>((resolve) => client.on('close', (code, reason) => resolve([code, reason.toString()])));
    client.send(big);
    expect(await closed).toEqual([4000, 'in order']);
    expect(received).toEqual([
      ['180000 bytes', false],
      ['small', false],
      ['180000 bytes', true],
      ['180000 bytes', false],
    ]);
    expect(wire).toBeLessThan(20_000); // 540 KB of messages, compressed
    await server.close();
  });

  it('server: a message that inflates past bufferSize closes with 1009', async () => {
    const engine = testEngine();
    const overflow = deferred<number>();
    class Conn extends WebSocketConnection {
      override bufferSize = 64 * 1024;
      override onOverflowError(): void {
        overflow.resolve(this.bufferSize);
      }
    }
    const server = new WebSocketServer(Conn, { engine, perMessageDeflate: true });
    await server.listen(['127.0.0.1', 0]);
    const client = await openWs(`ws://127.0.0.1:${portOf(server.localAddress)}`, { perMessageDeflate: true });
    const closed = new Promise<number>((resolve) => client.on('close', resolve));
    client.send(Buffer.alloc(1 << 20)); // 1 MiB of zeros: about 1 KiB on the wire
    expect(await closed).toBe(1009);
    expect(await overflow.promise).toBe(64 * 1024);
    await server.close();
  });

  it('client: offers it to a ws server, which agrees; text and binary round-trip', async () => {
    const engine = testEngine();
    const wss = new WsServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true });
    onCleanup(() => new Promise((r) => wss.close(r)));
    await new Promise((r) => wss.once('listening', r));
    const agreed = deferred<string>();
    wss.on('connection', (socket) => {
      agreed.resolve(socket.extensions);
      socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
    });
    const got: Array<string | Buffer> = [];
    const done = deferred();
    class Client extends WebSocketClient {
      override bufferSize = 1 << 20;
      override onConnect(): void {
        this.write(big);
        this.write(Buffer.from([1, 2, 3]));
        this.write('tail');
      }
      override onRead(message: string | Buffer): void {
        got.push(message);
        if (got.length === 3) done.resolve();
      }
    }
    const client = new Client({ engine });
    await client.connect(`ws://127.0.0.1:${(wss.address() as { port: number }).port}`, { perMessageDeflate: true });
    expect(client.compressed).toBe(true);
    expect(await agreed.promise).toMatch(/^permessage-deflate/);
    await done.promise;
    expect(got).toEqual([big, Buffer.from([1, 2, 3]), 'tail']);
    await client.close();
  });
});
