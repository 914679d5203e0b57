/**
 * `npx tsx examples/udp-time/main.ts`: the time service on UDP port $PORT (default 4041, all
 * interfaces, IPv4 and IPv6). Ctrl-C stops it.
 */
import { TimeService } from './server.js';

const port = Number(process.env.PORT ?? 4041);
const service = new TimeService();
try {
  await service.listen(port);
} catch (err) {
  console.error(`udp-time: ${(err as Error).message}`);
  process.exit(1);
}
console.log(`trews udp-time listening on udp port ${service.localAddress!.port} — try: echo time | nc -u -w1 localhost ${service.localAddress!.port}`);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return; // npx and tsx may pass the same Ctrl-C on again
  stopping = true;
  await service.close();
  console.log('bye');
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
