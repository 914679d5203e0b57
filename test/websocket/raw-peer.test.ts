/**
 * trews/websocket against a raw-socket Python client that does the handshake and masking by
 * hand (no WebSocket library), and curl for a refused upgrade.
 */
import { Buffer } from 'node:buffer';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { WebSocketConnection, WebSocketServer } from '../../src/websocket/index.js';
import { frame, serverFrameHeader } from '../../src/websocket/protocol.js';
import type { OverflowError, ReadError } from '../../src/errors.js';
import { Peer, deferred, portOf, python, pythonProcess, testEngine } from '../helpers.js';
import type { Engine } from '../../src/engine.js';

/**
 * argv: host port actions-json [answer-pings] ; actions: [opcode, payload-hex, fin, masked].
 * Prints JSON: the handshake status, whether Sec-WebSocket-Accept was right, and every frame
 * received ([opcode, payload-hex]) until the server closes the connection.
 */
const PY_CLIENT = String.raw`
import base64, hashlib, json, os, socket, struct, sys
host, port, actions = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
answer_pings = len(sys.argv) < 5 or sys.argv[4] == 'yes'
early = len(sys.argv) > 5 and sys.argv[5] == 'early'
s = socket.create_connection((host, port), timeout=10)
key = base64.b64encode(os.urandom(16)).decode()
request = ('GET /raw HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
           'Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n' % (host, port, key)).encode()
def frame(opcode, payload, fin=True, masked=True):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    m = 0x80 if masked else 0
    if n < 126: head = struct.pack('!BB', b0, m | n)
    elif n < 65536: head = struct.pack('!BBH', b0, m | 126, n)
    else: head = struct.pack('!BBQ', b0, m | 127, n)
    if not masked: return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

frames_out = b''.join(frame(op, bytes.fromhex(p), fin, masked) for op, p, fin, masked in actions)
# 'early': the frames go in the same packet as the request, before the server's reply.
s.sendall(request + frames_out if early else request)
buf = b''
while b'\r\n\r\n' not in buf:
    data = s.recv(4096)
    if not data: break
    buf += data
head, _, buf = buf.partition(b'\r\n\r\n')
lines = head.decode('latin1').split('\r\n')
headers = dict((k.strip().lower(), v.strip()) for k, v in (l.split(':', 1) for l in lines[1:]))
expected = base64.b64encode(hashlib.sha1((key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').encode()).digest()).decode()

if not early: s.sendall(frames_out)

def need(n):
    global buf
    while len(buf) < n:
        data = s.recv(65536)
        if not data: raise EOFError
        buf += data
    out, buf = buf[:n], buf[n:]
    return out

frames = []
try:
    while True:
        b0, b1 = need(2)
        n = b1 & 0x7f
        if n == 126: n = struct.unpack('!H', need(2))[0]
        elif n == 127: n = struct.unpack('!Q', need(8))[0]
        payload = need(n)
        opcode = b0 & 0x0f
        frames.append([opcode, payload.hex()])
        if opcode == 9 and answer_pings: s.sendall(frame(10, payload))
        if opcode == 8: s.sendall(frame(8, payload[:2]))
except (EOFError, ConnectionResetError):
    pass
print(json.dumps({'status': lines[0], 'acceptOk': headers.get('sec-websocket-accept') == expected, 'frames': frames}))
`;

type Action = [opcode: number, payload: Buffer | string, fin?: boolean, masked?: boolean];
interface RawResult {
  status: string;
  acceptOk: boolean;
  frames: Array<[number, string]>;
}

async function rawClient(port: number, actions: Action[], answerPings = true, early = false): Promise<RawResult> {
  const json = JSON.stringify(actions.map(([op, payload, fin = true, masked = true]) => [op, Buffer.from(payload).toString('hex'), fin, masked]));
  return JSON.parse(await python(PY_CLIENT, ['127.0.0.1', String(port), json, answerPings ? 'yes' : 'no', early ? 'early' : 'after'])) as RawResult;
}

function closeFrame(code: number, reason = ''): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code);
  payload.write(reason, 2);
  return payload;
}

/** [code, reason] of a close frame's payload (hex). */
function closeOf(hex: string): [number, string] {
  const payload = Buffer.from(hex, 'hex');
  return [payload.readUInt16BE(0), payload.subarray(2).toString()];
}

async function serve(engine: Engine, Conn: typeof WebSocketConnection, options: ConstructorParameters<typeof WebSocketServer>[1] = {}) {
  const server = new WebSocketServer(Conn, { engine, ...options });
  await server.listen(['127.0.0.1', 0]);
  return { server, port: portOf(server.localAddress) };
}

class Echo extends WebSocketConnection {
  override onRead(message: string | Buffer): void {
    this.write(message);
  }
}

describe('WebSocketServer with a raw Python client', () => {
  it('handshakes, echoes fragmented text and binary, answers pings, closes with the peer’s code', async () => {
    const engine = testEngine();
    const closed = deferred<number | null>();
    class Conn extends Echo {
      override onClose(): void {
        closed.resolve(this.closeCode);
      }
    }
    const { server, port } = await serve(engine, Conn);
    const out = await rawClient(port, [
      [1, 'hel', false],
      [9, 'pi'], // a ping between fragments
      [0, 'lo ✓', true],
      [2, Buffer.from([1, 2, 3])],
      [8, closeFrame(1000, 'done')],
    ]);
    expect(out.status).toBe('HTTP/1.1 101 Switching Protocols');
    expect(out.acceptOk).toBe(true);
    expect(out.frames).toEqual([
      [10, Buffer.from('pi').toString('hex')],
      [1, Buffer.from('hello ✓').toString('hex')],
      [2, '010203'],
      [8, closeFrame(1000, 'done').toString('hex')],
    ]);
    expect(await closed.promise).toBe(1000);
    await server.close();
  });

  it('reads frames sent in the same packet as the upgrade request', async () => {
    const engine = testEngine();
    const { server, port } = await serve(engine, Echo);
    const out = await rawClient(port, [[1, 'eager'], [8, closeFrame(1000)]], true, true);
    expect(out.status).toBe('HTTP/1.1 101 Switching Protocols');
    expect(out.frames).toEqual([
      [1, Buffer.from('eager').toString('hex')],
      [8, closeFrame(1000).toString('hex')],
    ]);
    await server.close();
  });

  it('reads whole frames of one chunk in order, with 7- and 16-bit lengths, around a ping and a fragmented message', async () => {
    const engine = testEngine();
    const { server, port } = await serve(engine, Echo);
    const binary = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
    const big = 'é'.repeat(20_000);
    const out = await rawClient(port, [
      [1, 'a'],
      [1, ''],
      [1, 'ü✓'.repeat(40)], // 200 bytes: a 16-bit length
      [2, binary],
      [9, 'p'],
      [1, 'after the ping'],
      [1, 'frag', false],
      [0, 'ment', true],
      [1, big],
      [1, 'last'],
      [8, closeFrame(1000)],
    ]);
    const text = (s: string): [number, string] => [1, Buffer.from(s).toString('hex')];
    expect(out.frames).toEqual([
      text('a'),
      text(''),
      text('ü✓'.repeat(40)),
      [2, binary.toString('hex')],
      [10, Buffer.from('p').toString('hex')],
      text('after the ping'),
      text('fragment'),
      text(big),
      text('last'),
      [8, closeFrame(1000).toString('hex')],
    ]);
    await server.close();
  });

  it('after whole frames, a partial frame or an unfinished fragmented message stays with the parser: a whole data frame inside the message fails it (1002)', async () => {
    const engine = testEngine();
    const { server, port } = await serve(engine, Echo);
    /** A small client frame, masked with key 1 2 3 4. */
    const clientFrame = (opcode: number, text: string, fin = true) => {
      const payload = Buffer.from(text).map((byte, i) => byte ^ (i % 4) + 1);
      return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | payload.length, 1, 2, 3, 4]), payload]);
    };
    const peer = new Peer(port);
    await peer.write('GET /raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    await peer.untilText('\r\n\r\n');
    const start = peer.received.length;
    const echoed = () => peer.received.subarray(start).toString('latin1');
    const split = clientFrame(1, 'bb');
    await peer.write(Buffer.concat([clientFrame(1, 'a'), split.subarray(0, 3)]));
    await peer.until(() => echoed() === '\x81\x01a', "'a'");
    await peer.write(Buffer.concat([split.subarray(3), clientFrame(1, 'c')]));
    await peer.until(() => echoed() === '\x81\x01a\x81\x02bb\x81\x01c', "'bb', 'c'");
    await peer.write(Buffer.concat([clientFrame(1, 'd'), clientFrame(1, 'frag', false)]));
    await peer.until(() => echoed().endsWith('\x81\x01d'), "'d'");
    // A new text frame before the message's last fragment: a protocol error, not a message.
    await peer.write(clientFrame(1, 'whole'));
    await peer.untilClosed();
    expect(echoed()).toBe('\x81\x01a\x81\x02bb\x81\x01c\x81\x01d\x88\x02\x03\xea');
    await server.close();
  });

  it.each([0, 1, 125, 126, 65_535, 65_536, 1 << 20])('a server frame header for %d payload bytes is the one ws makes', (size) => {
    for (const opcode of [1, 2]) {
      const [header] = frame(opcode, Buffer.alloc(size), false, false);
      expect(serverFrameHeader(opcode, size)).toEqual(header);
    }
  });

  it('closes with 1007 on invalid UTF-8, after onReadError', async () => {
    const engine = testEngine();
    const seen: string[] = [];
    class Conn extends Echo {
      override onReadError(err: ReadError): void {
        seen.push(`readError:${err.code}`);
      }
      override onClose(): void {
        seen.push(`close:${this.closeCode}`);
      }
    }
    const { server, port } = await serve(engine, Conn);
    const out = await rawClient(port, [[1, 'ok'], [1, Buffer.from([0x61, 0xff, 0xfe])]]);
    expect(out.frames[0]).toEqual([1, Buffer.from('ok').toString('hex')]);
    expect(out.frames.length).toBe(2);
    expect(out.frames[1]![0]).toBe(8);
    expect(closeOf(out.frames[1]![1])[0]).toBe(1007);
    await server.close();
    expect(seen).toEqual(['readError:ERR_TREWS_READ', 'close:1007']);
  });

  it('closes with 1009 on a message over bufferSize (exactly bufferSize passes)', async () => {
    const engine = testEngine();
    const overflow = deferred<OverflowError>();
    class Conn extends WebSocketConnection {
      override bufferSize = 1000;
      override onRead(message: Buffer): void {
        this.write(String(message.length));
      }
      override onOverflowError(err: OverflowError): void {
        overflow.resolve(err);
      }
    }
    const { server, port } = await serve(engine, Conn);
    const out = await rawClient(port, [
      [2, Buffer.alloc(1000)],
      [2, Buffer.alloc(600), false],
      [0, Buffer.alloc(401), true],
    ]);
    expect(out.frames[0]).toEqual([1, Buffer.from('1000').toString('hex')]);
    expect(out.frames[1]![0]).toBe(8);
    expect(closeOf(out.frames[1]![1])[0]).toBe(1009);
    const err = await overflow.promise;
    expect([err.limit, err.size]).toEqual([1000, 1001]);
    await server.close();
  });

  it('closes with 1002 on an unmasked client frame', async () => {
    const engine = testEngine();
    const { server, port } = await serve(engine, Echo);
    const out = await rawClient(port, [[1, 'bare', true, false]]);
    expect(out.frames.map(([op, hex]) => (op === 8 ? closeOf(hex)[0] : op))).toEqual([1002]);
    await server.close();
  });

  it('drops a client that never answers pings (onTimeout ping, code 1006)', async () => {
    const engine = testEngine();
    const timeouts: string[] = [];
    const closed = deferred<number | null>();
    class Conn extends WebSocketConnection {
      override pingInterval = 40;
      override pingTimeout = 100;
      override onTimeout(kind: 'idle' | 'read' | 'ping'): void {
        timeouts.push(kind);
        super.onTimeout(kind);
      }
      override onClose(): void {
        closed.resolve(this.closeCode);
      }
    }
    const { server, port } = await serve(engine, Conn);
    const out = await rawClient(port, [], false);
    expect(out.frames.length).toBeGreaterThanOrEqual(1);
    expect(out.frames.every(([op]) => op === 9)).toBe(true);
    expect(await closed.promise).toBe(1006);
    expect(timeouts).toEqual(['ping']);
    await server.close();
  });

  it('a peer that floods pings and never reads gets no more pongs than the high-water mark allows', async () => {
    const engine = testEngine();
    const PINGS = 100_000; // 12.7 MB of pings: far more than the kernel buffers absorb
    const accepted = deferred<WebSocketConnection>();
    class Conn extends WebSocketConnection {
      override writeHighWaterMark = 16 * 1024;
    }
    const { server, port } = await serve(engine, Conn);
    server.on('accept', (connection) => accepted.resolve(connection));
    const flood = String.raw`
import base64, os, socket, struct, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=30)
s.sendall(b'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
          b'Sec-WebSocket-Key: ' + base64.b64encode(os.urandom(16)) + b'\r\nSec-WebSocket-Version: 13\r\n\r\n')
head = b''
while b'\r\n\r\n' not in head: head += s.recv(1)
ping = struct.pack('!BB', 0x89, 0x80 | 125) + b'\0\0\0\0' + b'p' * 125
s.sendall(ping * int(sys.argv[2]))
print('sent', flush=True)
sys.stdin.read()  # never read the socket; exit when the test says so
`;
    const peer = pythonProcess(flood, [String(port), String(PINGS)]);
    const connection = await accepted.promise;
    const total = connection.bytesRead + PINGS * 131;
    await new Promise<void>((resolve) => {
      const check = () => (connection.bytesRead >= total ? resolve() : void connection.socket!.once('data', () => setImmediate(check)));
      check();
    });
    expect(connection.connected).toBe(true);
    expect(connection.bufferedBytes).toBeLessThanOrEqual(16 * 1024 + 131);
    peer.stdin!.end();
    await peer.output;
    await server.close();
  });

  it('keeps a client that answers pings', async () => {
    const engine = testEngine();
    let pings = 0;
    const enough = deferred();
    class Conn extends WebSocketConnection {
      override pingInterval = 20;
      override pingTimeout = 200;
      override onTimeout(): void {
        throw new Error('no timeout expected');
      }
      override onRead(): void {}
    }
    const { server, port } = await serve(engine, Conn);
    server.on('accept', (connection) => {
      connection.socket!.on('data', () => {
        if (++pings === 10) enough.resolve();
      });
    });
    const done = rawClient(port, [], true);
    await enough.promise;
    await server.close();
    const out = await done;
    expect(out.frames.filter(([op]) => op === 9).length).toBeGreaterThanOrEqual(10);
    expect(closeOf(out.frames.at(-1)![1])[0]).toBe(1001);
  });
});

const hasCurl = spawnSync('curl', ['--version']).status === 0;
const run = async (file: string, args: string[]) => (await promisify(execFile)(file, args, { encoding: 'utf8' })).stdout;

describe('refused upgrades', () => {
  it.skipIf(!hasCurl)('answers onUpgrade’s status; curl sees it', async () => {
    const engine = testEngine();
    class Guarded extends WebSocketServer {
      override onUpgrade(request: { headers: Record<string, string | string[] | undefined> }): number | boolean {
        if (request.headers.authorization === undefined) return 401;
        return request.headers.authorization === 'Bearer ok';
      }
    }
    const server = new Guarded(Echo, { engine });
    await server.listen(['127.0.0.1', 0]);
    const url = `http://127.0.0.1:${portOf(server.localAddress)}/`;
    const curl = (...headers: string[]) => {
      const args = ['--http1.1', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', '-H', 'Connection: Upgrade', '-H', 'Upgrade: websocket', '-H', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='];
      if (!headers.some((h) => h.startsWith('Sec-WebSocket-Version:'))) headers.push('Sec-WebSocket-Version: 13');
      for (const h of headers) args.push('-H', h);
      return run('curl', [...args, url]);
    };
    // curl runs beside the server (async): the server shares this process's event loop.
    expect(await curl()).toBe('401');
    expect(await curl('Authorization: Bearer wrong')).toBe('403');
    // Checked before onUpgrade: a version other than 13 (or 8) is a bad request.
    expect(await curl('Authorization: Bearer ok', 'Sec-WebSocket-Version: 12')).toBe('400');
    expect(await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', url])).toBe('426');
    expect(server.connections.size).toBe(0);
    await server.close();
  });
});
