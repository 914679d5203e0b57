/**
 * Typed packets: the registry (lookup and delete by name or id, handlers), the handshake
 * (strict, or adaptive on either side as packetmq's), refusals with a reason on both sides, a
 * close that tells the peer why, and the id space (control ids never collide with application
 * ids; the largest id fits the 2-byte header).
 */
import { describe, expect, it } from 'vitest';
import * as msgpack from '@msgpack/msgpack';
import { Client, Server, StateError, type Engine, type ReadError } from '../src/index.js';
import { CodecError, msgpackCodec } from '../src/codec.js';
import { HandshakeError, MAX_PACKET_ID, PacketRegistry, RegistryClient, RegistryConnection, type RegistryChannel } from '../src/registry.js';
import { memoryAddress, settle } from '../src/testing.js';
import { deferred, testEngine } from './helpers.js';

const chat = () => new PacketRegistry({ version: 2, packets: ['app:join', 'app:chat', 'app:leave'] });

interface Side {
  ready: number;
  received: Array<[string, unknown]>;
  handshakeErrors: HandshakeError[];
  closed: Array<string | undefined>;
}

function watch(channel: RegistryChannel): Side {
  const side: Side = { ready: 0, received: [], handshakeErrors: [], closed: [] };
  channel.on('ready', () => side.ready++);
  channel.on('receive', (name, data) => side.received.push([name, data]));
  channel.on('handshakeError', (err) => side.handshakeErrors.push(err));
  channel.on('close', (reason) => side.closed.push(reason));
  return side;
}

/** A server speaking `serverRegistry` and a client speaking `clientRegistry`, memory transport, virtual clock. */
async function connect(serverRegistry: PacketRegistry, clientRegistry: PacketRegistry, engine: Engine = testEngine({ clock: 'virtual' })) {
  const address = memoryAddress('registry');
  let conn: RegistryConnection | undefined;
  let serverSide: Side | undefined;
  class Conn extends RegistryConnection {
    override registry = serverRegistry;
    override onHandshakeError() {} // observed through the event; the channel closes anyway
    constructor() {
      super();
      conn = this;
      serverSide = watch(this);
    }
  }
  await new Server(Conn, { engine }).listen(address);
  const client = new RegistryClient({ engine, registry: clientRegistry });
  client.onHandshakeError = () => {};
  const clientSide = watch(client);
  void client.connect(address);
  await settle(engine);
  return { engine, client, clientSide, conn: conn!, serverSide: serverSide! };
}

describe('PacketRegistry', () => {
  it('registers names with given or lowest free ids', () => {
    const r = new PacketRegistry().register('a:x', 5).register('a:y').register('a:z');
    expect(r.table()).toEqual({ 'a:x': 5, 'a:y': 0, 'a:z': 1 });
    expect([r.idOf('a:x'), r.nameOf(1), r.idOf('nope'), r.version]).toEqual([5, 'a:z', undefined, 1]);
    expect(new PacketRegistry({ packets: { p: 3, q: 4 } }).names).toEqual(['p', 'q']);
  });

  it('looks packet types up, and deletes them, by name or by id', () => {
    const handler = () => {};
    const r = new PacketRegistry({ packets: ['a:x', 'a:y'] }).register('a:z', { id: 7, handler });
    expect(r.get('a:y')).toEqual({ name: 'a:y', id: 1, handler: undefined });
    expect(r.get(7)).toEqual({ name: 'a:z', id: 7, handler });
    expect(r.get('a:z')!.handler).toBe(handler);
    expect([r.get('nope'), r.get(3), r.get('7')]).toEqual([undefined, undefined, undefined]);
    expect(r.delete('a:x')).toBe(true);
    expect(r.delete(7)).toBe(true);
    expect([r.delete('a:x'), r.delete(7), r.delete(99)]).toEqual([false, false, false]);
    expect(r.table()).toEqual({ 'a:y': 1 });
    expect([r.idOf('a:x'), r.nameOf(7), r.get(0)]).toEqual([undefined, undefined, undefined]);
    // Both the name and the id are free again.
    expect(r.register('a:x', 7).register('a:w').table()).toEqual({ 'a:y': 1, 'a:x': 7, 'a:w': 0 });
    expect(() => r.delete({} as never)).toThrow('delete() takes a packet name or id, got object');
    expect(() => r.register('a:v', { handler: 'no' as never })).toThrow(/handler of packet 'a:v' must be a function/);
    expect(() => new PacketRegistry({ adaptive: 'yes' as never })).toThrow(TypeError);
  });

  it('a registry channel does not reconnect (a new connection needs a new handshake)', () => {
    expect(() => new RegistryClient({ engine: testEngine(), reconnect: true })).toThrow(/do not reconnect/);
  });

  it('refuses duplicate names and ids, and ids in the control range or beyond the header', () => {
    const r = new PacketRegistry().register('a', 1);
    expect(() => r.register('a')).toThrow(/registered already/);
    expect(() => r.register('b', 1)).toThrow(/taken by 'a'/);
    expect(() => r.register('c', MAX_PACKET_ID + 1)).toThrow(RangeError);
    expect(() => r.register('c', 0x10000)).toThrow(/0 to 65519/);
    expect(() => r.register('c', -1)).toThrow(RangeError);
    expect(() => r.register('')).toThrow(TypeError);
    expect(r.register('top', MAX_PACKET_ID).idOf('top')).toBe(0xffef);
  });
});

describe('handshake', () => {
  it('same protocol: both sides become ready, then typed packets flow both ways', async () => {
    const { engine, client, clientSide, conn, serverSide } = await connect(chat(), chat());
    expect([client.ready, conn.ready, clientSide.ready, serverSide.ready]).toEqual([true, true, 1, 1]);
    client.send('app:join', { nick: 'ann' });
    client.send('app:chat', 'hello');
    client.send('app:leave'); // no body: undefined
    conn.send('app:chat', { from: 'server', text: 'welcome' });
    await settle(engine);
    expect(serverSide.received).toEqual([
      ['app:join', { nick: 'ann' }],
      ['app:chat', 'hello'],
      ['app:leave', undefined],
    ]);
    expect(clientSide.received).toEqual([['app:chat', { from: 'server', text: 'welcome' }]]);
  });

  it('a version mismatch: the client refuses with the reason, both sides get it in onHandshakeError and close', async () => {
    const { clientSide, serverSide } = await connect(chat(), new PacketRegistry({ version: 1, packets: ['app:join', 'app:chat', 'app:leave'] }));
    const reason = 'protocol version differs: the server speaks 2, the client 1';
    expect(clientSide.handshakeErrors).toHaveLength(1);
    expect(clientSide.handshakeErrors[0]).toMatchObject({ code: 'ERR_TREWS_HANDSHAKE', reason, byPeer: false });
    expect(serverSide.handshakeErrors).toHaveLength(1);
    expect(serverSide.handshakeErrors[0]).toMatchObject({ reason, byPeer: true, message: `the peer refused the handshake: ${reason}` });
    expect(clientSide.closed).toEqual([reason]);
    expect(serverSide.closed).toEqual([reason]);
    expect(clientSide.ready + serverSide.ready).toBe(0);
  });

  it('different packet names: the reason lists what only each side has', async () => {
    const client = new PacketRegistry({ version: 2, packets: ['app:join', 'app:chat', 'app:whisper'] });
    const { serverSide } = await connect(chat(), client);
    expect(serverSide.handshakeErrors[0]!.reason).toBe("packet names differ: only the server has 'app:leave'; only the client has 'app:whisper'");
  });

  it('the same names with other ids: refused, naming the first id that differs', async () => {
    const client = new PacketRegistry({ version: 2, packets: ['app:chat', 'app:join', 'app:leave'] });
    const { serverSide, clientSide } = await connect(chat(), client);
    expect(serverSide.handshakeErrors[0]!.reason).toBe("packet ids differ: 'app:chat' is 1 on the server, 0 on the client");
    expect(clientSide.closed).toEqual([serverSide.handshakeErrors[0]!.reason]);
  });

  it('the default onHandshakeError goes to onError, which logs it', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const address = memoryAddress('registry-log');
    class Conn extends RegistryConnection {
      override registry = chat();
    }
    await new Server(Conn, { engine }).listen(address);
    const client = new RegistryClient({ engine, registry: new PacketRegistry({ version: 3 }) });
    void client.connect(address);
    await settle(engine);
    expect(client.closed).toBe(true);
    expect(engine.lines.some((l) => l.includes('ERR_TREWS_HANDSHAKE') && l.includes('the server speaks 2, the client 3'))).toBe(true);
    expect(engine.lines.some((l) => l.includes('the peer refused the handshake'))).toBe(true);
  });

  it('no HELLO within handshakeTimeout (a server that does not speak the protocol): HandshakeError, closed', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const address = memoryAddress('silent');
    await new Server({ engine }).listen(address); // a plain Stream server: says nothing
    const client = new RegistryClient({ engine, registry: chat(), handshakeTimeout: 5000 });
    const failed = deferred<[HandshakeError, number]>();
    client.onHandshakeError = (err) => failed.resolve([err, engine.now()]);
    void client.connect(address);
    await settle(engine);
    const [err, at] = await failed.promise;
    expect(err).toMatchObject({ reason: 'no handshake within 5000 ms', byPeer: false });
    expect(at).toBe(5000);
    expect(client.closed).toBe(true);
    expect(client.closeReason).toBe('no handshake within 5000 ms');
  });

  it('a packet before the handshake is refused; an unregistered id is a CodecError', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const address = memoryAddress('early');
    const errors: Array<HandshakeError | ReadError> = [];
    class Conn extends RegistryConnection {
      override registry = chat();
      override onHandshakeError(err: HandshakeError) {
        errors.push(err);
      }
      override onReadError(err: ReadError) {
        errors.push(err);
      }
    }
    await new Server(Conn, { engine }).listen(address);
    const packet = (id: number) => Buffer.from([0, 0, 0, 2, id >> 8, id & 0xff]);
    for (const id of [1, 999]) {
      const raw = new Client({ engine });
      void raw.connect(address);
      raw.write(packet(id));
      await settle(engine);
    }
    expect(errors[0]).toMatchObject({ reason: "packet 'app:chat' arrived before the handshake completed" });
    expect(errors[1]).toBeInstanceOf(CodecError);
    expect(errors[1]!.message).toBe('packet id 999 is not registered');
  });
});

describe('adaptive handshake (packetmq): one side adopts the other\'s ids when the names are the same set', () => {
  const ordered = (names: string[], adaptive = false) => new PacketRegistry({ version: 2, packets: names, adaptive });
  const SERVER_ORDER = ['app:join', 'app:chat', 'app:leave'];
  const CLIENT_ORDER = ['app:leave', 'app:join', 'app:chat'];

  /** Each side sends every packet type once; each must arrive under its own name. */
  async function exchange(engine: Engine, client: RegistryChannel, conn: RegistryChannel, clientSide: Side, serverSide: Side) {
    for (const name of CLIENT_ORDER) client.send(name, `from client: ${name}`);
    for (const name of SERVER_ORDER) conn.send(name, `from server: ${name}`);
    await settle(engine);
    expect(serverSide.received).toEqual(CLIENT_ORDER.map((name) => [name, `from client: ${name}`]));
    expect(clientSide.received).toEqual(SERVER_ORDER.map((name) => [name, `from server: ${name}`]));
  }

  it('an adaptive client takes the strict server\'s ids; the shared registry is left as it was', async () => {
    const clientRegistry = ordered(CLIENT_ORDER, true);
    const { engine, client, conn, clientSide, serverSide } = await connect(ordered(SERVER_ORDER), clientRegistry);
    expect([clientSide.ready, serverSide.ready]).toEqual([1, 1]);
    expect(client.activeRegistry.table()).toEqual({ 'app:leave': 2, 'app:join': 0, 'app:chat': 1 });
    expect(clientRegistry.table()).toEqual({ 'app:leave': 0, 'app:join': 1, 'app:chat': 2 });
    expect(conn.activeRegistry).toBe(conn.registry);
    await exchange(engine, client, conn, clientSide, serverSide);
  });

  it('an adaptive server takes each strict client\'s ids, per connection', async () => {
    const serverRegistry = ordered(SERVER_ORDER, true);
    const first = await connect(serverRegistry, ordered(CLIENT_ORDER));
    expect([first.clientSide.ready, first.serverSide.ready]).toEqual([1, 1]);
    expect(first.conn.activeRegistry.table()).toEqual({ 'app:join': 1, 'app:chat': 2, 'app:leave': 0 });
    expect(first.client.activeRegistry).toBe(first.client.registry);
    await exchange(first.engine, first.client, first.conn, first.clientSide, first.serverSide);
    // Another client, another order, on the same server registry: its own ids, the first's untouched.
    const second = await connect(serverRegistry, ordered(['app:chat', 'app:leave', 'app:join']), first.engine);
    expect(second.conn.activeRegistry.table()).toEqual({ 'app:join': 2, 'app:chat': 0, 'app:leave': 1 });
    expect(first.conn.activeRegistry.table()).toEqual({ 'app:join': 1, 'app:chat': 2, 'app:leave': 0 });
    expect(serverRegistry.table()).toEqual({ 'app:join': 0, 'app:chat': 1, 'app:leave': 2 });
  });

  it('both adaptive: the server\'s ids hold', async () => {
    const { engine, client, conn, clientSide, serverSide } = await connect(ordered(SERVER_ORDER, true), ordered(CLIENT_ORDER, true));
    expect(client.activeRegistry.table()).toEqual(conn.registry.table());
    expect(conn.activeRegistry).toBe(conn.registry);
    await exchange(engine, client, conn, clientSide, serverSide);
  });

  it('names that differ are still refused, with the reason, whichever side adapts', async () => {
    const reason = "packet names differ: only the server has 'app:leave'; only the client has 'app:whisper'";
    for (const [serverAdapts, clientAdapts] of [
      [false, true],
      [true, false],
      [true, true],
    ]) {
      const { clientSide, serverSide } = await connect(ordered(SERVER_ORDER, serverAdapts), ordered(['app:whisper', 'app:join', 'app:chat'], clientAdapts));
      expect(clientSide.handshakeErrors.map((e) => [e.reason, e.byPeer])).toEqual([[reason, false]]);
      expect(serverSide.handshakeErrors.map((e) => [e.reason, e.byPeer])).toEqual([[reason, true]]);
      expect(clientSide.ready + serverSide.ready).toBe(0);
    }
    // A version mismatch too.
    const { serverSide } = await connect(ordered(SERVER_ORDER, true), new PacketRegistry({ version: 3, packets: SERVER_ORDER, adaptive: true }));
    expect(serverSide.handshakeErrors[0]!.reason).toBe('protocol version differs: the server speaks 2, the client 3');
  });

  it('a READY carrying a table: refused by a strict server, checked by an adaptive one', async () => {
    const READY = 0xfffe;
    const controlPacket = (id: number, body: unknown) => {
      const json = Buffer.from(JSON.stringify(body));
      const head = Buffer.alloc(6);
      head.writeUInt32BE(2 + json.length, 0);
      head.writeUInt16BE(id, 4);
      return Buffer.concat([head, json]);
    };
    const cases: Array<[boolean, unknown, string]> = [
      [false, { 'app:join': 0, 'app:chat': 1, 'app:leave': 2 }, 'unexpected packet table in READY: this side does not adopt ids'],
      [true, { 'app:join': 0, 'app:chat': 1 }, "packet names differ: only the server has 'app:leave'; only the client has none"],
      [true, { 'app:join': 0, 'app:chat': 0, 'app:leave': 2 }, "packet id 0 is taken by 'app:join'; 'app:chat' needs another"],
      [true, { 'app:join': 0, 'app:chat': 0xfffc, 'app:leave': 2 }, "packet id for 'app:chat' must be an integer from 0 to 65519 (higher ids are trews' control packets), got 65532"],
      [true, ['app:join'], 'malformed handshake: no packet table'],
    ];
    for (const [adaptive, packets, reason] of cases) {
      const engine = testEngine({ clock: 'virtual' });
      const address = memoryAddress('ready-table');
      const errors: HandshakeError[] = [];
      class Conn extends RegistryConnection {
        override registry = ordered(SERVER_ORDER, adaptive);
        override onHandshakeError(err: HandshakeError) {
          errors.push(err);
        }
      }
      await new Server(Conn, { engine }).listen(address);
      const raw = new Client({ engine });
      void raw.connect(address);
      raw.write(controlPacket(READY, { packets }));
      await settle(engine);
      expect(errors.map((e) => e.reason)).toEqual([reason]);
    }
  });

  it('strict on both sides: the same ids registered in another order are fine; other ids are not', async () => {
    const { clientSide } = await connect(new PacketRegistry({ packets: { a: 0, b: 1 } }), new PacketRegistry({ packets: { b: 1, a: 0 } }));
    expect(clientSide.ready).toBe(1);
    const refused = await connect(ordered(SERVER_ORDER), ordered(CLIENT_ORDER));
    expect(refused.clientSide.handshakeErrors[0]!.reason).toBe("packet ids differ: 'app:leave' is 2 on the server, 0 on the client");
  });

  it('the default onReceive calls the handler registered for the type, found by the id on the wire', async () => {
    const got: Array<[string, unknown, boolean]> = [];
    const serverRegistry = new PacketRegistry({ packets: ['app:a', 'app:b'], adaptive: true });
    let conn: RegistryChannel | undefined;
    serverRegistry.delete('app:b');
    serverRegistry.register('app:b', { id: 9, handler: (data, channel) => got.push(['app:b', data, channel === conn]) });
    const clientRegistry = new PacketRegistry({ packets: ['app:b', 'app:a'] });
    const pairUp = await connect(serverRegistry, clientRegistry);
    conn = pairUp.conn;
    pairUp.client.send('app:b', 'hello');
    pairUp.client.send('app:a', 'no handler');
    await settle(pairUp.engine);
    expect(got).toEqual([['app:b', 'hello', true]]);
    expect(pairUp.serverSide.received.map(([name]) => name)).toEqual(['app:b', 'app:a']);
  });
});

describe('sending and closing', () => {
  it('send() before the handshake is a StateError; an unknown name a TypeError', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const client = new RegistryClient({ engine, registry: chat() });
    expect(() => client.send('app:chat', 'too early')).toThrow(StateError);
    const { client: ready } = await connect(chat(), chat(), engine);
    expect(() => ready.send('app:nope')).toThrow("unknown packet type 'app:nope'; registered: app:join, app:chat, app:leave");
    expect(() => ready.send('app:chat', 1n)).toThrow(CodecError);
  });

  it("close({ reason }) tells the peer: its onClose receives the reason (and so does this side's)", async () => {
    const { engine, client, clientSide, serverSide } = await connect(chat(), chat());
    client.send('app:chat', 'last words');
    const closed = client.close({ reason: 'going home' });
    await settle(engine);
    await closed;
    expect(serverSide.received).toEqual([['app:chat', 'last words']]);
    expect(serverSide.closed).toEqual(['going home']);
    expect(clientSide.closed).toEqual(['going home']);
    expect(client.closeReason).toBe('going home');
  });

  it('the server closing without a reason: onClose(undefined) on both sides', async () => {
    const { engine, conn, clientSide, serverSide } = await connect(chat(), chat());
    void conn.close();
    await settle(engine);
    expect([clientSide.closed, serverSide.closed]).toEqual([[undefined], [undefined]]);
  });

  it('the largest application id (0xFFEF) fits the header and round-trips; bodies may be MessagePack', async () => {
    const registry = () => new PacketRegistry({ packets: { 'app:top': MAX_PACKET_ID, 'app:zero': 0 } });
    const engine = testEngine({ clock: 'virtual' });
    const codec = msgpackCodec(msgpack);
    const address = memoryAddress('top');
    const got: Array<[string, unknown]> = [];
    class Conn extends RegistryConnection {
      override registry = registry();
      override codec = codec;
      override onReceive(name: string, data: unknown) {
        got.push([name, data]);
      }
    }
    await new Server(Conn, { engine }).listen(address);
    const client = new RegistryClient({ engine, registry: registry(), codec });
    client.on('ready', () => {
      client.send('app:top', { n: 1, bin: new Uint8Array([9, 8]) });
      client.send('app:zero', 'z');
    });
    void client.connect(address);
    await settle(engine);
    expect(got.map(([n, d]) => [n, JSON.stringify(d)])).toEqual([
      ['app:top', JSON.stringify({ n: 1, bin: Buffer.from([9, 8]) })],
      ['app:zero', '"z"'],
    ]);
  });
});
