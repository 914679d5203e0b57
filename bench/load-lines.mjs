// Load generator for the line echo benchmark. Plain JavaScript run by `node` (no tsx, no
// TypeScript loader), so it costs the same for every server it drives.
//
//   node bench/load-lines.mjs --port 4000 [--host 127.0.0.1] [--connections 10]
//        [--inflight 64] [--line 64] [--warmup 1] [--seconds 5]
//
// Opens `connections` TCP connections; each keeps `inflight` lines of `line` bytes
// (line-1 characters + '\n') in flight: it sends `inflight` lines at start and then one new
// line per echoed line received, batched as one write per connection per event-loop turn.
// After `warmup` seconds it starts counting (and prints {"event":"start"} so the parent can
// sample its own CPU use over the same window), measures for `seconds`, then prints:
//   { lines, seconds, rate, bytesIn, connections, inflight, line, cpu, cpuUser, ok, errors }
// and closes its connections (end(), then wait for the server's FIN, bounded).
import net from 'node:net';
import { performance } from 'node:perf_hooks';

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, connections: 10, inflight: 64, line: 64, warmup: 1, seconds: 5 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '');
    const value = argv[i + 1];
    if (!(key in opts) || value === undefined) throw new Error(`load-lines: bad argument ${argv[i]}`);
    opts[key] = key === 'host' ? value : Number(value);
  }
  if (!(opts.port > 0)) throw new Error('load-lines: --port is required');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
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
// handled, and go out as one write per connection per event-loop turn (setImmediate).
const owed = new Map();
let flushScheduled = false;

function flushOwed() {
  flushScheduled = false;
  for (const [socket, n] of owed) if (sending && !socket.destroyed) sendLines(socket, n);
  owed.clear();
}

function open() {
  return new Promise((resolve, reject) => {
    // `onread` reads into one reused buffer: no Buffer allocation and no stream machinery per
    // chunk, so the generator stays cheap even when a server sends one small packet per line.
    const readBuffer = Buffer.allocUnsafe(256 * 1024);
    let socket;
    const onread = (nread, buf) => {
      bytesIn += nread;
      const n = countNewlines(nread === buf.length ? buf : buf.subarray(0, nread));
      total += n;
      if (sending && n > 0) {
        owed.set(socket, (owed.get(socket) ?? 0) + n);
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
      // Keep reading (and dropping) so that our unread data never turns the close into a reset.
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
  for (const s of sockets) sendLines(s, opts.inflight);

  await sleep(opts.warmup * 1000);
  const startLines = total;
  const startBytes = bytesIn;
  const startCpu = process.cpuUsage();
  const t0 = performance.now();
  process.stdout.write('{"event":"start"}\n');

  await sleep(opts.seconds * 1000);
  const lines = total - startLines;
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(startCpu);
  const measuredBytes = bytesIn - startBytes;
  sending = false;

  await closeAll(2000);
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
    cpu: (cpu.user + cpu.system) / 1e6 / elapsed, // fraction of one core the load generator used
    cpuUser: cpu.user / 1e6 / elapsed,
    ok,
    errors,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`load-lines: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
