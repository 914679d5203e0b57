import { spawn } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { Client, Connection, Server } from '../src/index.js';
import { TLSError } from '../src/errors.js';
import type { Delimiter } from '../src/framing.js';
import { Peer, deferred, freePort, onCleanup, portOf, pseudoRandomBytes, python, sha256, testEngine } from './helpers.js';
import { hasOpenSSL, testPKI } from './tls-certs.js';

class Echo extends Connection {
  override readDelimiter: Delimiter = '\n';
  override onRead(line: Buffer) {
    this.write(line);
    this.write('\n');
  }
}

async function tlsServer(engine: ReturnType<typeof testEngine>, Conn: typeof Connection = Echo, extra: object = {}) {
  const pki = testPKI();
  const server = new Server(Conn, { engine, tls: { key: pki.key, cert: pki.cert, ...extra } });
  await server.listen(['127.0.0.1', 0]);
  return { server, port: portOf(server.localAddress), pki };
}

function nextRead(channel: Client): Promise<unknown> {
  return new Promise((resolve) => channel.once('read', resolve));
}

describe.runIf(hasOpenSSL())('TLS', () => {
  it('serves TLS to a client that verifies certificate and host name; onTLSHandshake runs before onConnect', async () => {
    const engine = testEngine();
    const serverHooks: string[] = [];
    class Watched extends Echo {
      override onTLSHandshake() {
        serverHooks.push('tlsHandshake');
      }
      override onConnect() {
        serverHooks.push('connect');
      }
    }
    const { port, pki, server } = await tlsServer(engine, Watched);
    expect(server.encrypted).toBe(true);
    const clientHooks: string[] = [];
    const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
    client.on('tlsHandshake', () => clientHooks.push('tlsHandshake'));
    client.on('connect', () => clientHooks.push('connect'));
    await client.connect(`localhost:${port}`, { tls: { ca: pki.ca } });
    expect(client.encrypted).toBe(true);
    client.write('secret\n');
    expect(await nextRead(client)).toBe('secret');
    expect(clientHooks).toEqual(['tlsHandshake', 'connect']);
    expect(serverHooks).toEqual(['tlsHandshake', 'connect']);
  });

  it("keeps a TLS connection's addresses readable in onClose after the peer resets", async () => {
    const engine = testEngine();
    const seen = deferred<{ remote: unknown; local: unknown }>();
    class Watch extends Echo {
      override onClose() {
        seen.resolve({ remote: this.remoteAddress, local: this.localAddress });
      }
    }
    const { port, pki } = await tlsServer(engine, Watch);
    const raw = net.connect({ host: '127.0.0.1', port });
    onCleanup(() => raw.destroy());
    await new Promise((resolve) => raw.once('connect', resolve));
    const secure = tls.connect({ socket: raw, ca: pki.ca, servername: 'localhost' });
    secure.on('error', () => {});
    secure.write('hi\n');
    await new Promise((resolve) => secure.once('data', resolve));
    const peerPort = raw.localPort;
    // Nothing asked for the addresses before the reset.
    raw.resetAndDestroy();
    const info = await seen.promise;
    expect(info.remote).toEqual({ address: '127.0.0.1', port: peerPort, family: 'IPv4' });
    expect(info.local).toEqual({ address: '127.0.0.1', port, family: 'IPv4' });
  });

  it('a Python ssl client verifying against the test CA gets its echoes', async () => {
    const engine = testEngine();
    const { port, pki } = await tlsServer(engine);
    const out = await python(
      `import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(('127.0.0.1', int(sys.argv[1]))) as raw:
    with ctx.wrap_socket(raw, server_hostname='localhost') as s:
        lines = b''.join(b'py %d\\n' % i for i in range(200))
        s.sendall(lines)
        data = b''
        while len(data) < len(lines):
            data += s.recv(65536)
        assert data == lines
        print('ok', s.version())`,
      [String(port), pki.caFile],
    );
    expect(out).toMatch(/^ok TLSv1\.[23]/);
  });

  it('a client refuses a certificate for another host name: onTLSError, then onClose, never onConnect', async () => {
    const engine = testEngine();
    const { port, pki } = await tlsServer(engine);
    const hooks: string[] = [];
    class Careful extends Client {
      override onConnect() {
        hooks.push('connect');
      }
      override onTLSError(err: TLSError) {
        hooks.push(`tlsError:${err.systemCode}`);
      }
      override onClose() {
        hooks.push('close');
      }
    }
    const client = new Careful({ engine });
    const err = await client.connect(['127.0.0.1', port], { tls: { ca: pki.ca, servername: 'wrong.example' } }).catch((e: unknown) => e);
    await client.whenClosed();
    expect(err).toBeInstanceOf(TLSError);
    expect(err).toMatchObject({ code: 'ERR_TREWS_TLS', systemCode: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    expect(hooks).toEqual(['tlsError:ERR_TLS_CERT_ALTNAME_INVALID', 'close']);
  });

  it('verification is on by default: an unknown CA is refused; rejectUnauthorized: false must be explicit', async () => {
    const engine = testEngine();
    const pki = testPKI();
    const server = new Server(Echo, { engine, tls: { key: pki.selfKey, cert: pki.selfCert } });
    await server.listen(['127.0.0.1', 0]);
    const port = portOf(server.localAddress);
    const strict = new Client({ engine });
    const err = await strict.connect(`localhost:${port}`, { tls: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TLSError);
    expect((err as TLSError).systemCode).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY/);
    const lax = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
    await lax.connect(`localhost:${port}`, { tls: { rejectUnauthorized: false } });
    lax.write('trust me\n');
    expect(await nextRead(lax)).toBe('trust me');
  });

  it('a plaintext client hitting a TLS server ends in onTLSError on that connection; the server serves on', async () => {
    const engine = testEngine();
    const seen = deferred<TLSError>();
    const hooks: string[] = [];
    class Strict extends Echo {
      override onConnect() {
        hooks.push('connect');
      }
      override onTLSError(err: TLSError) {
        hooks.push('tlsError');
        seen.resolve(err);
      }
      override onClose() {
        hooks.push('close');
      }
    }
    const { port, pki } = await tlsServer(engine, Strict);
    const plain = new Peer(port);
    await plain.write('GET / HTTP/1.0\r\n\r\n');
    const err = await seen.promise;
    expect(err.code).toBe('ERR_TREWS_TLS');
    await plain.untilClosed();
    await new Promise((r) => setImmediate(r));
    expect(hooks).toEqual(['tlsError', 'close']);
    const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
    await client.connect(`localhost:${port}`, { tls: { ca: pki.ca } });
    client.write('after\n');
    expect(await nextRead(client)).toBe('after');
  });

  it('requires and checks client certificates when asked', async () => {
    const engine = testEngine();
    const pki = testPKI();
    const { port } = await tlsServer(engine, Echo, { ca: pki.ca, requestCert: true });
    const anonymous = new Client({ engine });
    const refused = await anonymous
      .connect(`localhost:${port}`, { tls: { ca: pki.ca } })
      .then(() => new Promise((resolve) => anonymous.once('close', () => resolve('closed'))))
      .catch((e: unknown) => e);
    expect(refused === 'closed' || refused instanceof TLSError).toBe(true);
    const known = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
    await known.connect(`localhost:${port}`, { tls: { ca: pki.ca, key: pki.clientKey, cert: pki.clientCert } });
    known.write('with cert\n');
    expect(await nextRead(known)).toBe('with cert');
  });

  it('8 MiB written then close() arrives intact over TLS', async () => {
    const engine = testEngine();
    const payload = pseudoRandomBytes(8 << 20, 11);
    class Sender extends Connection {
      override onConnect() {
        this.write(payload);
        void this.close();
      }
    }
    const { port, pki } = await tlsServer(engine, Sender);
    const chunks: Buffer[] = [];
    const client = new Client({ engine });
    client.on('read', (chunk: Buffer) => chunks.push(chunk));
    await client.connect(`localhost:${port}`, { tls: { ca: pki.ca } });
    await client.whenClosed();
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(payload));
  });

  it('half-close over TLS: the reply to the last line is not lost', async () => {
    const engine = testEngine();
    const { port, pki } = await tlsServer(engine);
    const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8', allowHalfOpen: true });
    const lines: string[] = [];
    client.on('read', (l: string) => lines.push(l));
    await client.connect(`localhost:${port}`, { tls: { ca: pki.ca } });
    client.write('one\ntwo');
    client.end();
    await client.whenClosed();
    expect(lines).toEqual(['one', 'two']);
  });

  it('writeFile and backpressure work over TLS', async () => {
    const engine = testEngine();
    const drained = deferred();
    let returned: boolean | undefined;
    class Big extends Connection {
      override onConnect() {
        returned = this.write(Buffer.alloc(4 << 20, 'z'));
      }
      override onWrite() {
        drained.resolve();
        void this.close();
      }
    }
    const { port, pki } = await tlsServer(engine, Big);
    let received = 0;
    const client = new Client({ engine });
    client.on('read', (chunk: Buffer) => (received += chunk.length));
    await client.connect(`localhost:${port}`, { tls: { ca: pki.ca } });
    await drained.promise;
    await client.whenClosed();
    expect(returned).toBe(false);
    expect(received).toBe(4 << 20);
  });
});

describe.runIf(hasOpenSSL())('STARTTLS', () => {
  /** A line protocol: `STARTTLS` -> `OK` in plain text, then the server upgrades; other lines echo. */
  class Upgrading extends Connection {
    override readDelimiter: Delimiter = '\n';
    override encoding = 'utf8' as const;
    override onRead(line: string) {
      if (line === 'STARTTLS') {
        this.write('OK\n');
        const pki = testPKI();
        void this.startTLS({ key: pki.key, cert: pki.cert });
      } else {
        this.write(`${this.encrypted ? 'tls' : 'plain'}:${line}\n`);
      }
    }
  }

  it('upgrades both sides of a trews line protocol; hooks and delimiter carry on', async () => {
    const engine = testEngine();
    const server = new Server(Upgrading, { engine });
    await server.listen(['127.0.0.1', 0]);
    const pki = testPKI();
    const got: string[] = [];
    const upgraded = deferred();
    class Upgrader extends Client {
      override readDelimiter: Delimiter = '\n';
      override encoding = 'utf8' as const;
      override onConnect() {
        this.write('hello\nSTARTTLS\n');
      }
      override onRead(line: string) {
        got.push(line);
        if (line === 'OK') {
          void this.startTLS({ ca: pki.ca, servername: 'localhost' }).then(() => {
            this.write('secret\n');
          });
        }
        if (line === 'tls:secret') upgraded.resolve();
      }
    }
    const client = new Upgrader({ engine });
    await client.connect(['127.0.0.1', portOf(server.localAddress)]);
    await upgraded.promise;
    expect(got).toEqual(['plain:hello', 'OK', 'tls:secret']);
    expect(client.encrypted).toBe(true);
    expect(() => client.startTLS({})).toThrow(/already active/);
  });

  it('takes a ClientHello that arrives in the same packet as the STARTTLS line (Python, memory BIO)', async () => {
    const engine = testEngine();
    const server = new Server(Upgrading, { engine });
    await server.listen(['127.0.0.1', 0]);
    const pki = testPKI();
    const out = await python(
      `import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
sock = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, outg, server_hostname='localhost')
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
sock.sendall(b'STARTTLS\\n' + outg.read())   # one segment: command + ClientHello
plain = b''
while not plain.startswith(b'OK\\n'):
    plain += sock.recv(65536)
inc.write(plain[3:])                          # TLS bytes may follow OK in the same read
while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        sock.sendall(outg.read())
        inc.write(sock.recv(65536))
sock.sendall(outg.read())
tls.write(b'over tls\\n')
sock.sendall(outg.read())
reply = b''
while not reply.endswith(b'\\n'):
    try:
        reply += tls.read(4096)
    except ssl.SSLWantReadError:
        inc.write(sock.recv(65536))
print(reply.decode().strip())`,
      [String(portOf(server.localAddress)), pki.caFile],
    );
    expect(out.trim()).toBe('tls:over tls');
  });

  it('startTLS on a closed stream is an error', async () => {
    const engine = testEngine();
    const client = new Client({ engine });
    expect(() => client.startTLS({})).toThrow(/needs an open stream/);
  });
});

describe.runIf(hasOpenSSL())('TLS interoperability with openssl', () => {
  it('a trews client talks to `openssl s_server -rev`', async () => {
    const engine = testEngine();
    const pki = testPKI();
    const port = await freePort();
    const child = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-key', `${pki.dir}/server.key`, '-cert', `${pki.dir}/server.crt`, '-rev'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    onCleanup(() => child.kill('SIGKILL'));
    // s_server prints ACCEPT once it listens.
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      child.stdout.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('ACCEPT')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`openssl s_server exited with ${code}`)));
    });
    const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
    await client.connect(`localhost:${port}`, { tls: { ca: pki.ca } });
    client.write('trews\n');
    expect(await nextRead(client)).toBe('swert');
  });

  it('`openssl s_client` talks to a trews TLS server', async () => {
    const engine = testEngine();
    const { port, pki } = await tlsServer(engine);
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', pki.caFile, '-verify_return_error', '-quiet', '-servername', 'localhost'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    onCleanup(() => child.kill('SIGKILL'));
    let out = '';
    const got = deferred();
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('from openssl\n')) got.resolve();
    });
    child.stdin.write('from openssl\n');
    await got.promise;
    expect(out).toBe('from openssl\n');
  });
});


