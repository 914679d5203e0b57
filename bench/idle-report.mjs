// The reporting half of the idle-memory servers (bench/idle-server.mjs, websocket-idle-server.mjs,
// socketio-idle-server.mjs), each a fresh process run by `node --expose-gc`: they differ only in
// the server they start, so they share how they answer the benchmark.
import { createInterface } from 'node:readline';
import { getHeapSpaceStatistics } from 'node:v8';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Print {"port"}; then, for each stdin line "measure", print {"connections", ...fields} with
 * `fields` taken from process.memoryUsage() after full GCs (several, a moment apart, so that
 * garbage from the accepts is gone); the field `youngGeneration` is V8's new space as committed
 * (part of the RSS). Exit when stdin closes.
 */
export function reportMemory(port, connections, fields) {
  process.stdout.write(JSON.stringify({ port }) + '\n');
  createInterface({ input: process.stdin })
    .on('line', (line) => {
      if (line.trim() !== 'measure') return;
      void (async () => {
        for (let i = 0; i < 3; i++) {
          globalThis.gc();
          await sleep(30);
        }
        const m = process.memoryUsage();
        const memory = { connections: connections() };
        for (const field of fields) memory[field] = field === 'youngGeneration' ? youngGeneration() : m[field];
        process.stdout.write(JSON.stringify(memory) + '\n');
      })();
    })
    .on('close', () => process.exit(0));
}

function youngGeneration() {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.physical_space_size ?? 0;
}
