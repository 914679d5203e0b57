/**
 * Packets: 4-byte big-endian length + payload, over TCP (with a raw node:net peer as the
 * independent side) and the memory transport (random chunking).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Client, Connection, Engine, HookError, OverflowError, Server } from '../src/index.js';
import { DEFAULT_MAX_PACKET_SIZE, PacketClient, PacketConnection, framePacket } from '../src/packet.js';
import { memoryAddress, settle } from '../src/testing.js';
import { Peer, deferred, portOf, pseudoRandomBytes, sha256, testEngine } from './helpers.js';

const KiB = 1024;

const frame = (payload: Buffer | string): Buffer => {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length);
  return Buffer.concat([header, body]);
};

/** Echoes every packet back. */
class Echo extends PacketConnection {
  override onPacket(payload: Buffer): void {
    this.sendPacket(payload);
  }
}

/** Collects every packet. */
class Collector extends PacketClient {
  packets: Buffer[] = [];
  override onPacket(payload: Buffer): void {
    this.packets.push(Buffer.from(payload));
  }
}

async function until(predicate: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

async function echoServer(engine: Engine, ConnectionClass: typeof PacketConnection = Echo): Promise<number> {
  const server = new Server(ConnectionClass, { engine });
  await server.listen(['127.0.0.1', 0]);
  return portOf(server.localAddress);
}

describe('packets', () => {
  it('round-trips payloads of 0, 1, 64 KiB + 1 and maxPacketSize bytes, one by one and pipelined', async () => {
    const engine = testEngine();
    const port = await echoServer(engine);
    const client = new Collector({ engine });
    await client.connect(['127.0.0.1', port]);
    const payloads = [Buffer.alloc(0), Buffer.from('x'), pseudoRandomBytes(64 * KiB + 1, 2), pseudoRandomBytes(DEFAULT_MAX_PACKET_SIZE, 3)];
    for (const [i, p] of payloads.entries()) {
      client.sendPacket(p);
      await until(() => client.packets.length === i + 1, `packet ${i}`);
    }
    for (const p of payloads) client.sendPacket(p);
    await until(() => client.packets.length === 8, '8 packets');
    // Compared by hash: a deep equal over megabytes of Buffer is slow.
    expect(client.packets.map((p) => sha256(p))).toEqual([...payloads, ...payloads].map((p) => sha256(p)));
    // bufferSize grew only as far as the largest packet needed.
    expect(client.bufferSize).toBe(DEFAULT_MAX_PACKET_SIZE);
  });

  it('reads packets however the bytes are cut: byte by byte, and many packets in one write', async () => {
    const engine = testEngine();
    const got: string[] = [];
    class Keep extends PacketConnection {
      override onPacket(payload: Buffer) {
        got.push(payload.toString());
      }
    }
    const peer = new Peer(await echoServer(engine, Keep));
    await peer.connected();
    const wire = Buffer.concat(['one', '', 'three', ''].map(frame));
    for (const byte of wire) await peer.write(Buffer.from([byte]));
    await peer.write(Buffer.concat(['a', 'bb', '', 'ccc'].map(frame)));
    await until(() => got.length === 8, '8 packets');
    expect(got).toEqual(['one', '', 'three', '', 'a', 'bb', '', 'ccc']);
  });

  it('a zero-length packet is delivered, to onPacket and to the packet event', async () => {
    const engine = testEngine();
    const client = new Collector({ engine });
    const events: number[] = [];
    client.on('packet', (p) => events.push(p.length));
    await client.connect(['127.0.0.1', await echoServer(engine)]);
    client.sendPacket(Buffer.alloc(0));
    client.sendPacket('');
    client.sendPacket('z');
    await until(() => client.packets.length === 3, '3 packets');
    expect(client.packets.map((p) => p.length)).toEqual([0, 0, 1]);
    expect(events).toEqual([0, 0, 1]);
  });

  it('sendPacket writes header and payload in one write() (strings as UTF-8)', async () => {
    const engine = testEngine();
    const client = new Collector({ engine });
    await client.connect(['127.0.0.1', await echoServer(engine)]);
    const writes: Buffer[] = [];
    const write = client.write.bind(client);
    client.write = (data: string | Uint8Array) => {
      writes.push(Buffer.from(data));
      return write(data);
    };
    client.sendPacket('héllo');
    expect(writes).toEqual([frame('héllo')]);
    expect(client.bufferedBytes).toBe(4 + 6);
    await until(() => client.packets.length === 1, 'the echo');
    expect(client.bytesWritten).toBe(10);
  });

  it('sendPacket over maxPacketSize throws an OverflowError at the call and writes nothing', async () => {
    const engine = testEngine();
    const client = new Collector({ engine, maxPacketSize: 10 });
    await client.connect(['127.0.0.1', await echoServer(engine)]);
    const err = (() => {
      try {
        client.sendPacket(Buffer.alloc(11));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(OverflowError);
    expect(err).toMatchObject({ code: 'ERR_TREWS_OVERFLOW', limit: 10, size: 11, message: 'packet of 11 bytes exceeds maxPacketSize 10' });
    expect(() => client.sendPacket('ééééééé')).toThrow(/14 bytes/); // counted in bytes, not characters
    expect(client.bufferedBytes).toBe(0);
    client.sendPacket(Buffer.alloc(10)); // exactly at the limit
    await until(() => client.packets.length === 1, 'the echo');
    expect(client.bytesWritten).toBe(14);
  });

  it('a header over maxPacketSize: onOverflowError once, before the payload, then the channel closes', async () => {
    const engine = testEngine();
    const overflows: OverflowError[] = [];
    const closed = deferred();
    class Strict extends PacketConnection {
      override maxPacketSize = 100;
      override onOverflowError(err: OverflowError) {
        overflows.push(err);
        super.onOverflowError(err);
      }
      override onClose() {
        closed.resolve();
      }
    }
    const peer = new Peer(await echoServer(engine, Strict));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(101);
    await peer.write(header); // no payload at all
    await closed.promise;
    await peer.untilClosed();
    expect(overflows).toHaveLength(1);
    expect(overflows[0]).toMatchObject({ code: 'ERR_TREWS_OVERFLOW', limit: 100, size: 101 });
    expect(engine.lines.join('\n')).toContain('packet of 101 bytes exceeds maxPacketSize 100');
  });

  it('an onOverflowError that keeps the channel skips the oversized payload and reads on', async () => {
    const engine = testEngine();
    const got: number[] = [];
    class Lenient extends PacketConnection {
      override maxPacketSize = 100;
      override onConnect() {
        this.bufferSize = 64; // the skip goes in pieces of at most bufferSize bytes
      }
      override onOverflowError() {}
      override onPacket(payload: Buffer) {
        got.push(payload.length);
      }
    }
    const peer = new Peer(await echoServer(engine, Lenient));
    const wire = Buffer.concat([frame(Buffer.alloc(5)), frame(Buffer.alloc(1000)), frame(Buffer.alloc(0)), frame(Buffer.alloc(100))]);
    for (const [from, to] of [[0, 12], [12, 300], [300, 999], [999, wire.length]] as const) await peer.write(wire.subarray(from, to));
    await until(() => got.length === 3, '3 packets');
    expect(got).toEqual([5, 0, 100]);
  });

  it('a throwing onPacket goes to onError as a HookError (default: the channel closes)', async () => {
    const engine = testEngine();
    const errors: Error[] = [];
    const closed = deferred();
    class Fragile extends PacketConnection {
      override onPacket(payload: Buffer) {
        if (payload.toString() === 'boom') throw new Error('boom');
      }
      override onError(err: Error) {
        errors.push(err);
        super.onError(err);
      }
      override onClose() {
        closed.resolve();
      }
    }
    const peer = new Peer(await echoServer(engine, Fragile));
    await peer.write(Buffer.concat([frame('fine'), frame('boom'), frame('never')]));
    await closed.promise;
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(HookError);
    expect(errors[0]).toMatchObject({ hook: 'onPacket' });
  });

  it('maxPacketSize must fit the 4-byte header', () => {
    const engine = testEngine();
    expect(() => new PacketClient({ engine, maxPacketSize: 2 ** 32 })).toThrow(RangeError);
    expect(() => new PacketClient({ engine, maxPacketSize: -1 })).toThrow(/from 0 to 4294967295/);
    expect(new PacketClient({ engine, maxPacketSize: 2 ** 32 - 1 }).maxPacketSize).toBe(2 ** 32 - 1);
    expect(() => framePacket(null as unknown as string, 10)).toThrow(TypeError);
  });

  it('a reconnecting client starts its next connection at a header, even after a drop mid-packet', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const address = memoryAddress('reconnect');
    let accepted = 0;
    class Dropper extends Connection {
      override onConnect() {
        if (accepted++ > 0) {
          this.write(frame('after reconnect'));
          return;
        }
        this.write(Buffer.concat([frame('whole'), frame('cut short').subarray(0, 7)]));
        void this.close();
      }
    }
    await new Server(Dropper, { engine }).listen(address);
    const client = new Collector({ engine, reconnect: { initialDelay: 100, jitter: 0 } });
    const truncated: string[] = [];
    client.onReadError = (err) => truncated.push(err.code); // the cut packet: reported, then the reconnect
    void client.connect(address);
    await settle(engine, { maxTime: 1000 });
    expect(client.packets.map(String)).toEqual(['whole', 'after reconnect']);
    expect(truncated).toEqual(['ERR_TREWS_TRUNCATED']);
  });

  it('random packets cut at random places arrive whole and in order (memory transport)', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const address = memoryAddress('packets');
    const received: Buffer[] = [];
    class Keep extends PacketConnection {
      override onPacket(payload: Buffer) {
        received.push(Buffer.from(payload));
      }
    }
    await new Server(Keep, { engine }).listen(address);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
        async (payloads, cuts) => {
          received.length = 0;
          const raw = new Client({ engine });
          void raw.connect(address);
          const wire = Buffer.concat(payloads.map((p) => frame(Buffer.from(p))));
          for (let at = 0, i = 0; at < wire.length; i++) {
            const n = cuts[i % cuts.length]!;
            raw.write(wire.subarray(at, at + n));
            raw.flush(); // each piece its own chunk
            at += n;
          }
          await settle(engine);
          expect(received).toEqual(payloads.map((p) => Buffer.from(p)));
          await raw.close();
          await settle(engine);
        },
      ),
      { numRuns: 40 },
    );
  });
});
