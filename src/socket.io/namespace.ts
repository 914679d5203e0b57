/**
 * A namespace's open connections and rooms, and broadcasting to them: `to(room)`,
 * `except(room or connection)`, `emit(name, ...args)`. A broadcast encodes its packet once.
 */
import { PacketType } from 'socket.io-parser';
import { checkEventName, encode, type Encoded } from './packets.js';
import type { SocketConnection } from './connection.js';
import type { SocketIOServer } from './server.js';

export class Namespace {
  /** The open connections by socket id. */
  readonly connections = new Map<string, SocketConnection>();
  /** Room name to its members; an empty room is removed. */
  readonly rooms = new Map<string, Set<SocketConnection>>();

  /** `server`: whose bus (if one is attached) carries broadcasts to other processes. */
  constructor(
    readonly name: string,
    readonly server?: SocketIOServer,
  ) {}

  /** Send to the members of `room` (also a socket id). */
  to(room: string | readonly string[]): Broadcast {
    return new Broadcast(this).to(room);
  }

  /** Send to everyone but these rooms or connections. */
  except(skip: string | SocketConnection | ReadonlyArray<string | SocketConnection>): Broadcast {
    return new Broadcast(this).except(skip);
  }

  /** Send an event to every connection of the namespace. Returns how many. */
  emit(name: string, ...args: unknown[]): number {
    return new Broadcast(this).emit(name, ...args);
  }

  /** @internal */
  _join(connection: SocketConnection, room: string): void {
    let members = this.rooms.get(room);
    if (members === undefined) this.rooms.set(room, (members = new Set()));
    members.add(connection);
  }

  /** @internal */
  _leave(connection: SocketConnection, room: string): void {
    const members = this.rooms.get(room);
    if (members === undefined) return;
    members.delete(connection);
    if (members.size === 0) this.rooms.delete(room);
  }
}

/** A set of recipients being narrowed down; `emit` sends. Immutable: each call returns a new one. */
export class Broadcast {
  constructor(
    readonly namespace: Namespace,
    readonly rooms: ReadonlySet<string> = new Set(),
    readonly skipped: ReadonlySet<string | SocketConnection> = new Set(),
  ) {}

  to(room: string | readonly string[]): Broadcast {
    return new Broadcast(this.namespace, new Set([...this.rooms, ...(typeof room === 'string' ? [room] : room)]), this.skipped);
  }

  except(skip: string | SocketConnection | ReadonlyArray<string | SocketConnection>): Broadcast {
    const more = Array.isArray(skip) ? (skip as ReadonlyArray<string | SocketConnection>) : [skip as string | SocketConnection];
    return new Broadcast(this.namespace, this.rooms, new Set([...this.skipped, ...more]));
  }

  /** The connections this broadcast reaches. */
  targets(): Set<SocketConnection> {
    const { namespace, rooms, skipped } = this;
    const targets = new Set<SocketConnection>();
    if (rooms.size === 0) for (const connection of namespace.connections.values()) targets.add(connection);
    for (const room of rooms) {
      const members = namespace.rooms.get(room);
      if (members !== undefined) for (const connection of members) targets.add(connection);
      const one = namespace.connections.get(room);
      if (one !== undefined) targets.add(one);
    }
    for (const skip of skipped) {
      if (typeof skip !== 'string') targets.delete(skip);
      else for (const connection of namespace.rooms.get(skip) ?? []) targets.delete(connection);
    }
    return targets;
  }

  /** Send an event to the recipients. Returns how many. */
  emit(name: string, ...args: unknown[]): number {
    checkEventName(name);
    const parts = encode({ type: PacketType.EVENT, nsp: this.namespace.name, data: [name, ...args] });
    const relay = this.namespace.server?._relay;
    // Other processes know rooms by name; a skipped connection is one of this process.
    if (relay) relay([JSON.stringify([this.namespace.name, [...this.rooms], [...this.skipped].filter((skip) => typeof skip === 'string')]), ...parts]);
    return this._send(parts);
  }

  /** @internal Send an encoded packet to the recipients in this process. Returns how many. */
  _send(parts: Encoded): number {
    let count = 0;
    for (const connection of this.targets()) {
      if (connection._sendEncoded(parts)) count++;
    }
    return count;
  }
}
