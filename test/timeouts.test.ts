import { describe, expect, it } from 'vitest';
import { Client, Connection, Server, type Engine } from '../src/index.js';
import { Peer, deferred, portOf, testEngine } from './helpers.js';

class Sink extends Connection {
  override readDelimiter = '\n';
}

async function accepted(server: Server<Connection>): Promise<Connection> {
  return new Promise((resolve) => server.once('accept', resolve));
}

/** Serve `Conn` on 127.0.0.1:0 and connect one plain peer; resolves with the accepted connection. */
async function serveOne(engine: Engine, Conn: typeof Connection, options: object = {}, peerOptions = {}) {
  const server = new Server(Conn, { engine, ...options });
  await server.listen(['127.0.0.1', 0]);
  const gotConnection = accepted(server);
  const peer = new Peer(portOf(server.localAddress), peerOptions);
  return { server, peer, conn: await gotConnection };
}

describe('inactivity timeouts on the Engine clock', () => {
  it('idleTimeout fires onTimeout("idle") exactly when the virtual clock reaches it; the default closes', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const kinds: string[] = [];
    class Idle extends Sink {
      override onTimeout(kind: 'idle' | 'read') {
        kinds.push(kind);
        super.onTimeout(kind);
      }
    }
    const { peer, conn } = await serveOne(engine, Idle, { connectionOptions: { idleTimeout: 1000 } });
    engine.advance(999);
    expect(kinds).toEqual([]);
    engine.advance(1);
    expect(kinds).toEqual(['idle']);
    await conn.whenClosed();
    await peer.untilClosed();
  });

  it('reads push a readTimeout back; writes do not', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const kinds: string[] = [];
    class Reader extends Sink {
      override onTimeout(kind: 'idle' | 'read') {
        kinds.push(kind);
      }
    }
    const { peer, conn } = await serveOne(engine, Reader, { connectionOptions: { readTimeout: 100 } });
    engine.advance(60);
    const read = new Promise((r) => conn.once('read', r));
    await peer.write('ping\n');
    await read;
    engine.advance(60); // 120 since connect, 60 since the read
    conn.write('we write, but that is not reading\n');
    expect(kinds).toEqual([]);
    engine.advance(40);
    expect(kinds).toEqual(['read']);
    // The hook kept the channel: the next period starts from the timeout.
    engine.advance(99);
    expect(kinds).toEqual(['read']);
    engine.advance(1);
    expect(kinds).toEqual(['read', 'read']);
    expect(conn.connected).toBe(true);
  });

  it('idleTimeout can be set and cleared on an open channel', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const server = new Server(Sink, { engine });
    await server.listen(['127.0.0.1', 0]);
    const client = new Client({ engine });
    const timeouts: string[] = [];
    client.on('timeout', (kind) => timeouts.push(kind));
    await client.connect(['127.0.0.1', portOf(server.localAddress)]);
    client.onTimeout = () => {};
    client.idleTimeout = 50;
    engine.advance(50);
    expect(timeouts).toEqual(['idle']);
    client.idleTimeout = 0;
    engine.advance(1000);
    expect(timeouts).toEqual(['idle']);
    expect(() => {
      client.idleTimeout = -1;
    }).toThrow(RangeError);
  });

  it('a real-clock idle timeout closes a silent connection', async () => {
    const engine = testEngine();
    const server = new Server(Sink, { engine, connectionOptions: { idleTimeout: 50 } });
    await server.listen(['127.0.0.1', 0]);
    const peer = new Peer(portOf(server.localAddress));
    const started = performance.now();
    await peer.untilClosed();
    expect(performance.now() - started).toBeGreaterThanOrEqual(40);
  });
});

describe('bounded closes', () => {
  it('close({ timeout }) to a peer that never finishes ends by itself and is marked forced', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const { peer, conn } = await serveOne(engine, Sink, {}, { allowHalfOpen: true });
    conn.write('last words\n');
    const closed = conn.close({ timeout: 500 });
    await peer.until(() => peer.ended, 'FIN');
    expect(conn.closed).toBe(false);
    engine.advance(500);
    await closed;
    expect(conn.forced).toBe(true);
    expect(peer.text).toBe('last words\n');
  });

  it('the close bound is on stalls: a slow reader that keeps taking data is not cut off', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const { peer, conn } = await serveOne(engine, Sink, {}, { allowHalfOpen: true });
    peer.socket.pause();
    conn.write(Buffer.alloc(32 << 20, 'x'));
    const closed = conn.close({ timeout: 1000 });
    // Let the kernel buffers fill while the peer reads nothing.
    while (conn.bytesWritten === 0) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    const stalledAt = conn.bytesWritten;
    engine.advance(999);
    // The peer reads until the kernel takes more of ours: progress.
    peer.socket.resume();
    while (conn.bytesWritten <= stalledAt) await new Promise((r) => setImmediate(r));
    peer.socket.pause();
    expect(conn.bufferedBytes).toBeGreaterThan(0);
    engine.advance(1);
    expect(conn.closed).toBe(false);
    expect(conn.forced).toBe(false);
    // Now it stalls for a whole period: forced.
    engine.advance(1000);
    await closed;
    expect(conn.forced).toBe(true);
  });

  it('Server.close() with stuck peers finishes in bounded time and says how many were forced', async () => {
    const engine = testEngine();
    const server = new Server(Sink, { engine });
    await server.listen(['127.0.0.1', 0]);
    const port = portOf(server.localAddress);
    const stuck = [new Peer(port, { allowHalfOpen: true }), new Peer(port, { allowHalfOpen: true })];
    const polite = new Peer(port);
    await Promise.all([...stuck, polite].map((p) => p.connected()));
    while (server.connections.size < 3) await new Promise((r) => server.once('accept', r));
    const result = await server.close({ timeout: 100 });
    expect(result).toEqual({ forced: 2 });
    await polite.untilClosed();
    // The stuck peers keep their side open; they saw our FIN all the same.
    await Promise.all(stuck.map((p) => p.until(() => p.ended, 'FIN')));
  });

  it('Engine.stop() reports forced closes too', async () => {
    const engine = testEngine();
    const done = deferred<Connection>();
    class Slow extends Sink {
      override onConnect() {
        this.closeTimeout = 50;
        done.resolve(this);
      }
    }
    const server = new Server(Slow, { engine });
    await server.listen(['127.0.0.1', 0]);
    new Peer(portOf(server.localAddress), { allowHalfOpen: true });
    await done.promise;
    const { forced } = await engine.stop();
    expect(forced).toBe(1);
  });

  it('close() rejects a bad timeout with a RangeError', () => {
    const engine = testEngine();
    const client = new Client({ engine });
    expect(() => client.close({ timeout: 0 })).toThrow(RangeError);
  });
});

describe('connect and handshake bounds', () => {
  it('a TLS handshake that never starts ends in onTLSError(ETIMEDOUT) at handshakeTimeout on the Engine clock', async () => {
    const { hasOpenSSL, testPKI } = await import('./tls-certs.js');
    if (!hasOpenSSL()) return; // no openssl to make certificates with: nothing to test
    const engine = testEngine({ clock: 'virtual' });
    const pki = testPKI();
    const seen = deferred<Error>();
    class Tls extends Sink {
      override onTLSError(err: Error) {
        seen.resolve(err);
      }
    }
    const server = new Server(Tls, { engine, tls: { key: pki.key, cert: pki.cert, handshakeTimeout: 1000 } });
    await server.listen(['127.0.0.1', 0]);
    const silent = new Peer(portOf(server.localAddress));
    await silent.connected();
    while (engine.channels.size < 2) await new Promise((r) => setImmediate(r));
    engine.advance(999);
    engine.advance(1);
    expect(await seen.promise).toMatchObject({ code: 'ERR_TREWS_TLS', systemCode: 'ETIMEDOUT' });
    await silent.untilClosed();
  });

  it('a connect that gets no answer fails with ETIMEDOUT after its timeout', async () => {
    const engine = testEngine();
    // A listener that never accepts, with its queue filled: further SYNs go unanswered.
    const { spawn } = await import('node:child_process');
    const child = spawn('python3', ['-c', `import socket, sys, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
print(s.getsockname()[1], flush=True)
sys.stdin.read()`], { stdio: ['pipe', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
    // listen(0) queues one connection; the next ones get no answer (not awaited: they hang too).
    const first = new Peer(port);
    await first.connected();
    new Peer(port);
    new Peer(port);
    try {
      const client = new Client({ engine });
      const err = await client.connect(['127.0.0.1', port], { timeout: 300 }).then(
        () => null,
        (e: unknown) => e,
      );
      if (err === null) return; // this kernel answered anyway: nothing left to time out
      expect(err).toMatchObject({ code: 'ERR_TREWS_CONNECT', systemCode: 'ETIMEDOUT' });
    } finally {
      child.stdin.end();
      child.kill();
    }
  });
});
