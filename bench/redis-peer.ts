/**
 * The second process of bench/redis.ts: a trews Server attached to a RedisBus as 'bench' on
 * $REDIS_URL / $BUS_CHANNEL, listening on a free loopback port. Prints `port <n>` once the bus
 * is subscribed, `connections <n>` as it accepts, and `cpu <ms>` (its CPU time so far) for
 * each line read on stdin; exits when its stdin closes.
 */
import { createInterface } from 'node:readline';
import { Server } from '../src/index.js';
import { RedisBus } from '../src/redis/index.js';

const server = new Server({ slowReaders: 'queue' });
server.on('accept', () => console.log(`connections ${server.connections.size}`));
await server.listen(['127.0.0.1', 0]);
const bus = new RedisBus({ redis: process.env.REDIS_URL, channel: process.env.BUS_CHANNEL });
await bus.attach(server, 'bench').ready();
console.log(`port ${(server.localAddress as { port: number }).port}`);
const input = createInterface({ input: process.stdin });
input.on('line', () => {
  const { user, system } = process.cpuUsage();
  console.log(`cpu ${(user + system) / 1000}`);
});
input.on('close', () => void Promise.all([bus.close(), server.close(false)]).then(() => process.exit(0)));
