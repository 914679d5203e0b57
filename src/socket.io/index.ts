/**
 * trews/socket.io: a Socket.IO server in TornadIO2's model, for today's socket.io-client
 * (Engine.IO v4 + Socket.IO v5), over HTTP long-polling and WebSocket. Subclass
 * SocketConnection, override `onOpen`, `onEvent` (or declare `@event('name')` handlers),
 * `onClose`; serve it with SocketIOServer.
 *
 * @module trews/socket.io
 */
export { SocketConnection, ConnectRefusedError, event, type OpenInfo, type SocketConnectionClass, type EventHandler } from './connection.js';
export { SocketIOServer, type SocketIOServerOptions, type SocketIOServerEvents } from './server.js';
export { Namespace, Broadcast } from './namespace.js';
export type { CorsOptions } from './polling.js';
export type { CloseReason, TransportName } from './engine-session.js';
