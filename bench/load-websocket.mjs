// Load generator of the WebSocket benchmark (bench/websocket.ts). Plain JavaScript run by
// `node`, in its own process, with WebSocket framing written by hand so that it costs the
// same for every server and stays far from the bottleneck: it batches the frames of one
// event-loop turn into one write per connection, and counts replies by bytes (every reply
// has the same size and an unmasked header of known length).
//
//   node bench/load-websocket.mjs --mode pipelined|pingpong|idle --port 4000
//        [--connections 10] [--depth 64] [--size 64] [--warmup 1] [--seconds 5]
//
// pipelined: `depth` messages in flight per connection, a new one for every reply.
// pingpong: one message in flight per connection. Both print {"event":"start"} when the
// measured window opens, then {"count","seconds","rate","ok","cpu"}.
// idle: opens `connections` WebSockets (256 connecting at a time), has one message echoed on
// each, prints {"event":"open","connections","failed"}, and holds them until stdin closes.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { holdIdle, measuredWindow, parseArgs, printRate, runMain, turnBatcher } from './load-common.mjs';

const opts = parseArgs('load-websocket', process.argv.slice(2), { host: '127.0.0.1', port: 0, mode: 'pipelined', connections: 10, depth: 64, size: 64, warmup: 1, seconds: 5 }, ['host', 'mode']);

/** One masked binary frame of `size` bytes (the mask is fixed: the server unmasks any mask). */
function maskedFrame(size) {
  const header = size < 126 ? 2 : size < 65536 ? 4 : 10;
  const frame = Buffer.alloc(header + 4 + size);
  frame[0] = 0x82;
  if (size < 126) frame[1] = 0x80 | size;
  else if (size < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(size, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(size), 2);
  }
  const mask = [0x12, 0x34, 0x56, 0x78];
  frame.set(mask, header);
  for (let i = 0; i < size; i++) frame[header + 4 + i] = (i & 0x7f) ^ mask[i & 3];
  return frame;
}

/** The size of the server's (unmasked) reply frame to a `size`-byte message. */
function replySize(size) {
  return (size < 126 ? 2 : size < 65536 ? 4 : 10) + size;
}

/** Connect and do the opening handshake; resolves with the socket and any bytes after the 101. */
function open() {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: opts.host, port: opts.port, noDelay: true });
    let head = Buffer.alloc(0);
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      if (!head.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) return reject(new Error(`handshake refused: ${head.toString('latin1', 0, end)}`));
      resolve({ socket, rest: head.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('connect', () =>
      socket.write(
        `GET / HTTP/1.1\r\nHost: ${opts.host}:${opts.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
  });
}

async function traffic() {
  const frame = maskedFrame(opts.size);
  const reply = replySize(opts.size);
  const depth = opts.mode === 'pingpong' ? 1 : opts.depth;
  let count = 0;
  let ok = true;
  const links = await Promise.all(Array.from({ length: opts.connections }, open));
  // link -> how many new messages it is owed (one per reply), one write per link per turn
  const batch = turnBatcher((link, n) => link.socket.write(n === 1 ? frame : Buffer.concat(Array(n).fill(frame))));
  for (const link of links) {
    link.carry = link.rest.length;
    link.socket.on('error', () => (ok = false));
    link.socket.on('data', (chunk) => {
      const bytes = link.carry + chunk.length;
      const replies = Math.floor(bytes / reply);
      link.carry = bytes - replies * reply;
      if (replies === 0) return;
      count += replies;
      batch.owed.set(link, (batch.owed.get(link) ?? 0) + replies);
      batch.schedule();
    });
    link.socket.write(Buffer.concat(Array(depth).fill(frame)));
  }
  const measured = await measuredWindow(opts, { total: () => count });
  for (const link of links) link.socket.destroy();
  printRate(measured, ok);
}

// The one message each idle connection has echoed, so that the server has really served it.
const IDLE_FRAME = maskedFrame(5);
const IDLE_REPLY = replySize(5);

/** Open a WebSocket and have one message echoed on it; resolves with the socket. */
async function openServed() {
  const link = await open();
  await new Promise((resolve, reject) => {
    let got = link.rest.length;
    if (got >= IDLE_REPLY) return resolve();
    link.socket.on('data', function onData(chunk) {
      got += chunk.length;
      if (got >= IDLE_REPLY) {
        link.socket.off('data', onData);
        resolve();
      }
    });
    link.socket.once('error', reject);
    link.socket.write(IDLE_FRAME);
  });
  link.socket.on('error', () => {});
  return link.socket;
}

runMain('load-websocket', opts.mode === 'idle' ? () => holdIdle(opts.connections, openServed) : traffic);
