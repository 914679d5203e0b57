/**
 * Server: a StreamServer whose connections are `Connection`s by default. Subclass it and set
 * `static ConnectionClass`, or pass your Connection subclass: `new Server(Chat)`.
 */
import { Connection } from './connection.js';
import { StreamServer, type StreamClass } from './stream-server.js';
import type { Stream } from './stream.js';

/**
 * A server: listens on one address (a TCP port, a Unix path, `'memory:name'`) and makes one
 * `Connection` of your class per peer. `connections` is the live set of open ones.
 *
 * @example
 * ```ts
 * class Echo extends Connection {
 *   override readDelimiter = '\n';
 *   override onRead(line: Buffer) {
 *     this.write(Buffer.concat([line, Buffer.from('\n')]));
 *   }
 * }
 * const server = new Server(Echo);
 * await server.listen(4000);
 * ```
 */
export class Server<C extends Stream = Connection> extends StreamServer<C> {
  static override ConnectionClass: StreamClass<Stream> = Connection;
}
