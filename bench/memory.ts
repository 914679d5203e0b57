/**
 * memory: the same trews line echo over the in-memory transport and over TCP loopback, client
 * and server in this process, so the only difference is the transport. No target: it shows
 * what the OS path costs (and what a protocol test on `trews/testing` saves).
 */
import { Client, Connection, Engine, Server, type AddressInput } from '../src/index.js';
import { envNumber, fmtInt, fmtRatio, machineLine, numberTable, roundHeaders } from './lib.js';

export const description = 'line echo over the in-memory transport next to TCP loopback (same process, same classes; no target)';

class Echo extends Connection {
  override readDelimiter = '\n';
  override onRead(line: Buffer) {
    this.write(line);
    this.write('\n');
  }
}

/** Keeps `inflight` 64-byte lines outstanding, sending one more for each echo. */
class Loader extends Client {
  override readDelimiter = '\n';
  echoed = 0;
  #line = Buffer.from(`${'x'.repeat(63)}\n`);

  start(inflight: number): void {
    for (let i = 0; i < inflight; i++) this.write(this.#line);
  }

  override onRead(): void {
    this.echoed++;
    this.write(this.#line);
  }
}

async function measure(listenAt: AddressInput, seconds: number, connections: number, inflight: number): Promise<number> {
  const engine = new Engine({ log: () => {} });
  const server = new Server(Echo, { engine });
  await server.listen(listenAt);
  const clients = Array.from({ length: connections }, () => new Loader({ engine }));
  await Promise.all(clients.map((c) => c.connect(server.localAddress!)));
  for (const c of clients) c.start(inflight);
  await new Promise((r) => setTimeout(r, 300)); // warm-up
  const before = clients.reduce((n, c) => n + c.echoed, 0);
  const started = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const rate = (clients.reduce((n, c) => n + c.echoed, 0) - before) / ((performance.now() - started) / 1000);
  await engine.stop();
  return rate;
}

export async function run(): Promise<void> {
  const seconds = envNumber('BENCH_SECONDS', 3);
  const rounds = Math.round(envNumber('BENCH_ROUNDS', 2));
  const connections = 10;
  const inflight = 64;
  console.log(`memory: 64-byte line echo, ${connections} connections x ${inflight} in flight, ${seconds} s per measurement, ${rounds} round(s)`);
  console.log(machineLine());
  const rates: Record<'memory' | 'tcp', number[]> = { memory: [], tcp: [] };
  for (let round = 1; round <= rounds; round++) {
    rates.memory.push(await measure('memory:bench-echo', seconds, connections, inflight));
    rates.tcp.push(await measure(['127.0.0.1', 0], seconds, connections, inflight));
    console.log(`  round ${round}  memory ${fmtInt(rates.memory.at(-1)!)} msg/s   tcp ${fmtInt(rates.tcp.at(-1)!)} msg/s`);
  }
  const best = { memory: Math.max(...rates.memory), tcp: Math.max(...rates.tcp) };
  console.log();
  console.log(
    numberTable(
      ['transport', ...roundHeaders(rounds), 'best msg/s', 'vs tcp'],
      (['memory', 'tcp'] as const).map((t) => [t, ...rates[t].map(fmtInt), fmtInt(best[t]), fmtRatio(best[t] / best.tcp)]),
    ),
  );
  console.log();
  console.log(`memory / tcp = ${fmtRatio(best.memory / best.tcp)} (no target: the cost of the OS path, in one process)`);
}
