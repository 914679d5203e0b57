// Load generator for the line echo benchmarks (bench/line-echo.ts, and bench/tls-echo.ts with
// --tls). Plain JavaScript run by `node` (no tsx, no TypeScript loader), so it costs the same
// for every server it drives.
//
//   node bench/load-lines.mjs --port 4000 [--host 127.0.0.1] [--connections 10]
//        [--inflight 64] [--line 64] [--warmup 1] [--seconds 5]
//        [--tls --ca /path/ca.pem [--servername localhost]]
//
// Opens `connections` TCP connections (with --tls: TLS connections, verifying the server's
// certificate against `ca` and the name `servername`); each keeps `inflight` lines of `line`
// bytes (line-1 characters + '\n') in flight: it sends `inflight` lines at start and then one
// new line per echoed line received, batched as one write per connection per event-loop turn.
// After `warmup` seconds it starts counting (and prints {"event":"start"} so the parent can
// sample its own CPU use over the same window), measures for `seconds`, then prints:
//   { lines, seconds, rate, bytesIn, connections, inflight, line, cpu, cpuUser, ok, errors }
// (with --tls also `protocol` and `cipher`, before `ok`) and closes its connections (end(),
// then wait for the server's close, bounded).
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { closeAll, cpuFraction, measuredWindow, parseArgs, runMain, turnBatcher, whenReady } from './load-common.mjs';

const opts = parseArgs(
  'load-lines',
  process.argv.slice(2),
  { host: '127.0.0.1', tls: false, servername: 'localhost', ca: '', port: 0, connections: 10, inflight: 64, line: 64, warmup: 1, seconds: 5 },
  ['host', 'servername', 'ca'],
);
if (opts.tls && opts.ca === '') throw new Error('load-lines: --tls needs --ca (the PEM file that vouches for the server)');
const ca = opts.tls ? readFileSync(opts.ca) : null;
const LINE = opts.line;
const NL = 10;

// One buffer holding `inflight` lines back to back; every send is a view of it (the content
// never changes, so sharing it between pending writes is safe): no allocation per send.
const lineText = Buffer.alloc(LINE - 1);
for (let i = 0; i < lineText.length; i++) lineText[i] = 0x61 + (i % 26); // 'abc...'
const pool = Buffer.alloc(LINE * opts.inflight);
for (let i = 0; i < opts.inflight; i++) {
  lineText.copy(pool, i * LINE);
  pool[i * LINE + LINE - 1] = NL;
}

let total = 0; // echoed lines received, all connections, since start
let bytesIn = 0;
let sending = true;
const errors = [];
const sockets = [];

function countNewlines(chunk) {
  let n = 0;
  let i = chunk.indexOf(NL);
  while (i !== -1) {
    n++;
    i = chunk.indexOf(NL, i + 1);
  }
  return n;
}

function sendLines(socket, n) {
  // n <= inflight always: a connection never has more than `inflight` lines outstanding.
  while (n > 0) {
    const k = Math.min(n, opts.inflight);
    socket.write(pool.subarray(0, k * LINE));
    n -= k;
  }
}

// Sends are batched: lines owed to a connection accumulate while this turn's reads are
// handled, and go out as one write per connection per event-loop turn.
const batch = turnBatcher((socket, n) => {
  if (sending && !socket.destroyed) sendLines(socket, n);
});

/** Count the lines in what a connection received, and owe it as many new ones. */
function received(socket, chunk) {
  bytesIn += chunk.length;
  const n = countNewlines(chunk);
  total += n;
  if (sending && n > 0) {
    batch.owed.set(socket, (batch.owed.get(socket) ?? 0) + n);
    batch.schedule();
  }
}

function openTcp() {
  // `onread` reads into one reused buffer: no Buffer allocation and no stream machinery per
  // chunk, so the generator stays cheap even when a server sends one small packet per line.
  const readBuffer = Buffer.allocUnsafe(256 * 1024);
  let socket;
  const onread = (nread, buf) => received(socket, nread === buf.length ? buf : buf.subarray(0, nread));
  socket = net.connect({ host: opts.host, port: opts.port, noDelay: true, onread: { buffer: readBuffer, callback: onread } });
  return whenReady(socket, 'connect', errors);
}

function openTls() {
  const socket = tls.connect({ host: opts.host, port: opts.port, servername: opts.servername, ca, noDelay: true });
  socket.on('data', (chunk) => received(socket, chunk));
  return whenReady(socket, 'secureConnect', errors);
}

async function main() {
  const open = opts.tls ? openTls : openTcp;
  for (let i = 0; i < opts.connections; i++) sockets.push(await open());
  for (const s of sockets) sendLines(s, opts.inflight);

  let startBytes = 0;
  let measuredBytes = 0;
  const countBytes = { start: () => (startBytes = bytesIn), stop: () => (measuredBytes = bytesIn - startBytes) };
  const { count: lines, seconds: elapsed, cpu } = await measuredWindow(opts, { total: () => total, ...countBytes });
  sending = false;
  const session = opts.tls ? { protocol: sockets[0]?.getProtocol() ?? null, cipher: sockets[0]?.getCipher()?.name ?? null } : {};

  await closeAll(sockets, 2000);
  // Every byte echoed is part of a whole line (the server may be cut off mid-line at close).
  const ok = total > 0 && bytesIn >= total * LINE && bytesIn < (total + opts.connections) * LINE && errors.length === 0;
  const result = {
    lines,
    seconds: elapsed,
    rate: lines / elapsed,
    bytesIn: measuredBytes,
    connections: opts.connections,
    inflight: opts.inflight,
    line: LINE,
    cpu: cpuFraction(cpu, elapsed), // fraction of one core the load generator used
    cpuUser: cpu.user / 1e6 / elapsed,
    ...session,
    ok,
    errors,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

runMain('load-lines', main);
