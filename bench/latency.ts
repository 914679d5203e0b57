/**
 * Latency benchmark: ping-pong round trips at 1 KiB and 100 KiB, 10 connections with one
 * message in flight each, against a trews Server (readDelimiter = the message size: a
 * byte-count frame, echoed whole) and a plain node:net server framing the same way by hand
 * (collect `size` bytes, write them back as one message), both in this process, one at a
 * time, interleaved over rounds. The load is a separate process (bench/load-latency.mjs)
 * recording every round trip; the table shows p50/p90/p99/p99.9 in microseconds.
 *
 * Knobs (environment): BENCH_SECONDS (measured seconds per run, default 3), BENCH_WARMUP (1),
 * BENCH_ROUNDS (2; the round with the lowest p50 counts), BENCH_CONNECTIONS (10),
 * BENCH_SIZES (a comma list of message sizes in bytes, default 1024,102400).
 */
import net from 'node:net';
import { Connection, Server } from '../src/index.js';
import { benchFile, envList, envNumber, envTiming, fmtInt, fmtPct, fmtRatio, listenNet, listenTrews, machineLine, onFreshServer, runLoad, table, track, verdict, type RunningServer } from './lib.js';

interface LatencyResult {
  count: number;
  seconds: number;
  rate: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
  ok: boolean;
  cpu: number;
}

function trewsServer(size: number): () => Promise<RunningServer> {
  return () => {
    class FixedEcho extends Connection {
      override readDelimiter = size;
      override bufferSize = Math.max(65536, size);
      override onRead(message: Buffer): void {
        this.write(message);
      }
    }
    return listenTrews(new Server(FixedEcho));
  };
}

function netServer(size: number): () => Promise<RunningServer> {
  return () => {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      track(sockets, socket);
      let parts: Buffer[] = [];
      let have = 0;
      socket.on('data', (chunk: Buffer) => {
        while (chunk.length > 0) {
          const need = size - have;
          if (chunk.length < need) {
            parts.push(chunk);
            have += chunk.length;
            return;
          }
          const last = chunk.subarray(0, need);
          socket.write(parts.length === 0 ? last : Buffer.concat([...parts, last], size));
          parts = [];
          have = 0;
          chunk = chunk.subarray(need);
        }
      });
    });
    return listenNet(server, sockets);
  };
}

const SERVERS = [
  { name: 'trews', what: 'trews Server + Connection, readDelimiter = size (bufferSize >= size), write(frame)', start: trewsServer },
  { name: 'net', what: 'node:net, hand-written byte-count framing, one write per message', start: netServer },
];

export const description = 'latency: ping-pong p50/p99 at 1 KiB and 100 KiB, 10 connections x 1 in flight; trews vs node:net';

const NONE: LatencyResult = { count: 0, seconds: NaN, rate: NaN, p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN, ok: false, cpu: NaN };

function kib(bytes: number): string {
  return bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} B`;
}

export async function run(): Promise<void> {
  const { seconds, warmup, rounds } = envTiming({ seconds: 3, rounds: 2 });
  const connections = Math.round(envNumber('BENCH_CONNECTIONS', 10));
  const sizes = (envList('BENCH_SIZES') ?? ['1024', '102400']).map((s) => {
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`BENCH_SIZES: bad size ${s}`);
    return n;
  });
  console.log(
    `latency: ping-pong, ${connections} connections x 1 message in flight, sizes ${sizes.map(kib).join(', ')}, ` +
      `${warmup} s warm-up + ${seconds} s measured, ${rounds} round(s), node ${process.version}`,
  );
  for (const s of SERVERS) console.log(`  ${s.name.padEnd(6)} ${s.what}`);
  console.log(machineLine());
  console.log();

  const best = new Map<string, LatencyResult & { serverCpu: number }>();
  const key = (name: string, size: number) => `${name}@${size}`;
  for (let round = 1; round <= rounds; round++) {
    for (const size of sizes) {
      for (const spec of SERVERS) {
        const run = await onFreshServer(spec.start(size), `${spec.name} ${kib(size)}`, async (port) => {
          const args = ['--port', String(port), '--size', String(size), '--connections', String(connections), '--warmup', String(warmup), '--seconds', String(seconds)];
          const measured = await runLoad<LatencyResult>(benchFile('load-latency.mjs'), args, (warmup + seconds) * 1000 + 15_000);
          if (!measured.result.ok) console.log(`  ! ${spec.name} ${kib(size)}: the echo was not exact`);
          return measured;
        });
        const { result, serverCpu } = run ?? { result: NONE, serverCpu: NaN };
        console.log(
          `  round ${round}  ${kib(size).padStart(7)}  ${spec.name.padEnd(6)} ${fmtInt(result.rate).padStart(7)} msg/s` +
            `   p50 ${fmtInt(result.p50).padStart(5)} us   p99 ${fmtInt(result.p99).padStart(6)} us   server cpu ${fmtPct(serverCpu).padStart(4)}`,
        );
        const k = key(spec.name, size);
        const prev = best.get(k);
        if (Number.isFinite(result.p50) && (prev === undefined || result.p50 < prev.p50)) best.set(k, { ...result, serverCpu });
      }
    }
  }

  const rows: string[][] = [];
  for (const size of sizes) {
    for (const spec of SERVERS) {
      const r = best.get(key(spec.name, size)) ?? { ...NONE, serverCpu: NaN };
      rows.push([kib(size), spec.name, fmtInt(r.rate), fmtInt(r.p50), fmtInt(r.p90), fmtInt(r.p99), fmtInt(r.p999), fmtInt(r.max), fmtPct(r.serverCpu), fmtPct(r.cpu)]);
    }
  }
  console.log();
  console.log(table(['size', 'server', 'msg/s', 'p50 us', 'p90 us', 'p99 us', 'p99.9 us', 'max us', 'server cpu', 'load cpu'], rows, new Set([2, 3, 4, 5, 6, 7, 8, 9])));
  console.log();
  for (const size of sizes) {
    const t = best.get(key('trews', size));
    const n = best.get(key('net', size));
    for (const p of ['p50', 'p99'] as const) {
      const ratio = (t?.[p] ?? NaN) / (n?.[p] ?? NaN);
      console.log(`trews / net ${p} at ${kib(size).padEnd(7)} = ${fmtRatio(ratio).padStart(6)} (target <= 1.2x, set here)  ${verdict(ratio, 1.2, { atMost: true })}`);
    }
  }
  console.log('(the round with the lowest p50 counts for each server and size; lower is better)');
}
