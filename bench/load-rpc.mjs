// Load generator for the request/reply benchmark. Plain JavaScript run by `node` (no tsx), so
// it costs the same for every server it drives. It speaks the wire format itself: packets of a
// 4-byte big-endian length + JSON `[type, id, content]`; a request is `[0, id, content]` and
// the echo server's reply must be exactly `[1, id, content]`.
//
//   node bench/load-rpc.mjs --port 4000 [--host 127.0.0.1] [--connections 10]
//        [--inflight 32] [--payload 32] [--warmup 1] [--seconds 5]
//
// Each connection keeps `inflight` requests in flight, ids 1..inflight: it sends them all at the
// start, then re-sends a request as soon as its reply arrives, batched as one write per
// connection per event-loop turn. Requests and the replies they expect are built once, so the
// generator stays cheap: a reply is checked byte for byte against the expected one (memcmp),
// not parsed. After `warmup` s it prints {"event":"start"}, counts for `seconds`, then prints
//   { replies, seconds, rate, connections, inflight, cpu, ok, errors }
import net from 'node:net';
import { performance } from 'node:perf_hooks';

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, connections: 10, inflight: 32, payload: 32, warmup: 1, seconds: 5 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '');
    const value = argv[i + 1];
    if (!(key in opts) || value === undefined) throw new Error(`load-rpc: bad argument ${argv[i]}`);
    opts[key] = key === 'host' ? value : Number(value);
  }
  if (!(opts.port > 0)) throw new Error('load-rpc: --port is required');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

function packet(value) {
  const body = Buffer.from(JSON.stringify(value));
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

// Slot i (id i + 1): its request frame and the reply body it must get back.
const text = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(10).slice(0, opts.payload);
const requests = [];
const expected = [];
for (let id = 1; id <= opts.inflight; id++) {
  const content = { method: 'echo', params: [text, id] };
  requests[id] = packet([0, id, content]);
  expected[id] = Buffer.from(JSON.stringify([1, id, content]));
}

let total = 0;
let sending = true;
let mismatches = 0;
const errors = [];
const sockets = [];
const owed = new Map(); // socket -> ids to re-send this turn
let flushScheduled = false;

function flushOwed() {
  flushScheduled = false;
  for (const [socket, ids] of owed) {
    if (!sending || socket.destroyed) continue;
    socket.write(ids.length === 1 ? requests[ids[0]] : Buffer.concat(ids.map((id) => requests[id])));
  }
  owed.clear();
}

/** `[1,<id>,` then the content: the id, or -1 if the body does not start like a reply. */
function replyId(body) {
  if (body[0] !== 0x5b || body[1] !== 0x31 || body[2] !== 0x2c) return -1;
  let id = 0;
  let i = 3;
  for (; i < body.length && body[i] >= 0x30 && body[i] <= 0x39; i++) id = id * 10 + body[i] - 0x30;
  return i > 3 && body[i] === 0x2c ? id : -1;
}

function open() {
  return new Promise((resolve, reject) => {
    const readBuffer = Buffer.allocUnsafe(256 * 1024);
    let carry = null; // an incomplete packet, copied out of the reused read buffer
    let socket;
    const onread = (nread, buf) => {
      let data = buf.subarray(0, nread);
      if (carry !== null) data = Buffer.concat([carry, data]);
      let at = 0;
      let ids = null;
      while (data.length - at >= 4) {
        const n = data.readUInt32BE(at);
        if (data.length - at - 4 < n) break;
        const body = data.subarray(at + 4, at + 4 + n);
        at += 4 + n;
        const id = replyId(body);
        if (id < 1 || id > opts.inflight || !body.equals(expected[id])) {
          if (++mismatches <= 3) errors.push(`unexpected reply: ${body.toString().slice(0, 80)}`);
          continue;
        }
        total++;
        (ids ??= owed.get(socket) ?? []).push(id);
      }
      carry = at < data.length ? Buffer.from(data.subarray(at)) : null;
      if (ids !== null && sending) {
        owed.set(socket, ids);
        if (!flushScheduled) {
          flushScheduled = true;
          setImmediate(flushOwed);
        }
      }
    };
    socket = net.connect({ host: opts.host, port: opts.port, noDelay: true, onread: { buffer: readBuffer, callback: onread } });
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', (err) => {
        if (errors.length < 5) errors.push(`${err.code ?? ''} ${err.message}`);
      });
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function closeAll(timeoutMs) {
  return new Promise((resolve) => {
    let left = sockets.length;
    if (left === 0) return resolve();
    const timer = setTimeout(() => {
      for (const s of sockets) s.destroy();
      resolve();
    }, timeoutMs);
    for (const s of sockets) {
      s.once('close', () => {
        if (--left === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
      s.end();
    }
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  for (let i = 0; i < opts.connections; i++) sockets.push(await open());
  const all = Buffer.concat(requests.slice(1));
  for (const s of sockets) s.write(all);

  await sleep(opts.warmup * 1000);
  const start = total;
  const startCpu = process.cpuUsage();
  const t0 = performance.now();
  process.stdout.write('{"event":"start"}\n');
  await sleep(opts.seconds * 1000);
  const replies = total - start;
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(startCpu);
  sending = false;
  await closeAll(2000);
  const result = {
    replies,
    seconds: elapsed,
    rate: replies / elapsed,
    connections: opts.connections,
    inflight: opts.inflight,
    cpu: (cpu.user + cpu.system) / 1e6 / elapsed,
    ok: replies > 0 && mismatches === 0 && errors.length === 0,
    errors,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`load-rpc: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
