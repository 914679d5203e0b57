/**
 * Type tests: `npm test` runs `tsc --noEmit` over this file, so each `expectTypeOf` and each
 * `@ts-expect-error` is checked there (a wrong type fails the build). At run time they are
 * no-ops; the channels are made on an isolated engine and never connected.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  Client,
  Connection,
  Datagram,
  MessageConnection,
  PacketConnection,
  Server,
  Stream,
  StreamServer,
  Struct,
  type Delimiter,
  type FrameArgs,
  type FrameIterator,
  type FrameOf,
  type InetAddress,
  type StructValue,
  type StructValues,
} from '../src/index.js';
import { testEngine } from './helpers.js';

class Lines extends Client {
  override encoding = 'utf8'; // no `as const`
  override readDelimiter = '\n';
}

class Words extends Connection {
  override encoding = 'latin1';
  override readDelimiter = ' ';
  override onRead(word: string) {
    this.write(word);
  }
}

class Bytes extends Client {
  override encoding = null;
  override readDelimiter = 4;
}

class Points extends Client {
  override readDelimiter = new Struct('!Hhq');
}

class Matches extends Client {
  // A RegExp's type does not say it is sticky: declare it.
  declare readDelimiter: RegExp & { readonly sticky: true };
}

/** Framing decided at run time: the override's annotation is the frame type. */
class Switching extends Client {
  override readDelimiter: Delimiter = 4;
  override onRead(data: number | Buffer) {
    void data;
  }
}

describe('onRead and the read event follow the framing', () => {
  it('a text encoding and a string delimiter give strings', () => {
    const engine = testEngine();
    const lines = new Lines({ engine });
    expectTypeOf(lines.encoding).toEqualTypeOf<string>();
    expectTypeOf<Parameters<Lines['onRead']>>().toEqualTypeOf<[data: string]>();
    lines.on('read', (line) => expectTypeOf(line).toEqualTypeOf<string>());
    lines.once('read', (line) => expectTypeOf(line).toEqualTypeOf<string>());
    lines.off('read', (line) => expectTypeOf(line).toEqualTypeOf<string>());
    lines.on('timeout', (kind) => expectTypeOf(kind).toEqualTypeOf<'idle' | 'read'>());
    // @ts-expect-error a utf8 channel does not deliver Buffers
    lines.on('read', (line: Buffer) => void line);
    // @ts-expect-error nor two arguments
    lines.on('read', (line: string, more: string) => void [line, more]);
    // @ts-expect-error an unknown event
    lines.on('reed', () => {});
    expect(lines.encoding).toBe('utf8');
  });

  it('an override annotated to match compiles, and listeners follow it', () => {
    const engine = testEngine();
    const server = new Server(Words, { engine });
    server.on('accept', (c) => c.on('read', (word) => expectTypeOf(word).toEqualTypeOf<string>()));
    const switching = new Switching({ engine });
    switching.on('read', (data) => expectTypeOf(data).toEqualTypeOf<number | Buffer>());
  });

  it('null encoding gives Buffers; a Struct gives its values', () => {
    const engine = testEngine();
    new Bytes({ engine }).on('read', (data) => expectTypeOf(data).toEqualTypeOf<Buffer>());
    new Points({ engine }).on('read', (...values) => expectTypeOf(values).toEqualTypeOf<[number, number, bigint]>());
    expectTypeOf<Parameters<Points['onRead']>>().toEqualTypeOf<[number, number, bigint]>();
    // @ts-expect-error the third value of '!Hhq' is a bigint
    new Points({ engine }).on('read', (a: number, b: number, c: number) => void [a, b, c]);
  });

  it('a RegExp declared sticky gives the match array', () => {
    const engine = testEngine();
    new Matches({ engine }).on('read', (match) => expectTypeOf(match).toEqualTypeOf<RegExpExecArray>());
  });

  it('where the types do not tell, the frame is any (annotate it)', () => {
    const engine = testEngine();
    // The base classes, framing left to the options.
    const client = new Client({ engine, encoding: 'utf8', readDelimiter: '\n' });
    client.on('read', (line: string) => void line);
    client.on('read', (...args: unknown[]) => void args);
    expectTypeOf<Parameters<Client['onRead']>>().toEqualTypeOf<any[]>();
    // A plain RegExp may or may not be sticky; an undeclared encoding may come from options.
    class Plain extends Client {
      override readDelimiter = /\r?\n/;
    }
    class NoEncoding extends Client {
      override readDelimiter = '\n';
    }
    expectTypeOf<Parameters<Plain['onRead']>>().toEqualTypeOf<any[]>();
    expectTypeOf<Parameters<NoEncoding['onRead']>>().toEqualTypeOf<any[]>();
    new NoEncoding({ engine, encoding: 'utf8' }).on('read', (line: string) => void line);
  });

  it('subclasses keep compiling however they annotate onRead', () => {
    class Rest extends Lines {
      override onRead(...values: unknown[]) {
        void values;
      }
    }
    class Nothing extends Lines {
      override onRead() {}
    }
    class InBody extends Lines {
      constructor() {
        super({ engine: testEngine() });
        this.on('read', (line: string) => void line);
        this.on('read', (...args: unknown[]) => void args);
      }
    }
    expect([Rest, Nothing, InBody]).toHaveLength(3);
  });

  it('encoding accepts any string at compile time and checks it at run time', () => {
    const engine = testEngine();
    class Hex extends Client {
      override encoding = 'hex';
    }
    class Typo extends Client {
      override encoding = 'utf9';
    }
    class Wrong extends Client {
      // @ts-expect-error not a string
      override encoding = 8;
    }
    expect(new Hex({ engine }).encoding).toBe('hex');
    expect(() => new Typo({ engine }).connect('memory:nowhere')).toThrow(/encoding must be null .* such as 'utf8'/);
    void Wrong;
  });

  it('datagrams add the sender address', () => {
    const engine = testEngine();
    class Echo extends Datagram {
      override encoding = 'utf8';
      override readDelimiter = '\n';
    }
    new Echo({ engine }).on('read', (line, from) => {
      expectTypeOf(line).toEqualTypeOf<string>();
      expectTypeOf(from).toEqualTypeOf<InetAddress>();
    });
    class Pairs extends Datagram {
      override readDelimiter = new Struct('<2H');
    }
    expectTypeOf<Parameters<Pairs['onRead']>>().toEqualTypeOf<[number, number, address: InetAddress]>();
    new Datagram({ engine }).on('read', (data: Buffer, from: InetAddress) => void [data, from]);
  });

  it('for await yields the frame (a Struct: its values as an array)', () => {
    expectTypeOf<ReturnType<Lines['readFrames']>>().toEqualTypeOf<FrameIterator<string>>();
    expectTypeOf<FrameOf<Bytes>>().toEqualTypeOf<Buffer>();
    expectTypeOf<FrameOf<Points>>().toEqualTypeOf<[number, number, bigint]>();
    expectTypeOf<FrameOf<Switching>>().toEqualTypeOf<number | Buffer>();
    expectTypeOf<FrameOf<Client>>().toBeAny();
    async function lengths(lines: Lines): Promise<number> {
      let n = 0;
      for await (const line of lines) n += line.length;
      return n;
    }
    expect(lengths).toBeTypeOf('function');
  });

  it('FrameArgs is exported for your own types', () => {
    expectTypeOf<FrameArgs<string, 'utf8'>>().toEqualTypeOf<[data: string]>();
    expectTypeOf<FrameArgs<Buffer, null>>().toEqualTypeOf<[data: Buffer]>();
    expectTypeOf<FrameArgs<Struct<'!I'>, null>>().toEqualTypeOf<[number]>();
    expectTypeOf<FrameArgs<number | Struct, null>>().toBeAny();
    expectTypeOf<FrameArgs<Delimiter, 'utf8'>>().toBeAny();
  });
});

describe('Struct values', () => {
  it('a format literal gives the tuple unpack returns; q and Q are bigints', () => {
    const b = Buffer.alloc(256);
    expectTypeOf(new Struct('!2H').unpack(b)).toEqualTypeOf<[number, number]>();
    expectTypeOf(new Struct('<qQ').unpack(b)).toEqualTypeOf<[bigint, bigint]>();
    expectTypeOf(new Struct('>3x 10s ? c 0H 2e').unpack(b)).toEqualTypeOf<[Buffer, boolean, Buffer, number, number]>();
    // l/L are 8 bytes with native sizes (no prefix or '@'), 4 with standard ones; n/N are native only.
    expectTypeOf(new Struct('lL').unpack(b)).toEqualTypeOf<[bigint, bigint]>();
    expectTypeOf(new Struct('@nN').unpack(b)).toEqualTypeOf<[bigint, bigint]>();
    expectTypeOf(new Struct('=lL').unpack(b)).toEqualTypeOf<[number, number]>();
    expectTypeOf<StructValues<'!12B'>>().toHaveProperty('length').toEqualTypeOf<12>();
    // What the types cannot follow is StructValue[]: bad formats (which throw) and long counts.
    expectTypeOf<StructValues<'!n'>>().toEqualTypeOf<StructValue[]>();
    expectTypeOf<StructValues<'2 H'>>().toEqualTypeOf<StructValue[]>();
    expectTypeOf(new Struct('100B').unpack(b)).toEqualTypeOf<StructValue[]>();
    expectTypeOf(new Struct(String('!I')).unpack(b)).toEqualTypeOf<StructValue[]>();
    // Any Struct<'...'> is a Struct.
    const plain: Struct = new Struct('!I');
    expectTypeOf(plain.unpack(b)).toEqualTypeOf<StructValue[]>();
  });

  it('the runtime values are what the types say', () => {
    const s = new Struct('!Hq?4s');
    const [h, q, flag, bytes] = s.unpack(s.pack(7, 8n, true, 'abcd'));
    expect([typeof h, typeof q, typeof flag, Buffer.isBuffer(bytes)]).toEqual(['number', 'bigint', 'boolean', true]);
  });
});

describe('servers are generic over their connection class', () => {
  it('new Server(MyConn) types accept, connections and onAccept', () => {
    const engine = testEngine();
    const server = new Server(Words, { engine });
    server.on('accept', (c) => expectTypeOf(c).toEqualTypeOf<Words>());
    expectTypeOf(server.connections).toEqualTypeOf<ReadonlySet<Words>>();
    expectTypeOf(server.onAccept).parameter(0).toEqualTypeOf<Words>();
    expectTypeOf(new Server({ engine }).connections).toEqualTypeOf<ReadonlySet<Connection>>();
    expectTypeOf(new StreamServer({ engine }).connections).toEqualTypeOf<ReadonlySet<Stream>>();
    class Rpc extends MessageConnection {}
    new Server(Rpc, { engine }).on('accept', (c) => expectTypeOf(c).toEqualTypeOf<Rpc>());
    new Server(PacketConnection, { engine }).on('accept', (c) => c.on('packet', (p) => expectTypeOf(p).toEqualTypeOf<Buffer>()));
  });

  it('class MyServer extends Server<MyConn> with a static ConnectionClass', () => {
    const engine = testEngine();
    class WordServer extends Server<Words> {
      static override ConnectionClass = Words;
      override onAccept(connection: Words) {
        connection.write('hello ');
      }
    }
    const server = new WordServer({ engine });
    expect(server.ConnectionClass).toBe(Words);
    expectTypeOf(server.connections).toEqualTypeOf<ReadonlySet<Words>>();
    server.on('accept', (c) => expectTypeOf(c).toEqualTypeOf<Words>());
    class Mistyped extends Server<Words> {
      // @ts-expect-error onAccept receives a Words
      override onAccept(connection: Bytes) {
        void connection;
      }
    }
    void Mistyped;
  });
});
