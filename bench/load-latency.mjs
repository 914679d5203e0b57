// Load generator for the latency benchmark (bench/latency.ts). Plain JavaScript run by
// `node`, so it costs the same for every server it drives.
//
//   node bench/load-latency.mjs --port 4000 --size 1024 [--host 127.0.0.1]
//        [--connections 10] [--warmup 1] [--seconds 3]
//
// Each connection plays ping-pong with messages of exactly `size` bytes, one in flight: send
// a message, wait until `size` bytes have come back, note the round trip, send the next.
// After `warmup` seconds it prints {"event":"start"} and records every round trip for
// `seconds`, then prints, times in microseconds:
//   { count, seconds, rate, p50, p90, p99, p999, max, mean, ok, cpu }
// (ok: every connection received exactly what it sent, in whole messages.)
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { cpuFraction, measuredWindow, parseArgs, runMain } from './load-common.mjs';

const opts = parseArgs('load-latency', process.argv.slice(2), { host: '127.0.0.1', port: 0, size: 1024, connections: 10, warmup: 1, seconds: 3 });
if (!(opts.size > 0)) throw new Error('load-latency: --port and --size are required');
const message = Buffer.alloc(opts.size);
for (let i = 0; i < message.length; i++) message[i] = 0x61 + (i % 26);

let running = true;
let measuring = false;
let samples = new Float64Array(1 << 16);
let count = 0;
let ok = true;
const sockets = [];

function record(us) {
  if (count === samples.length) {
    const bigger = new Float64Array(samples.length * 2);
    bigger.set(samples);
    samples = bigger;
  }
  samples[count++] = us;
}

function open() {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: opts.host, port: opts.port, noDelay: true });
    let got = 0;
    let sentAt = 0;
    const send = () => {
      sentAt = performance.now();
      socket.write(message);
    };
    socket.on('data', (chunk) => {
      got += chunk.length;
      if (got > opts.size) ok = false;
      if (got < opts.size) return;
      if (measuring) record((performance.now() - sentAt) * 1000);
      got = 0;
      if (running) send();
    });
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', () => (ok = false));
      resolve(socket);
      send();
    });
    socket.once('error', reject);
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  for (let i = 0; i < opts.connections; i++) sockets.push(await open());
  const stop = () => {
    measuring = false;
    running = false;
  };
  const { seconds: elapsed, cpu } = await measuredWindow(opts, { start: () => (measuring = true), stop });
  const sorted = samples.slice(0, count).sort();
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i];
  for (const s of sockets) s.destroy();
  process.stdout.write(
    JSON.stringify({
      count,
      seconds: elapsed,
      rate: count / elapsed,
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      p999: percentile(sorted, 99.9),
      max: count > 0 ? sorted[count - 1] : NaN,
      mean: count > 0 ? sum / count : NaN,
      ok,
      cpu: cpuFraction(cpu, elapsed),
    }) + '\n',
  );
}

runMain('load-latency', main);
