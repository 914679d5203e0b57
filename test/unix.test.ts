import path from 'node:path';
import { existsSync, lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Client, Connection, Server } from '../src/index.js';
import { ConnectError, ListenError } from '../src/errors.js';
import { Peer, python, tempDir, testEngine } from './helpers.js';

class Echo extends Connection {
  override readDelimiter = '\n';
  override onRead(line: Buffer) {
    this.write(line);
    this.write('\n');
  }
}

/** Leave a socket file behind the way a crashed server does: bound, never unlinked, nobody listening. */
async function leaveStaleSocket(file: string): Promise<void> {
  await python(
    `import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.close()`,
    [file],
  );
}

describe('Unix sockets', () => {
  it('serves a path string and { path }; addresses are the path; the file is removed on close', async () => {
    const engine = testEngine();
    const file = path.join(tempDir(), 'echo.sock');
    const server = new Server(Echo, { engine });
    await server.listen(file);
    expect(server.localAddress).toBe(file);
    expect(lstatSync(file).isSocket()).toBe(true);

    const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
    await client.connect({ path: file });
    expect(client.remoteAddress).toBe(file);
    const [conn] = [...server.connections];
    expect(conn!.localAddress).toBe(file);
    client.write('over unix\n');
    const [line] = await new Promise<unknown[]>((r) => client.once('read', (...a: unknown[]) => r(a)));
    expect(line).toBe('over unix');

    const peer = new Peer(file);
    await peer.write('raw\n');
    await peer.untilText('raw\n');

    await client.close();
    await server.close();
    expect(existsSync(file)).toBe(false);
  });

  it('replaces a stale socket file (connect refused) on listen', async () => {
    const engine = testEngine();
    const file = path.join(tempDir(), 'stale.sock');
    await leaveStaleSocket(file);
    expect(lstatSync(file).isSocket()).toBe(true);
    const server = new Server(Echo, { engine });
    await server.listen(file);
    const peer = new Peer(file);
    await peer.write('fresh\n');
    await peer.untilText('fresh\n');
  });

  it('refuses a path where a live server listens, and leaves that server alone', async () => {
    const engine = testEngine();
    const file = path.join(tempDir(), 'live.sock');
    const live = new Server(Echo, { engine });
    await live.listen(file);
    const intruder = new Server(Echo, { engine });
    const err = await intruder.listen(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListenError);
    expect((err as ListenError).message).toMatch(/another server is listening/);
    expect((err as ListenError).systemCode).toBe('EADDRINUSE');
    const peer = new Peer(file);
    await peer.write('still mine\n');
    await peer.untilText('still mine\n');
  });

  it('refuses a path holding a regular file, and never deletes it', async () => {
    const engine = testEngine();
    const file = path.join(tempDir(), 'precious.txt');
    writeFileSync(file, 'do not delete');
    const server = new Server(Echo, { engine });
    const err = await server.listen(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListenError);
    expect((err as ListenError).message).toMatch(/not a socket/);
    expect(readFileSync(file, 'utf8')).toBe('do not delete');
  });

  it.runIf(process.platform === 'linux')('listens and connects on a Linux abstract name', async () => {
    const engine = testEngine();
    const name = `\0trews-test-${process.pid}-${Date.now()}`;
    const server = new Server(Echo, { engine });
    await server.listen(name);
    const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
    await client.connect(name);
    client.write('abstract\n');
    const [line] = await new Promise<unknown[]>((r) => client.once('read', (...a: unknown[]) => r(a)));
    expect(line).toBe('abstract');
    expect(String(client)).toContain('@trews-test-');
  });

  it('a Python client over the Unix socket gets its echo after half-closing', async () => {
    const engine = testEngine();
    const file = path.join(tempDir(), 'py.sock');
    const server = new Server(Echo, { engine });
    await server.listen(file);
    const out = await python(
      `import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b'a\\nb\\nc')
s.shutdown(socket.SHUT_WR)
data = b''
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode())`,
      [file],
    );
    expect(out).toBe('a\nb\nc\n\n');
  });
});

describe('slips: a host where a Unix path is read', () => {
  for (const slip of ['localhost', 'host:abc']) {
    it(`connect(${JSON.stringify(slip)}) rejects with a ConnectError naming the TCP forms and the Unix path form, through onConnectError then onClose`, async () => {
      const engine = testEngine();
      const hooks: string[] = [];
      class C extends Client {
        override onConnectError(err: ConnectError) {
          hooks.push(`connectError ${err.systemCode}`);
        }
        override onClose() {
          hooks.push('close');
        }
      }
      const err = (await new C({ engine }).connect(slip).catch((e: unknown) => e)) as ConnectError;
      expect(err).toBeInstanceOf(ConnectError);
      expect(err.systemCode).toBe('ENOENT');
      expect(err.message).toContain(`there is no Unix socket ${JSON.stringify(slip)}`);
      expect(err.message).toContain("'host:port', [host, port] or { host, port }");
      expect(err.message).toContain(`'./${slip}' or { path: ${JSON.stringify(slip)} }`);
      await engine.stop();
      expect(hooks).toEqual(['connectError ENOENT', 'close']);
    });
  }

  it('a missing Unix path with a directory part gets the plain ENOENT message', async () => {
    const engine = testEngine();
    const file = path.join(tempDir(), 'missing.sock');
    const err = (await new Client({ engine }).connect(file).catch((e: unknown) => e)) as ConnectError;
    expect(err.systemCode).toBe('ENOENT');
    expect(err.message).toBe(`connect to ${file} failed: ENOENT`);
  });

  it("listen('localhost'), an IP or 'host:abc' throws a TypeError naming the forms instead of making a socket file; a path with a '/' is taken as written", async () => {
    const engine = testEngine();
    for (const slip of ['localhost', '127.0.0.1', '::1', 'host:abc']) {
      expect(() => new Server(Echo, { engine }).listen(slip)).toThrow(TypeError);
      expect(() => new Server(Echo, { engine }).listen(slip)).toThrow(/looks like a host.*'host:port', \[host, port\] or \{ host, port \}.*\{ path: /);
      expect(existsSync(slip)).toBe(false);
    }
    const file = path.join(tempDir(), 'localhost');
    const server = new Server(Echo, { engine });
    await server.listen(file);
    expect(lstatSync(file).isSocket()).toBe(true);
  });
});
