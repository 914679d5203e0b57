/**
 * Scale-out benchmark: what a broadcast costs when it crosses processes through Redis
 * (trews/redis RedisBus), against the same broadcast in one process, side by side in one run.
 *
 * - one process: `server.broadcast()` to BENCH_CONNECTIONS (10) TCP connections of that server;
 * - through Redis: `server.broadcast()` on a server attached to a bus, with the connections on
 *   a second process's server attached under the same name (bench/redis-peer.ts): each
 *   broadcast is published once, and delivered by the other process.
 *
 * Throughput: BENCH_MESSAGES (50,000) broadcasts of BENCH_SIZE (64) bytes, sent 500 per event
 * loop turn, timed until every connection has received every byte. Latency: BENCH_PINGS (2,000)
 * broadcasts one at a time, each timed from `broadcast()` to its arrival at one connection.
 * Best of BENCH_ROUNDS (2) rounds. A real redis-server (Debian's) runs on a free port; with
 * none installed the suite says so and is skipped. Connections, the sender, the other process
 * and redis-server share this machine's CPUs, so compare ratios, not absolute rates; the CPU
 * per broadcast (every process's: the sender's, the other process's, redis-server's) depends
 * less on what else the machine is doing than the rates do.
 */
import net from 'node:net';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Server } from '../src/index.js';
import { RedisBus } from '../src/redis/index.js';
import { NO_REDIS, RedisServer, hasRedisServer } from '../test/redis-server.js';
import { benchFile, envNumber, fmtInt, fmtRatio, machineLine, numberTable } from './lib.js';

export const description = 'broadcast through Redis to another process (trews/redis) vs in one process: throughput and added latency';

const CONNECTIONS = Math.round(envNumber('BENCH_CONNECTIONS', 10));
const MESSAGES = Math.round(envNumber('BENCH_MESSAGES', 50_000));
const SIZE = Math.round(envNumber('BENCH_SIZE', 64));
const PINGS = Math.round(envNumber('BENCH_PINGS', 2000));
const ROUNDS = Math.round(envNumber('BENCH_ROUNDS', 2));
const BATCH = 500;
const TIMEOUT_MS = 60_000;

/** TCP connections to a server that count what they receive. */
class Receivers {
  readonly sockets: net.Socket[] = [];
  readonly bytes: number[] = [];
  #waiter: (() => void) | null = null;

  static async connect(port: number, n: number): Promise<Receivers> {
    const receivers = new Receivers();
    await Promise.all(Array.from({ length: n }, (_, i) => receivers.#open(port, i)));
    return receivers;
  }

  #open(port: number, i: number): Promise<void> {
    this.bytes[i] = 0;
    const socket = net.connect(port, '127.0.0.1');
    this.sockets.push(socket);
    socket.on('data', (chunk: Buffer) => {
      this.bytes[i]! += chunk.length;
      this.#waiter?.();
    });
    return new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
  }

  /** Resolves once every connection (or only the first) has received `total` bytes. */
  until(total: number, onlyFirst = false): Promise<void> {
    const done = () => (onlyFirst ? this.bytes[0]! >= total : this.bytes.every((b) => b >= total));
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`receivers stuck at ${this.bytes.join(',')} of ${total} bytes`)), TIMEOUT_MS);
      this.#waiter = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.#waiter = null;
        resolve();
      };
    });
  }

  close(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}

interface Setup {
  label: string;
  /** The server broadcasts are made on. */
  sender: Server;
  receivers: Receivers;
  /** CPU ms used so far by the other processes involved (the receiving process, redis-server). */
  otherCpu: () => Promise<number>;
}

async function throughput({ sender, receivers, otherCpu }: Setup): Promise<{ rate: number; cpuMs: number; otherMs: number }> {
  const message = Buffer.alloc(SIZE, 'x');
  const start = receivers.bytes[0]!;
  const others = await otherCpu();
  const cpu = process.cpuUsage();
  const began = performance.now();
  for (let sent = 0; sent < MESSAGES; ) {
    for (const end = Math.min(MESSAGES, sent + BATCH); sent < end; sent++) sender.broadcast(message);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await receivers.until(start + MESSAGES * SIZE);
  const seconds = (performance.now() - began) / 1000;
  const used = process.cpuUsage(cpu);
  return { rate: MESSAGES / seconds, cpuMs: (used.user + used.system) / 1000, otherMs: (await otherCpu()) - others };
}

async function latency({ sender, receivers }: Setup): Promise<{ p50: number; p99: number }> {
  const message = Buffer.alloc(SIZE, 'p');
  const times: number[] = [];
  let expected = receivers.bytes[0]!;
  for (let i = 0; i < PINGS; i++) {
    expected += SIZE;
    const began = performance.now();
    sender.broadcast(message);
    await receivers.until(expected, true);
    times.push((performance.now() - began) * 1000);
  }
  await receivers.until(expected); // the others too, before the next measurement
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { p50: at(0.5), p99: at(0.99) };
}

/** The other process: a server attached to the bus; resolves with its port, and how to stop it (returning its CPU ms). */
async function startPeer(url: string, channel: string): Promise<{ port: number; accepted: (n: number) => Promise<void>; cpu: () => Promise<number>; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', benchFile('redis-peer.ts')], { env: { ...process.env, REDIS_URL: url, BUS_CHANNEL: channel }, stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-peer did not start: ${out}`)), 20_000);
    child.stdout.on('data', () => {
      const match = /port (\d+)\n/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`redis-peer exited (${code}): ${out}`)));
  });
  const accepted = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => (out.includes(`connections ${n}\n`) ? resolve() : child.stdout.once('data', check));
      check();
    });
  const cpu = () =>
    new Promise<number>((resolve) => {
      const seen = out.length;
      const check = () => {
        const match = /cpu ([\d.]+)\n/.exec(out.slice(seen));
        if (match) resolve(Number(match[1]));
        else child.stdout.once('data', check);
      };
      child.stdin.write('cpu\n');
      check();
    });
  const stop = async () => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.stdin.end();
    await exited;
  };
  return { port, accepted, cpu, stop };
}

export async function run(): Promise<void> {
  console.log(machineLine());
  if (!hasRedisServer) {
    console.log(NO_REDIS);
    return;
  }
  console.log(`${MESSAGES} broadcasts of ${SIZE} bytes to ${CONNECTIONS} connections; latency over ${PINGS} one-at-a-time broadcasts; best of ${ROUNDS} rounds`);
  const redis = await RedisServer.start();
  const channel = randomUUID();
  const local = new Server({ slowReaders: 'queue' });
  const relaying = new Server({ slowReaders: 'queue' });
  const bus = new RedisBus({ redis: redis.url, channel });
  const admin = new Redis(redis.url);
  /** redis-server's CPU ms so far (INFO cpu). */
  const redisCpu = async () => {
    const info = await admin.info('cpu');
    const seconds = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? NaN);
    return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1000;
  };
  let peer: Awaited<ReturnType<typeof startPeer>> | null = null;
  const all: Receivers[] = [];
  try {
    await local.listen(['127.0.0.1', 0]);
    await bus.attach(relaying, 'bench').ready();
    peer = await startPeer(redis.url, channel);
    const { cpu: peerCpu } = peer;
    const one: Setup = { label: 'one process', sender: local, receivers: await Receivers.connect((local.localAddress as { port: number }).port, CONNECTIONS), otherCpu: async () => 0 };
    const two: Setup = { label: 'through Redis', sender: relaying, receivers: await Receivers.connect(peer.port, CONNECTIONS), otherCpu: async () => (await peerCpu()) + (await redisCpu()) };
    all.push(one.receivers, two.receivers);
    // Every connection accepted on both sides before the first broadcast.
    while (local.connections.size < CONNECTIONS) await new Promise((resolve) => local.once('accept', resolve));
    await peer.accepted(CONNECTIONS);

    const best = new Map<Setup, { rate: number; cpuMs: number; otherMs: number; p50: number; p99: number }>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const setup of [one, two]) {
        const t = await throughput(setup);
        const l = await latency(setup);
        const prev = best.get(setup);
        const faster = prev === undefined || t.rate > prev.rate;
        best.set(setup, { rate: Math.max(prev?.rate ?? 0, t.rate), cpuMs: faster ? t.cpuMs : prev.cpuMs, otherMs: faster ? t.otherMs : prev.otherMs, p50: Math.min(prev?.p50 ?? Infinity, l.p50), p99: Math.min(prev?.p99 ?? Infinity, l.p99) });
      }
    }
    const nsPerBroadcast = (ms: number) => fmtInt((ms * 1e6) / MESSAGES);
    const a = best.get(one)!;
    const b = best.get(two)!;
    console.log();
    console.log(
      numberTable(
        ['', 'broadcasts/s', 'deliveries/s', 'CPU ns/bc here', 'CPU ns/bc elsewhere', 'p50 µs', 'p99 µs'],
        [
          [one.label, fmtInt(a.rate), fmtInt(a.rate * CONNECTIONS), nsPerBroadcast(a.cpuMs), '-', fmtInt(a.p50), fmtInt(a.p99)],
          [two.label, fmtInt(b.rate), fmtInt(b.rate * CONNECTIONS), nsPerBroadcast(b.cpuMs), nsPerBroadcast(b.otherMs), fmtInt(b.p50), fmtInt(b.p99)],
        ],
      ),
    );
    console.log();
    const added = (us: number) => `${us < 0 ? '-' : '+'}${fmtInt(Math.abs(us))} µs`;
    console.log(`through Redis / one process: throughput ${fmtRatio(b.rate / a.rate)}, p50 latency ${fmtRatio(b.p50 / a.p50)} (${added(b.p50 - a.p50)}), p99 ${added(b.p99 - a.p99)}`);
    console.log(`CPU per broadcast, every process: ${fmtRatio((b.cpuMs + b.otherMs) / a.cpuMs)} ('here': the sender and the test's client sockets; 'elsewhere': the receiving process and redis-server)`);
    console.log(`bus: ${JSON.stringify(bus.stats)}`);
  } finally {
    for (const receivers of all) receivers.close();
    await peer?.stop();
    admin.disconnect();
    await Promise.all([bus.close(), local.close(false), relaying.close(false)]);
    await redis.stop();
  }
}
