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
import { closeAll, cpuFraction, measuredWindow, parseArgs, printJson, runMain, turnBatcher, whenReady } from './load-common.mjs';

const opts = parseArgs('load-rpc', process.argv.slice(2), { host: '127.0.0.1', port: 0, connections: 10, inflight: 32, payload: 32, warmup: 1, seconds: 5 });

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
// socket -> ids to re-send, one write per connection per event-loop turn
const batch = turnBatcher((socket, ids) => {
  if (!sending || socket.destroyed) return;
  socket.write(ids.length === 1 ? requests[ids[0]] : Buffer.concat(ids.map((id) => requests[id])));
});

/** `[1,<id>,` then the content: the id, or -1 if the body does not start like a reply. */
function replyId(body) {
  if (body[0] !== 0x5b || body[1] !== 0x31 || body[2] !== 0x2c) return -1;
  let id = 0;
  let i = 3;
  for (; i < body.length && body[i] >= 0x30 && body[i] <= 0x39; i++) id = id * 10 + body[i] - 0x30;
  return i > 3 && body[i] === 0x2c ? id : -1;
}

function open() {
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
      (ids ??= batch.owed.get(socket) ?? []).push(id);
    }
    carry = at < data.length ? Buffer.from(data.subarray(at)) : null;
    if (ids !== null && sending) {
      batch.owed.set(socket, ids);
      batch.schedule();
    }
  };
  socket = net.connect({ host: opts.host, port: opts.port, noDelay: true, onread: { buffer: readBuffer, callback: onread } });
  return whenReady(socket, 'connect', errors);
}

async function main() {
  for (let i = 0; i < opts.connections; i++) sockets.push(await open());
  const all = Buffer.concat(requests.slice(1));
  for (const s of sockets) s.write(all);

  const { count: replies, seconds: elapsed, cpu } = await measuredWindow(opts, { total: () => total });
  sending = false;
  await closeAll(sockets, 2000);
  const result = {
    replies,
    seconds: elapsed,
    rate: replies / elapsed,
    connections: opts.connections,
    inflight: opts.inflight,
    cpu: cpuFraction(cpu, elapsed),
    ok: replies > 0 && mismatches === 0 && errors.length === 0,
    errors,
  };
  printJson(result);
}

runMain('load-rpc', main);
