/**
 * Typed packets: the registry, the handshake (server authoritative), refusals with a reason
 * on both sides, a close that tells the peer why, and the id space (control ids never collide
 * with application ids; the largest id fits the 2-byte header).
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
