/**
 * examples/starttls: the SMTP-flavoured STARTTLS example in-process (port 0, test PKI) with
 * its client, Python's ssl and `openssl s_client -starttls smtp` as peers, the frame
 * boundary rule (plain-text bytes after STARTTLS never run as commands), and `main.ts` run
 * as a real process and stopped with Ctrl-C's SIGINT.
 */
import path from 'node:path';
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { TLSError } from '../../src/index.js';
import { StartTlsConnection, startStartTlsServer } from '../../examples/starttls/server.js';
import { StartTlsClient, runSession } from '../../examples/starttls/client.js';
import { Peer, deferred, freePort, onCleanup, python, testEngine } from '../helpers.js';
import { hasOpenSSL, testPKI } from '../tls-certs.js';
import { runExample, runToEnd } from './helpers.js';

const SESSION = [
  'S: 220 ready',
  'C: STARTTLS',
  'S: 220 go ahead',
  '-- TLS handshake done: encrypted from here on --',
  'C: HELLO alice',
  'S: 250 hello alice (tls)',
  'C: QUIT',
  'S: 221 bye',
];

describe.runIf(hasOpenSSL())('examples/starttls', () => {
  async function start(credentials?: { key: string; cert: string }) {
    const engine = testEngine();
    const pki = testPKI();
    const running = await startStartTlsServer({ port: 0, host: '127.0.0.1', ...(credentials ?? { key: pki.key, cert: pki.cert }), engine });
    onCleanup(() => running.close());
    return { engine, pki, running };
  }

  it('a whole session: plain greeting, STARTTLS, then HELLO and QUIT over verified TLS', async () => {
    const { engine, pki, running } = await start();
    const upgraded = deferred<StartTlsConnection>();
    running.server.on('accept', (connection) => connection.on('tlsHandshake', () => upgraded.resolve(connection)));
    const transcript = await runSession('127.0.0.1', running.port, { name: 'alice', ca: pki.ca, engine });
    expect(transcript).toEqual(SESSION);
    const connection = await upgraded.promise;
    expect(connection.encrypted).toBe(true);
    await connection.whenClosed();
    expect(running.server.connections.size).toBe(0);
    expect(engine.lines).toEqual([]);
  });

  it('the client ends up encrypted, and the server says (tls) only once it is', async () => {
    const { engine, pki, running } = await start();
    const client = new StartTlsClient({ name: 'bob', ca: pki.ca, engine });
    const encryptedAtReply: boolean[] = [];
    client.on('read', (line: string) => line.startsWith('250') && encryptedAtReply.push(client.encrypted));
    await client.connect(['localhost', running.port]);
    expect(client.encrypted).toBe(false);
    await client.whenClosed();
    expect(client.failure).toBeNull();
    expect(encryptedAtReply).toEqual([true]);
  });

  it('plain-text phase: EHLO offers STARTTLS, HELLO is refused until TLS, unknown commands get 500', async () => {
    const { running } = await start();
    const peer = new Peer(running.port);
    await peer.untilText('220 ready\n');
    await peer.write('EHLO me\r\nHELLO early\r\nNOOP\r\nQUIT\r\n');
    await peer.untilClosed();
    expect(peer.text).toBe('220 ready\n250-trews starttls example\n250 STARTTLS\n530 send STARTTLS first\n500 unknown command\n221 bye\n');
  });

  it('frame boundary: commands sent in plain text after STARTTLS go to the TLS layer, never run', async () => {
    // The classic STARTTLS injection: a man in the middle appends a command to the client's
    // STARTTLS packet, hoping the server runs it as if it came over TLS. Here those bytes are
    // handed to the TLS layer, which rejects them as a handshake: the session ends.
    const { running } = await start();
    const tlsErrors: TLSError[] = [];
    running.server.on('accept', (connection) => connection.on('tlsError', (err) => tlsErrors.push(err)));
    const peer = new Peer(running.port);
    await peer.untilText('220 ready\n');
    await peer.write('STARTTLS\r\nHELLO mallory\r\nQUIT\r\n');
    await peer.untilClosed();
    expect(peer.text).toBe('220 ready\n220 go ahead\n');
    expect(tlsErrors).toHaveLength(1);
    expect(tlsErrors[0]!.code).toBe('ERR_TREWS_TLS');
  });

  it('the client refuses a certificate no trusted CA signed: onTLSError, session not completed', async () => {
    const pki = testPKI();
    const { engine, running } = await start({ key: pki.selfKey, cert: pki.selfCert });
    const err = await runSession('127.0.0.1', running.port, { name: 'eve', ca: pki.ca, engine }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TLSError);
    expect((err as TLSError).systemCode).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY/);
    expect((err as { transcript: string[] }).transcript).toEqual(SESSION.slice(0, 3));
  });

  it('a Python client does the exchange with ssl.wrap_socket after the go-ahead', async () => {
    const { pki, running } = await start();
    const out = await python(
      `import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
raw = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
def line(sock):
    data = b''
    while not data.endswith(b'\\n'):
        c = sock.recv(1)
        if not c: raise EOFError(data)
        data += c
    return data.decode().rstrip()
print(line(raw))
raw.sendall(b'STARTTLS\\r\\n')
print(line(raw))
s = ctx.wrap_socket(raw, server_hostname='localhost')
s.sendall(b'HELLO python\\r\\n')
print(line(s))
s.sendall(b'QUIT\\r\\n')
print(line(s))
print(s.version())`,
      [String(running.port), pki.caFile],
    );
    expect(out).toMatch(/^220 ready\n220 go ahead\n250 hello python \(tls\)\n221 bye\nTLSv1\.[23]\n$/);
  });

  it('`openssl s_client -starttls smtp` upgrades and talks to it', async () => {
    const { pki, running } = await start();
    const child = spawn(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${running.port}`, '-starttls', 'smtp', '-servername', 'localhost', '-verify_hostname', 'localhost',
        '-CAfile', pki.caFile, '-verify_return_error', '-quiet'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    onCleanup(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    // s_client reads stdin only once TLS is up: these lines go out encrypted.
    child.stdin.write('HELLO openssl\nQUIT\n');
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(out).toContain('250 hello openssl (tls)\n221 bye\n');
    expect(code).toBe(0);
  });

  it('main.ts: serves STARTTLS with the given key/cert on PORT, client.ts completes a session, exits 0 on SIGINT', async () => {
    const pki = testPKI();
    const port = await freePort();
    const main = await runExample('examples/starttls/main.ts', {
      PORT: String(port),
      TLS_KEY: path.join(pki.dir, 'server.key'),
      TLS_CERT: path.join(pki.dir, 'server.crt'),
    });
    expect(main.stdout()).toContain(`listening on port ${port}`);
    expect(main.stdout()).not.toContain('throwaway');
    const client = await runToEnd('examples/starttls/client.ts', ['alice'], { PORT: String(port), TLS_CA: pki.caFile });
    expect(client).toEqual({ code: 0, stdout: SESSION.join('\n') + '\n', stderr: '' });
    // A plain-text client left connected does not hold up Ctrl-C.
    const idle = new Peer(port);
    await idle.untilText('220 ready\n');
    const { code, signal } = await main.interrupt();
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(main.stdout()).toMatch(/bye\n$/);
    expect(main.stderr()).toBe('');
    await idle.untilClosed();
  });
});
