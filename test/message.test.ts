/**
 * Messages: request/reply, notifications, timeouts and aborts on the virtual clock, limits,
 * codecs, close modes that account for every message, and a Python peer speaking the
 * length-prefixed JSON `[type, id, content]` format as client and as server.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import * as msgpack from '@msgpack/msgpack';
import { ClosedError, ConnectError, Server, TimeoutError, type Engine, type LinkOptions, type ReadError } from '../src/index.js';
import { CodecError, createJsonCodec, jsonCodec, msgpackCodec, type Codec } from '../src/codec.js';
import {
  LimitError,
  MAX_REQUEST_ID,
  MessageClient,
  MessageConnection,
  RemoteError,
  nextRequestId,
  type CloseReport,
  type MessageOptions,
} from '../src/message.js';
import { Outbox, type OutboxItem } from '../src/outbox.js';
import { memoryAddress, runFor, settle } from '../src/testing.js';
import { deferred, freePort, onCleanup, Peer, portOf, python, testEngine } from './helpers.js';

const frame = (value: unknown): Buffer => {
  const body = Buffer.from(JSON.stringify(value));
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length);
  return Buffer.concat([header, body]);
};

/** A service: echo, add, a delayed answer on the Engine clock, a never-answered request, failures. */
class Service extends MessageConnection {
  static last: Service | null = null;
  notes: unknown[] = [];
  requests: unknown[] = [];

  override onConnect() {
    Service.last = this;
  }

  override onRequest(content: unknown): unknown {
    this.requests.push(content);
    const { op, value, ms } = content as { op: string; value?: unknown; ms?: number };
    switch (op) {
      case 'echo':
        return value;
      case 'add':
        return (value as number[]).reduce((a, b) => a + b, 0);
      case 'later':
        return new Promise((resolve) => this.engine.defer(ms!, () => resolve(value)));
      case 'never':
        return new Promise(() => {});
      case 'throw':
        throw Object.assign(new Error('no such thing'), { code: 'E_NOTHING' });
      case 'reject':
        return Promise.reject(new Error('rejected later'));
      case 'throw-string':
        // eslint-disable-next-line @typescript-eslint/only-throw-error
        throw 'a plain string';
      case 'bigint':
        return 10n;
      case 'repeat':
        return 'z'.repeat(value as number);
      default:
        throw new Error(`unknown op ${op}`);
    }
  }

  override onNotify(content: unknown): void {
    this.notes.push(content);
  }
}

interface Pair<C extends MessageConnection = Service> {
  engine: Engine & { lines: string[] };
  client: MessageClient;
  server: Server<C>;
  conn: () => C;
  address: string;
}

/** A server and a connected client on the memory transport, virtual clock. */
async function pair<C extends MessageConnection = Service>(
  options: { Conn?: new () => C; client?: MessageOptions; link?: LinkOptions } = {},
): Promise<Pair<C>> {
  const engine = testEngine({ clock: 'virtual' });
  const address = memoryAddress('msg');
  const accepted: C[] = [];
  const server = new Server<C>((options.Conn ?? Service) as unknown as new () => C, { engine });
  server.on('accept', (c) => accepted.push(c));
  // Requests left unanswered ('never') would make engine.stop() wait for them on a clock nobody advances.
  onCleanup(() => accepted.forEach((c) => void c.close(false)));
  await server.listen(address);
  const client = new MessageClient({ engine, ...options.client });
  const connected = client.connect({ memory: address.slice('memory:'.length), ...options.link });
  await settle(engine);
  await connected;
  return { engine, client, server, conn: () => accepted[0]!, address };
}

/** Run the simulation until `promise` settles; resolves with its outcome. */
async function outcome<T>(engine: Engine, promise: Promise<T>): Promise<{ value?: T; error?: unknown; at: number }> {
  let result: { value?: T; error?: unknown; at: number } | undefined;
  promise.then(
    (value) => (result = { value, at: engine.now() }),
    (error: unknown) => (result = { error, at: engine.now() }),
  );
  for (let i = 0; i < 100 && result === undefined; i++) await runFor(engine, 1000);
  if (result === undefined) throw new Error('the promise did not settle');
  return result;
}

describe('request/reply', () => {
  it('round-trips JSON values, many requests at once, and notifications both ways', async () => {
    const { engine, client, conn } = await pair();
    const values = [null, 0, -1.5, 'text', 'ünïcödé', [], [1, [2, [3]]], { a: { b: null } }, true];
    const replies = Promise.all(values.map((value) => client.request({ op: 'echo', value })));
    const sum = client.request({ op: 'add', value: [1, 2, 3, 4] });
    expect(client.notify({ hello: 'server' })).toBe(true);
    const heard: unknown[] = [];
    client.on('notify', (content) => heard.push(content));
    conn().notify('hello client');
    await settle(engine);
    expect(await replies).toEqual(values);
    expect(await sum).toBe(10);
    expect(conn().notes).toEqual([{ hello: 'server' }]);
    expect(heard).toEqual(['hello client']);
    expect(client.pendingRequests).toBe(0);
  });

  it('replies come in any order: the server answers after delays on the Engine clock', async () => {
    const { engine, client } = await pair();
    const done: Array<[unknown, number]> = [];
    const all = [30, 10, 20, 0].map((ms) =>
      client.request(ms === 0 ? { op: 'echo', value: ms } : { op: 'later', value: ms, ms }).then((v) => done.push([v, engine.now()])),
    );
    await settle(engine);
    await Promise.all(all);
    expect(done).toEqual([
      [0, 0],
      [10, 10],
      [20, 20],
      [30, 30],
    ]);
  });

  it('request ids count from 1 on the wire; a raw peer sees [0, id, content]', async () => {
    const engine = testEngine();
    const seen: Buffer[] = [];
    const server = net.createServer((socket) => socket.on('data', (d) => seen.push(d)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onCleanup(() => new Promise((r) => server.close(r)));
    const client = new MessageClient({ engine });
    await client.connect(['127.0.0.1', portOf(server.address())]);
    void client.request('a');
    void client.request({ b: 2 });
    client.notify([3]);
    while (Buffer.concat(seen).length < 3 * 4) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    expect(Buffer.concat(seen)).toEqual(Buffer.concat([frame([0, 1, 'a']), frame([0, 2, { b: 2 }]), frame([3, null, [3]])]));
    server.close();
    await client.close(false);
  });

  it('ids wrap at 2^31 - 1 and skip ids still pending', () => {
    expect(nextRequestId(0, new Set())).toBe(1);
    expect(nextRequestId(41, new Set())).toBe(42);
    expect(nextRequestId(MAX_REQUEST_ID - 1, new Set())).toBe(MAX_REQUEST_ID);
    expect(nextRequestId(MAX_REQUEST_ID, new Set())).toBe(1);
    expect(nextRequestId(MAX_REQUEST_ID, new Set([1, 2, 4]))).toBe(3);
    expect(nextRequestId(MAX_REQUEST_ID - 1, new Set([MAX_REQUEST_ID, 1]))).toBe(2);
  });

  it('a failure arrives as a RemoteError with the remote message and code, never the remote stack', async () => {
    const { engine, client } = await pair();
    const thrown = client.request({ op: 'throw' });
    const rejected = client.request({ op: 'reject' });
    const plain = client.request({ op: 'throw-string' });
    await settle(engine);
    const err = await thrown.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ code: 'ERR_TREWS_REMOTE', remoteCode: 'E_NOTHING', message: 'no such thing' });
    expect((err as Error).stack).not.toContain('onRequest');
    await expect(rejected).rejects.toMatchObject({ message: 'rejected later', remoteCode: undefined });
    await expect(plain).rejects.toMatchObject({ message: 'a plain string' });
  });

  it('a connection without onRequest answers every request with a failure', async () => {
    const { engine, client } = await pair({ Conn: MessageConnection });
    const answer = client.request('anyone?');
    await settle(engine);
    await expect(answer).rejects.toMatchObject({ remoteCode: 'ERR_TREWS_NO_HANDLER', message: expect.stringContaining('override onRequest') as string });
  });

  it("failures: 'simpy' and 'mosaik' word a failure as simpy.io and mosaik-api-v3 send one (never a stack)", async () => {
    const engine = testEngine();
    const forms = [
      ['trews', { message: 'no such thing', code: 'E_NOTHING' }, { message: 'rejected later' }],
      ['simpy', 'E_NOTHING: no such thing', 'Error: rejected later'],
      ['mosaik', ['E_NOTHING', 'no such thing'], ['Error', 'rejected later']],
    ] as const;
    for (const [failures, thrown, rejected] of forms) {
      class Worded extends Service {
        override failures = failures;
      }
      const server = new Server(Worded, { engine });
      await server.listen(['127.0.0.1', 0]);
      const peer = new Peer(portOf(server.localAddress));
      await peer.write(Buffer.concat([frame([0, 0, { op: 'throw' }]), frame([0, 5, { op: 'reject' }])]));
      const want = Buffer.concat([frame([2, 0, thrown]), frame([2, 5, rejected])]);
      await peer.until(() => peer.received.length >= want.length, `the ${failures} failures`);
      expect(peer.received.toString()).toBe(want.toString());
    }
    expect(() => new MessageClient({ engine, failures: 'python' as never })).toThrow("failures must be 'trews', 'simpy' or 'mosaik', got 'python'");
  });

  it('a failure in any form becomes a RemoteError: a Python traceback (simpy.io) and a mosaik list are taken apart', async () => {
    const keyError = 'Traceback (most recent call last):\n  File "sim.py", line 3, in step\n    raise KeyError(\'k\')\nKeyError: \'k\'\n';
    const chained =
      'Traceback (most recent call last):\n  File "a.py", line 1, in f\nValueError: first\n\nDuring handling of the above exception, another exception occurred:\n\n' +
      'Traceback (most recent call last):\n  File "a.py", line 4, in g\n    raise mosaik.exceptions.ScenarioError("x")\nmosaik.exceptions.ScenarioError: two\nlines\n';
    const bare = 'Traceback (most recent call last):\n  File "a.py", line 1, in f\nStopIteration\n';
    const odd = 'Traceback (most recent call last):\n  not python after all';
    // A hostile run of newlines: taken apart in linear time (a /\n+$/ would take minutes).
    const newlines = 'Traceback (most recent call last):' + '\n'.repeat(300_000) + 'x';
    const cases: Array<[unknown, { message: string; remoteCode?: string; remoteStack?: string }]> = [
      [keyError, { message: "'k'", remoteCode: 'KeyError', remoteStack: keyError }],
      [chained, { message: 'two\nlines', remoteCode: 'mosaik.exceptions.ScenarioError', remoteStack: chained }],
      [bare, { message: 'StopIteration', remoteCode: 'StopIteration', remoteStack: bare }],
      [odd, { message: odd, remoteCode: undefined, remoteStack: odd }],
      [newlines, { message: newlines, remoteCode: undefined }],
      [['ScenarioError', 'bad', 'Traceback (most recent call last):\n', 'ScenarioError: bad\n'], { message: 'bad', remoteCode: 'ScenarioError', remoteStack: 'Traceback (most recent call last):\nScenarioError: bad\n' }],
      [['TypeError', 'no entity'], { message: 'no entity', remoteCode: 'TypeError', remoteStack: undefined }],
      [['only a type'], { message: "[ 'only a type' ]", remoteCode: undefined }],
      ['Error: a plain line', { message: 'Error: a plain line', remoteCode: undefined, remoteStack: undefined }],
      [{ message: 'm', code: 'C' }, { message: 'm', remoteCode: 'C', remoteStack: undefined }],
    ];
    // A raw peer that answers request i (ids count from 1) with the i-th failure content.
    const server = net.createServer((socket) => {
      let got = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        let frames = 0;
        for (let at = 0; at + 4 <= got.length; at += 4 + got.readUInt32BE(at)) frames++;
        if (frames === cases.length) socket.write(Buffer.concat(cases.map(([content], i) => frame([2, i + 1, content]))));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onCleanup(() => new Promise((r) => server.close(r)));
    const client = new MessageClient({ engine: testEngine() });
    await client.connect(['127.0.0.1', portOf(server.address())]);
    const errors = await Promise.all(cases.map((_, i) => client.request(i).catch((e: unknown) => e as RemoteError)));
    errors.forEach((err, i) => {
      expect(err).toBeInstanceOf(RemoteError);
      expect(err, `case ${i}`).toMatchObject(cases[i]![1]);
    });
    await client.close(false);
  });
});

describe('timeouts and cancellation', () => {
  it('a request times out on the Engine clock with a TimeoutError; the late reply is ignored', async () => {
    const { engine, client } = await pair();
    const slow = outcome(engine, client.request({ op: 'later', value: 'late', ms: 200 }, { timeout: 100 }));
    const { error, at } = await slow;
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ code: 'ERR_TREWS_TIMEOUT', message: expect.stringContaining('within 100 ms') as string });
    expect(at).toBe(100);
    await settle(engine); // the reply arrives at 200 and is dropped
    expect(client.pendingRequests).toBe(0);
    expect(await client.request({ op: 'echo', value: 'still fine' })).toBe('still fine');
  });

  it('requestTimeout is the default; a per-call timeout overrides it', async () => {
    const { engine, client } = await pair({ client: { requestTimeout: 50 } });
    const a = outcome(engine, client.request({ op: 'never' }));
    const b = outcome(engine, client.request({ op: 'never' }, { timeout: 70 }));
    expect((await a).at).toBe(50);
    expect((await b).at).toBe(70);
    expect(() => new MessageClient({ engine, requestTimeout: -1 })).toThrow(RangeError);
    await expect(client.request('x', { timeout: Number.NaN })).rejects.toThrow(RangeError);
  });

  it('an AbortSignal rejects the request with its reason, before or after sending', async () => {
    const { engine, client, conn } = await pair();
    const early = new AbortController();
    early.abort(new Error('never mind'));
    await expect(client.request({ op: 'echo', value: 1 }, { signal: early.signal })).rejects.toThrow('never mind');

    const later = new AbortController();
    engine.defer(40, () => later.abort());
    const { error, at } = await outcome(engine, client.request({ op: 'later', ms: 100 }, { signal: later.signal }));
    expect(error).toMatchObject({ name: 'AbortError' });
    expect(at).toBe(40);
    await settle(engine);
    expect(conn().requests).toEqual([{ op: 'later', ms: 100 }]); // the early one was never sent
    expect(client.pendingRequests).toBe(0);
  });

  it('a request aborted while still in the queue is never sent', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const address = memoryAddress('abort-queued');
    await new Server(Service, { engine }).listen(address);
    const client = new MessageClient({ engine, writeHighWaterMark: 1 }); // one message handed over at a time
    const controller = new AbortController();
    const first = client.request({ op: 'echo', value: 1 });
    const second = client.request({ op: 'echo', value: 2 }, { signal: controller.signal });
    const third = client.request({ op: 'echo', value: 3 });
    expect(client.queuedMessages).toBe(2);
    controller.abort();
    void client.connect(address);
    await settle(engine);
    expect([await first, await third]).toEqual([1, 3]);
    await expect(second).rejects.toMatchObject({ name: 'AbortError' });
    expect(Service.last!.requests).toEqual([
      { op: 'echo', value: 1 },
      { op: 'echo', value: 3 },
    ]);
  });
});

describe('limits', () => {
  it('outgoing: beyond maxInFlight a request rejects at once with a LimitError', async () => {
    const { engine, client } = await pair({ client: { maxInFlight: 2 } });
    const a = client.request({ op: 'later', value: 'a', ms: 10 });
    const b = client.request({ op: 'later', value: 'b', ms: 10 });
    const c = client.request({ op: 'echo', value: 'c' });
    await expect(c).rejects.toBeInstanceOf(LimitError);
    await expect(c).rejects.toMatchObject({ code: 'ERR_TREWS_LIMIT', message: expect.stringContaining('maxInFlight 2') as string });
    await settle(engine);
    expect([await a, await b]).toEqual(['a', 'b']);
    expect(await client.request({ op: 'echo', value: 'd' })).toBe('d');
  });

  it('incoming: beyond maxInFlight answers in progress, a request is answered with a failure', async () => {
    class Small extends Service {
      override maxInFlight = 2;
    }
    const { engine, client } = await pair({ Conn: Small });
    const slow = [1, 2].map((v) => client.request({ op: 'later', value: v, ms: 10 }));
    const refused = client.request({ op: 'echo', value: 3 });
    await settle(engine);
    expect(await Promise.all(slow)).toEqual([1, 2]);
    await expect(refused).rejects.toMatchObject({ remoteCode: 'ERR_TREWS_LIMIT', message: '2 requests are being answered already (maxInFlight 2)' });
    const again = client.request({ op: 'echo', value: 4 }); // answers done: room again
    await settle(engine);
    expect(await again).toBe(4);
  });

  it('maxInFlight is validated; a message channel does not reconnect', () => {
    const engine = testEngine();
    expect(() => new MessageClient({ engine, maxInFlight: 0 })).toThrow(RangeError);
    expect(() => new MessageClient({ engine, reconnect: true })).toThrow(/do not reconnect/);
  });
});

describe('codecs', () => {
  it('unencodable content: request() rejects and notify() throws a CodecError; nothing is written', async () => {
    const { client } = await pair();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(client.request(cyclic)).rejects.toBeInstanceOf(CodecError);
    await expect(client.request({ n: 1n })).rejects.toMatchObject({ code: 'ERR_TREWS_CODEC', message: expect.stringContaining('request 1 could not be encoded as json') as string });
    expect(() => client.notify(cyclic)).toThrow(CodecError);
    expect(() => client.notify(undefined)).not.toThrow(); // [3, null, undefined] is [3, null, null] in JSON
    expect(client.pendingRequests).toBe(0);
  });

  it('a reply that cannot be encoded is answered with a failure saying so', async () => {
    const { engine, client } = await pair();
    const answer = client.request({ op: 'bigint' });
    await settle(engine);
    await expect(answer).rejects.toMatchObject({ remoteCode: 'ERR_TREWS_CODEC', message: expect.stringContaining('reply to request 1') as string });
  });

  it('content over maxPacketSize: the sender gets an OverflowError, a replier sends a failure', async () => {
    const { engine, client } = await pair({ client: { maxPacketSize: 100 } });
    await expect(client.request('x'.repeat(100))).rejects.toMatchObject({ code: 'ERR_TREWS_OVERFLOW' });
    class Tight extends Service {
      override maxPacketSize = 120;
    }
    const second = await pair({ Conn: Tight });
    const big = second.client.request({ op: 'repeat', value: 200 });
    await settle(second.engine);
    await expect(big).rejects.toMatchObject({ remoteCode: 'ERR_TREWS_OVERFLOW' });
    void engine;
  });

  it('an undecodable or malformed packet goes to onReadError as a CodecError; the default closes', async () => {
    for (const bad of [Buffer.from('{not json'), Buffer.from('{"a":1}'), Buffer.from('[9,1,2]'), Buffer.from('[0,"x",2]'), Buffer.from('[3,1,2]'), Buffer.from('[1,2]')]) {
      const engine = testEngine({ clock: 'virtual' });
      const address = memoryAddress('bad');
      const errors: ReadError[] = [];
      const closed = deferred<CloseReport>();
      class Watch extends Service {
        override onReadError(err: ReadError) {
          errors.push(err);
          super.onReadError(err);
        }
        override onClose(report?: CloseReport) {
          closed.resolve(report!);
        }
      }
      await new Server(Watch, { engine }).listen(address);
      const { Client } = await import('../src/index.js');
      const raw = new Client({ engine });
      void raw.connect(address);
      const header = Buffer.alloc(4);
      header.writeUInt32BE(bad.length);
      raw.write(Buffer.concat([header, bad]));
      await settle(engine);
      await closed.promise;
      expect(errors, bad.toString()).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(CodecError);
      expect(errors[0]!.code).toBe('ERR_TREWS_CODEC');
    }
  });

  it('MessagePack plugs in: msgpackCodec(@msgpack/msgpack) on both sides, binary content intact', async () => {
    const codec = msgpackCodec(msgpack);
    class Packed extends Service {
      override codec = codec;
    }
    const { engine, client } = await pair({ Conn: Packed, client: { codec } });
    const bytes = new Uint8Array([0, 1, 2, 255]);
    const answer = client.request({ op: 'echo', value: { bytes, n: 2 ** 40, s: 'ß' } });
    await settle(engine);
    const got = (await answer) as { bytes: Uint8Array; n: number; s: string };
    expect({ ...got, bytes: [...got.bytes] }).toEqual({ bytes: [0, 1, 2, 255], n: 2 ** 40, s: 'ß' });
    expect(() => msgpackCodec({} as never)).toThrow(/encode\(\) and decode\(\)/);
  });

  it("createJsonCodec({ nonFinite: true }) reads and writes Python's bare NaN, Infinity, -Infinity; strings stay untouched", () => {
    const codec = createJsonCodec({ nonFinite: true });
    const value = { a: NaN, b: [Infinity, -Infinity, 0.5], NaN: 'Infinity', s: 'x"NaN', t: '-Infinity' };
    const text = '{"a":NaN,"b":[Infinity,-Infinity,0.5],"NaN":"Infinity","s":"x\\"NaN","t":"-Infinity"}';
    expect(codec.encode(value)).toBe(text);
    expect(codec.decode(Buffer.from(text))).toEqual(value);
    expect(codec.decode(Buffer.from('[NaN, -Infinity,Infinity, "NaN", 1e999]'))).toEqual([NaN, -Infinity, Infinity, 'NaN', Infinity]);
    expect(codec.decode(Buffer.from('{"plain": [1, 2]}'))).toEqual({ plain: [1, 2] });
    // A key named __proto__ stays an own property; the prototype is never touched.
    const proto = codec.decode(Buffer.from('{"__proto__": NaN, "deep": [{"x": [NaN]}]}')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(proto, '__proto__')!.value).toBeNaN();
    expect(proto.deep).toEqual([{ x: [NaN] }]);
    // Still JSON otherwise: tokens glued to others, a bare NaN key, -NaN.
    for (const bad of ['[1Infinity]', '[NaNx]', '{NaN: 1}', '[-NaN]', '[NaN, x]']) {
      expect(() => codec.decode(Buffer.from(bad)), bad).toThrow(SyntaxError);
    }
    expect(() => codec.decode(Buffer.from('[NaN, x]'))).toThrow('"[NaN, x]" is not valid JSON'); // about the text received
    expect(createJsonCodec()).toBe(jsonCodec);
    expect(jsonCodec.encode([NaN])).toBe('[null]');
    expect(() => jsonCodec.decode(Buffer.from('[1, NaN]'))).toThrow(/use createJsonCodec\(\{ nonFinite: true \}\)/);
    expect(() => jsonCodec.decode(Buffer.from('[1, "NaN", x]'))).toThrow(/^(?!.*nonFinite)/);
    expect(() => createJsonCodec(null as never)).toThrow(TypeError);
  });

  it('a custom codec ({ encode, decode }) is used as given', async () => {
    const calls: string[] = [];
    const codec: Codec = {
      encode(value) {
        calls.push('encode');
        return Buffer.from(JSON.stringify(value)).reverse();
      },
      decode(payload) {
        calls.push('decode');
        return JSON.parse(Buffer.from(payload).reverse().toString());
      },
    };
    class Reversed extends Service {
      override codec = codec;
    }
    const { engine, client } = await pair({ Conn: Reversed, client: { codec } });
    const answer = client.request({ op: 'add', value: [2, 3] });
    await settle(engine);
    expect(await answer).toBe(5);
    expect(calls).toEqual(['encode', 'decode', 'encode', 'decode']);
    expect(jsonCodec.name).toBe('json');
  });
});

describe('closing', () => {
  it('on close every pending request rejects with a ClosedError; nothing hangs', async () => {
    const { engine, client, conn } = await pair();
    const waiting = [client.request({ op: 'never' }), client.request({ op: 'never' })];
    await settle(engine);
    const closing = conn().close(false); // the server goes away
    await settle(engine);
    await closing;
    for (const p of waiting) {
      await expect(p).rejects.toBeInstanceOf(ClosedError);
      await expect(p).rejects.toThrow(/closed before the reply to request \d arrived/);
    }
    expect(client.closed).toBe(true);
    expect(client.closeReport).toEqual({ incomplete: [], queued: [] });
  });

  it('request() and notify() on a closing or closed channel: a ClosedError, never a silent drop', async () => {
    const { engine, client } = await pair();
    const closing = client.close();
    expect(client.closing).toBe(true);
    await expect(client.request('late')).rejects.toBeInstanceOf(ClosedError);
    expect(() => client.notify('late')).toThrow(ClosedError);
    await settle(engine);
    await closing;
    await expect(client.request('later')).rejects.toThrow(/after close\(\)/);
    expect(() => client.notify('later')).toThrow(ClosedError);
  });

  it('messages sent while connecting are sent on connect', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const address = memoryAddress('early');
    await new Server(Service, { engine }).listen(address);
    const client = new MessageClient({ engine });
    client.notify('before connect()');
    const connected = client.connect(address);
    client.notify('while connecting');
    const answer = client.request({ op: 'echo', value: 'early bird' });
    await settle(engine);
    await connected;
    expect(await answer).toBe('early bird');
    expect(Service.last!.notes).toEqual(['before connect()', 'while connecting']);
  });

  it('messages sent while connecting are reported, and requests rejected, when connecting fails', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const client = new MessageClient({ engine });
    const reports: CloseReport[] = [];
    client.on('close', (report) => reports.push(report));
    const connected = client.connect(memoryAddress('nobody'));
    client.notify('n1');
    const request = client.request('r1');
    client.notify('n2');
    await settle(engine);
    await expect(connected).rejects.toBeInstanceOf(ConnectError);
    await expect(request).rejects.toThrow(/closed before request 1 was sent/);
    expect(reports).toEqual([
      {
        incomplete: [],
        queued: [
          { kind: 'notify', id: null, content: 'n1' },
          { kind: 'request', id: 1, content: 'r1' },
          { kind: 'notify', id: null, content: 'n2' },
        ],
      },
    ]);
  });

  it("'queue' (the default) waits for answers in progress, so their replies still go out", async () => {
    const { engine, client, conn } = await pair();
    const slow = client.request({ op: 'later', value: 'made it', ms: 500 });
    await runFor(engine, 10);
    const serverClosed = conn().close();
    const refused = client.request({ op: 'echo', value: 'too late' }); // the server is closing
    await settle(engine);
    await serverClosed;
    expect(await slow).toBe('made it');
    await expect(refused).rejects.toMatchObject({ remoteCode: 'ERR_TREWS_CLOSED' });
    expect(conn().closeReport).toEqual({ incomplete: [], queued: [] });
  });

  it("a harder close replaces a 'queue' close still waiting: 'now' closes at once; bad options throw", async () => {
    const { engine, client, conn } = await pair();
    const never = client.request({ op: 'never' });
    await settle(engine);
    expect(() => conn().close({ timeout: 0 })).toThrow(RangeError);
    expect(() => conn().close({ mode: 'later' as 'now' })).toThrow(/'now', 'message' or 'queue'/);
    void conn().close();
    await settle(engine, { maxTime: 100 });
    expect(conn().closing).toBe(true);
    expect(conn().closed).toBe(false);
    await conn().close({ mode: 'now' });
    expect(engine.now()).toBe(100);
    const { error } = await outcome(engine, never);
    expect(error).toBeInstanceOf(ClosedError);
  });

  it("'queue' waits for answers at most its timeout", async () => {
    const { engine, client, conn } = await pair();
    const never = client.request({ op: 'never' });
    await settle(engine);
    engine.advance(10);
    void conn().close({ timeout: 300 });
    const { error, at } = await outcome(engine, never);
    expect(error).toBeInstanceOf(ClosedError);
    expect(at).toBe(310);
  });
});

/**
 * Close modes with a peer that does not read. Every message has the same frame size F and the
 * client's window is one frame, so each stream write is one whole message; the link's buffer
 * holds whole frames. The peer's own count of what it received (once it reads again) is the
 * independent check of the report.
 */
describe('close modes with a slow peer', () => {
  const N = 200;
  const contents = Array.from({ length: N }, (_, i) => `message ${String(i).padStart(3, '0')} ${'.'.repeat(80)}`);
  const F = frame([3, null, contents[0]]).length;

  class Sink extends Service {
    override onConnect() {
      super.onConnect();
      this.pauseReading();
    }
  }

  async function stalled() {
    const p = await pair({ Conn: Sink, client: { writeHighWaterMark: F }, link: { buffer: 10 * F } });
    for (const c of contents) p.client.notify(c);
    await settle(p.engine);
    // Stalled: the peer's socket buffer and the link are full, the rest waits.
    const sentBefore = p.client.bytesWritten / F;
    expect(Number.isInteger(sentBefore)).toBe(true);
    expect(sentBefore).toBeGreaterThan(0);
    expect(p.client.queuedMessages).toBeGreaterThan(0);
    return { ...p, sentBefore };
  }

  async function drainPeer(p: Pair<Sink>): Promise<string[]> {
    p.conn().resumeReading();
    await settle(p.engine);
    return p.conn().notes as string[];
  }

  it("'now': what reached the OS is delivered, the rest is reported queued, in order", async () => {
    const p = await stalled();
    await p.client.close({ mode: 'now' });
    const report = p.client.closeReport!;
    const received = await drainPeer(p);
    expect(received).toEqual(contents.slice(0, p.sentBefore));
    expect(report.incomplete).toEqual([]);
    expect(report.queued).toEqual(contents.slice(p.sentBefore).map((content) => ({ kind: 'notify', id: null, content })));
  });

  it("'message': what the stream holds goes out, the channel's queue is reported", async () => {
    const p = await stalled();
    const handed = N - p.client.queuedMessages;
    expect(handed).toBe(p.sentBefore + 1); // one whole message waits in the socket
    const closed = p.client.close({ mode: 'message' });
    const received = await drainPeer(p);
    await closed;
    expect(received).toEqual(contents.slice(0, handed));
    expect(p.client.closeReport).toEqual({ incomplete: [], queued: contents.slice(handed).map((content) => ({ kind: 'notify', id: null, content })) });
  });

  it("'queue': everything goes out, then the channel closes; the report is empty", async () => {
    const p = await stalled();
    const closed = p.client.close({ mode: 'queue' });
    const received = await drainPeer(p);
    await closed;
    expect(received).toEqual(contents);
    expect(p.client.closeReport).toEqual({ incomplete: [], queued: [] });
    expect(p.client.forced).toBe(false);
  });

  it("'queue' against a peer that never reads is forced after the timeout and reports what did not go out", async () => {
    const p = await stalled();
    const reports: CloseReport[] = [];
    p.client.on('close', (r) => reports.push(r));
    const closed = p.client.close({ mode: 'queue', timeout: 1000 });
    await settle(p.engine);
    await closed;
    expect(p.client.forced).toBe(true);
    expect(p.engine.now()).toBe(1000);
    const received = await drainPeer(p);
    expect(received).toEqual(contents.slice(0, p.sentBefore));
    expect(reports).toEqual([{ incomplete: [], queued: contents.slice(p.sentBefore).map((content) => ({ kind: 'notify', id: null, content })) }]);
  });

  it("'now' with requests: queued ones are reported and rejected as never sent", async () => {
    // Contents padded so that every frame has the same size whatever the id's digits; the peer
    // never answers (an answer to a closed client would fail its connection).
    const padded = contents.map((_, i) => ({ op: 'never', value: 'x'.repeat(90 - String(i + 1).length) }));
    const R = frame([0, 1, padded[0]]).length;
    const p = await pair({ Conn: Sink, client: { writeHighWaterMark: R }, link: { buffer: 10 * R } });
    const requests = padded.map((c) => p.client.request(c));
    await settle(p.engine);
    const sent = p.client.bytesWritten / R;
    expect(Number.isInteger(sent)).toBe(true);
    await p.client.close(false);
    const report = p.client.closeReport!;
    expect(report.incomplete).toEqual([]);
    expect(report.queued).toEqual(padded.slice(sent).map((content, i) => ({ kind: 'request', id: sent + i + 1, content })));
    p.conn().resumeReading();
    await settle(p.engine);
    expect(p.conn().requests).toEqual(padded.slice(0, sent));
    await expect(requests[0]).rejects.toThrow('closed before the reply to request 1 arrived');
    await expect(requests[N - 1]).rejects.toThrow(`closed before request ${N} was sent`);
  });
});

describe('the outbox accounts every frame to the byte', () => {
  /**
   * A stream stand-in whose counters the test moves by hand. `exact`: it knows to the byte what
   * it still holds (TCP); otherwise, like TLS, what it holds may be partly on its way.
   */
  function fakeSink(windowBytes: number, exact = true) {
    const sink = {
      bytesWritten: 0,
      bufferedBytes: 0,
      get queuedBytes() {
        return exact ? sink.bufferedBytes : 0;
      },
      writeHighWaterMark: windowBytes,
      writes: [] as number[],
      write(data: Uint8Array) {
        sink.writes.push(data.length);
        sink.bufferedBytes += data.length;
        return sink.bufferedBytes < windowBytes;
      },
      /** The OS takes n more bytes. */
      take(n: number) {
        sink.bytesWritten += n;
        sink.bufferedBytes -= n;
      },
    };
    return sink;
  }
  const item = (name: string, size: number): OutboxItem & { name: string } => ({ name, frame: Buffer.alloc(size), start: 0, end: 0 });

  it('splits what was not written out into incomplete (straddling bytesWritten) and queued', () => {
    const sink = fakeSink(25);
    const box = new Outbox<ReturnType<typeof item>>(sink);
    for (const [name, size] of [['a', 10], ['b', 10], ['c', 10], ['d', 10]] as const) box.push(item(name, size));
    expect(sink.writes).toEqual([10, 10, 10]); // the window took three; d waits
    expect(box.waiting).toBe(1);
    sink.take(15); // a whole, half of b
    const names = (list: Array<{ name: string }>) => list.map((i) => i.name);
    let unsent = box.unsent();
    expect([names(unsent.incomplete), names(unsent.queued)]).toEqual([['b'], ['c', 'd']]);
    sink.take(5); // b done exactly
    unsent = box.unsent();
    expect([names(unsent.incomplete), names(unsent.queued)]).toEqual([[], ['c', 'd']]);
    box.pump(); // 10 buffered < 25: d goes
    expect(sink.writes).toEqual([10, 10, 10, 10]);
    sink.take(15); // c, and half of d
    unsent = box.unsent();
    expect([names(unsent.incomplete), names(unsent.queued)]).toEqual([['d'], []]);
  });

  it('where the transport cannot tell what it holds (TLS), frames handed over are incomplete, never queued', () => {
    const sink = fakeSink(25, false);
    const box = new Outbox<ReturnType<typeof item>>(sink);
    for (const [name, size] of [['a', 10], ['b', 10], ['c', 10], ['d', 10]] as const) box.push(item(name, size));
    sink.take(15);
    const unsent = box.unsent();
    // c was handed to the socket: it may have gone out, so a resend could duplicate it.
    expect([unsent.incomplete.map((i) => i.name), unsent.queued.map((i) => i.name)]).toEqual([['b', 'c'], ['d']]);
  });

  it('hold() hands nothing more; handAll() hands everything whatever the window; cancelled items are skipped', () => {
    const sink = fakeSink(10);
    const box = new Outbox<ReturnType<typeof item>>(sink);
    const items = ['a', 'b', 'c', 'd'].map((n) => item(n, 10));
    for (const i of items) box.push(i);
    expect(sink.writes).toEqual([10]);
    sink.take(10);
    box.hold();
    box.pump();
    expect(sink.writes).toEqual([10]);
    items[2]!.cancelled = true;
    expect(box.unsent().queued.map((i) => i.name)).toEqual(['b', 'd']);
    box.handAll();
    expect(sink.writes).toEqual([10, 10, 10]);
    expect(box.waiting).toBe(0);
  });
});

// ---- interop with a Python peer (standard library only) -----------------------------------

const PY_COMMON = String.raw`
import json, socket, struct, sys
def send(sock, msg):
    data = json.dumps(msg).encode('utf-8')
    sock.sendall(struct.pack('!I', len(data)) + data)
def recv(f):
    header = f.read(4)
    if len(header) < 4:
        return None
    (n,) = struct.unpack('!I', header)
    return json.loads(f.read(n).decode('utf-8'))
`;

const PY_CLIENT =
  PY_COMMON +
  String.raw`
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
f = s.makefile('rb')
# Pipelined requests; the slow one is answered last.
send(s, [0, 1, {'op': 'later', 'value': 'slow', 'ms': 50}])
send(s, [0, 2, {'op': 'add', 'value': [40, 2]}])
send(s, [0, 3, {'op': 'throw'}])
send(s, [3, None, 'a notification'])
send(s, [0, 4, {'op': 'echo', 'value': {'text': 'h\u00e9llo', 'list': [1, None, True]}}])
replies = [recv(f) for _ in range(4)]
assert [r[1] for r in replies] == [2, 3, 4, 1], replies
assert replies[0] == [1, 2, 42], replies[0]
assert replies[1] == [2, 3, {'message': 'no such thing', 'code': 'E_NOTHING'}], replies[1]
assert replies[2] == [1, 4, {'text': 'h\u00e9llo', 'list': [1, None, True]}], replies[2]
assert replies[3] == [1, 1, 'slow'], replies[3]
s.shutdown(socket.SHUT_WR)
assert f.read() == b''
print('ok')
`;

const PY_SERVER =
  PY_COMMON +
  String.raw`
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', int(sys.argv[1])))
srv.listen(1)
conn, _ = srv.accept()
f = conn.makefile('rb')
got = []
while len(got) < 3:
    got.append(recv(f))
by_type = {}
for m in got:
    by_type.setdefault(m[0], []).append(m)
(a, b) = sorted(by_type[0], key=lambda m: m[1])
assert by_type[3] == [[3, None, 'hi python']], got
# Answer out of order, the failure as a plain string (simpy.io style).
send(conn, [2, b[1], 'division by zero'])
send(conn, [1, a[1], {'sum': sum(a[2]['add'])}])
# Then ask the trews client something.
send(conn, [0, 7, {'op': 'add', 'value': [1, 2, 3]}])
reply = recv(f)
assert reply == [1, 7, 6], reply
send(conn, [0, 8, {'op': 'throw'}])
reply = recv(f)
assert reply == [2, 8, {'message': 'no such thing', 'code': 'E_NOTHING'}], reply
conn.close()
print('ok')
`;

describe('interop with a Python peer speaking length-prefixed JSON [type, id, content]', () => {
  it('a Python client: pipelined requests, replies out of order, a failure, a notification', async () => {
    const engine = testEngine();
    const server = new Server(Service, { engine });
    await server.listen(['127.0.0.1', 0]);
    const out = await python(PY_CLIENT, [String(portOf(server.localAddress))]);
    expect(out.trim()).toBe('ok');
    expect(Service.last!.notes).toEqual(['a notification']);
  });

  it('a Python server: replies (a failure as a plain string) and requests of its own', async () => {
    const engine = testEngine();
    const port = await freePort();
    const done = python(PY_SERVER, [String(port)]);
    class Asked extends MessageClient {
      override onRequest(content: unknown): unknown {
        const { op, value } = content as { op: string; value: number[] };
        if (op === 'add') return value.reduce((a, b) => a + b, 0);
        throw Object.assign(new Error('no such thing'), { code: 'E_NOTHING' });
      }
    }
    let client: Asked | undefined;
    for (let attempt = 0; client === undefined; attempt++) {
      const candidate = new Asked({ engine });
      candidate.onConnectError = () => {}; // retried below while Python starts
      try {
        await candidate.connect(['127.0.0.1', port]);
        client = candidate;
      } catch (err) {
        if (attempt > 200) throw err;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    const sum = client.request({ add: [1, 2] });
    const failing = client.request({ divide: [1, 0] });
    client.notify('hi python');
    expect(await sum).toEqual({ sum: 3 });
    const err = await failing.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ message: 'division by zero', remoteCode: undefined });
    expect((await done).trim()).toBe('ok');
    await client.whenClosed();
  });
});
