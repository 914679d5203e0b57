/**
 * Line echo benchmark: 64-byte lines, 10 connections, 64 lines in flight on each, against
 * the same echo server written five ways, all in this process, one at a time, interleaved
 * over several rounds. The load comes from a separate process (bench/load-lines.mjs).
 *
 * Knobs (environment): BENCH_SECONDS (measured seconds per run, default 5), BENCH_WARMUP
 * (seconds before measuring, default 1), BENCH_ROUNDS (default 2), BENCH_SERVERS (a comma
 * list of server names to run, default all of them), BENCH_CONNECTIONS (10),
 * BENCH_INFLIGHT (64), BENCH_LINE (bytes per line with its '\n', 64).
 */
import net from 'node:net';
import split2 from 'split2';
import { Server, Connection } from '../src/index.js';
import { benchFile, bestRate, envList, envNumber, envTiming, fmtInt, fmtPct, fmtRatio, handSplitEcho, listenNet, listenTrews, machineLine, numberTable, onFreshServer, roundHeaders, runLoad, track, verdict, type RunningServer } from './lib.js';

interface LoadResult {
  lines: number;
  seconds: number;
  rate: number;
  cpu: number;
  ok: boolean;
  errors: string[];
}

interface ServerSpec {
  name: string;
  what: string;
  start(): Promise<RunningServer>;
}

// ---- the servers ---------------------------------------------------------------------------

/** trews, Buffer mode: exactly the README's echo. */
class BufferEcho extends Connection {
  override readDelimiter = '\n';
  override onRead(line: Buffer): void {
    this.write(line);
    this.write('\n');
  }
}

/** trews, string mode. */
class StringEcho extends Connection {
  override readDelimiter = '\n';
  override encoding = 'utf8' as const;
  override onRead(line: string): void {
    this.write(line + '\n');
  }
}

function trewsServer<C extends Connection>(ConnectionClass: new () => C): () => Promise<RunningServer> {
  return () => listenTrews(new Server<C>(ConnectionClass));
}

/** Listen with a plain node:net server; `close()` also destroys connections left open. */
function netServer(onSocket: (socket: net.Socket) => void): Promise<RunningServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    track(sockets, socket);
    onSocket(socket);
  });
  return listenNet(server, sockets);
}

/** split2 as its README shows it: pipe the socket through it, write each line back. */
function split2Echo(socket: net.Socket): void {
  socket.pipe(split2()).on('data', (line: string) => {
    if (socket.writable) socket.write(line + '\n');
  });
}

export const SERVERS: ServerSpec[] = [
  { name: 'trews', what: "trews Server, Buffer lines: write(line); write('\\n')", start: trewsServer(BufferEcho) },
  { name: 'trews-utf8', what: "trews Server, encoding 'utf8': write(line + '\\n')", start: trewsServer(StringEcho) },
  { name: 'net', what: 'node:net, hand splitter, socket.write per line', start: () => netServer(handSplitEcho(false)) },
  { name: 'net-corked', what: 'node:net, hand splitter, cork/uncork around each chunk', start: () => netServer(handSplitEcho(true)) },
  { name: 'split2', what: "socket.pipe(split2()), socket.write(line + '\\n') per line", start: () => netServer(split2Echo) },
];

// ---- the suite -----------------------------------------------------------------------------

interface Sample {
  rate: number;
  serverCpu: number;
  loadCpu: number;
}

export const description = 'line echo: 64-byte lines, 10 connections x 64 in flight; trews vs node:net (plain, corked) vs split2';

export async function run(): Promise<void> {
  const { seconds, warmup, rounds } = envTiming({ seconds: 5, rounds: 2 });
  const connections = Math.round(envNumber('BENCH_CONNECTIONS', 10));
  const inflight = Math.round(envNumber('BENCH_INFLIGHT', 64));
  const lineBytes = Math.round(envNumber('BENCH_LINE', 64));
  const only = envList('BENCH_SERVERS');
  if (only !== null) {
    const unknown = only.filter((n) => !SERVERS.some((s) => s.name === n));
    if (unknown.length > 0) throw new Error(`BENCH_SERVERS: unknown server(s) ${unknown.join(', ')}; known: ${SERVERS.map((s) => s.name).join(', ')}`);
  }
  const servers = only === null ? SERVERS : SERVERS.filter((s) => only.includes(s.name));

  console.log(
    `line-echo: ${lineBytes}-byte lines, ${connections} connections x ${inflight} in flight, ` +
      `${warmup} s warm-up + ${seconds} s measured, ${rounds} round(s), node ${process.version}`,
  );
  for (const s of servers) console.log(`  ${s.name.padEnd(11)} ${s.what}`);
  console.log(machineLine());
  console.log();

  const samples = new Map<string, Sample[]>(servers.map((s) => [s.name, []]));
  const loadArgs = ['--connections', connections, '--inflight', inflight, '--line', lineBytes, '--warmup', warmup, '--seconds', seconds].map(String);
  const timeoutMs = (warmup + seconds) * 1000 + 15_000;

  for (let round = 1; round <= rounds; round++) {
    for (const spec of servers) {
      const measured = await onFreshServer(spec.start, spec.name, async (port): Promise<Sample> => {
        const { result, serverCpu } = await runLoad<LoadResult>(benchFile('load-lines.mjs'), ['--port', String(port), ...loadArgs], timeoutMs);
        if (!result.ok) console.log(`  ! ${spec.name}: the echo was not exact (${result.errors.join('; ') || 'byte count mismatch'})`);
        return { rate: result.rate, serverCpu, loadCpu: result.cpu };
      });
      const sample = measured ?? { rate: NaN, serverCpu: NaN, loadCpu: NaN };
      samples.get(spec.name)!.push(sample);
      console.log(
        `  round ${round}  ${spec.name.padEnd(11)} ${fmtInt(sample.rate).padStart(11)} msg/s` +
          `   server cpu ${fmtPct(sample.serverCpu).padStart(4)}   load cpu ${fmtPct(sample.loadCpu).padStart(4)}` +
          `   ${Number.isFinite(sample.rate) ? ((sample.serverCpu * 1e6) / sample.rate).toFixed(2) : '-'} cpu µs/msg`,
      );
    }
  }

  // Best of the rounds per server (the least disturbed run).
  const best = new Map<string, Sample>();
  for (const [name, list] of samples) {
    best.set(name, bestRate(list, { rate: NaN, serverCpu: NaN, loadCpu: NaN }));
  }
  const rateOf = (name: string) => best.get(name)?.rate ?? NaN;
  const corked = rateOf('net-corked');
  const split = rateOf('split2');

  // Server CPU per message: steadier than msg/s when other processes share the machine.
  const cpuPerMsg = (b: Sample) => (b.serverCpu * 1e6) / b.rate;
  const corkedCpu = best.has('net-corked') ? cpuPerMsg(best.get('net-corked')!) : NaN;
  const header = [
    'server',
    ...roundHeaders(rounds),
    'best msg/s',
    'vs net-corked',
    'vs split2',
    'server cpu',
    'load cpu',
    'cpu µs/msg',
    'cpu vs corked',
  ];
  const rows = servers.map((s) => {
    const b = best.get(s.name)!;
    return [
      s.name,
      ...Array.from({ length: rounds }, (_, i) => fmtInt(samples.get(s.name)![i]?.rate ?? NaN)),
      fmtInt(b.rate),
      fmtRatio(b.rate / corked),
      fmtRatio(b.rate / split),
      fmtPct(b.serverCpu),
      fmtPct(b.loadCpu),
      Number.isFinite(cpuPerMsg(b)) ? cpuPerMsg(b).toFixed(2) : '-',
      fmtRatio(cpuPerMsg(b) / corkedCpu),
    ];
  });
  console.log();
  console.log(numberTable(header, rows));
  console.log();

  for (const name of ['trews', 'trews-utf8']) {
    if (!best.has(name)) continue;
    const rate = rateOf(name);
    console.log(target(`${name} / net-corked`, rate / corked, 0.9));
    console.log(target(`${name} / split2`, rate / split, 5));
  }
  const loadBound = [...best].filter(([, b]) => b.loadCpu > 0.9).map(([name]) => name);
  if (loadBound.length > 0) {
    console.log(
      `note: the load generator used > 90% of a core against ${loadBound.join(', ')} (mostly kernel time for ` +
        'one small packet per line): that number may be partly the load generator\'s.',
    );
  }
}

function target(label: string, ratio: number, goal: number): string {
  return `${label.padEnd(23)} = ${fmtRatio(ratio).padStart(6)} (target >= ${goal}x)  ${verdict(ratio, goal, { na: 'n/a (server not measured)' })}`;
}
