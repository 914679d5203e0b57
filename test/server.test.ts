import { describe, expect, it } from 'vitest';
import { Client, Connection, Server, StreamServer, Stream } from '../src/index.js';
import { ListenError } from '../src/errors.js';
import { Peer, deferred, portOf, python, testEngine } from './helpers.js';

class Echo extends Connection {
  override readDelimiter = '\n';
  override onRead(line: Buffer) {
    this.write(line);
    this.write('\n');
  }
}

describe('Server', () => {
  it('listen(0) tells its port; onListen runs before the promise resolves', async () => {
    const engine = testEngine();
    const order: string[] = [];
    class S extends Server {
      override onListen() {
        order.push('onListen');
      }
    }
    const server = new S(Echo, { engine });
    await server.listen(['127.0.0.1', 0]).then(() => order.push('resolved'));
    expect(order).toEqual(['onListen', 'resolved']);
    expect(server.listening).toBe(true);
    expect(server.localAddress).toMatchObject({ address: '127.0.0.1', family: 'IPv4' });
    expect(portOf(server.localAddress)).toBeGreaterThan(0);
  });

  it('a port number listens on all interfaces', async () => {
    const engine = testEngine();
    const server = new Server(Echo, { engine });
    await server.listen(0);
    const peer = new Peer(portOf(server.localAddress));
    await peer.write('any\n');
    await peer.untilText('any\n');
  });

  it('EADDRINUSE calls onListenError with the system code and rejects with the same error', async () => {
    const engine = testEngine();
    const first = new Server(Echo, { engine });
    await first.listen(['127.0.0.1', 0]);
    const seen: ListenError[] = [];
    class Second extends Server {
      override onListenError(err: ListenError) {
        seen.push(err);
      }
    }
    const second = new Second(Echo, { engine });
    const err = await second.listen(['127.0.0.1', portOf(first.localAddress)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListenError);
    expect(err).toBe(seen[0]);
    expect(err).toMatchObject({ code: 'ERR_TREWS_LISTEN', systemCode: 'EADDRINUSE' });
    await second.whenClosed();
    expect(first.listening).toBe(true);
  });

  it('sets connection.server before onConnect, and calls onAccept after it', async () => {
    const engine = testEngine();
    const order: string[] = [];
    const accepted = deferred();
    class Conn extends Connection {
      override onConnect() {
        order.push(`onConnect server=${this.server === server}`);
      }
    }
    class S extends Server<Conn> {
      override onAccept(connection: Conn) {
        order.push(`onAccept ${connection instanceof Conn}`);
        accepted.resolve();
      }
    }
    const server: S = new S(Conn, { engine });
    await server.listen(['127.0.0.1', 0]);
    new Peer(portOf(server.localAddress));
    await accepted.promise;
    expect(order).toEqual(['onConnect server=true', 'onAccept true']);
  });

  it('sets connection.server also when a subclass declares it as a plain field', async () => {
    const engine = testEngine();
    const seen = deferred<boolean>();
    class Conn extends Connection {
      // A field, not `declare server` (as plain JavaScript would write it): it hides the
      // accessor on Connection.prototype.
      override server = undefined as unknown as Server<Conn>;
      override onConnect() {
        seen.resolve(this.server === server);
      }
    }
    const server = new Server(Conn, { engine });
    await server.listen(['127.0.0.1', 0]);
    new Peer(portOf(server.localAddress));
    expect(await seen.promise).toBe(true);
  });

  it('uses a static ConnectionClass set on a subclass', async () => {
    const engine = testEngine();
    class EchoServer extends Server {
      static override ConnectionClass = Echo;
    }
    const server = new EchoServer({ engine });
    await server.listen(['127.0.0.1', 0]);
    const peer = new Peer(portOf(server.localAddress));
    await peer.write('static\n');
    await peer.untilText('static\n');
  });

  it('StreamServer defaults to plain Streams; a non-Stream class is refused', () => {
    const engine = testEngine();
    expect(new StreamServer({ engine }).ConnectionClass).toBe(Stream);
    expect(() => new Server(Object as never, { engine })).toThrow(/Stream subclass/);
  });

  it('maxConnections closes connections beyond the limit at once', async () => {
    const engine = testEngine();
    const server = new Server(Echo, { engine, maxConnections: 2 });
    await server.listen(['127.0.0.1', 0]);
    const port = portOf(server.localAddress);
    const a = new Peer(port);
    const b = new Peer(port);
    await Promise.all([a.write('a\n'), b.write('b\n')]);
    await Promise.all([a.untilText('a\n'), b.untilText('b\n')]);
    const c = new Peer(port);
    await c.untilClosed();
    expect(c.text).toBe('');
    expect(server.connections.size).toBe(2);
    await a.write('still\n');
    await a.untilText('still\n');
  });

  it('close() closes every connection and resolves after all have closed', async () => {
    const engine = testEngine();
    const closed: number[] = [];
    class Tracked extends Echo {
      override onClose() {
        closed.push(this.id);
      }
    }
    const server = new Server(Tracked, { engine });
    await server.listen(['127.0.0.1', 0]);
    const port = portOf(server.localAddress);
    const peers = [new Peer(port), new Peer(port), new Peer(port)];
    await Promise.all(peers.map((p) => p.write('x\n')));
    await Promise.all(peers.map((p) => p.untilText('x\n')));
    await server.close();
    expect(closed).toHaveLength(3);
    expect(server.closed).toBe(true);
    expect(server.connections.size).toBe(0);
    expect(engine.channels.size).toBe(0);
    await Promise.all(peers.map((p) => p.untilClosed()));
  });

  it('a closed connection leaves server.connections at once', async () => {
    const engine = testEngine();
    const server = new Server(Echo, { engine });
    await server.listen(['127.0.0.1', 0]);
    const peer = new Peer(portOf(server.localAddress));
    await peer.write('x\n');
    await peer.untilText('x\n');
    const [conn] = [...server.connections];
    void conn!.close();
    expect(server.connections.has(conn!)).toBe(false);
    expect(server.broadcast('nobody\n')).toBe(0);
  });

  it('a throwing connection constructor is reported, and the server keeps serving', async () => {
    const engine = testEngine();
    const reported: unknown[] = [];
    engine.on('error', (err) => reported.push(err));
    let fail = true;
    class Fragile extends Echo {
      constructor(options?: object) {
        super(options);
        if (fail) {
          fail = false;
          throw new Error('constructor broke');
        }
      }
    }
    const server = new Server(Fragile, { engine });
    await server.listen(['127.0.0.1', 0]);
    const port = portOf(server.localAddress);
    const first = new Peer(port);
    await first.untilClosed();
    expect((reported[0] as Error).message).toBe('constructor broke');
    const second = new Peer(port);
    await second.write('ok\n');
    await second.untilText('ok\n');
  });

  it('Engine.stop() closes servers and connections and resolves start()', async () => {
    const engine = testEngine();
    const server = new Server(Echo, { engine });
    await server.listen(['127.0.0.1', 0]);
    const running = engine.start();
    const client = new Client({ engine, readDelimiter: '\n' });
    await client.connect(['127.0.0.1', portOf(server.localAddress)]);
    const result = await engine.stop();
    await running;
    expect(result.forced).toBe(0);
    expect(server.closed && client.closed).toBe(true);
    expect(engine.channels.size).toBe(0);
  });
});

describe('interoperability with an independent client (Python socket)', () => {
  it('echoes lines to a Python client, which half-closes and still gets every reply', async () => {
    const engine = testEngine();
    const server = new Server(Echo, { engine });
    await server.listen(['127.0.0.1', 0]);
    const out = await python(
      `import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
lines = b''.join(b'line %d\\n' % i for i in range(1000))
s.sendall(lines + b'tail-without-newline')
s.shutdown(socket.SHUT_WR)
data = b''
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
s.close()
assert data == lines + b'tail-without-newline\\n', (len(data), data[-80:])
print('ok', data.count(b'\\n'))`,
      [String(portOf(server.localAddress))],
    );
    expect(out.trim()).toBe('ok 1001');
  });
});

describe('Server errors', () => {
  it('a throwing onAccept is logged and the server keeps serving its connections', async () => {
    const engine = testEngine();
    let first = true;
    class Touchy extends Server {
      override onAccept() {
        if (first) {
          first = false;
          throw new Error('onAccept broke');
        }
      }
    }
    const server = new Touchy(Echo, { engine });
    await server.listen(['127.0.0.1', 0]);
    const port = portOf(server.localAddress);
    const a = new Peer(port);
    await a.write('still served\n');
    await a.untilText('still served\n');
    const b = new Peer(port);
    await b.write('me too\n');
    await b.untilText('me too\n');
    expect(server.listening).toBe(true);
    expect(engine.lines.some((l) => l.includes('onAccept threw: onAccept broke'))).toBe(true);
  });
});
