/**
 * TLS line echo benchmark: the line-echo load (64-byte lines, 10 connections, 64 lines in
 * flight on each) over TLS to 127.0.0.1, against a trews TLS `Server` and the best echo a
 * person would write by hand on node:tls (an indexOf splitter, each chunk's replies corked
 * into one write). Both run in this process, one at a time, interleaved over rounds; the
 * best round of each counts. The load comes from a separate process
 * (bench/load-lines.mjs --tls), which verifies the server's certificate.
 *
 * A throwaway self-signed certificate for localhost is made with the openssl command at the
 * start (the suite is skipped, with a message, when openssl is missing).
 *
 * Knobs (environment): BENCH_SECONDS (measured seconds per run, default 4), BENCH_WARMUP
 * (seconds before measuring, default 1), BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (10),
 * BENCH_INFLIGHT (64), BENCH_LINE (bytes per line with its '\n', 64). The defaults keep the
 * suite near 30 s.
 */
import tls from 'node:tls';
import { Server, Connection } from '../src/index.js';
import { hasOpenSSL, makeDevCertificate, type DevCertificate } from '../examples/shared/dev-cert.js';
import { benchFile, bestRate, envNumber, envTiming, fmtInt, fmtPct, fmtRatio, handSplitEcho, listenNet, listenTrews, numberTable, roundHeaders, runLoad, track, verdict, type RunningServer } from './lib.js';

interface LoadResult {
  lines: number;
  seconds: number;
  rate: number;
  cpu: number;
  protocol: string | null;
  cipher: string | null;
  ok: boolean;
  errors: string[];
}

interface ServerSpec {
  name: string;
  what: string;
  start(cert: DevCertificate): Promise<RunningServer>;
}

// ---- the servers ---------------------------------------------------------------------------

/** trews, Buffer lines: the README's echo, served with `tls: { key, cert }`. */
class Echo extends Connection {
  override readDelimiter = '\n';
  override onRead(line: Buffer): void {
    this.write(line);
    this.write('\n');
  }
}

function trewsServer(cert: DevCertificate): Promise<RunningServer> {
  return listenTrews(new Server(Echo, { tls: { key: cert.key, cert: cert.cert } }));
}

/**
 * By hand on node:tls: tls.createServer and the hand-written line echo of line-echo's
 * net-corked (an indexOf loop over each decrypted chunk carrying the unfinished tail to the
 * next one, each line written back as a zero-copy view with its '\n'), the writes of one chunk
 * corked so they are encrypted and sent as one record batch.
 */
function tlsCorkedServer(cert: DevCertificate): Promise<RunningServer> {
  const sockets = new Set<tls.TLSSocket>();
  const echo = handSplitEcho(true);
  const server = tls.createServer({ key: cert.key, cert: cert.cert }, (socket) => {
    track(sockets, socket);
    echo(socket);
  });
  server.on('tlsClientError', () => {}); // a client hanging up mid-handshake is not our concern
  return listenNet(server, sockets);
}

const SERVERS: ServerSpec[] = [
  { name: 'trews', what: "trews Server({ tls }), Buffer lines: write(line); write('\\n')", start: trewsServer },
  { name: 'tls-corked', what: 'node:tls createServer, hand splitter, cork/uncork around each chunk', start: tlsCorkedServer },
];

// ---- the suite -----------------------------------------------------------------------------

interface Sample {
  rate: number;
  serverCpu: number;
  loadCpu: number;
}

const NO_SAMPLE: Sample = { rate: NaN, serverCpu: NaN, loadCpu: NaN };

export const description = 'TLS line echo: 64-byte lines, 10 connections x 64 in flight over TLS; trews TLS Server vs hand-written node:tls (corked)';

export async function run(): Promise<void> {
  if (!hasOpenSSL()) {
    console.log('tls-echo: skipped: the openssl command is needed to make a throwaway certificate, and it was not found');
    return;
  }
  const { seconds, warmup, rounds } = envTiming({ seconds: 4, rounds: 3 });
  const connections = Math.round(envNumber('BENCH_CONNECTIONS', 10));
  const inflight = Math.round(envNumber('BENCH_INFLIGHT', 64));
  const lineBytes = Math.round(envNumber('BENCH_LINE', 64));

  const cert = makeDevCertificate({ days: 1, prefix: 'trews-bench-tls-' });
  try {
    console.log(
      `tls-echo: ${lineBytes}-byte lines, ${connections} connections x ${inflight} in flight over TLS to 127.0.0.1, ` +
        `${warmup} s warm-up + ${seconds} s measured, ${rounds} round(s), node ${process.version}, ${process.versions.openssl ? `OpenSSL ${process.versions.openssl}` : ''}`,
    );
    for (const s of SERVERS) console.log(`  ${s.name.padEnd(10)} ${s.what}`);
    console.log();

    const samples = new Map<string, Sample[]>(SERVERS.map((s) => [s.name, []]));
    const loadArgs = ['--ca', cert.certFile, '--servername', 'localhost', '--connections', connections, '--inflight', inflight, '--line', lineBytes, '--warmup', warmup, '--seconds', seconds].map(String);
    const timeoutMs = (warmup + seconds) * 1000 + 15_000;
    let session = '';

    for (let round = 1; round <= rounds; round++) {
      // Alternate which server goes first, so neither always runs on a colder (or warmer) machine.
      const order = round % 2 === 1 ? SERVERS : [...SERVERS].reverse();
      for (const spec of order) {
        let sample = NO_SAMPLE;
        let server: RunningServer | undefined;
        try {
          server = await spec.start(cert);
          const { result, serverCpu } = await runLoad<LoadResult>(benchFile('load-lines.mjs'), ['--port', String(server.port), '--tls', ...loadArgs], timeoutMs);
          if (!result.ok) console.log(`  ! ${spec.name}: the echo was not exact (${result.errors.join('; ') || 'byte count mismatch'})`);
          else sample = { rate: result.rate, serverCpu, loadCpu: result.cpu };
          session ||= `${result.protocol ?? '?'} ${result.cipher ?? '?'}`;
        } catch (err) {
          console.log(`  ! ${spec.name}: ${(err as Error).message}`);
        } finally {
          await server?.close();
        }
        samples.get(spec.name)!.push(sample);
        console.log(
          `  round ${round}  ${spec.name.padEnd(10)} ${fmtInt(sample.rate).padStart(11)} msg/s` +
            `   server cpu ${fmtPct(sample.serverCpu).padStart(4)}   load cpu ${fmtPct(sample.loadCpu).padStart(4)}`,
        );
      }
    }

    // Best of the rounds per server (the least disturbed run).
    const best = new Map<string, Sample>();
    for (const [name, list] of samples) {
      best.set(name, bestRate(list, NO_SAMPLE));
    }
    const corked = best.get('tls-corked')!.rate;
    // CPU time per message (server process, lowest over the rounds): steadier than msg/s when
    // the machine is busy with other work, since it does not depend on getting scheduled.
    const cpuPerMsg = new Map<string, number>();
    for (const [name, list] of samples) {
      const costs = list.filter((s) => Number.isFinite(s.rate) && Number.isFinite(s.serverCpu)).map((s) => (s.serverCpu / s.rate) * 1e6);
      cpuPerMsg.set(name, costs.length === 0 ? NaN : Math.min(...costs));
    }
    const corkedCost = cpuPerMsg.get('tls-corked')!;
    const header = ['server', ...roundHeaders(rounds), 'best msg/s', 'vs tls-corked', 'server cpu', 'load cpu', 'cpu µs/msg', 'cpu vs corked'];
    const rows = SERVERS.map((s) => {
      const b = best.get(s.name)!;
      const cost = cpuPerMsg.get(s.name)!;
      return [
        s.name,
        ...Array.from({ length: rounds }, (_, i) => fmtInt(samples.get(s.name)![i]?.rate ?? NaN)),
        fmtInt(b.rate),
        fmtRatio(b.rate / corked),
        fmtPct(b.serverCpu),
        fmtPct(b.loadCpu),
        Number.isFinite(cost) ? cost.toFixed(2) : '-',
        fmtRatio(cost / corkedCost),
      ];
    });
    console.log();
    if (session) console.log(`session: ${session}`);
    console.log(numberTable(header, rows));
    console.log();
    const ratio = best.get('trews')!.rate / corked;
    console.log(`${'trews / tls-corked'.padEnd(22)} = ${fmtRatio(ratio).padStart(6)} (target >= 0.9x)  ${verdict(ratio, 0.9, { na: 'n/a (a server was not measured)' })}`);
    if ([...best.values()].some((b) => b.loadCpu > 0.9)) {
      console.log('note: the load generator used > 90% of a core in some best run: it may be the bottleneck there.');
    }
  } finally {
    cert.remove();
  }
}
