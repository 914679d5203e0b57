/**
 * trews/websocket: the channel model over WebSocket (RFC 6455, via `ws`'s frame codec).
 * Subclass WebSocketConnection (server side) or WebSocketClient, override the on* hooks as on
 * any Stream; serve them with WebSocketServer.
 *
 * @module trews/websocket
 */
export { WebSocketConnection, type WebSocketOptions, type WebSocketMessage } from './connection.js';
export { WebSocketClient, HandshakeRefusedError, type WebSocketConnectOptions } from './client.js';
export { WebSocketServer, type WebSocketServerOptions, type WebSocketServerEvents, type WebSocketConnectionClass, type OriginCheck } from './server.js';
export { CloseCode, type DeflateOptions } from './protocol.js';
