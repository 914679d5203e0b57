/**
 * examples/tls-echo: the upper-casing TLS echo in-process (port 0, test PKI), its client,
 * the dev-certificate helper, and `main.ts` run as a real process (as `npx tsx` would) and
 * stopped with Ctrl-C's SIGINT.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Client, TLSError } from '../../src/index.js';
import { UpperEcho, startTlsEcho } from '../../examples/tls-echo/server.js';
import { EchoClient, askTlsEcho } from '../../examples/tls-echo/client.js';
import { credentialsFromEnv, makeDevCertificate } from '../../examples/shared/dev-cert.js';
import { freePort, onCleanup, python, testEngine } from '../helpers.js';
import { hasOpenSSL, testPKI } from '../tls-certs.js';
import { runExample, runToEnd } from './helpers.js';

describe.runIf(hasOpenSSL())('examples/tls-echo', () => {
  async function start() {
    const engine = testEngine();
    const pki = testPKI();
    const echo = await startTlsEcho({ port: 0, host: '127.0.0.1', key: pki.key, cert: pki.cert, engine });
    onCleanup(() => echo.close());
    return { engine, pki, echo };
  }

  it('echoes lines in capitals to a client that verifies the certificate', async () => {
    const { engine, pki, echo } = await start();
    expect(echo.server.encrypted).toBe(true);
    expect(await askTlsEcho('hello, tls', { port: echo.port, ca: pki.ca, engine })).toBe('HELLO, TLS');

    // Several lines in flight on one connection come back in order; \r\n is accepted.
    const client = new EchoClient({ engine });
    await client.connect(['localhost', echo.port], { tls: { ca: pki.ca } });
    expect(client.encrypted).toBe(true);
    const replies = await Promise.all(['one', 'two\r', 'ünïcödé'].map((line) => client.ask(line)));
    expect(replies).toEqual(['ONE', 'TWO', 'ÜNÏCÖDÉ']);
    expect(echo.server.connections.size).toBe(1);
    const [connection] = echo.server.connections;
    expect(connection).toBeInstanceOf(UpperEcho);
    expect(connection!.encrypted).toBe(true);
    await client.close();
  });

  it('the client refuses a server its CA does not vouch for (verification is on)', async () => {
    const { engine, echo } = await start();
    // No `ca`: Node's bundled CAs do not know the test CA.
    const err = await askTlsEcho('hi', { port: echo.port, engine }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TLSError);
    expect((err as TLSError).systemCode).toMatch(/UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
    // The right CA but the wrong host name.
    const wrongName = new Client({ engine });
    const err2 = await wrongName.connect(['127.0.0.1', echo.port], { tls: { ca: testPKI().ca, servername: 'example.com' } }).catch((e: unknown) => e);
    expect((err2 as TLSError).systemCode).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    // The server carries on.
    expect(await askTlsEcho('still here', { port: echo.port, ca: testPKI().ca, engine })).toBe('STILL HERE');
  });

  it('a Python ssl client verifying against the test CA gets its lines in capitals', async () => {
    const { pki, echo } = await start();
    const out = await python(
      `import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(('127.0.0.1', int(sys.argv[1]))) as raw:
    with ctx.wrap_socket(raw, server_hostname='localhost') as s:
        s.sendall(b''.join(b'line %d from python\\n' % i for i in range(100)))
        want = b''.join(b'LINE %d FROM PYTHON\\n' % i for i in range(100))
        data = b''
        while len(data) < len(want):
            data += s.recv(65536)
        assert data == want, data[:200]
        print('ok', s.version())`,
      [String(echo.port), pki.caFile],
    );
    expect(out).toMatch(/^ok TLSv1\.[23]/);
  });

  it('makeDevCertificate makes a self-signed localhost certificate a verifying client accepts', async () => {
    const engine = testEngine();
    const dev = makeDevCertificate();
    onCleanup(() => dev.remove());
    expect(existsSync(dev.keyFile) && existsSync(dev.certFile)).toBe(true);
    const echo = await startTlsEcho({ port: 0, key: dev.key, cert: dev.cert, engine });
    onCleanup(() => echo.close());
    // The self-signed certificate is its own CA; it names localhost and 127.0.0.1.
    expect(await askTlsEcho('dev cert', { port: echo.port, ca: dev.cert, engine })).toBe('DEV CERT');
    expect(await askTlsEcho('by ip', { host: '127.0.0.1', port: echo.port, ca: dev.cert, engine })).toBe('BY IP');
    dev.remove();
    expect(existsSync(dev.dir)).toBe(false);
  });

  it('credentialsFromEnv reads TLS_KEY/TLS_CERT, and wants both or neither', () => {
    const pki = testPKI();
    const own = credentialsFromEnv({ TLS_KEY: path.join(pki.dir, 'server.key'), TLS_CERT: path.join(pki.dir, 'server.crt') });
    expect(own).toMatchObject({ key: pki.key, cert: pki.cert, generated: false, dir: null });
    expect(() => credentialsFromEnv({ TLS_KEY: path.join(pki.dir, 'server.key') })).toThrow(/both TLS_KEY and TLS_CERT/);
    const generated = credentialsFromEnv({});
    onCleanup(() => generated.remove());
    expect(generated.generated).toBe(true);
    expect(generated.cert).toContain('BEGIN CERTIFICATE');
  });

  it('main.ts: serves the given key/cert on PORT, talks to client.ts and a trews Client, exits 0 on SIGINT', async () => {
    const engine = testEngine();
    const pki = testPKI();
    const port = await freePort();
    const main = await runExample('examples/tls-echo/main.ts', {
      PORT: String(port),
      TLS_KEY: path.join(pki.dir, 'server.key'),
      TLS_CERT: path.join(pki.dir, 'server.crt'),
    });
    expect(main.stdout()).toContain(`listening on port ${port}`);
    expect(main.stdout()).toContain(`openssl s_client -connect localhost:${port} -quiet`);
    expect(main.stdout()).not.toContain('throwaway');

    // The example client, as its own process, verifying against the test CA.
    const client = await runToEnd('examples/tls-echo/client.ts', ['from', 'client.ts'], { PORT: String(port), TLS_CA: pki.caFile });
    expect(client).toEqual({ code: 0, stdout: 'sent:  from client.ts\nreply: FROM CLIENT.TS\n', stderr: '' });

    // A trews client that stays connected: Ctrl-C still stops the server promptly.
    const open = new EchoClient({ engine });
    await open.connect(`localhost:${port}`, { tls: { ca: pki.ca } });
    expect(await open.ask('before sigint')).toBe('BEFORE SIGINT');
    const { code, signal } = await main.interrupt();
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(main.stdout()).toMatch(/bye\n$/);
    await open.whenClosed();
    expect(main.stderr()).toBe('');
  });
});
