// Load generator for the connection churn benchmark (bench/churn.ts). Plain JavaScript run
// by `node`, so it costs the same for every server it drives.
//
//   node bench/load-churn.mjs --port 4000 [--host 127.0.0.1] [--concurrency 50]
//        [--warmup 1] [--seconds 5]
//
// `concurrency` workers each loop: connect, send "ping\n", wait for "ping\n" back, end()
// (half-close), wait for the server to close, start over. After `warmup` seconds it prints
// {"event":"start"} and counts completed connections for `seconds`, then prints
//   { connections, seconds, rate, meanMs, errors, errorSamples, cpu }
// (meanMs: connect to close, per connection; cpu: fraction of a core this process used).
// Loopback ports: the client closes first, so its side ends in TIME_WAIT; Linux reuses
// those for new loopback connections (net.ipv4.tcp_tw_reuse = 2, the default).
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { cpuFraction, measuredWindow, parseArgs, runMain, sleep } from './load-common.mjs';

const opts = parseArgs('load-churn', process.argv.slice(2), { host: '127.0.0.1', port: 0, concurrency: 50, warmup: 1, seconds: 5 });
let running = true;
let measuring = false;
let completed = 0;
let totalMs = 0;
let errors = 0;
const errorSamples = [];
const PING = Buffer.from('ping\n');

function once() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const socket = net.connect({ host: opts.host, port: opts.port, noDelay: true });
    let got = 0;
    let failed = false;
    socket.on('connect', () => socket.write(PING));
    socket.on('data', (chunk) => {
      got += chunk.length;
      if (got >= PING.length) socket.end();
    });
    socket.on('error', (err) => {
      failed = true;
      if (measuring) errors++;
      if (errorSamples.length < 5) errorSamples.push(`${err.code ?? ''} ${err.message}`);
    });
    socket.on('close', () => {
      if (measuring && !failed && got === PING.length) {
        completed++;
        totalMs += performance.now() - t0;
      } else if (measuring && !failed) {
        errors++;
        if (errorSamples.length < 5) errorSamples.push(`closed after ${got} bytes`);
      }
      resolve();
    });
  });
}

async function worker() {
  while (running) await once();
}

async function main() {
  const workers = Array.from({ length: opts.concurrency }, worker);
  const { seconds: elapsed, cpu } = await measuredWindow(opts, { start: () => (measuring = true), stop: () => (measuring = false) });
  running = false;
  await Promise.race([Promise.all(workers), sleep(3000)]);
  process.stdout.write(
    JSON.stringify({
      connections: completed,
      seconds: elapsed,
      rate: completed / elapsed,
      meanMs: completed > 0 ? totalMs / completed : NaN,
      errors,
      errorSamples,
      cpu: cpuFraction(cpu, elapsed),
    }) + '\n',
  );
}

runMain('load-churn', main);
