/**
 * Socket.IO benchmark: trews' SocketIOServer against the official `socket.io` server, both in
 * this process, one at a time, interleaved over rounds; the load is a separate process
 * (bench/load-socketio.mjs: Engine.IO + Socket.IO over WebSocket by hand, batched):
 *
 * - echo: pipelined `echo` events with 64-character strings, 10 connections, 64 in flight on
 *   each, every event answered by an `echo` event (WebSocket transport).
 * - ack: events with an ack id, 10 connections, 64 in flight on each; the handler's value is the ack.
 * - idle: memory per connected client (one Engine.IO session, namespace '/'), 5,000 of them,
 *   each server in a fresh process (bench/socketio-idle-server.mjs; trews from dist/). Also
 *   printed: RSS less the growth of V8's young generation, which both servers grow to its
 *   limit while the clients connect (~27 MB, ~5.5 KB a connection at 5,000) and which is not
 *   a cost per connection.
 *
 * Targets: echo >= 3x socket.io, ack >= 1.5x, idle memory per connection <= 0.5x.
 * Knobs (environment): BENCH_SECONDS (3), BENCH_WARMUP (1), BENCH_ROUNDS (2; the best round
 * counts), BENCH_SIO_IDLE (5000 connections; the idle part needs dist/).
 */
import { createServer } from 'node:http';
import { Server as OfficialServer } from 'socket.io';
import { SocketConnection, SocketIOServer } from '../src/socket.io/index.js';
import { compareRates, envNumber, envTiming, machineLine, type RateLoad, type RunningServer, type ServerSpec } from './lib.js';
import { compareIdleMemory } from './idle.js';

export const description = 'socketio: pipelined echo events (10 x 64 in flight, 64 B), acks (10 x 64), idle memory (5,000); trews vs socket.io';

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

const SERVERS: [ServerSpec, ServerSpec] = [
  { name: 'trews', start: trewsServer },
  { name: 'socket.io', start: officialServer },
];

const LOADS: RateLoad[] = [
  { name: 'echo', args: ['--mode', 'echo'], goal: 3 },
  { name: 'ack', args: ['--mode', 'ack'], goal: 1.5 },
];

export async function run(): Promise<void> {
  const { seconds, warmup, rounds } = envTiming({ seconds: 3, rounds: 2 });
  const idleConnections = Math.round(envNumber('BENCH_SIO_IDLE', 5000));
  console.log(`socketio: trews SocketIOServer vs socket.io Server (WebSocket transport), ${warmup} s warm-up + ${seconds} s measured, ${rounds} round(s), node ${process.version}`);
  console.log(machineLine());
  console.log();
  await compareRates({
    script: 'load-socketio.mjs',
    servers: SERVERS,
    loads: LOADS,
    args: ['--connections', '10', '--depth', '64', '--size', '64'],
    seconds,
    warmup,
    rounds,
    pad: { load: 5, server: 9 },
    cpuPerMessage: true,
  });
  console.log();
  await compareIdleMemory({
    server: 'socketio-idle-server.mjs',
    client: 'load-socketio.mjs',
    kinds: ['trews', 'socket.io'],
    what: 'sessions',
    dist: 'dist/socket.io/index.js',
    pad: 9,
    goal: 0.5,
    connections: idleConnections,
    rounds,
    settleMs: Math.round(envNumber('BENCH_IDLE_SETTLE', 20_000)),
  });
}
