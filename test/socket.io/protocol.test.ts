/** trews/socket.io at the wire: Engine.IO polling requests and WebSocket frames by hand. */
import * as http from 'node:http';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SocketConnection, type CloseReason } from '../../src/socket.io/index.js';
import { deferred, onCleanup, testEngine } from '../helpers.js';
import { serve } from './helpers.js';

/** A polling client speaking Engine.IO v4 by hand. */
class Poller {
  sid = '';
  constructor(
    readonly base: string,
    readonly headers: Record<string, string> = {},
  ) {}

  url(extra = ''): string {
    return `${this.base}/socket.io/?EIO=4&transport=polling${this.sid === '' ? '' : `&sid=${this.sid}`}${extra}`;
  }

  async open(): Promise<Record<string, unknown>> {
    const response = await fetch(this.url(), { headers: this.headers });
    const body = await response.text();
    expect(body[0]).toBe('0');
    const open = JSON.parse(body.slice(1)) as Record<string, unknown>;
    this.sid = open.sid as string;
    return open;
  }

  get(): Promise<Response> {
    return fetch(this.url(), { headers: this.headers });
  }

  async poll(): Promise<string[]> {
    const response = await this.get();
    expect(response.status).toBe(200);
    return (await response.text()).split('\x1e');
  }

  post(...packets: string[]): Promise<Response> {
    return fetch(this.url(), { method: 'POST', body: packets.join('\x1e'), headers: this.headers });
  }
}

class Recorder extends SocketConnection {
  static closes: CloseReason[] = [];
  static override events = {
    two(this: Recorder) {
      this.emit('one', 1);
      this.emit('two', 2);
      this.emit('bytes', Buffer.from('hi'));
    },
  };
  override onClose(reason: CloseReason): void {
    Recorder.closes.push(reason);
  }
}

async function connectedPoller(base: string): Promise<Poller> {
  const poller = new Poller(base);
  await poller.open();
  expect((await poller.post('40')).status).toBe(200);
  const [reply] = await poller.poll();
  expect(reply).toMatch(/^40\{"sid":"[\w-]+"\}$/);
  return poller;
}

describe('Engine.IO long-polling', () => {
  it('handshake: sid, the WebSocket upgrade, ping settings and maxPayload', async () => {
    const engine = testEngine();
    const { url } = await serve(engine, Recorder);
    const open = await new Poller(url).open();
    expect(open).toEqual({ sid: expect.stringMatching(/^[\w-]{20}$/), upgrades: ['websocket'], pingInterval: 25000, pingTimeout: 20000, maxPayload: 1e6 });
    const pollingOnly = await serve(engine, Recorder, { transports: ['polling'] });
    expect((await new Poller(pollingOnly.url).open()).upgrades).toEqual([]);
  });

  it('joins the packets of one dispatch in one payload, binary as base64', async () => {
    const engine = testEngine();
    const { url } = await serve(engine, Recorder);
    const poller = await connectedPoller(url);
    await poller.post('42["two"]');
    expect(await poller.poll()).toEqual(['42["one",1]', '42["two",2]', '451-["bytes",{"_placeholder":true,"num":0}]', `b${Buffer.from('hi').toString('base64')}`]);
  });

  it('answers 400 to an unknown sid, a bad protocol version or transport', async () => {
    const engine = testEngine();
    const { url } = await serve(engine, Recorder);
    const unknown = await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=nope`);
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toEqual({ code: 1, message: 'Session ID unknown' });
    expect((await fetch(`${url}/socket.io/?EIO=3&transport=polling`)).status).toBe(400);
    expect((await fetch(`${url}/socket.io/?EIO=4&transport=flash`)).status).toBe(400);
    expect((await fetch(`${url}/elsewhere`)).status).toBe(404);
  });

  it('a second concurrent GET is refused with 400 and ends the session', async () => {
    const engine = testEngine();
    Recorder.closes = [];
    const { url } = await serve(engine, Recorder);
    const poller = await connectedPoller(url);
    const held = poller.get();
    // The first GET is held until the second arrives; the second's 400 ends the session.
    let second: Response;
    do second = await poller.get();
    while (second.status === 200);
    expect(second.status).toBe(400);
    expect((await held).status).toBe(200);
    expect(Recorder.closes).toEqual(['transport error']);
    expect((await poller.get()).status).toBe(400);
  });

  it('a second concurrent POST is refused with 400 and ends the session', async () => {
    const engine = testEngine();
    Recorder.closes = [];
    const { url } = await serve(engine, Recorder);
    const poller = await connectedPoller(url);
    // A POST whose body has not all arrived yet is still in progress.
    const first = http.request(poller.url(), { method: 'POST', headers: { 'Content-Length': '100' } });
    first.on('error', () => {});
    first.write('42["two"]');
    await new Promise((resolve) => first.once('socket', (socket) => socket.once('connect', resolve)));
    let second: Response;
    do second = await poller.post('6');
    while (second.status === 200);
    expect(second.status).toBe(400);
    expect(Recorder.closes).toEqual(['transport error']);
    first.destroy();
  });

  it('a POST over maxPayload is answered 413 and ends the session', async () => {
    const engine = testEngine();
    Recorder.closes = [];
    const { url } = await serve(engine, Recorder, { maxPayload: 100 });
    const poller = await connectedPoller(url);
    expect((await poller.post(`42["x","${'a'.repeat(80)}"]`)).status).toBe(200);
    expect((await poller.post(`42["x","${'a'.repeat(100)}"]`)).status).toBe(413);
    expect(Recorder.closes).toEqual(['transport error']);
    expect((await poller.get()).status).toBe(400);
  });

  it.each([
    ['an unknown Engine.IO packet type', 'x'],
    ['an unknown Socket.IO packet type', '49'],
    ['an EVENT payload that is not an array', '42{"a":1}'],
    ['an event named by a reserved name', '42["connect"]'],
    ['undecodable JSON', '42["x"'],
    ['an ACK without an id', '43[1]'],
    ['an ack id beyond safe integers', '4299999999999999999999["x"]'],
    ['a CONNECT_ERROR from a client', '44{"message":"x"}'],
    ['a second CONNECT to the same namespace', '40'],
    ['binary attachments without a binary event', 'bAAEC'],
  ])('closes the session on %s', async (_what, packet) => {
    const engine = testEngine();
    Recorder.closes = [];
    const { url } = await serve(engine, Recorder);
    const poller = await connectedPoller(url);
    await poller.post(packet);
    expect(Recorder.closes).toEqual(['parse error']);
    expect((await poller.get()).status).toBe(400);
  });

  it('CORS: a preflight and the polling replies allow the configured origins only', async () => {
    const engine = testEngine();
    const { url } = await serve(engine, Recorder, { cors: { origin: ['http://app.example'], credentials: true } });
    const preflight = await fetch(`${url}/socket.io/?EIO=4&transport=polling`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://app.example');
    expect(preflight.headers.get('access-control-allow-credentials')).toBe('true');
    expect(preflight.headers.get('access-control-allow-headers')).toBe('content-type');
    const allowed = new Poller(url, { Origin: 'http://app.example' });
    await allowed.open();
    const get = allowed.get();
    await allowed.post('40');
    expect((await get).headers.get('access-control-allow-origin')).toBe('http://app.example');
    const other = await fetch(`${url}/socket.io/?EIO=4&transport=polling`, { headers: { Origin: 'http://evil.example' } });
    expect(other.status).toBe(200);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('hostile clients', () => {
  it('a polling client that never polls is closed once maxBufferedPackets wait for it', async () => {
    const engine = testEngine();
    Recorder.closes = [];
    const { url } = await serve(engine, Recorder, { maxBufferedPackets: 10 });
    const poller = await connectedPoller(url);
    await poller.post('42["two"]', '42["two"]');
    expect(Recorder.closes).toEqual([]);
    await poller.post('42["two"]');
    expect(Recorder.closes).toEqual(['transport error']);
  });

  it('an ordered connection whose handler never settles holds at most 1024 events, then the session closes', async () => {
    const engine = testEngine();
    const closed = deferred<CloseReason>();
    class Stuck extends SocketConnection {
      override ordered = true;
      static override events = { wait: () => new Promise(() => {}) };
      override onClose(reason: CloseReason): void {
        closed.resolve(reason);
      }
    }
    const { url } = await serve(engine, Stuck);
    const socket = new WebSocket(`${url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    onCleanup(() => socket.terminate());
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send('40');
    // One runs, 1024 wait: still open. One more is too many.
    for (let i = 0; i < 1025; i++) socket.send('42["wait"]');
    socket.send('42["wait"]');
    expect(await closed.promise).toBe('transport error');
  });

  it('a WebSocket peer that stops reading is not read from until our writes drain', async () => {
    const engine = testEngine();
    let served = 0;
    class Big extends SocketConnection {
      static override events = {
        big(this: Big) {
          served++;
          this.emit('big', 'x'.repeat(256 * 1024));
        },
      };
    }
    const { url, server } = await serve(engine, Big);
    const socket = new WebSocket(`${url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    onCleanup(() => socket.terminate());
    socket.on('error', () => {});
    const opened = new Promise((resolve) => socket.once('message', resolve));
    await new Promise((resolve) => socket.once('open', resolve));
    await opened;
    socket.send('40');
    await new Promise((resolve) => socket.once('message', resolve));
    // Stop reading, then ask for 400 x 256 KiB (100 MiB) of replies.
    (socket as unknown as { _socket: import('node:net').Socket })._socket.pause();
    for (let i = 0; i < 400; i++) socket.send('42["big"]');
    await new Promise<void>((resolve) => {
      const check = () => (served > 0 && server.sessionCount === 1 ? resolve() : engine.callback(check));
      check();
    });
    // Give the server turns to read everything it would read.
    for (let i = 0; i < 200; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(served).toBeGreaterThan(0);
    expect(served).toBeLessThan(400);
    // Reading again drains our writes: the server reads again and serves every request.
    (socket as unknown as { _socket: import('node:net').Socket })._socket.resume();
    await new Promise<void>((resolve) => {
      const check = () => (served === 400 ? resolve() : engine.callback(check));
      check();
    });
  });

  it('a WebSocket client that does not read what the server broadcasts is closed past maxBufferedBytes', async () => {
    const engine = testEngine();
    Recorder.closes = [];
    const { url, server } = await serve(engine, Recorder, { maxBufferedBytes: 4 << 20 });
    const socket = new WebSocket(`${url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    onCleanup(() => socket.terminate());
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('message', resolve));
    socket.send('40');
    await new Promise((resolve) => socket.once('message', resolve));
    (socket as unknown as { _socket: net.Socket })._socket.pause();
    const big = 'x'.repeat(256 * 1024);
    // Far more than the kernel buffers and the limit hold: 400 x 256 KiB.
    for (let i = 0; i < 400 && Recorder.closes.length === 0; i++) {
      server.broadcast('news', big);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(Recorder.closes).toEqual(['transport error']);
  });

  it('survives random garbage over polling and WebSocket, logging nothing', async () => {
    const engine = testEngine();
    const { url, server } = await serve(engine, Recorder);
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const pieces = ['4', '2', '0', '1', '5', '6', '42', '43', '45', '46', '40', '41', '44', '[', ']', '{', '}', '"', ',', '1-', '/x,', '99', 'b', '\x1e', 'null', '"connect"', '{"_placeholder":true,"num":0}'];
    const garbage = () => Array.from({ length: 1 + random(8) }, () => pieces[random(pieces.length)]).join('');
    for (let round = 0; round < 20; round++) {
      const poller = await connectedPoller(url);
      for (let i = 0; i < 5; i++) await poller.post(garbage());
    }
    for (let round = 0; round < 20; round++) {
      const socket = new WebSocket(`${url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
      onCleanup(() => socket.terminate());
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('open', resolve));
      socket.send('40');
      for (let i = 0; i < 5; i++) socket.send(random(4) === 0 ? Buffer.from(garbage()) : garbage());
      socket.close();
      await new Promise((resolve) => socket.once('close', resolve));
    }
    // Still serving.
    await connectedPoller(url);
    expect(server.listening).toBe(true);
    expect(engine.lines).toEqual([]);
  });
});

describe('timers on the Engine clock', () => {
  it('pings every pingInterval; a pong keeps the session, a missing one ends it after pingTimeout', async () => {
    const engine = testEngine({ clock: 'virtual' });
    Recorder.closes = [];
    const { url } = await serve(engine, Recorder);
    const poller = await connectedPoller(url);
    let held = poller.poll();
    engine.advance(25_000);
    expect(await held).toEqual(['2']);
    await poller.post('3');
    engine.advance(20_000);
    expect(Recorder.closes).toEqual([]);
    held = poller.poll();
    engine.advance(5_000);
    expect(await held).toEqual(['2']);
    engine.advance(19_999);
    expect(Recorder.closes).toEqual([]);
    engine.advance(1);
    expect(Recorder.closes).toEqual(['ping timeout']);
    expect((await poller.get()).status).toBe(400);
  });

  it('closes a session that connects no namespace within connectTimeout', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const { url, server } = await serve(engine, Recorder, { connectTimeout: 1000, pingInterval: 60_000 });
    const poller = new Poller(url);
    await poller.open();
    expect(server.sessionCount).toBe(1);
    engine.advance(999);
    expect(server.sessionCount).toBe(1);
    engine.advance(1);
    expect(server.sessionCount).toBe(0);
    expect((await poller.get()).status).toBe(400);
  });
});

describe('Engine.IO over WebSocket', () => {
  async function open(url: string, query = '') {
    const socket = new WebSocket(`${url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket${query}`);
    onCleanup(() => socket.terminate());
    const messages: string[] = [];
    const waiters: Array<() => void> = [];
    socket.on('message', (data, isBinary) => {
      messages.push(isBinary ? `<${(data as Buffer).toString('hex')}>` : (data as Buffer).toString());
      for (const wake of waiters.splice(0)) wake();
    });
    const closed = new Promise<number>((resolve) => socket.on('close', resolve));
    const failed = new Promise<number>((resolve) => socket.on('unexpected-response', (_req, res) => resolve(res.statusCode!)));
    socket.on('error', () => {});
    const until = (n: number) =>
      new Promise<string[]>((resolve) => {
        const check = () => (messages.length >= n ? resolve(messages.slice(0, n)) : waiters.push(check));
        check();
      });
    return { socket, messages, until, closed, failed };
  }

  it('opens a session directly over WebSocket; packets of one dispatch arrive in order', async () => {
    const engine = testEngine();
    const { url } = await serve(engine, Recorder);
    const peer = await open(url);
    const [handshake] = await peer.until(1);
    expect(JSON.parse(handshake!.slice(1))).toMatchObject({ upgrades: [], pingInterval: 25000 });
    peer.socket.send('40');
    peer.socket.send('42["two"]');
    const messages = await peer.until(5);
    expect(messages.slice(1)).toEqual([expect.stringMatching(/^40\{"sid"/), '42["one",1]', '42["two",2]', '451-["bytes",{"_placeholder":true,"num":0}]']);
    expect((await peer.until(6))[5]).toBe(`<${Buffer.from('hi').toString('hex')}>`);
  });

  it('everything sent while one chunk of frames is handled leaves in one write to the socket', async () => {
    const engine = testEngine();
    const { url } = await serve(engine, Recorder);
    const port = Number(new URL(url).port);
    const client = net.connect(port, '127.0.0.1');
    onCleanup(() => client.destroy());
    await new Promise((resolve) => client.once('connect', resolve));
    let received = Buffer.alloc(0);
    const waiters: Array<() => void> = [];
    client.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      for (const wake of waiters.splice(0)) wake();
    });
    const until = (text: string) =>
      new Promise<void>((resolve) => {
        const check = () => (received.includes(text) ? resolve() : waiters.push(check));
        check();
      });
    client.write(`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await until('"maxPayload"');
    client.write(maskedText('40'));
    await until('40{"sid"');
    // Count the server's writes to this client's socket from here on.
    const writes: number[] = [];
    const write = net.Socket.prototype.write;
    net.Socket.prototype.write = function (this: net.Socket, ...args: Parameters<typeof write>) {
      if (this.remotePort === client.localPort) writes.push(1);
      return write.apply(this, args);
    } as typeof write;
    onCleanup(() => (net.Socket.prototype.write = write));
    // Three events in one chunk: twelve messages back (three times 'one', 'two', and a binary event with its attachment).
    const start = received.length;
    const count = (text: string) => received.subarray(start).toString('latin1').split(text).length - 1;
    client.write(Buffer.concat([maskedText('42["two"]'), maskedText('42["two"]'), maskedText('42["two"]')]));
    while (count('42["two",2]') < 3 || count('hi') < 3) await new Promise<void>((resolve) => waiters.push(resolve));
    expect(writes).toEqual([1]);
  });

  it('refuses an upgrade for an unknown sid', async () => {
    const engine = testEngine();
    const { url } = await serve(engine, Recorder);
    const unknown = await open(url, '&sid=nope');
    expect(await unknown.failed).toBe(400);
  });

  it('upgrades a polling session: 2probe, 3probe, a noop to the held GET, then 5', async () => {
    const engine = testEngine();
    const { url } = await serve(engine, Recorder);
    const poller = await connectedPoller(url);
    const held = poller.poll();
    const peer = await open(url, `&sid=${poller.sid}`);
    await new Promise((resolve) => peer.socket.once('open', resolve));
    peer.socket.send('2probe');
    expect(await peer.until(1)).toEqual(['3probe']);
    expect(await held).toEqual(['6']);
    peer.socket.send('5');
    peer.socket.send('42["two"]');
    expect((await peer.until(4)).slice(1)).toEqual(['42["one",1]', '42["two",2]', '451-["bytes",{"_placeholder":true,"num":0}]']);
    expect((await poller.get()).status).toBe(400);
  });

  it('a message over maxPayload closes the WebSocket and the session', async () => {
    const engine = testEngine();
    Recorder.closes = [];
    const closed = deferred();
    class Closing extends Recorder {
      override onClose(reason: CloseReason): void {
        super.onClose(reason);
        closed.resolve();
      }
    }
    const { url } = await serve(engine, Closing, { maxPayload: 100 });
    const peer = await open(url);
    await peer.until(1);
    peer.socket.send('40');
    await peer.until(2);
    peer.socket.send(`42["x","${'a'.repeat(100)}"]`);
    expect(await peer.closed).toBe(1009);
    await closed.promise;
    expect(Recorder.closes).toEqual(['transport close']);
  });
});

/** A masked WebSocket text frame, as a client sends it (payloads under 126 bytes). */
function maskedText(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = [1, 2, 3, 4];
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, ...mask]), Buffer.from(payload.map((byte, i) => byte ^ mask[i & 3]!))]);
}

