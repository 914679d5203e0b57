/** trews/socket.io with the official socket.io-client, over each transport. */
import { describe, expect, it } from 'vitest';
import { SocketConnection } from '../../src/socket.io/index.js';
import { testEngine } from '../helpers.js';
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
