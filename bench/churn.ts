/**
 * Connection churn benchmark: connections opened, used for one line and closed, per second,
 * against a trews Server and a plain node:net server doing the same (line echo, TCP_NODELAY,
 * an 'error' handler, sockets in a Set), both in this process, one at a time, interleaved
 * over rounds. The load is a separate process (bench/load-churn.mjs): `concurrency` workers
 * each looping connect, send "ping\n", read the echo, end(), wait for the server's close.
 * trews is the built package when dist/ is up to date (see bench/trews-build.ts): what a
 * connection costs to create is what this measures, and tsx adds to that.
 *
 * Knobs (environment): BENCH_SECONDS (measured seconds per run, default 4), BENCH_WARMUP (1),
 * BENCH_ROUNDS (2; the best round counts), BENCH_CONCURRENCY (50).
 */
import net from 'node:net';
import type { Connection as ConnectionType } from '../src/index.js';
import { benchFile, bestRate, envNumber, envTiming, fmtInt, fmtPct, fmtRatio, handSplitEcho, listenNet, listenTrews, machineLine, numberTable, onFreshServer, roundHeaders, runLoad, track, verdict, type RunningServer } from './lib.js';
import { importTrews } from './trews-build.js';

const { trews, what: trewsWhat } = await importTrews();

interface ChurnResult {
  connections: number;
  seconds: number;
  rate: number;
  meanMs: number;
  errors: number;
  errorSamples: string[];
  cpu: number;
}

class Echo extends trews.Connection {
  override readDelimiter = '\n';
  override onRead(line: Buffer): void {
    this.write(line);
    this.write('\n');
  }
}

function trewsServer(): Promise<RunningServer> {
  return listenTrews(new trews.Server<ConnectionType>(Echo), { backlog: 1024 });
}

function netServer(): Promise<RunningServer> {
  const sockets = new Set<net.Socket>();
  const echo = handSplitEcho(false);
  // allowHalfOpen is false: node:net ends its side after the client's FIN, as trews does.
  const server = net.createServer((socket) => {
    track(sockets, socket);
    echo(socket);
  });
  return listenNet(server, sockets, { backlog: 1024 });
}

const SERVERS = [
  { name: 'trews', what: "trews Server + Connection, readDelimiter '\\n', echo", start: trewsServer },
  { name: 'net', what: "node:net, hand-written '\\n' splitter, echo, sockets in a Set", start: netServer },
];

interface Sample {
  rate: number;
  meanMs: number;
  serverCpu: number;
  loadCpu: number;
  errors: number;
}

export const description = 'churn: connections per second (connect, one line echoed, close), 50 at a time; trews vs node:net';

export async function run(): Promise<void> {
  const { seconds, warmup, rounds } = envTiming({ seconds: 4, rounds: 2 });
  const concurrency = Math.round(envNumber('BENCH_CONCURRENCY', 50));
  console.log(
    `churn: connect + "ping\\n" echoed + close, ${concurrency} at a time, ${warmup} s warm-up + ${seconds} s measured, ` +
      `${rounds} round(s), node ${process.version}`,
  );
  for (const s of SERVERS) console.log(`  ${s.name.padEnd(6)} ${s.what}`);
  console.log(`  ${trewsWhat}`);
  console.log(machineLine());
  console.log();

  const samples = new Map<string, Sample[]>(SERVERS.map((s) => [s.name, []]));
  const args = ['--concurrency', concurrency, '--warmup', warmup, '--seconds', seconds].map(String);
  for (let round = 1; round <= rounds; round++) {
    for (const spec of SERVERS) {
      const measured = await onFreshServer(spec.start, spec.name, async (port): Promise<Sample> => {
        const { result, serverCpu } = await runLoad<ChurnResult>(benchFile('load-churn.mjs'), ['--port', String(port), ...args], (warmup + seconds) * 1000 + 15_000);
        if (result.errors > 0) console.log(`  ! ${spec.name}: ${result.errors} failed connections (${result.errorSamples.join('; ')})`);
        return { rate: result.rate, meanMs: result.meanMs, serverCpu, loadCpu: result.cpu, errors: result.errors };
      });
      const sample = measured ?? { rate: NaN, meanMs: NaN, serverCpu: NaN, loadCpu: NaN, errors: 0 };
      samples.get(spec.name)!.push(sample);
      console.log(
        `  round ${round}  ${spec.name.padEnd(6)} ${fmtInt(sample.rate).padStart(7)} conn/s   ${sample.meanMs.toFixed(2)} ms each` +
          `   server cpu ${fmtPct(sample.serverCpu).padStart(4)}   load cpu ${fmtPct(sample.loadCpu).padStart(4)}`,
      );
    }
  }

  const best = new Map<string, Sample>();
  for (const [name, list] of samples) {
    best.set(name, bestRate(list, { rate: NaN, meanMs: NaN, serverCpu: NaN, loadCpu: NaN, errors: 0 }));
  }
  const netRate = best.get('net')!.rate;
  const header = ['server', ...roundHeaders(rounds), 'best conn/s', 'vs net', 'ms each', 'server cpu', 'load cpu'];
  const rows = SERVERS.map((s) => {
    const b = best.get(s.name)!;
    return [
      s.name,
      ...Array.from({ length: rounds }, (_, i) => fmtInt(samples.get(s.name)![i]?.rate ?? NaN)),
      fmtInt(b.rate),
      fmtRatio(b.rate / netRate),
      b.meanMs.toFixed(2),
      fmtPct(b.serverCpu),
      fmtPct(b.loadCpu),
    ];
  });
  console.log();
  console.log(numberTable(header, rows));
  console.log();
  const ratio = best.get('trews')!.rate / netRate;
  console.log(`trews / net connections per second = ${fmtRatio(ratio).padStart(6)} (target >= 0.9x)  ${verdict(ratio, 0.9)}`);
  if ([...best.values()].some((b) => b.loadCpu > 0.9)) console.log('note: the load generator used > 90% of a core in some best run: it may be the bottleneck there.');
}
