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
import { WebSocketServer as WsServer, type WebSocket } from 'ws';
import { WebSocketConnection, WebSocketServer } from '../src/websocket/index.js';
import { closeWithin, compareRates, envNumber, envTiming, listenTrews, machineLine, type RateLoad, type RunningServer, type ServerSpec } from './lib.js';
import { compareIdleMemory } from './idle.js';

export const description = 'websocket: pipelined 64 B echo (10 x 64 in flight), 1 KiB ping-pong, idle memory (5,000); trews vs ws';

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

const SERVERS: [ServerSpec, ServerSpec] = [
  { name: 'trews', start: trewsServer },
  { name: 'ws', start: wsServer },
];

const LOADS: RateLoad[] = [
  { name: 'pipelined', args: ['--mode', 'pipelined', '--size', '64', '--depth', '64'], goal: 3 },
  { name: 'ping-pong', args: ['--mode', 'pingpong', '--size', '1024'], goal: 1 },
];

export async function run(): Promise<void> {
  const { seconds, warmup, rounds } = envTiming({ seconds: 3, rounds: 2 });
  const idleConnections = Math.round(envNumber('BENCH_WS_IDLE', 5000));
  console.log(`websocket: trews WebSocketServer vs ws WebSocketServer (echo), ${warmup} s warm-up + ${seconds} s measured, ${rounds} round(s), node ${process.version}`);
  console.log(machineLine());
  console.log();
  await compareRates({
    script: 'load-websocket.mjs',
    servers: SERVERS,
    loads: LOADS,
    args: ['--connections', '10'],
    seconds,
    warmup,
    rounds,
    pad: { load: 9, server: 5 },
    cpuPerMessage: true,
  });
  console.log();
  await compareIdleMemory({
    server: 'websocket-idle-server.mjs',
    client: 'load-websocket.mjs',
    kinds: ['trews', 'ws'],
    what: 'WebSockets',
    dist: 'dist/websocket/index.js',
    pad: 5,
    goal: 1,
    connections: idleConnections,
    rounds,
    settleMs: Math.round(envNumber('BENCH_IDLE_SETTLE', 20_000)),
  });
}
