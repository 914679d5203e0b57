/** trews/websocket: many clients, limits, backpressure, wss, attach and reconnect. */
import { Buffer } from 'node:buffer';
import * as http from 'node:http';
import * as net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HandshakeRefusedError, WebSocketClient, WebSocketConnection, WebSocketServer } from '../../src/websocket/index.js';
import { deferred, onCleanup, portOf, tempDir, testEngine } from '../helpers.js';
import { testPKI } from '../tls-certs.js';

function openWs(url: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  const socket = new WebSocket(url, options);
  onCleanup(() => socket.terminate());
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('many connections', () => {
  it('accepts 1,000 ws clients and broadcasts to all of them', async () => {
    const engine = testEngine();
    const server = new WebSocketServer(WebSocketConnection, { engine });
    await server.listen(['127.0.0.1', 0]);
    const url = `ws://127.0.0.1:${portOf(server.localAddress)}`;
    const clients: WebSocket[] = [];
    for (let batch = 0; batch < 10; batch++) clients.push(...(await Promise.all(Array.from({ length: 100 }, () => openWs(url)))));
    await new Promise<void>((resolve) => (server.connections.size === 1000 ? resolve() : server.on('accept', () => server.connections.size === 1000 && resolve())));
    let received = 0;
    const all = deferred();
    for (const client of clients) {
      client.on('message', (data: Buffer, isBinary) => {
        expect([data.toString(), isBinary]).toEqual(['news for all', false]);
        if (++received === 1000) all.resolve();
      });
    }
    expect(server.broadcast('news for all')).toBe(1000);
    await all.promise;
    const closes = clients.map((client) => new Promise<number>((resolve) => client.on('close', resolve)));
    await server.close();
    expect(new Set(await Promise.all(closes))).toEqual(new Set([1001]));
  }, 30_000);

  it('refuses upgrades beyond maxConnections with HTTP 503', async () => {
    const engine = testEngine();
    const server = new WebSocketServer(WebSocketConnection, { engine, maxConnections: 2 });
    await server.listen(['127.0.0.1', 0]);
    const url = `ws://127.0.0.1:${portOf(server.localAddress)}`;
    await openWs(url);
    await openWs(url);
    const err = await new WebSocketClient({ engine }).connect(url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandshakeRefusedError);
    expect((err as HandshakeRefusedError).status).toBe(503);
    await server.close();
  });

  it('refuses a wrong origin with 403, accepts a listed one', async () => {
    const engine = testEngine();
    const server = new WebSocketServer(WebSocketConnection, { engine, origin: ['https://good.example'] });
    await server.listen(['127.0.0.1', 0]);
    const url = `ws://127.0.0.1:${portOf(server.localAddress)}`;
    await openWs(url, { origin: 'https://good.example' });
    const refused = await openWs(url, { origin: 'https://evil.example' }).catch((e: Error) => e.message);
    expect(refused).toMatch(/403/);
    await server.close();
  });
});

describe('backpressure', () => {
  it('write() returns false above the high-water mark, onWrite follows each drain, memory stays bounded', async () => {
    const engine = testEngine();
    const TOTAL = 16 << 20;
    const chunk = Buffer.alloc(64 * 1024, 1);
    let sent = 0;
    let stops = 0;
    let drains = 0;
    let mostBuffered = 0;
    const done = deferred();
    class Firehose extends WebSocketConnection {
      override writeHighWaterMark = 256 * 1024;
      override onRead(): void {
        this.#fill();
      }
      override onWrite(): void {
        if (stops === 0) return; // the 101 reply's drain
        drains++;
        if (sent < TOTAL) this.#fill();
        else done.resolve();
      }
      /** Write until write() says stop. */
      #fill(): void {
        let room = true;
        while (room && sent < TOTAL) {
          room = this.write(chunk);
          sent += chunk.length;
          mostBuffered = Math.max(mostBuffered, this.bufferedBytes);
        }
        if (!room) stops++;
      }
    }
    const server = new WebSocketServer(Firehose, { engine });
    await server.listen(['127.0.0.1', 0]);
    const client = await openWs(`ws://127.0.0.1:${portOf(server.localAddress)}`);
    let received = 0;
    const all = deferred();
    client.on('message', (data: Buffer) => {
      received += data.length;
      if (received === TOTAL) all.resolve();
    });
    client.send('go');
    await Promise.all([done.promise, all.promise]);
    expect(received).toBe(TOTAL);
    expect(stops).toBeGreaterThan(1);
    expect(drains).toBe(stops);
    // Never more queued than the mark plus the write that crossed it (and its frame header).
    expect(mostBuffered).toBeLessThanOrEqual(256 * 1024 + chunk.length + 14);
    await server.close();
  });
});

describe('wss and attach', () => {
  it('serves wss:// with the test CA; a WebSocketClient and a ws client both connect', async () => {
    const engine = testEngine();
    const pki = testPKI();
    class Echo extends WebSocketConnection {
      override onRead(message: string): void {
        this.write(`echo:${message}`);
      }
    }
    const server = new WebSocketServer(Echo, { engine, tls: { key: pki.key, cert: pki.cert } });
    await server.listen(['127.0.0.1', 0]);
    const port = portOf(server.localAddress);
    const reply = deferred<string>();
    class Client extends WebSocketClient {
      override onConnect(): void {
        this.write('secure');
      }
      override onRead(message: string): void {
        reply.resolve(message);
      }
    }
    const client = new Client({ engine });
    await client.connect(`wss://localhost:${port}/`, { tls: { ca: pki.ca } });
    expect(client.encrypted).toBe(true);
    expect(await reply.promise).toBe('echo:secure');
    const ws = await openWs(`wss://localhost:${port}/`, { ca: pki.ca });
    const wsReply = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
    ws.send('too');
    expect(await wsReply).toBe('echo:too');
    // Without the CA the certificate is refused.
    const untrusted = await new WebSocketClient({ engine }).connect(`wss://localhost:${port}/`).catch((e: Error) => e.name);
    expect(untrusted).toBe('TLSError');
    await client.close();
    await server.close();
  });

  it('attaches to a node:http server on a path, sharing its port with plain HTTP', async () => {
    const engine = testEngine();
    const app = http.createServer((_req, res) => res.end('plain http'));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    onCleanup(() => new Promise((resolve) => app.close(resolve)));
    const port = (app.address() as { port: number }).port;
    class Echo extends WebSocketConnection {
      override onRead(message: string): void {
        this.write(message);
      }
    }
    const server = new WebSocketServer(Echo, { engine }).attach(app, { path: '/ws' });
    const page = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text());
    expect(page).toBe('plain http');
    const ws = await openWs(`ws://127.0.0.1:${port}/ws`);
    const echoed = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
    ws.send('shared port');
    expect(await echoed).toBe('shared port');
    const wrongPath = await openWs(`ws://127.0.0.1:${port}/other`).catch((e: Error) => e.message);
    expect(wrongPath).toMatch(/400/);
    await server.close();
    expect(app.listening).toBe(true);
  });
});

describe('timeouts and refusals', () => {
  it('idleTimeout closes a quiet connection with 1000 after onTimeout', async () => {
    const engine = testEngine();
    const kinds: string[] = [];
    class Quiet extends WebSocketConnection {
      override idleTimeout = 80;
      override onTimeout(kind: 'idle' | 'read' | 'ping'): void {
        kinds.push(kind);
        super.onTimeout(kind);
      }
    }
    const server = new WebSocketServer(Quiet, { engine });
    await server.listen(['127.0.0.1', 0]);
    const client = await openWs(`ws://127.0.0.1:${portOf(server.localAddress)}`);
    const code = await new Promise<number>((resolve) => client.on('close', resolve));
    expect(code).toBe(1000);
    expect(kinds).toEqual(['idle']);
    await server.close();
  });

  it('a WebSocketClient refused by a plain HTTP server, or never answered, fails with HandshakeRefusedError', async () => {
    const engine = testEngine();
    const plain = http.createServer((_req, res) => res.end('not a websocket'));
    const silent = new Set<net.Socket>();
    const mute = net.createServer((socket) => silent.add(socket.on('error', () => {})));
    for (const s of [plain, mute]) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    onCleanup(() => {
      for (const socket of silent) socket.destroy();
      return Promise.all([plain, mute].map((s) => new Promise((resolve) => s.close(resolve))));
    });
    const errors: unknown[] = [];
    class Client extends WebSocketClient {
      override onConnectError(err: Error): void {
        errors.push(err);
      }
    }
    const refused = await new Client({ engine }).connect(`ws://127.0.0.1:${(plain.address() as { port: number }).port}/`).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(HandshakeRefusedError);
    expect((refused as HandshakeRefusedError).status).toBe(200);
    const unanswered = await new Client({ engine })
      .connect(`ws://127.0.0.1:${(mute.address() as { port: number }).port}/`, { handshakeTimeout: 100 })
      .catch((e: unknown) => e);
    expect(unanswered).toBeInstanceOf(HandshakeRefusedError);
    expect((unanswered as Error).message).toMatch(/no reply within 100 ms/);
    expect(errors).toEqual([refused, unanswered]);
  });
});

describe('listening', () => {
  it('a taken port rejects listen() with the error onListenError saw, then closes', async () => {
    const engine = testEngine();
    const first = new WebSocketServer(WebSocketConnection, { engine });
    await first.listen(['127.0.0.1', 0]);
    const seen: string[] = [];
    class Second extends WebSocketServer {
      override onListenError(err: Error): void {
        seen.push((err as { systemCode?: string }).systemCode ?? err.message);
      }
      override onClose(): void {
        seen.push('close');
      }
    }
    const second = new Second(WebSocketConnection, { engine });
    await expect(second.listen(['127.0.0.1', portOf(first.localAddress)])).rejects.toMatchObject({ code: 'ERR_TREWS_LISTEN', systemCode: 'EADDRINUSE' });
    await second.whenClosed();
    expect(seen).toEqual(['EADDRINUSE', 'close']);
    await first.close();
  });

  it('listens on a Unix socket path (ws+unix: client)', async () => {
    const engine = testEngine();
    class Echo extends WebSocketConnection {
      override onRead(message: string): void {
        this.write(`unix:${message}`);
      }
    }
    const socketPath = path.join(tempDir(), 'ws.sock');
    const server = new WebSocketServer(Echo, { engine });
    await server.listen(socketPath);
    let addresses: unknown = null;
    server.on('accept', (connection) => (addresses = [connection.localAddress, connection.remoteAddress]));
    const client = await openWs(`ws+unix://${socketPath}:/chat`);
    const reply = new Promise<string>((resolve) => client.once('message', (d: Buffer) => resolve(d.toString())));
    client.send('hi');
    expect(await reply).toBe('unix:hi');
    expect(addresses).toEqual([socketPath, null]);
    await server.close();
  });
});

describe('closing a client during its handshake', () => {
  it('rejects connect() with a ClosedError; the handshake timeout never fires afterwards', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const accepted = deferred<net.Socket>();
    const mute = net.createServer((socket) => accepted.resolve(socket.on('error', () => {})));
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
    onCleanup(() => new Promise((resolve) => mute.close(resolve)));
    const hooks: string[] = [];
    class Client extends WebSocketClient {
      override onConnectError(): void {
        hooks.push('connectError');
      }
      override onClose(): void {
        hooks.push(`close:${this.closeCode}`);
      }
    }
    const client = new Client({ engine });
    const connecting = client.connect(`ws://127.0.0.1:${(mute.address() as { port: number }).port}/`, { handshakeTimeout: 1000 }).catch((e: Error) => e.name);
    const socket = await accepted.promise;
    // The request arrives: the client is waiting for the reply. Close it now.
    await new Promise((resolve) => socket.once('data', resolve));
    await client.close(false);
    expect(await connecting).toBe('ClosedError');
    engine.advance(5000);
    expect(hooks).toEqual(['close:1006']);
    socket.destroy();
  });
});

describe('reconnecting client', () => {
  it('reconnects after the server drops it, handshake and onConnect again', async () => {
    const engine = testEngine();
    let accepted = 0;
    class Dropper extends WebSocketConnection {
      override onConnect(): void {
        accepted++;
        this.write(`hello ${accepted}`);
        if (accepted === 1) void this.close(1012, 'restart');
      }
    }
    const server = new WebSocketServer(Dropper, { engine });
    await server.listen(['127.0.0.1', 0]);
    const seen: string[] = [];
    const second = deferred();
    class Client extends WebSocketClient {
      override onConnect(): void {
        seen.push('connect');
      }
      override onRead(message: string): void {
        seen.push(message);
        if (message === 'hello 2') second.resolve();
      }
      override onReconnecting(attempt: number): void {
        seen.push(`reconnecting ${attempt} after ${this.closeCode}`);
      }
    }
    const client = new Client({ engine, reconnect: { initialDelay: 10, jitter: 0 } });
    await client.connect(`ws://127.0.0.1:${portOf(server.localAddress)}`);
    await second.promise;
    expect(seen).toEqual(['connect', 'hello 1', 'reconnecting 1 after 1012', 'connect', 'hello 2']);
    await client.close();
    await server.close();
  });
});
