/**
 * Socket.IO benchmark: trews' SocketIOServer against the official `socket.io` server, both in
 * this process, one at a time, interleaved over rounds; the load is a separate process
 * (bench/load-socketio.mjs: Engine.IO + Socket.IO over WebSocket by hand, batched):
 *
 * - echo: pipelined `echo` events with 64-character strings, 10 connections, 64 in flight on
 *   each, every event answered by an `echo` event (WebSocket transport).
 * - ack: events with an ack id, 10 connections, 64 in flight on each; the handler's value is the ack.
 * - idle: memory per connected client (one Engine.IO session, namespace '/'), 5,000 of them,
 *   each server in a fresh process (bench/socketio-idle-server.mjs; trews from dist/).
 *
 * Targets: echo >= 3x socket.io, ack >= 1.5x, idle memory per connection <= 0.5x.
 * Knobs (environment): BENCH_SECONDS (3), BENCH_WARMUP (1), BENCH_ROUNDS (2; the best round
 * counts), BENCH_SIO_IDLE (5000 connections; the idle part needs dist/).
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { Server as OfficialServer } from 'socket.io';
import { SocketConnection, SocketIOServer } from '../src/socket.io/index.js';
import { BENCH_DIR, benchFile, envNumber, fmtInt, fmtRatio, machineLine, numberTable, roundHeaders, runLoad, verdict, type RunningServer } from './lib.js';
import { node } from './idle.js';

export const description = 'socketio: pipelined echo events (10 x 64 in flight, 64 B), acks (10 x 64), idle memory (5,000); trews vs socket.io';

interface LoadResult {
  count: number;
  seconds: number;
  rate: number;
  ok: boolean;
  cpu: number;
}

class Echo extends SocketConnection {
  static override events = {
    echo(this: Echo, text: string) {
      this.emit('echo', text);
    },
    ack: (text: string) => text,
  };
}

async function trewsServer(): Promise<RunningServer> {
  const server = new SocketIOServer(Echo);
  await server.listen(['127.0.0.1', 0]);
  return { port: (server.localAddress as { port: number }).port, close: () => server.close() };
}

async function officialServer(): Promise<RunningServer> {
  const http = createServer();
  const io = new OfficialServer(http);
  io.on('connection', (socket) => {
    socket.on('echo', (text: string) => socket.emit('echo', text));
    socket.on('ack', (text: string, ack: (v: string) => void) => ack(text));
  });
  await new Promise<void>((resolve) => http.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return {
    port: (http.address() as { port: number }).port,
    close: () => new Promise<void>((resolve) => void io.close(() => resolve())),
  };
}

const SERVERS = [
  { name: 'trews', start: trewsServer },
  { name: 'socket.io', start: officialServer },
];

const LOADS = [
  { name: 'echo', args: ['--mode', 'echo'], goal: 3 },
  { name: 'ack', args: ['--mode', 'ack'], goal: 1.5 },
];

async function throughput(seconds: number, warmup: number, rounds: number): Promise<void> {
  const rates = new Map<string, number[]>();
  for (let round = 1; round <= rounds; round++) {
    for (const load of LOADS) {
      for (const spec of SERVERS) {
        const server = await spec.start();
        let rate = NaN;
        try {
          const { result, serverCpu } = await runLoad<LoadResult>(
            benchFile('load-socketio.mjs'),
            ['--port', String(server.port), '--connections', '10', '--depth', '64', '--size', '64', '--warmup', String(warmup), '--seconds', String(seconds), ...load.args],
            (warmup + seconds) * 1000 + 15_000,
          );
          rate = result.ok ? result.rate : NaN;
          console.log(`  ${load.name.padEnd(5)} ${spec.name.padEnd(9)} ${fmtInt(result.rate).padStart(10)} msg/s  server cpu ${Math.round(serverCpu * 100)}%  load cpu ${Math.round(result.cpu * 100)}%${result.ok ? '' : '  (errors)'}`);
        } catch (err) {
          console.log(`  ! ${load.name} ${spec.name}: ${(err as Error).message}`);
        } finally {
          await server.close();
        }
        const key = `${load.name}/${spec.name}`;
        rates.set(key, [...(rates.get(key) ?? []), rate]);
      }
    }
  }
  const best = (key: string) => {
    const measured = (rates.get(key) ?? []).filter(Number.isFinite);
    return measured.length === 0 ? NaN : Math.max(...measured);
  };
  console.log();
  console.log(numberTable(['run', ...roundHeaders(rounds), 'best'], [...rates].map(([key, list]) => [key, ...list.map(fmtInt), fmtInt(best(key))])));
  console.log();
  for (const load of LOADS) {
    const ratio = best(`${load.name}/trews`) / best(`${load.name}/socket.io`);
    console.log(`${load.name}: trews / socket.io = ${fmtRatio(ratio)} (target >= ${load.goal}x) ${verdict(ratio, load.goal)}`);
  }
}

interface Memory {
  connections: number;
  rss: number;
  heapUsed: number;
  external: number;
}

async function idleCost(kind: string, n: number): Promise<{ rss: number; heap: number }> {
  const server = node(['--expose-gc', benchFile('socketio-idle-server.mjs'), kind], null);
  const client = { proc: null as ReturnType<typeof node> | null };
  try {
    const { port } = await server.next<{ port: number }>(`${kind} server start`, 30_000);
    server.send('measure');
    const before = await server.next<Memory>('measure', 30_000);
    client.proc = node([benchFile('load-socketio.mjs'), '--mode', 'idle', '--port', String(port), '--connections', String(n)], null);
    const opened = await client.proc.next<{ connections: number; failed: number }>(`${kind}: opening ${n} sessions`, 120_000);
    if (opened.failed > 0) console.log(`  ! ${kind}: ${opened.failed} connections failed`);
    let after: Memory;
    do {
      server.send('measure');
      after = await server.next<Memory>('measure', 30_000);
    } while (after.connections < opened.connections && (await new Promise((r) => setTimeout(r, 100, true))));
    return { rss: (after.rss - before.rss) / after.connections, heap: (after.heapUsed + after.external - before.heapUsed - before.external) / after.connections };
  } finally {
    await client.proc?.stop();
    await server.stop();
  }
}

async function idle(n: number, rounds: number): Promise<void> {
  if (!existsSync(`${BENCH_DIR}/../dist/socket.io/index.js`)) {
    console.log('idle: skipped (no dist/socket.io/index.js: run npm run build first)');
    return;
  }
  const best = new Map<string, { rss: number; heap: number }>();
  for (let round = 1; round <= rounds; round++) {
    for (const kind of ['trews', 'socket.io']) {
      const cost = await idleCost(kind, n);
      console.log(`  idle ${kind.padEnd(9)} ${fmtInt(cost.rss).padStart(7)} B RSS  ${fmtInt(cost.heap).padStart(7)} B heap+external per connection`);
      const prev = best.get(kind);
      if (prev === undefined || cost.rss < prev.rss) best.set(kind, cost);
    }
  }
  const trews = best.get('trews')!;
  const official = best.get('socket.io')!;
  console.log(`idle (${fmtInt(n)} connections): RSS trews / socket.io = ${fmtRatio(trews.rss / official.rss)} (target <= 0.5x) ${verdict(trews.rss / official.rss, 0.5, { atMost: true })}`);
  console.log(`idle (${fmtInt(n)} connections): heap trews / socket.io = ${fmtRatio(trews.heap / official.heap)} (target <= 0.5x) ${verdict(trews.heap / official.heap, 0.5, { atMost: true })}`);
}

export async function run(): Promise<void> {
  const seconds = envNumber('BENCH_SECONDS', 3);
  const warmup = envNumber('BENCH_WARMUP', 1);
  const rounds = Math.round(envNumber('BENCH_ROUNDS', 2));
  const idleConnections = Math.round(envNumber('BENCH_SIO_IDLE', 5000));
  console.log(`socketio: trews SocketIOServer vs socket.io Server (WebSocket transport), ${warmup} s warm-up + ${seconds} s measured, ${rounds} round(s), node ${process.version}`);
  console.log(machineLine());
  console.log();
  await throughput(seconds, warmup, rounds);
  console.log();
  await idle(idleConnections, rounds);
}
