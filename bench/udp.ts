/**
 * UDP receive benchmark: datagrams per second received by a trews `Datagram` (readDelimiter
 * null, counting in onRead) and by a raw node:dgram socket (counting 'message' events), both
 * in this process, fed by the same sender program in a separate process
 * (bench/udp-send.mjs, 64-byte datagrams to 127.0.0.1 as fast as it can), one receiver at a
 * time, interleaved over several rounds. UDP drops what a receiver cannot keep up with, so
 * what counts is datagrams received in the measured window, not sent. Also reported:
 * datagrams received per CPU-second of this process, the receiver's cost per datagram,
 * which a busy machine disturbs less than the wall-clock rate.
 *
 * Knobs (environment): BENCH_SECONDS (measured seconds per run, default 3), BENCH_WARMUP
 * (seconds before measuring, default 1), BENCH_ROUNDS (default 3), BENCH_DATAGRAM (bytes per
 * datagram, default 64).
 */
import dgram from 'node:dgram';
import { Datagram } from '../src/index.js';
import { benchFile, envNumber, envTiming, fmtInt, fmtPct, fmtRatio, numberTable, roundHeaders, runLoad, sleep, verdict } from './lib.js';

interface SendResult {
  sent: number;
  seconds: number;
  rate: number;
  cpu: number;
}

interface Receiver {
  port: number;
  /** Datagrams received so far. */
  count(): number;
  close(): Promise<void>;
}

/** Both receivers get the same kernel buffer, so neither drops more for lack of one. */
const RECV_BUFFER = 4 << 20;

async function trewsReceiver(): Promise<Receiver> {
  let n = 0;
  class Counter extends Datagram {
    override onRead(): void {
      n++;
    }
  }
  const d = new Counter();
  await d.listen(['127.0.0.1', 0], { recvBufferSize: RECV_BUFFER });
  return { port: d.localAddress!.port, count: () => n, close: () => d.close() };
}

async function rawReceiver(): Promise<Receiver> {
  let n = 0;
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: RECV_BUFFER });
  socket.on('message', () => n++);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, count: () => n, close: () => new Promise((r) => socket.close(() => r())) };
}

const RECEIVERS = [
  { name: 'trews', what: 'trews Datagram, readDelimiter null, n++ in onRead(data, address)', start: trewsReceiver },
  { name: 'dgram', what: "node:dgram socket, n++ on 'message'", start: rawReceiver },
];

interface Sample {
  /** Datagrams received per wall-clock second in the window. */
  rate: number;
  /** Datagrams received per CPU-second this process used in the window: the receiver's cost, less sensitive to a busy machine. */
  perCpu: number;
  sent: number;
  serverCpu: number;
}

export const description = 'UDP receive: 64-byte datagrams from a separate sender; trews Datagram vs raw node:dgram';

export async function run(): Promise<void> {
  const { seconds, warmup, rounds } = envTiming({ seconds: 3, rounds: 3 });
  const size = Math.round(envNumber('BENCH_DATAGRAM', 64));
  console.log(`udp: ${size}-byte datagrams to 127.0.0.1, ${warmup} s warm-up + ${seconds} s measured, ${rounds} round(s), node ${process.version}`);
  for (const r of RECEIVERS) console.log(`  ${r.name.padEnd(6)} ${r.what}`);
  console.log();

  const samples = new Map<string, Sample[]>(RECEIVERS.map((r) => [r.name, []]));
  for (let round = 1; round <= rounds; round++) {
    // Alternate which receiver goes first, so neither always gets the warmer machine.
    const order = round % 2 === 1 ? RECEIVERS : [...RECEIVERS].reverse();
    for (const spec of order) {
      const receiver = await spec.start();
      let sample: Sample = { rate: NaN, perCpu: NaN, sent: NaN, serverCpu: NaN };
      try {
        // The sender runs a little longer than warm-up + window, so the window (timed here)
        // lies inside its sending even if it starts late.
        const load = runLoad<SendResult>(benchFile('udp-send.mjs'), ['--port', String(receiver.port), '--size', String(size), '--seconds', String(warmup + seconds + 0.5)], (warmup + seconds) * 1000 + 15_000);
        await sleep(warmup * 1000);
        const [c0, t0, cpu0] = [receiver.count(), performance.now(), process.cpuUsage()];
        await sleep(seconds * 1000);
        const [c1, t1, cpu] = [receiver.count(), performance.now(), process.cpuUsage(cpu0)];
        const { result, serverCpu } = await load;
        const cpuSeconds = (cpu.user + cpu.system) / 1e6;
        sample = { rate: ((c1 - c0) * 1000) / (t1 - t0), perCpu: (c1 - c0) / cpuSeconds, sent: result.rate, serverCpu };
      } catch (err) {
        console.log(`  ! ${spec.name}: ${(err as Error).message}`);
      } finally {
        await receiver.close();
      }
      samples.get(spec.name)!.push(sample);
      console.log(
        `  round ${round}  ${spec.name.padEnd(6)} ${fmtInt(sample.rate).padStart(11)} received/s` +
          `   (sent ${fmtInt(sample.sent)}/s)   receiver cpu ${fmtPct(sample.serverCpu).padStart(4)}   ${fmtInt(sample.perCpu).padStart(9)} per cpu-second`,
      );
    }
  }

  const best = (name: string, key: 'rate' | 'perCpu') => Math.max(...samples.get(name)!.map((s) => (Number.isFinite(s[key]) ? s[key] : 0)));
  const header = ['receiver', ...roundHeaders(rounds), 'best received/s', 'vs dgram', 'best per cpu-s', 'vs dgram'];
  const rows = RECEIVERS.map((r) => [
    r.name,
    ...samples.get(r.name)!.map((s) => fmtInt(s.rate)),
    fmtInt(best(r.name, 'rate')),
    fmtRatio(best(r.name, 'rate') / best('dgram', 'rate')),
    fmtInt(best(r.name, 'perCpu')),
    fmtRatio(best(r.name, 'perCpu') / best('dgram', 'perCpu')),
  ]);
  console.log();
  console.log(numberTable(header, rows));
  console.log();
  for (const key of ['rate', 'perCpu'] as const) {
    const ratio = best('trews', key) / best('dgram', key);
    const verdictText = ratio === 0 ? 'n/a (not measured)' : verdict(ratio, 0.9, { na: 'n/a (not measured)' });
    console.log(`trews / dgram ${key === 'rate' ? 'received/s    ' : 'per cpu-second'} = ${fmtRatio(ratio).padStart(6)} (target >= 0.9x)  ${verdictText}`);
  }
  const cpus = [...samples.values()].flat().map((s) => s.serverCpu).filter(Number.isFinite);
  if (cpus.length > 0 && Math.max(...cpus) < 0.9) {
    console.log('note: the receivers never used 90% of a core: the sender, or other load on the machine, limits received/s;');
    console.log('      per cpu-second (what one datagram costs the receiver) is then the fairer comparison.');
  }
}
