/**
 * WebSocket benchmark: trews' WebSocketServer against a plain `ws` WebSocketServer, both
 * echoing every message back whole, in this process, one at a time, interleaved over rounds;
 * the load is a separate process (bench/load-websocket.mjs, hand-written framing, batched):
 *
 * - pipelined: 64-byte binary messages, 10 connections, 64 in flight on each. trews writes
 *   the replies to one chunk's messages in one syscall; ws writes each message on its own.
 * - ping-pong: 1 KiB messages, 10 connections, one in flight on each.
 * - idle: memory per idle connection, 5,000 connections, each server in a fresh process
 *   (bench/websocket-idle-server.mjs; trews from the built package: run `npm run build`).
 *
 * Targets: pipelined >= 3x ws, ping-pong >= 1.0x, idle RSS and heap per connection <= 1.0x ws.
 * Knobs (environment): BENCH_SECONDS (3), BENCH_WARMUP (1), BENCH_ROUNDS (2; the best round
 * counts), BENCH_WS_IDLE (5000 connections; the idle part needs dist/).
 */
import { existsSync } from 'node:fs';
import { WebSocketServer as WsServer, type WebSocket } from 'ws';
import { WebSocketConnection, WebSocketServer } from '../src/websocket/index.js';
import { BENCH_DIR, benchFile, closeWithin, envNumber, fmtInt, fmtRatio, listenTrews, machineLine, numberTable, roundHeaders, runLoad, verdict, type RunningServer } from './lib.js';
import { node } from './idle.js';

export const description = 'websocket: pipelined 64 B echo (10 x 64 in flight), 1 KiB ping-pong, idle memory (5,000); trews vs ws';

interface LoadResult {
  count: number;
  seconds: number;
  rate: number;
  ok: boolean;
  cpu: number;
}

class Echo extends WebSocketConnection {
  override onRead(message: string | Buffer): void {
    this.write(message);
  }
}

function trewsServer(): Promise<RunningServer> {
  return listenTrews(new WebSocketServer(Echo));
}

async function wsServer(): Promise<RunningServer> {
  const server = new WsServer({ host: '127.0.0.1', port: 0 });
  server.on('connection', (socket: WebSocket) => {
    socket.on('message', (data, isBinary) => socket.send(data as Buffer, { binary: isBinary }));
    socket.on('error', () => {});
  });
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      closeWithin(
        () =>
          new Promise<void>((resolve) => {
            for (const client of server.clients) client.terminate();
            server.close(() => resolve());
          }),
        3000,
        () => {},
      ),
  };
}

const SERVERS = [
  { name: 'trews', start: trewsServer },
  { name: 'ws', start: wsServer },
];

const LOADS = [
  { name: 'pipelined', args: ['--mode', 'pipelined', '--size', '64', '--depth', '64'], goal: 3 },
  { name: 'ping-pong', args: ['--mode', 'pingpong', '--size', '1024'], goal: 1 },
];

async function throughput(seconds: number, warmup: number, rounds: number): Promise<void> {
  const rates = new Map<string, number[]>();
  // Server CPU seconds per message, the best round's: on a busy machine a ping-pong rate says
  // as much about scheduling as about the server; its CPU per message says what it costs.
  const cpuPerMessage = new Map<string, number>();
  for (let round = 1; round <= rounds; round++) {
    for (const load of LOADS) {
      for (const spec of SERVERS) {
        const server = await spec.start();
        let rate = NaN;
        try {
          const { result, serverCpu } = await runLoad<LoadResult>(
            benchFile('load-websocket.mjs'),
            ['--port', String(server.port), '--connections', '10', '--warmup', String(warmup), '--seconds', String(seconds), ...load.args],
            (warmup + seconds) * 1000 + 15_000,
          );
          rate = result.ok ? result.rate : NaN;
          const cost = (serverCpu * result.seconds) / result.count;
          const key = `${load.name}/${spec.name}`;
          if (result.ok && !(cost >= (cpuPerMessage.get(key) ?? Infinity))) cpuPerMessage.set(key, cost);
          console.log(`  ${load.name.padEnd(9)} ${spec.name.padEnd(5)} ${fmtInt(result.rate).padStart(10)} msg/s  server cpu ${Math.round(serverCpu * 100)}%  load cpu ${Math.round(result.cpu * 100)}%${result.ok ? '' : '  (errors)'}`);
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
    const ratio = best(`${load.name}/trews`) / best(`${load.name}/ws`);
    console.log(`${load.name}: trews / ws = ${fmtRatio(ratio)} (target >= ${load.goal}x) ${verdict(ratio, load.goal)}`);
    const cpu = (cpuPerMessage.get(`${load.name}/trews`) ?? NaN) / (cpuPerMessage.get(`${load.name}/ws`) ?? NaN);
    console.log(`${load.name}: server CPU per message, trews / ws = ${fmtRatio(cpu)} (lower is better)`);
  }
}

interface Memory {
  connections: number;
  rss: number;
  heapUsed: number;
  external: number;
}

async function idleCost(kind: string, n: number): Promise<{ rss: number; heap: number }> {
  const server = node(['--expose-gc', benchFile('websocket-idle-server.mjs'), kind], null);
  const client = { proc: null as ReturnType<typeof node> | null };
  try {
    const { port } = await server.next<{ port: number }>(`${kind} server start`, 30_000);
    server.send('measure');
    const before = await server.next<Memory>('measure', 30_000);
    client.proc = node([benchFile('load-websocket.mjs'), '--mode', 'idle', '--port', String(port), '--connections', String(n)], null);
    const opened = await client.proc.next<{ connections: number; failed: number }>(`${kind}: opening ${n} WebSockets`, 120_000);
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
  if (!existsSync(`${BENCH_DIR}/../dist/websocket/index.js`)) {
    console.log('idle: skipped (no dist/websocket/index.js: run npm run build first)');
    return;
  }
  const best = new Map<string, { rss: number; heap: number }>();
  for (let round = 1; round <= rounds; round++) {
    for (const kind of ['trews', 'ws']) {
      const cost = await idleCost(kind, n);
      console.log(`  idle ${kind.padEnd(5)} ${fmtInt(cost.rss).padStart(7)} B RSS  ${fmtInt(cost.heap).padStart(7)} B heap+external per connection`);
      const prev = best.get(kind);
      if (prev === undefined || cost.rss < prev.rss) best.set(kind, cost);
    }
  }
  const trews = best.get('trews')!;
  const ws = best.get('ws')!;
  console.log(`idle (${fmtInt(n)} connections): RSS trews / ws = ${fmtRatio(trews.rss / ws.rss)} (target <= 1.0x) ${verdict(trews.rss / ws.rss, 1, { atMost: true })}`);
  console.log(`idle (${fmtInt(n)} connections): heap trews / ws = ${fmtRatio(trews.heap / ws.heap)} (target <= 1.0x) ${verdict(trews.heap / ws.heap, 1, { atMost: true })}`);
}

export async function run(): Promise<void> {
  const seconds = envNumber('BENCH_SECONDS', 3);
  const warmup = envNumber('BENCH_WARMUP', 1);
  const rounds = Math.round(envNumber('BENCH_ROUNDS', 2));
  const idleConnections = Math.round(envNumber('BENCH_WS_IDLE', 5000));
  console.log(`websocket: trews WebSocketServer vs ws WebSocketServer (echo), ${warmup} s warm-up + ${seconds} s measured, ${rounds} round(s), node ${process.version}`);
  console.log(machineLine());
  console.log();
  await throughput(seconds, warmup, rounds);
  console.log();
  await idle(idleConnections, rounds);
}
