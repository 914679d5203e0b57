// Datagram sender for the UDP benchmark. Plain JavaScript run by `node`, so it costs the same
// for every receiver it drives.
//
//   node bench/udp-send.mjs --port 4000 [--size 64] [--seconds 5]
//
// Sends `size`-byte datagrams to 127.0.0.1:port as fast as it can for `seconds`, in bursts
// broken by setImmediate (a loop driven from send callbacks alone starves timers), never
// letting node:dgram's own send queue grow past a bound. Prints {"event":"start"}, then
//   { sent, seconds, rate, cpu }
// UDP may drop under overload: the receiver counts what arrived; `sent` is for reference.
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { cpuFraction, parseArgs } from './load-common.mjs';

const opts = parseArgs('udp-send', process.argv.slice(2), { port: 0, size: 64, seconds: 5 }, []);

const payload = Buffer.alloc(opts.size, 0x61);
const socket = dgram.createSocket('udp4');
socket.on('error', (err) => {
  console.error(`udp-send: ${err.message}`);
  process.exit(1);
});
// Connected: send() skips the per-datagram address lookup.
socket.connect(opts.port, '127.0.0.1', () => {
  let sent = 0;
  let sending = true;
  const startCpu = process.cpuUsage();
  const started = performance.now();
  console.log(JSON.stringify({ event: 'start' }));
  const burst = () => {
    if (!sending) return;
    for (let i = 0; i < 64 && socket.getSendQueueCount() < 256; i++) {
      socket.send(payload);
      sent++;
    }
    setImmediate(burst);
  };
  burst();
  setTimeout(() => {
    sending = false;
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(startCpu);
    console.log(JSON.stringify({ sent, seconds, rate: sent / seconds, cpu: cpuFraction(cpu, seconds) }));
    socket.close(() => process.exit(0));
  }, opts.seconds * 1000);
});
