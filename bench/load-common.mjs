// Pieces shared by the plain-JavaScript load generators (bench/load-*.mjs). Plain JavaScript
// like them, so importing it adds no loader and costs the same for every server they drive.
import { createInterface } from 'node:readline';

/**
 * Parse `--key value` pairs over `defaults` (which also says which keys exist). Keys listed in
 * `strings` keep their text; every other value becomes a Number. A key whose default is
 * `false` is a flag: `--key` alone turns it on. `--port` is always required. Errors name the
 * generator (`name: bad argument --x`).
 */
export function parseArgs(name, argv, defaults, strings = ['host']) {
  const opts = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '');
    if (key in opts && opts[key] === false) {
      opts[key] = true;
      i--; // a flag takes no value
      continue;
    }
    const value = argv[i + 1];
    if (!(key in opts) || value === undefined) throw new Error(`${name}: bad argument ${argv[i]}`);
    opts[key] = strings.includes(key) ? value : Number(value);
  }
  if (!(opts.port > 0)) throw new Error(`${name}: --port is required`);
  return opts;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** CPU time (user + system, from a `process.cpuUsage(start)` difference) as a fraction of one core over `seconds`. */
export function cpuFraction(cpu, seconds) {
  return (cpu.user + cpu.system) / 1e6 / seconds;
}

/** Run `main`, then exit 0; on an error, print it as `name: stack` and exit 1. */
export function runMain(name, main) {
  main().then(() => process.exit(0), exitOnError(name));
}

/** An error handler that prints `name: stack` to stderr and exits 1. */
export function exitOnError(name) {
  return (err) => {
    process.stderr.write(`${name}: ${err?.stack ?? err}\n`);
    process.exit(1);
  };
}

/**
 * Resolve with `socket` once `readyEvent` ('connect', or 'secureConnect' for TLS) fires, or
 * reject with its first error; after that, errors are recorded in `errors` (at most 5).
 */
export function whenReady(socket, readyEvent, errors) {
  return new Promise((resolve, reject) => {
    socket.once(readyEvent, () => {
      socket.off('error', reject);
      socket.on('error', (err) => {
        if (errors.length < 5) errors.push(`${err.code ?? ''} ${err.message}`);
      });
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * What is owed to each connection, sent once per connection per event-loop turn: fill
 * `owed` (socket -> what it is owed) while this turn's reads are handled and call
 * `schedule()`; on the next turn (setImmediate) `flush(socket, value)` runs for each entry.
 */
export function turnBatcher(flush) {
  const owed = new Map();
  let scheduled = false;
  const run = () => {
    scheduled = false;
    for (const [socket, value] of owed) flush(socket, value);
    owed.clear();
  };
  return {
    owed,
    schedule() {
      if (!scheduled) {
        scheduled = true;
        setImmediate(run);
      }
    },
  };
}

/**
 * end() every socket and wait for all of them to close; after `timeoutMs`, destroy whatever
 * is left. (Sockets keep reading, and dropping, so unread data never turns a close into a reset.)
 */
export function closeAll(sockets, timeoutMs) {
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

/**
 * The measured window of a load generator: let the load run `opts.warmup` s unmeasured, then
 * print {"event":"start"} (the parent starts its server-CPU clock on that line) and run
 * `opts.seconds` s more. `hooks.start()` and `hooks.stop()` run at the window's edges (to start
 * and stop counting); with `hooks.total()`, the generator's running count, `count` is what it
 * counted inside the window. Returns { count, seconds, cpu } (`cpu` a process.cpuUsage() difference).
 */
export async function measuredWindow(opts, hooks = {}) {
  await sleep(opts.warmup * 1000);
  const startTotal = hooks.total?.() ?? 0;
  const startCpu = process.cpuUsage();
  const t0 = performance.now();
  hooks.start?.();
  process.stdout.write('{"event":"start"}\n');
  await sleep(opts.seconds * 1000);
  hooks.stop?.();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(startCpu);
  return { count: (hooks.total?.() ?? 0) - startTotal, seconds, cpu };
}

/** Print one JSON line on stdout (what the parent reads). */
export function printJson(value) {
  process.stdout.write(JSON.stringify(value) + '\n');
}

/** The result line of a rate-counting generator, from its `measuredWindow`: {"count","seconds","rate","ok","cpu"}. */
export function printRate(measured, ok) {
  const { count, seconds } = measured;
  printJson({ count, seconds, rate: count / seconds, ok, cpu: cpuFraction(measured.cpu, seconds) });
}

/**
 * The idle mode of a load generator: open `connections` connections with `openOne()` (which
 * resolves with a socket, or rejects), 256 connecting at a time, print
 * {"event":"open","connections","failed"}, hold them until stdin closes, then reset them all
 * (RST: no TIME_WAIT left behind to use up loopback ports for the next run).
 */
export async function holdIdle(connections, openOne) {
  const sockets = [];
  let failed = 0;
  let next = 0;
  const worker = async () => {
    while (next < connections) {
      next++;
      try {
        sockets.push(await openOne());
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(256, connections) }, worker));
  printJson({ event: 'open', connections: sockets.length, failed });
  await new Promise((resolve) => createInterface({ input: process.stdin }).on('close', resolve));
  for (const socket of sockets) socket.resetAndDestroy();
}
