/**
 * Request/reply benchmark: round trips per second through trews' message layer
 * (`MessageConnection`, JSON `[type, id, content]` in length-prefixed packets) next to a
 * hand-written node:net server speaking the same wire format, both in this process, one at a
 * time, interleaved over several rounds; the best round of each counts. The load comes from a
 * separate plain-JS process (bench/load-rpc.mjs): 10 connections, 32 requests in flight on
 * each, small JSON payloads, every reply checked byte for byte.
 *
 * Knobs (environment): BENCH_SECONDS (5), BENCH_WARMUP (1), BENCH_ROUNDS (3),
 * BENCH_SERVERS (a comma list), BENCH_CONNECTIONS (10), BENCH_INFLIGHT (32), BENCH_PAYLOAD
 * (characters of text in each request, 32).
 */
import net from 'node:net';
import { MessageConnection, Server } from '../src/index.js';
import { benchFile, bestRate, envList, envNumber, envTiming, fmtInt, fmtPct, fmtRatio, listenNet, listenTrews, numberTable, onFreshServer, roundHeaders, runLoad, track, verdict, type RunningServer } from './lib.js';

interface LoadResult {
  replies: number;
  rate: number;
  cpu: number;
  ok: boolean;
  errors: string[];
}

// ---- the servers ---------------------------------------------------------------------------

/** trews: the whole service is one hook. */
class Echo extends MessageConnection {
  override onRequest(content: unknown): unknown {
    return content;
  }
}

function trewsServer(): Promise<RunningServer> {
  return listenTrews(new Server(Echo));
}

/**
 * By hand: cut packets out of each chunk (carrying an incomplete one to the next chunk),
 * JSON.parse each request, build `[1, id, content]` replies, and write all the replies of one
 * chunk in one socket.write: what a careful node:net server does.
 */
function handEcho(socket: net.Socket): void {
  let carry: Buffer | null = null;
  socket.on('data', (chunk: Buffer) => {
    const data: Buffer = carry === null ? chunk : Buffer.concat([carry, chunk]);
    const replies: Buffer[] = [];
    let at = 0;
    while (data.length - at >= 4) {
      const n = data.readUInt32BE(at);
      if (data.length - at - 4 < n) break;
      const [type, id, content] = JSON.parse(data.toString('utf8', at + 4, at + 4 + n)) as [number, number, unknown];
      at += 4 + n;
      if (type !== 0) continue;
      const text = JSON.stringify([1, id, content]);
      const size = Buffer.byteLength(text);
      const reply = Buffer.allocUnsafe(4 + size);
      reply.writeUInt32BE(size, 0);
      reply.write(text, 4);
      replies.push(reply);
    }
    carry = at < data.length ? data.subarray(at) : null;
    if (replies.length > 0) socket.write(replies.length === 1 ? replies[0]! : Buffer.concat(replies));
  });
}

function netServer(): Promise<RunningServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: false }, (socket) => {
    track(sockets, socket);
    handEcho(socket);
  });
  return listenNet(server, sockets);
}

const SERVERS = [
  { name: 'trews', what: 'trews MessageConnection, onRequest(content) { return content }', start: trewsServer },
  { name: 'net', what: 'node:net, hand-written packet splitter + JSON.parse/stringify, one write per chunk', start: netServer },
];

// ---- the suite -----------------------------------------------------------------------------

export const description = 'request/reply: 10 connections x 32 in flight, small JSON; trews messages vs hand-written node:net';

export async function run(): Promise<void> {
  const { seconds, warmup, rounds } = envTiming({ seconds: 5, rounds: 3 });
  const connections = Math.round(envNumber('BENCH_CONNECTIONS', 10));
  const inflight = Math.round(envNumber('BENCH_INFLIGHT', 32));
  const payload = Math.round(envNumber('BENCH_PAYLOAD', 32));
  const only = envList('BENCH_SERVERS');
  const servers = only === null ? SERVERS : SERVERS.filter((s) => only.includes(s.name));
  if (servers.length === 0) throw new Error(`BENCH_SERVERS: none of ${only?.join(', ')}; known: ${SERVERS.map((s) => s.name).join(', ')}`);

  console.log(
    `rpc: ${connections} connections x ${inflight} requests in flight, ${payload}-character payloads, ` +
      `${warmup} s warm-up + ${seconds} s measured, ${rounds} round(s), node ${process.version}`,
  );
  for (const s of servers) console.log(`  ${s.name.padEnd(6)} ${s.what}`);
  console.log();

  const loadArgs = ['--connections', connections, '--inflight', inflight, '--payload', payload, '--warmup', warmup, '--seconds', seconds].map(String);
  const samples = new Map<string, Array<{ rate: number; serverCpu: number; loadCpu: number }>>(servers.map((s) => [s.name, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const spec of servers) {
      const measured = await onFreshServer(spec.start, spec.name, async (port) => {
        const { result, serverCpu } = await runLoad<LoadResult>(benchFile('load-rpc.mjs'), ['--port', String(port), ...loadArgs], (warmup + seconds) * 1000 + 15_000);
        if (!result.ok) console.log(`  ! ${spec.name}: replies were not exact (${result.errors.join('; ') || 'none counted'})`);
        return { rate: result.ok ? result.rate : NaN, serverCpu, loadCpu: result.cpu };
      });
      const sample = measured ?? { rate: NaN, serverCpu: NaN, loadCpu: NaN };
      samples.get(spec.name)!.push(sample);
      console.log(
        `  round ${round}  ${spec.name.padEnd(6)} ${fmtInt(sample.rate).padStart(9)} req/s` +
          `   server cpu ${fmtPct(sample.serverCpu).padStart(4)}   load cpu ${fmtPct(sample.loadCpu).padStart(4)}`,
      );
    }
  }

  const best = (name: string) => bestRate(samples.get(name) ?? [], { rate: NaN, serverCpu: NaN, loadCpu: NaN });
  const netRate = best('net').rate;
  const header = ['server', ...roundHeaders(rounds), 'best req/s', 'vs net', 'server cpu', 'load cpu'];
  const rows = servers.map((s) => {
    const b = best(s.name);
    return [s.name, ...samples.get(s.name)!.map((x) => fmtInt(x.rate)), fmtInt(b.rate), fmtRatio(b.rate / netRate), fmtPct(b.serverCpu), fmtPct(b.loadCpu)];
  });
  console.log();
  console.log(numberTable(header, rows));
  console.log();
  const ratio = best('trews').rate / netRate;
  console.log(`trews / net = ${fmtRatio(ratio)} (target >= 0.8x)  ${verdict(ratio, 0.8, { na: 'n/a (both servers are needed)' })}`);
  if (servers.some((s) => best(s.name).loadCpu > 0.9)) console.log('note: the load generator used > 90% of a core in some best run: it may be the bottleneck there.');
}
