// Client side of the idle-connections benchmark (bench/idle.ts). Plain JavaScript run by
// `node`, in its own process, so that none of its memory counts against the server measured.
//
//   node bench/load-idle.mjs --port 4000 [--host 127.0.0.1] [--connections 10000] [--parallel 256]
//
// Opens `connections` TCP connections (at most `parallel` connecting at a time); on each it
// sends one line and waits for its echo, so the server has really served every connection,
// then leaves it idle. Prints {"event":"open","connections","ms","failed"} once all are open.
// A line "close" on stdin (or stdin closing) resets every connection (RST: no TIME_WAIT left
// behind to use up loopback ports for the next run) and prints {"event":"closed"}.
import net from 'node:net';
import { createInterface } from 'node:readline';
import { exitOnError, parseArgs } from './load-common.mjs';

const opts = parseArgs('load-idle', process.argv.slice(2), { host: '127.0.0.1', port: 0, connections: 10000, parallel: 256 });
const sockets = [];
let failed = 0;
const errors = [];

function openOne() {
  return new Promise((resolve) => {
    const socket = net.connect({ host: opts.host, port: opts.port, noDelay: true });
    let text = '';
    let done = false;
    const finish = (ok, why) => {
      if (done) return;
      done = true;
      if (ok) sockets.push(socket);
      else {
        failed++;
        if (errors.length < 5) errors.push(why);
        socket.destroy();
      }
      resolve();
    };
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('hello\n'));
    socket.on('data', (d) => {
      text += d;
      if (text === 'hello\n') finish(true);
    });
    socket.on('error', (err) => finish(false, `${err.code ?? ''} ${err.message}`));
    socket.on('close', () => finish(false, 'closed before the echo'));
  });
}

async function main() {
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < opts.connections) {
      next++;
      await openOne();
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.parallel, opts.connections) }, worker));
  process.stdout.write(
    JSON.stringify({ event: 'open', connections: sockets.length, failed, errors, ms: Math.round(performance.now() - t0) }) + '\n',
  );
  const input = createInterface({ input: process.stdin });
  let closing = false;
  const closeAll = () => {
    if (closing) return;
    closing = true;
    for (const s of sockets) s.resetAndDestroy();
    process.stdout.write('{"event":"closed"}\n');
    setTimeout(() => process.exit(0), 100);
  };
  input.on('line', (line) => line.trim() === 'close' && closeAll());
  input.on('close', closeAll);
}

main().catch(exitOnError('load-idle')); // no exit when done: it waits for "close" on stdin
