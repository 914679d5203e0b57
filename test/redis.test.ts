/**
 * trews/redis against a real redis-server: broadcasts of Server, WebSocketServer and Socket.IO
 * rooms reach the connections of another "process" (another bus with its own two Redis
 * connections and its own server), in order, with Buffers intact; a Redis outage leaves local
 * delivery working, and delivery across resumes once Redis is back.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Server, type Engine } from '../src/index.js';
import { RedisBus, type RedisBusOptions } from '../src/redis/index.js';
import { MAX_PARTS, record } from '../src/redis/wire.js';
import { WebSocketServer } from '../src/websocket/index.js';
import { SocketConnection, type SocketIOServer } from '../src/socket.io/index.js';
import { Peer, freePort, onCleanup, portOf, testEngine, waitFor } from './helpers.js';
import { NO_REDIS, RedisServer, hasRedisServer } from './redis-server.js';
import { client, connected, next, serve } from './socket.io/helpers.js';

if (!hasRedisServer) console.warn(NO_REDIS);

let redis: RedisServer;
beforeAll(async () => {
  if (hasRedisServer) redis = await RedisServer.start();
});
afterAll(() => redis?.stop());

/** A bus of its own (a process's), on a channel prefix unique to the test, closed after it. */
function bus(engine: Engine, channel: string, url = redis.url, options: Pick<RedisBusOptions, 'maxQueuedBytes' | 'maxPendingBytes'> = {}): RedisBus {
  const made = new RedisBus({ redis: url, channel, engine, ...options });
  onCleanup(() => made.close());
  return made;
}

/** Two "processes": each a bus and a TCP Server attached as 'lines', with one peer connected. */
async function twoServers(url = redis.url, options: Pick<RedisBusOptions, 'maxPendingBytes'> = {}) {
  const engine = testEngine();
  const channel = randomUUID();
  const sides = [];
  for (let i = 0; i < 2; i++) {
    const server = new Server({ engine });
    await server.listen(['127.0.0.1', 0]);
    const own = bus(engine, channel, url, options).attach(server, 'lines');
    await own.ready();
    const peer = new Peer(portOf(server.localAddress));
    await peer.connected();
    await waitForConnections(server, 1);
    sides.push({ server, bus: own, peer });
  }
  return { engine, a: sides[0]!, b: sides[1]! };
}

async function waitForConnections(server: { connections: ReadonlySet<unknown>; once(event: 'accept', fn: () => void): unknown }, n: number): Promise<void> {
  while (server.connections.size < n) await new Promise<void>((resolve) => server.once('accept', resolve));
}

describe.skipIf(!hasRedisServer)('RedisBus', () => {
  it('Server.broadcast reaches the connections of another process, once each, with bytes intact; except skips only local connections', async () => {
    const { a, b } = await twoServers();
    const second = new Peer(portOf(a.server.localAddress));
    await second.connected();
    await waitForConnections(a.server, 2);

    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    expect(a.server.broadcast(bytes)).toBe(2); // the count is of this process's connections
    await b.peer.untilBytes(256);
    expect(b.peer.received.equals(bytes)).toBe(true);
    await a.peer.untilBytes(256);
    await second.untilBytes(256);

    // `except` names a connection of this process: the other process delivers to all of its own.
    const [aFirst] = [...a.server.connections];
    a.server.broadcast('hello\n', aFirst);
    await b.peer.untilText('hello\n');
    await second.untilText('hello\n');
    b.server.broadcast('back\n');
    await second.untilText('back\n');
    await a.peer.untilText('back\n');
    await b.peer.untilText('back\n');
    expect(a.peer.received.subarray(256).toString()).toBe('back\n');
    // Nothing arrived twice (a bus skips its own messages coming back from Redis).
    expect(b.peer.received.subarray(256).toString()).toBe('hello\nback\n');
    expect(second.received.subarray(256).toString()).toBe('hello\nback\n');
    expect(a.bus.stats).toMatchObject({ published: 2, received: 1, dropped: 0 });
  });

  it("keeps one sender's order: 2000 broadcasts arrive in the order sent", async () => {
    const { a, b } = await twoServers();
    const lines = Array.from({ length: 2000 }, (_, i) => `line ${i}\n`);
    for (const line of lines) a.server.broadcast(line);
    const expected = lines.join('');
    await b.peer.untilBytes(Buffer.byteLength(expected));
    expect(b.peer.text).toBe(expected);
  });

  it('WebSocketServer.broadcast: text stays text and binary stays binary in another process', async () => {
    const engine = testEngine();
    const channel = randomUUID();
    const servers: WebSocketServer[] = [];
    const received: Array<{ data: string | Buffer; binary: boolean }> = [];
    let client: WebSocket | null = null;
    for (let i = 0; i < 2; i++) {
      const server = new WebSocketServer({ engine });
      await server.listen(['127.0.0.1', 0]);
      await bus(engine, channel).attach(server, 'web').ready();
      servers.push(server);
    }
    const [here, there] = servers as [WebSocketServer, WebSocketServer];
    client = new WebSocket(`ws://127.0.0.1:${portOf(there.localAddress)}/`);
    onCleanup(() => client?.terminate());
    const got = new Promise<void>((resolve) =>
      client!.on('message', (data: Buffer, binary: boolean) => {
        received.push({ data: binary ? data : data.toString(), binary });
        if (received.length === 2) resolve();
      }),
    );
    await new Promise((resolve) => client!.once('open', resolve));
    await waitForConnections(there, 1);
    expect(here.broadcast('text ✓')).toBe(0);
    here.broadcast(Buffer.from([0, 1, 2, 255]));
    await got;
    expect(received).toEqual([
      { data: 'text ✓', binary: false },
      { data: Buffer.from([0, 1, 2, 255]), binary: true },
    ]);
  });

  it('Socket.IO to(room).emit reaches room members in another process, binary attachments included; except(room) holds there too', async () => {
    const engine = testEngine();
    const channel = randomUUID();
    class Member extends SocketConnection {
      override onOpen(info: { auth: Record<string, unknown> }): void {
        for (const room of (info.auth.rooms as string[] | undefined) ?? []) this.join(room);
      }
    }
    const servers: Array<{ server: SocketIOServer; url: string }> = [];
    for (let i = 0; i < 2; i++) {
      const served = await serve(engine, Member);
      await bus(engine, channel).attach(served.server, 'io').ready();
      servers.push(served);
    }
    const [here, there] = servers as [(typeof servers)[0], (typeof servers)[0]];
    const join = async (url: string, rooms: string[], transports: Array<'polling' | 'websocket'> = ['websocket']) => {
      const socket = client(url, { transports, auth: { rooms } });
      await connected(socket);
      return socket;
    };
    const lobbyThere = await join(there.url, ['lobby'], ['polling']); // the transport is each process's business
    const mutedThere = await join(there.url, ['lobby', 'muted']);
    const elsewhere = await join(there.url, ['kitchen']);
    const lobbyHere = await join(here.url, ['lobby']);
    let strays = 0;
    elsewhere.on('news', () => strays++);
    mutedThere.on('news', () => strays++);

    const gotThere = next(lobbyThere, 'news');
    const gotHere = next(lobbyHere, 'news');
    expect(here.server.to('lobby').except('muted').emit('news', 'hi', Buffer.from([1, 2, 3]), { n: 1 })).toBe(1);
    const [text, bytes, object] = await gotThere;
    expect([text, Buffer.from(bytes as ArrayBuffer), object]).toEqual(['hi', Buffer.from([1, 2, 3]), { n: 1 }]);
    expect((await gotHere)[0]).toBe('hi');

    // A marker after it: had the muted or kitchen client been sent 'news', it would have come first.
    const marker = Promise.all([next(mutedThere, 'marker'), next(elsewhere, 'marker')]);
    here.server.broadcast('marker');
    await marker;
    expect(strays).toBe(0);
  });

  it('while Redis is down, local broadcasts still go out; once it is back, broadcasts reach the other process again', async () => {
    const outage = await RedisServer.start();
    onCleanup(() => outage.stop());
    const { engine, a, b } = await twoServers(outage.url);
    a.server.broadcast('before\n');
    await b.peer.untilText('before\n');

    const down = Promise.all([a.bus, b.bus].map((one) => new Promise((resolve) => one.once('down', () => resolve(undefined)))));
    await outage.stop();
    await down;
    expect(a.bus.connected).toBe(false);
    expect(a.server.broadcast('during\n')).toBe(1); // this process's own connection still gets it
    await a.peer.untilText('before\nduring\n');
    expect(a.bus.stats).toMatchObject({ queuedBytes: 0, dropped: 1 }); // by default not queued: see maxQueuedBytes
    expect(engine.lines.some((line) => /RedisBus.*lost Redis.*serving this process's connections/.test(line))).toBe(true);

    const up = Promise.all([a.bus, b.bus].map((one) => one.ready()));
    await outage.start();
    await up;
    // Both directions work again; what was broadcast during the outage stayed local.
    a.server.broadcast('after\n');
    await b.peer.untilText('after\n');
    expect(b.peer.text).toBe('before\nafter\n');
    b.server.broadcast('reply\n');
    await a.peer.untilText('reply\n');
    expect(a.peer.text).toBe('before\nduring\nafter\nreply\n');
    expect(a.bus.stats).toMatchObject({ published: 2, dropped: 1 });
  });

  it('with maxQueuedBytes, an outage queue holds that many bytes, drops the newest beyond and counts them', async () => {
    const outage = await RedisServer.start();
    onCleanup(() => outage.stop());
    const engine = testEngine();
    const server = new Server({ engine });
    await server.listen(['127.0.0.1', 0]);
    const own = bus(engine, randomUUID(), outage.url, { maxQueuedBytes: 100 }).attach(server, 'lines');
    await own.ready();
    const down = new Promise((resolve) => own.once('down', () => resolve(undefined)));
    await outage.stop();
    await down;
    const line = 'x'.repeat(30) + '\n'; // 31 bytes + 9 of framing: two fit in 100
    for (let i = 0; i < 5; i++) server.broadcast(line);
    expect(own.stats).toMatchObject({ queuedBytes: 80, dropped: 3 });
  });

  it('while Redis is connected but stalled, at most maxPendingBytes wait for it; later broadcasts stay local and are counted', async () => {
    const { a, b } = await twoServers(redis.url, { maxPendingBytes: 100 });
    const admin = new Redis(redis.url);
    onCleanup(() => admin.disconnect());
    await admin.call('CLIENT', 'PAUSE', '500', 'ALL'); // Redis answers no client for 500 ms
    const line = (i: number) => `${String(i).padStart(30, '.')}\n`; // 31 bytes + 9 of framing
    // Each in a turn of its own, so each is a PUBLISH of its own that Redis does not confirm.
    for (let i = 0; i < 5; i++) {
      a.server.broadcast(line(i));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(a.bus.stats).toMatchObject({ published: 2, dropped: 3 }); // 2 x 40 bytes fit in 100
    await a.peer.untilText(line(4)); // this process's own connection got every one
    expect(a.bus.stats.pendingBytes).toBe(80);
    // Once Redis answers again, the two arrive, their bytes are confirmed, and there is room.
    await b.peer.untilText(line(1));
    await waitFor(() => a.bus.stats.pendingBytes === 0, (wake) => setTimeout(wake, 10), 'Redis to confirm the two', 5000);
    a.server.broadcast('later\n');
    await b.peer.untilText('later\n');
    expect(b.peer.text).toBe(line(0) + line(1) + 'later\n');
    expect(a.bus.stats).toMatchObject({ published: 3, dropped: 3 });
  });

  it('with maxQueuedBytes, broadcasts made while this process has lost its connection are sent in order once it is back', async () => {
    const engine = testEngine();
    const channel = randomUUID();
    const sides = [];
    for (const name of ['a', 'b']) {
      const server = new Server({ engine });
      await server.listen(['127.0.0.1', 0]);
      // connectionName tells this bus's two connections apart in CLIENT LIST.
      const own = new RedisBus({ redis: { host: '127.0.0.1', port: redis.port, connectionName: `${channel}-${name}` }, channel, engine, maxQueuedBytes: 10_000 });
      onCleanup(() => own.close());
      await own.attach(server, 'lines').ready();
      const peer = new Peer(portOf(server.localAddress));
      await waitForConnections(server, 1);
      sides.push({ server, bus: own, peer });
    }
    const [a, b] = sides as [(typeof sides)[0], (typeof sides)[0]];
    a.server.broadcast('before\n');
    await b.peer.untilText('before\n');

    // Cut only a's publishing connection (not its subscriber, not b): Redis stays up.
    const admin = new Redis(redis.url);
    onCleanup(() => admin.disconnect());
    const clients = String(await admin.client('LIST')).split('\n');
    const publisher = clients.find((line) => line.includes(`name=${channel}-a `) && !/ flags=\w*P/.test(line));
    const down = new Promise((resolve) => a.bus.once('down', () => resolve(undefined)));
    await admin.client('KILL', 'ID', /id=(\d+)/.exec(publisher!)![1]!);
    await down;
    for (const line of ['one\n', 'two\n', 'three\n']) a.server.broadcast(line);
    expect(a.bus.stats.queuedBytes).toBeGreaterThan(0);
    await new Promise((resolve) => a.bus.once('up', () => resolve(undefined)));
    a.server.broadcast('after\n');
    await b.peer.untilText('after\n');
    expect(b.peer.text).toBe('before\none\ntwo\nthree\nafter\n');
    expect(a.bus.stats).toMatchObject({ published: 5, dropped: 0, queuedBytes: 0 });
  });

  it('ignores messages on its channels that are not bus messages, and survives a relayed broadcast it cannot read', async () => {
    const { engine, a, b } = await twoServers();
    const channel = `${a.bus.channel}:lines`;
    const raw = new Redis(redis.url);
    onCleanup(() => raw.disconnect());
    const id = Buffer.alloc(8, 7);
    await raw.publish(channel, Buffer.from('short'));
    await raw.publish(channel, Buffer.concat([id, Buffer.from([0, 0, 0, 9, 2, 0, 0, 0, 3, 1, 2, 3, 4])])); // tag 2
    await raw.publish(channel, Buffer.concat([id, Buffer.from([0, 0, 0, 99])])); // length past the end
    await raw.publish(channel, Buffer.concat([id, Buffer.from([0, 0, 0, 5, 0, 0, 0, 0, 0]), Buffer.from([0, 0, 0, 5, 0, 0, 0, 0, 0])])); // two empty text parts: not a Server broadcast
    // A broadcast of more than MAX_PARTS parts (each would cost far more than its 5 bytes once
    // decoded): the whole message is refused, the good broadcast before it included.
    await raw.publish(channel, Buffer.concat([id, record([Buffer.from('early\n')]), record(new Array<string>(MAX_PARTS + 1).fill(''))]));
    a.server.broadcast('fine\n');
    await b.peer.untilText('fine\n');
    expect(b.peer.text).toBe('fine\n');
    expect(engine.lines).toEqual([]);
  });

  it('ready() waiting for a Redis that never answers rejects once the bus is closed', async () => {
    const own = bus(testEngine(), randomUUID(), `redis://127.0.0.1:${await freePort()}`);
    const waiting = own.ready();
    await own.close();
    await expect(waiting).rejects.toThrow(/the bus was closed while ready\(\) waited for Redis/);
    await expect(own.ready()).rejects.toThrow(/the bus is closed/);
  }, 2000);

  it('publish/subscribe topics for your own relays; bad input gets a clear error', async () => {
    const engine = testEngine();
    const channel = randomUUID();
    const a = bus(engine, channel);
    const b = bus(engine, channel);
    const seen: Array<string | Buffer> = [];
    const got = new Promise<void>((resolve) =>
      b.subscribe('room', (data) => {
        seen.push(data);
        if (seen.length === 2) resolve();
      }),
    );
    a.subscribe('room', () => seen.push('echo!'));
    await Promise.all([a.ready(), b.ready()]);
    a.publish('room', 'one');
    a.publish('room', Buffer.from('two'));
    await got;
    expect(seen).toEqual(['one', Buffer.from('two')]);

    expect(() => b.subscribe('room', () => {})).toThrow(/'room' is already attached or subscribed/);
    expect(() => a.attach({} as never)).toThrow(/attach\(\) takes a Server, WebSocketServer or SocketIOServer/);
    const server = new Server({ engine });
    a.attach(server, 'x');
    expect(() => b.attach(server, 'y')).toThrow(/already attached to a bus/);
    a.detach(server);
    b.attach(server, 'y');
    expect(() => new RedisBus({ redis: 'localhost:6379' })).toThrow(/redis:\/\/ or rediss:\/\/ URL, ioredis options or an ioredis client/);
    expect(() => new RedisBus({ maxQueuedBytes: -1 })).toThrow(RangeError);
    expect(() => a.publish('room', 42 as never)).toThrow(/a string or a Uint8Array/);
  });
});
