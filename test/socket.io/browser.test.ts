/**
 * trews/socket.io in a real headless Chromium (Debian's, driven by playwright-core): a page
 * this test serves loads socket.io-client's browser bundle, connects (long-polling, then the
 * upgrade to WebSocket), and exchanges events, acks and binary data. Skipped only when
 * /usr/bin/chromium is missing.
 */
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SocketConnection, SocketIOServer } from '../../src/socket.io/index.js';
import { hasChromium, launchChromium } from '../browser.js';
import { onCleanup, portOf, testEngine } from '../helpers.js';

const require = createRequire(import.meta.url);
const BUNDLE = path.join(path.dirname(require.resolve('socket.io-client/package.json')), 'dist/socket.io.min.js');

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>trews socket.io</title><script src="/socket.io.min.js"></script></head>
<body><script>
  window.result = new Promise((resolve, reject) => {
    const socket = io({ auth: { user: 'chromium' } });
    socket.on('connect_error', (err) => reject(err.message));
    socket.on('connect', async () => {
      const greeting = await new Promise((r) => socket.once('greeting', r));
      const sum = await socket.emitWithAck('add', 2, 40);
      const bytes = await socket.emitWithAck('reverse', new Uint8Array([1, 2, 3]));
      if (socket.io.engine.transport.name !== 'websocket') await new Promise((r) => socket.io.engine.once('upgrade', r));
      const afterUpgrade = await socket.emitWithAck('add', 1, 1);
      resolve({ greeting, sum, bytes: Array.from(new Uint8Array(bytes)), afterUpgrade, transport: socket.io.engine.transport.name });
    });
  });
</script></body></html>`;

class Browser extends SocketConnection {
  static override events = {
    add: (a: number, b: number) => a + b,
    reverse: (bytes: Buffer) => Buffer.from(bytes).reverse(),
  };
  override onOpen(): void {
    this.emit('greeting', `hello ${String(this.info.auth.user)} from ${this.info.headers['user-agent']?.includes('Chrome') ? 'a browser' : 'something'}`);
  }
}

describe.skipIf(!hasChromium)('socket.io-client in Chromium', () => {
  it('loads the client bundle from a served page, connects over polling, upgrades, and exchanges events, acks and binary', async () => {
    const engine = testEngine();
    const web = http.createServer((request, response) => {
      if (request.url === '/socket.io.min.js') response.writeHead(200, { 'Content-Type': 'text/javascript' }).end(readFileSync(BUNDLE));
      else if (request.url === '/') response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(PAGE);
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    const server = new SocketIOServer(Browser, { engine }).attach(web);
    onCleanup(async () => {
      await server.close();
      await new Promise<void>((resolve) => {
        web.close(() => resolve());
        web.closeAllConnections();
      });
    });
    const browser = await launchChromium();
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${portOf(web.address())}/`);
    const result = await page.evaluate(() => (globalThis as unknown as { result: Promise<unknown> }).result);
    expect(result).toEqual({ greeting: 'hello chromium from a browser', sum: 42, bytes: [3, 2, 1], afterUpgrade: 2, transport: 'websocket' });
    expect(server.of('/').connections.size).toBe(1);
  });
});
