// A hostile peer for test/faults.test.ts: plain node:net in its own process (no trews).
//
//   node test/faults/flood.mjs <port> <bytes> [end|hold]
//
// Connects to 127.0.0.1:<port> and writes <bytes> bytes of 'a' (never a '\n') as fast as
// the socket takes them (1 MiB writes, waiting for 'drain'). With `end` it half-closes once
// everything is written; with `hold` (default) it keeps the connection open. Prints
// {"event":"start"} once connected, then, when the socket has closed, one JSON line:
//   { sent, error, ms }   (sent: bytes accepted by write(); error: the socket error's code)
import net from 'node:net';

const [portArg, bytesArg, mode = 'hold'] = process.argv.slice(2);
const port = Number(portArg);
const total = Number(bytesArg);
if (!(port > 0) || !(total > 0)) {
  process.stderr.write('usage: flood.mjs <port> <bytes> [end|hold]\n');
  process.exit(2);
}

const chunk = Buffer.alloc(1 << 20, 0x61);
let sent = 0;
let error = null;
let t0 = 0;
const socket = net.connect({ host: '127.0.0.1', port });

function pump() {
  while (sent < total && !socket.destroyed) {
    const n = Math.min(chunk.length, total - sent);
    const more = socket.write(n === chunk.length ? chunk : chunk.subarray(0, n));
    sent += n;
    if (!more) {
      socket.once('drain', pump);
      return;
    }
  }
  if (sent >= total && mode === 'end') socket.end();
}

socket.on('connect', () => {
  t0 = performance.now();
  process.stdout.write('{"event":"start"}\n');
  pump();
});
socket.on('data', () => {});
socket.on('error', (err) => {
  error = err.code ?? err.message;
});
socket.on('close', () => {
  process.stdout.write(JSON.stringify({ sent, error, ms: Math.round(performance.now() - t0) }) + '\n');
  process.exit(0);
});
