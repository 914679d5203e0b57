/**
 * The seam between a server's broadcasts and a bus that carries them to other processes
 * (trews/redis's RedisBus). The core knows only this shape, never the bus: it keeps no
 * dependency but eventemitter3.
 */

/** One broadcast between processes: strings travel as text, Uint8Arrays as bytes. */
export type RelayParts = ReadonlyArray<string | Uint8Array>;

/** A server a bus can attach to: Server, WebSocketServer, SocketIOServer. */
export interface Relaying {
  /** @internal Set by a bus: given every broadcast made in this process, to publish. */
  _relay: ((parts: RelayParts) => void) | null;
  /** @internal A broadcast made by another process: deliver it to this process's connections only. */
  _relayed(parts: RelayParts): void;
}
