/**
 * The Socket.IO chat example as `npm run example:socketio` runs it (tsx, so its `@event`
 * decorator is compiled by esbuild): a socket.io-client user and a TCP user share one room,
 * and SIGINT stops it cleanly.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { io } from 'socket.io-client';
import { onCleanup } from '../helpers.js';
import { spawnWithTsx } from './helpers.js';

/** Resolves once `read()` includes `text`, re-checking on every `wake`. */
function until(read: () => string, text: string, subscribe: (wake: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const check = () => (read().includes(text) ? resolve() : subscribe(check));
    check();
  });
}

describe('socketio-chat example', () => {
  it('a Socket.IO user and a TCP user chat in one room; SIGINT says bye and exits 0', async () => {
    const example = spawnWithTsx('examples/socketio-chat/main.ts', { PORT: '0', SIO_PORT: '0' });
    const wakeOnOutput = (wake: () => void) => example.child.stdout.once('data', wake);
    await until(example.stdout, 'in one room', wakeOnOutput);
    const [, webPort, tcpPort] = /http:\/\/localhost:(\d+)\/ and nc localhost (\d+)/.exec(example.stdout())!;

    const page = await fetch(`http://127.0.0.1:${webPort}/`);
    expect(await page.text()).toContain('<script src="/socket.io.min.js"></script>');
    expect((await fetch(`http://127.0.0.1:${webPort}/socket.io.min.js`)).status).toBe(200);

    const web = io(`http://127.0.0.1:${webPort}`, { forceNew: true, reconnection: false });
    onCleanup(() => web.disconnect());
    let webLines = '';
    const webWaiters: Array<() => void> = [];
    web.on('line', (line: string) => {
      webLines += `${line}\n`;
      for (const wake of webWaiters.splice(0)) wake();
    });
    const webSees = (text: string) => until(() => webLines, text, (wake) => webWaiters.push(wake));
    await webSees('What is your nickname?');
    web.emit('line', 'webby');
    await webSees('* hello webby, nobody else is here yet.');

    const tcp = net.connect(Number(tcpPort), '127.0.0.1');
    onCleanup(() => tcp.destroy());
    let tcpText = '';
    tcp.setEncoding('utf8').on('data', (d: string) => (tcpText += d));
    const tcpSees = (text: string) => until(() => tcpText, text, (wake) => tcp.once('data', wake));
    await tcpSees('What is your nickname?');
    tcp.write('netty\n');
    await tcpSees('* hello netty, also here: webby.');
    await webSees('* netty has joined');
    web.emit('line', 'hi from the browser');
    await tcpSees('<webby> hi from the browser');
    tcp.write('hello, socket.io\n');
    await webSees('<netty> hello, socket.io');

    const gone = new Promise((resolve) => web.once('disconnect', resolve));
    example.child.kill('SIGINT');
    expect(await example.exited).toEqual({ code: 0, signal: null });
    expect(example.stdout()).toContain('bye');
    await gone;
    expect(tcpText).toContain('* the server is shutting down');
  });
});
