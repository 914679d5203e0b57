/** Connection: a stream a server accepted. `server` is set before `onConnect` runs. */
import { Stream } from './stream.js';
import type { StreamServer } from './stream-server.js';

/**
 * One connection a `Server` accepted: subclass it and pass the class to `new Server(MyConnection)`.
 * `server` is set before `onConnect` runs.
 */
export class Connection extends Stream {
  /**
   * The server that accepted this connection. Narrow it in a subclass with
   * `declare server: MyServer` to reach your server's own members.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  declare server: StreamServer<any>;

  static {
    // The server is the stream's owner: read through an accessor rather than kept in a field
    // of its own, which would cost every idle connection memory.
    Object.defineProperty(Connection.prototype, 'server', {
      configurable: true,
      get(this: Connection) {
        return this._owner ?? undefined;
      },
    });
  }
}
