/**
 * Server: a StreamServer whose connections are `Connection`s by default. Subclass it and set
 * `static ConnectionClass`, or pass your Connection subclass: `new Server(Chat)`.
 */
import { Connection } from './connection.js';
import { StreamServer, type StreamClass } from './stream-server.js';
import type { Stream } from './stream.js';

export class Server<C extends Stream = Connection> extends StreamServer<C> {
  static override ConnectionClass: StreamClass<Stream> = Connection;
}
