/** Socket.IO test helpers: a server on loopback and socket.io-client connections to it. */
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import type { Engine } from '../../src/engine.js';
import { SocketIOServer, type SocketConnectionClass, type SocketIOServerOptions } from '../../src/socket.io/index.js';
import { onCleanup, portOf } from '../helpers.js';

export const TRANSPORTS = {
  polling: ['polling'],
  websocket: ['websocket'],
  upgrade: ['polling', 'websocket'],
} as const;

export async function serve(engine: Engine, Class: SocketConnectionClass, options: SocketIOServerOptions = {}) {
  const server = new SocketIOServer(Class, { engine, ...options });
  await server.listen(['127.0.0.1', 0]);
  return { server, url: `http://127.0.0.1:${portOf(server.localAddress)}` };
}

/** A socket.io-client socket, closed after the test; no reconnection unless asked. */
export function client(url: string, options: Partial<ManagerOptions & SocketOptions> = {}): Socket {
  const socket = io(url, { forceNew: true, reconnection: false, ...options });
  onCleanup(() => socket.disconnect());
  return socket;
}

/** Resolves on the socket's 'connect'; rejects on 'connect_error'. */
export function connected(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
}

/** The next occurrence of an event on the client socket, with its arguments. */
export function next(socket: Socket, name: string): Promise<unknown[]> {
  return new Promise((resolve) => socket.once(name, (...args: unknown[]) => resolve(args)));
}
