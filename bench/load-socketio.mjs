// Load generator of the Socket.IO benchmark (bench/socketio.ts). Plain JavaScript run by
// `node`, in its own process. It speaks Engine.IO v4 + Socket.IO v5 over WebSocket by hand
// (the transport socket.io-client uses after its upgrade), so it costs the same for every
// server and stays far from the bottleneck: the frames of one event-loop turn leave in one
// write per connection.
//
//   node bench/load-socketio.mjs --mode echo|ack|idle --port 4000
//        [--connections 10] [--depth 64] [--size 64] [--warmup 1] [--seconds 5]
//
// echo: `depth` events `42["echo","<size chars>"]` in flight per connection, a new one for
// every `echo` event back. ack: `depth` events with an ack id in flight, a new one for every
// ack. Both print {"event":"start"} when the measured window opens, then
// {"count","seconds","rate","ok","cpu"}. Pings are answered.
// idle: opens `connections` sessions (Socket.IO CONNECT to '/', 256 at a time), prints
// {"event":"open","connections","failed"}, and holds them until stdin closes.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { holdIdle, measuredWindow, parseArgs, printRate, runMain, turnBatcher } from './load-common.mjs';

const opts = parseArgs('load-socketio', process.argv.slice(2), { host: '127.0.0.1', port: 0, mode: 'echo', connections: 10, depth: 64, size: 64, warmup: 1, seconds: 5 }, ['host', 'mode']);

/** A masked text frame (the mask is fixed: the server unmasks any mask). */
function textFrame(text) {
  const payload = Buffer.from(text);
  const size = payload.length;
  const header = size < 126 ? 2 : 4;
  const frame = Buffer.alloc(header + 4 + size);
  frame[0] = 0x81;
  if (size < 126) frame[1] = 0x80 | size;
  else {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(size, 2);
  }
  const mask = [0x12, 0x34, 0x56, 0x78];
  frame.set(mask, header);
  for (let i = 0; i < size; i++) frame[header + 4 + i] = payload[i] ^ mask[i & 3];
  return frame;
}

/** Split the server's unmasked frames: calls `onText(string)` for each text message; returns the unparsed tail. */
function readFrames(buffer, onText) {
  let at = 0;
  while (buffer.length - at >= 2) {
    const opcode = buffer[at] & 0x0f;
    let size = buffer[at + 1] & 0x7f;
    let header = 2;
    if (size === 126) {
      if (buffer.length - at < 4) break;
      size = buffer.readUInt16BE(at + 2);
      header = 4;
    } else if (size === 127) {
      if (buffer.length - at < 10) break;
      size = Number(buffer.readBigUInt64BE(at + 2));
      header = 10;
    }
    if (buffer.length - at < header + size) break;
    if (opcode === 1) onText(buffer.toString('latin1', at + header, at + header + size));
    at += header + size;
  }
  return at === buffer.length ? EMPTY : buffer.subarray(at);
}
const EMPTY = Buffer.alloc(0);

/** Open a WebSocket session and connect namespace '/'; resolves with { socket, tail }. */
function open() {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: opts.host, port: opts.port, noDelay: true });
    let head = EMPTY;
    let upgraded = false;
    const onData = (chunk) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (!upgraded) {
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        if (!head.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) return reject(new Error(`handshake refused: ${head.toString('latin1', 0, end)}`));
        upgraded = true;
        head = head.subarray(end + 4);
      }
      let connected = false;
      head = readFrames(head, (text) => {
        if (text[0] === '0') socket.write(textFrame('40'));
        else if (text.startsWith('40')) connected = true;
        else if (text === '2') socket.write(textFrame('3'));
      });
      if (connected) {
        socket.off('data', onData);
        resolve({ socket, tail: head });
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('connect', () =>
      socket.write(
        `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: ${opts.host}:${opts.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
  });
}

async function traffic() {
  const text = 'x'.repeat(opts.size);
  const echoFrame = textFrame(`42["echo","${text}"]`);
  let nextId = 0;
  const request = opts.mode === 'ack' ? () => textFrame(`42${nextId++}["ack","${text}"]`) : () => echoFrame;
  const isReply = opts.mode === 'ack' ? (t) => t.startsWith('43') : (t) => t.startsWith('42["echo"');
  let count = 0;
  let ok = true;
  const links = await Promise.all(Array.from({ length: opts.connections }, open));
  // links with new requests (link.owed, one per reply) or a pong due, one write per link per turn
  const batch = turnBatcher((link) => {
    const frames = [];
    for (let i = 0; i < link.owed; i++) frames.push(request());
    if (link.pong) frames.push(textFrame('3'));
    link.owed = 0;
    link.pong = false;
    link.socket.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
  });
  for (const link of links) {
    link.owed = 0;
    link.pong = false;
    link.socket.on('error', () => (ok = false));
    const onText = (t) => {
      if (isReply(t)) {
        count++;
        link.owed++;
      } else if (t === '2') link.pong = true;
      else return;
      batch.owed.set(link, true);
      batch.schedule();
    };
    link.socket.on('data', (chunk) => {
      link.tail = readFrames(link.tail.length === 0 ? chunk : Buffer.concat([link.tail, chunk]), onText);
    });
    link.socket.write(Buffer.concat(Array.from({ length: opts.depth }, request)));
  }
  const measured = await measuredWindow(opts, { total: () => count });
  for (const link of links) link.socket.destroy();
  printRate(measured, ok);
}

/** Open a session that stays alive (pings answered); resolves with its socket. */
async function openKeptAlive() {
  const link = await open();
  link.socket.on('error', () => {});
  link.socket.on('data', (chunk) => {
    link.tail = readFrames(link.tail.length === 0 ? chunk : Buffer.concat([link.tail, chunk]), (t) => t === '2' && link.socket.write(textFrame('3')));
  });
  return link.socket;
}

runMain('load-socketio', opts.mode === 'idle' ? () => holdIdle(opts.connections, openKeptAlive) : traffic);
