/**
 * RedisBus: carries broadcasts between processes and hosts over Redis pub/sub, so that
 * `server.broadcast()`, `webSocketServer.broadcast()` and Socket.IO's `to(room).emit()` reach
 * the connections every process holds. Each broadcast is published once, on one publisher
 * connection (so one sender's messages arrive in the order sent); a second connection
 * subscribes and delivers other processes' messages to this process's connections only
 * (never publishing them again; its own come back and are skipped by the bus's id).
 */
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import { Redis, type RedisOptions } from 'ioredis';
import { Engine, debug } from '../engine.js';
import { StateError } from '../errors.js';
import type { RelayParts, Relaying } from '../relay.js';
import type { StreamServer } from '../stream-server.js';
import type { WebSocketServer } from '../websocket/server.js';
import type { SocketIOServer } from '../socket.io/server.js';
import { ID_BYTES, MAX_PARTS, broadcastsOf, isBusMessage, message, record, sentBy } from './wire.js';

export interface RedisBusOptions {
  /**
   * The Redis to use: a `redis://` or `rediss://` URL, ioredis options, or an ioredis client
   * (the bus makes its own two connections from it with `duplicate()` and leaves it open).
   * Default `redis://127.0.0.1:6379`.
   */
  redis?: string | RedisOptions | Redis;
  /** Prefix of the bus's Redis channels (default 'trews'): a server attached as `name` uses `<channel>:<name>`. */
  channel?: string;
  /**
   * The most bytes of broadcasts held while this process cannot reach Redis, published in
   * order once it can. Default 0: while Redis is unreachable, a broadcast reaches only this
   * process's connections (counted in `stats.dropped`). Redis pub/sub keeps nothing for a
   * subscriber that is not connected, so after Redis itself restarts a queue would reach only
   * the processes that happened to resubscribe first; a queue helps with short losses of this
   * process's own connection. Beyond the bound, the newest broadcasts are dropped.
   */
  maxQueuedBytes?: number;
  /**
   * The most bytes of broadcasts handed to Redis and not yet confirmed, plus those waiting for
   * the end of this turn (default 16 MiB): a Redis that is connected but slower than this
   * process's broadcasts would otherwise let ioredis's command queue grow without bound.
   * Beyond it, new broadcasts reach only this process's connections (`stats.dropped`).
   */
  maxPendingBytes?: number;
  /** Where the bus logs losing and regaining Redis (default `Engine.instance()`). */
  engine?: Engine;
}

export interface RedisBusEvents {
  /** Redis is unreachable: this process's connections are still served; the bus reconnects. */
  down: [];
  /** Connected again; the broadcasts queued meanwhile are being published. */
  up: [];
  /** An error from either Redis connection (with no listener it goes to `NODE_DEBUG=trews`). */
  error: [err: Error];
}

/** What `attach()` takes. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Attachable = StreamServer<any> | WebSocketServer<any> | SocketIOServer;

export class RedisBus extends EventEmitter<RedisBusEvents> {
  readonly channel: string;
  readonly maxQueuedBytes: number;
  readonly maxPendingBytes: number;
  readonly engine: Engine;
  /** This bus's id in every message it sends: its own come back from Redis, and are skipped. */
  readonly #id = randomBytes(ID_BYTES);
  readonly #publisher: Redis;
  readonly #subscriber: Redis;
  /** Redis channel to what delivers its messages here. */
  readonly #topics = new Map<string, (parts: RelayParts) => void>();
  /** Attached servers and their Redis channels. */
  readonly #attached = new Map<Relaying, string>();
  readonly #subscribing: Array<Promise<unknown>> = [];
  /**
   * Broadcasts not yet published, oldest first, in runs of one channel: those of one turn (one
   * PUBLISH per run), and while Redis is unreachable those queued up to maxQueuedBytes.
   */
  #outbox: Run[] = [];
  #outboxBytes = 0;
  /** Bytes of PUBLISHes Redis has not confirmed yet. */
  #unconfirmedBytes = 0;
  #flushing: NodeJS.Immediate | null = null;
  #down = false;
  /** The subscriber is connected and its subscriptions (as of its connect) are in place. */
  #subscribed = false;
  #closed = false;
  /** ready() calls waiting for 'up': woken by it, or failed by close(). */
  #waiting: Array<(err?: Error) => void> = [];
  #lastError: Error | null = null;
  #published = 0;
  #received = 0;
  #dropped = 0;

  constructor(options: RedisBusOptions = {}) {
    super();
    const { redis = 'redis://127.0.0.1:6379', channel = 'trews', maxQueuedBytes = 0, maxPendingBytes = 16 * 1024 * 1024 } = options;
    if (typeof channel !== 'string' || channel === '') throw new TypeError(`channel must be a non-empty string, got ${String(channel)}`);
    if (!(Number.isInteger(maxQueuedBytes) && maxQueuedBytes >= 0)) throw new RangeError(`maxQueuedBytes must be an integer >= 0, got ${String(maxQueuedBytes)}`);
    this.channel = channel;
    if (!(Number.isInteger(maxPendingBytes) && maxPendingBytes > 0)) throw new RangeError(`maxPendingBytes must be an integer > 0, got ${String(maxPendingBytes)}`);
    this.maxQueuedBytes = maxQueuedBytes;
    this.maxPendingBytes = maxPendingBytes;
    this.engine = options.engine ?? Engine.instance();
    // Publish only when connected (the bus queues, bounded, itself); a publish in flight when
    // the connection drops fails and is counted as dropped rather than sent twice.
    this.#publisher = connect(redis, { lazyConnect: false, enableOfflineQueue: false, autoResendUnfulfilledCommands: false });
    // Subscriptions wait for Redis however long it takes; the bus renews them on every
    // reconnect itself, so that it knows when they are in place again ('up', ready()).
    this.#subscriber = connect(redis, { lazyConnect: false, maxRetriesPerRequest: null, autoResubscribe: false });
    for (const client of [this.#publisher, this.#subscriber]) {
      client.on('error', this.#onRedisError);
      client.on('close', this.#onClose);
    }
    this.#publisher.on('ready', this.#onPublisherReady);
    this.#subscriber.on('ready', this.#onSubscriberReady);
    this.#subscriber.on('messageBuffer', this.#onMessage);
  }

  /** True while both connections are connected to Redis and subscribed: from `'up'` until `'down'`. */
  get connected(): boolean {
    return this.#up();
  }

  /**
   * Broadcasts published, received from other processes, and dropped (Redis unreachable or
   * too slow, or lost in flight); bytes waiting to be published now (`queuedBytes`) and
   * published but not yet confirmed by Redis (`pendingBytes`).
   */
  get stats(): { published: number; received: number; dropped: number; queuedBytes: number; pendingBytes: number } {
    return { published: this.#published, received: this.#received, dropped: this.#dropped, queuedBytes: this.#outboxBytes, pendingBytes: this.#unconfirmedBytes };
  }

  /**
   * Share `server`'s broadcasts with the servers attached as `name` in every other process:
   * its `broadcast()` (or Socket.IO `to(room).emit()`) also reaches their connections, and
   * theirs reach its. `except` names connections of the broadcasting process only.
   */
  attach(server: Attachable, name = 'default'): this {
    const target = server as unknown as Relaying;
    if (typeof target?._relayed !== 'function' || !('_relay' in target)) throw new TypeError('attach() takes a Server, WebSocketServer or SocketIOServer');
    if (target._relay !== null) throw new StateError(`${String(server)} is already attached to a bus`);
    const channel = this.#claim(name);
    this.#subscribe(channel, (parts) => target._relayed(parts));
    target._relay = (parts) => this.#send(channel, parts);
    this.#attached.set(target, channel);
    return this;
  }

  /** Stop sharing `server`'s broadcasts (it keeps serving its own connections). */
  detach(server: Attachable): void {
    const target = server as unknown as Relaying;
    const channel = this.#attached.get(target);
    if (channel === undefined) return;
    this.#attached.delete(target);
    target._relay = null;
    this.#unsubscribe(channel);
  }

  /** Publish `data` on `topic`: every other process's `subscribe(topic)` handler gets it, strings as strings and bytes as a Buffer. */
  publish(topic: string, data: string | Uint8Array): void {
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) throw new TypeError(`publish() sends a string or a Uint8Array, got ${typeof data}`);
    this.#send(this.#channelOf(topic), [data]);
  }

  /** Receive what other processes `publish(topic, data)`, in the order each one sent it. One handler per topic. */
  subscribe(topic: string, handler: (data: string | Buffer) => void): this {
    if (typeof handler !== 'function') throw new TypeError('subscribe() needs a handler function');
    this.#subscribe(this.#claim(topic), (parts) => {
      if (parts.length === 1) handler(parts[0] as string | Buffer);
    });
    return this;
  }

  /**
   * Resolves once both connections are up and subscribed to every topic and server so far:
   * from then on, other processes' broadcasts arrive here. Rejects (StateError) if the bus is
   * closed first.
   */
  async ready(): Promise<void> {
    if (this.#closed) throw new StateError('the bus is closed');
    if (!this.#up()) await new Promise<void>((resolve, reject) => this.#waiting.push((err) => (err === undefined ? resolve() : reject(err))));
    await Promise.all(this.#subscribing);
  }

  /** Detach every server and close both Redis connections, once what was broadcast has gone out. Until then they keep the process running. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#flushing !== null) clearImmediate(this.#flushing);
    this.#flush();
    this.#closed = true;
    for (const wake of this.#waiting.splice(0)) wake(new StateError('the bus was closed while ready() waited for Redis'));
    for (const target of this.#attached.keys()) target._relay = null;
    this.#attached.clear();
    this.#topics.clear();
    for (const run of this.#outbox) this.#dropped += run.records.length;
    this.#outbox = [];
    this.#outboxBytes = 0;
    await Promise.all([this.#publisher, this.#subscriber].map((client) => (client.status === 'ready' ? client.quit().catch(() => client.disconnect()) : client.disconnect())));
  }

  override toString(): string {
    return `RedisBus(${this.channel})`;
  }

  // ---- plumbing ----------------------------------------------------------------------------

  #channelOf(name: string): string {
    if (typeof name !== 'string' || name === '') throw new TypeError(`a topic or server name is a non-empty string, got ${String(name)}`);
    return `${this.channel}:${name}`;
  }

  /** The Redis channel for `name`, refusing a second user of it. */
  #claim(name: string): string {
    if (this.#closed) throw new StateError('the bus is closed');
    const channel = this.#channelOf(name);
    if (this.#topics.has(channel)) throw new StateError(`'${name}' is already attached or subscribed on ${String(this)}: give each server or topic its own name`);
    return channel;
  }

  #subscribe(channel: string, deliver: (parts: RelayParts) => void): void {
    this.#topics.set(channel, deliver);
    // Before the first connect, #onSubscriberReady subscribes to it.
    if (this.#subscriber.status === 'ready') this.#subscribing.push(this.#subscriber.subscribe(channel).catch(this.#onRedisError));
  }

  #unsubscribe(channel: string): void {
    this.#topics.delete(channel);
    this.#subscriber.unsubscribe(channel).catch(() => {});
  }

  /**
   * Queue a broadcast for the end of this turn: the broadcasts of one turn on one channel go
   * in one PUBLISH (far fewer commands under load), in the order they were made.
   */
  #send(channel: string, parts: RelayParts): void {
    if (this.#closed) return;
    if (parts.length > MAX_PARTS) {
      // Other processes would refuse it (see MAX_PARTS): it stays local.
      this.#dropped++;
      debug('%s: a broadcast of %d parts (more than %d) was not published', String(this), parts.length, MAX_PARTS);
      return;
    }
    const one = record(parts);
    // Down (either connection lost: Redis is likely gone): at most maxQueuedBytes wait for it.
    const waiting = this.#outboxBytes + one.length;
    if (this.#up() ? this.#unconfirmedBytes + waiting > this.maxPendingBytes : waiting > this.maxQueuedBytes) {
      this.#dropped++;
      return;
    }
    const last = this.#outbox.at(-1);
    if (last !== undefined && last.channel === channel && last.bytes < MAX_RUN_BYTES) {
      last.records.push(one);
      last.bytes += one.length;
    } else {
      this.#outbox.push({ channel, records: [one], bytes: one.length });
    }
    this.#outboxBytes += one.length;
    this.#flushing ??= setImmediate(this.#flush);
  }

  /** Publish what is in the outbox, in order; while Redis is unreachable, keep it (within maxQueuedBytes). */
  #flush = (): void => {
    this.#flushing = null;
    if (this.#publisher.status !== 'ready') {
      this.#trimOutbox();
      return;
    }
    const runs = this.#outbox;
    this.#outbox = [];
    this.#outboxBytes = 0;
    for (const run of runs) {
      const count = run.records.length;
      this.#published += count;
      this.#unconfirmedBytes += run.bytes;
      this.#publisher.publish(run.channel, message(this.#id, run.records, run.bytes)).then(
        () => (this.#unconfirmedBytes -= run.bytes),
        (err: Error) => {
          this.#unconfirmedBytes -= run.bytes;
          this.#dropped += count;
          debug('%s: a publish failed: %s', String(this), err.message);
        },
      );
    }
  };

  /** Drop the newest broadcasts beyond maxQueuedBytes (made while connected, then the connection went). */
  #trimOutbox(): void {
    while (this.#outboxBytes > this.maxQueuedBytes) {
      const run = this.#outbox.at(-1)!;
      const dropped = run.records.pop()!;
      run.bytes -= dropped.length;
      this.#outboxBytes -= dropped.length;
      this.#dropped++;
      if (run.records.length === 0) this.#outbox.pop();
    }
  }

  /** Both connections are connected, and the subscriptions made by the subscriber's last connect are in place. */
  #up(): boolean {
    return this.#publisher.status === 'ready' && this.#subscribed;
  }

  #onPublisherReady = (): void => {
    this.#flush();
    this.#maybeUp();
  };

  #onSubscriberReady = (): void => {
    const channels = [...this.#topics.keys()];
    const done = channels.length === 0 ? Promise.resolve() : this.#subscriber.subscribe(...channels).catch(this.#onRedisError);
    this.#subscribing.length = 0;
    this.#subscribing.push(done);
    void done.then(() => {
      if (this.#subscriber.status !== 'ready') return;
      this.#subscribed = true;
      this.#maybeUp();
    });
  };

  #maybeUp(): void {
    if (this.#closed || !this.#up()) return;
    if (this.#down) {
      this.#down = false;
      this.engine.log(`${String(this)}: connected to Redis again`);
    }
    this.emit('up');
    for (const wake of this.#waiting.splice(0)) wake();
  }

  #onClose = (): void => {
    this.#subscribed &&= this.#subscriber.status === 'ready';
    if (this.#closed || this.#down) return;
    this.#down = true;
    const why = (this.#lastError as { code?: string } | null)?.code ?? this.#lastError?.message ?? 'connection closed';
    this.engine.log(`${String(this)}: lost Redis (${why}); serving this process's connections and reconnecting`);
    this.emit('down');
  };

  #onRedisError = (err: Error): void => {
    this.#lastError = err;
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else debug('%s: %s', String(this), err.message);
  };

  #onMessage = (channel: Buffer, message: Buffer): void => {
    if (sentBy(message, this.#id)) return;
    const deliver = this.#topics.get(channel.toString());
    if (deliver === undefined || !isBusMessage(message)) {
      debug('%s: ignoring a message on %s that is not a bus message', String(this), channel.toString());
      return;
    }
    for (const parts of broadcastsOf(message)) {
      this.#received++;
      try {
        deliver(parts);
      } catch (err) {
        this.engine.reportError(err);
      }
    }
  };
}

/** Broadcasts in a row on one channel, to publish as one message. */
interface Run {
  channel: string;
  records: Buffer[];
  bytes: number;
}

/** A run grows to about this many bytes before the next broadcast starts another message. */
const MAX_RUN_BYTES = 64 * 1024;

/** One connection of the bus's own, with `overrides`, from what the user gave. */
function connect(redis: RedisBusOptions['redis'], overrides: RedisOptions): Redis {
  if (typeof redis === 'string') {
    if (!/^rediss?:\/\//.test(redis)) throw new TypeError(`redis must be a redis:// or rediss:// URL, ioredis options or an ioredis client, got ${JSON.stringify(redis)}`);
    return new Redis(redis, overrides);
  }
  if (typeof (redis as Redis | undefined)?.duplicate === 'function') return (redis as Redis).duplicate(overrides);
  if (redis !== null && typeof redis === 'object') return new Redis({ ...(redis as RedisOptions), ...overrides });
  throw new TypeError(`redis must be a redis:// or rediss:// URL, ioredis options or an ioredis client, got ${String(redis)}`);
}
