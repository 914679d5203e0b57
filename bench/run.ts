/**
 * Benchmark entry: `npm run bench` runs every suite; `npm run bench -- line-echo` runs the
 * ones named. A suite is a module exporting `description` and `run(): Promise<void>`; add a
 * new one (framer-only, UDP, TLS, ...) to SUITES below.
 *
 * Benchmarks never fail a build: a missed target is printed as MISSED, and the exit code is
 * non-zero only when the benchmark itself could not run (a bad argument, a crash).
 */
import { killChildren } from './lib.js';

interface SuiteModule {
  description: string;
  run(): Promise<void>;
}

const SUITES: Record<string, () => Promise<SuiteModule>> = {
  'line-echo': () => import('./line-echo.js'),
  framer: () => import('./framer.js'),
  'tls-echo': () => import('./tls-echo.js'),
  udp: () => import('./udp.js'),
  memory: () => import('./memory.js'),
  rpc: () => import('./rpc.js'),
  idle: () => import('./idle.js'),
  churn: () => import('./churn.js'),
  latency: () => import('./latency.js'),
  websocket: () => import('./websocket.js'),
  socketio: () => import('./socketio.js'),
  redis: () => import('./redis.js'),
};

function usage(): string {
  return `usage: npm run bench [-- <suite> ...]\nsuites: ${Object.keys(SUITES).join(', ')}`;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes('-h') || args.includes('--help')) {
    console.log(usage());
    for (const [name, load] of Object.entries(SUITES)) console.log(`  ${name}: ${(await load()).description}`);
    return 0;
  }
  const unknown = args.filter((a) => !(a in SUITES));
  if (unknown.length > 0) {
    console.error(`unknown suite(s): ${unknown.join(', ')}\n${usage()}`);
    return 2;
  }
  const names = args.length > 0 ? args : Object.keys(SUITES);
  const started = performance.now();
  for (const name of names) {
    const suite = await SUITES[name]!();
    console.log(`== ${name} ==`);
    await suite.run();
    console.log();
  }
  console.log(`bench: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}

main().then(
  (code) => {
    killChildren();
    process.exitCode = code;
    // Everything is closed, so the process should now exit by itself; if some handle leaked,
    // say so and exit anyway (the timer is unref'd: it never keeps the process alive).
    setTimeout(() => {
      console.error('bench: handles still open 5 s after the last suite; exiting anyway');
      process.exit(code);
    }, 5000).unref();
  },
  (err: unknown) => {
    killChildren();
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  },
);
