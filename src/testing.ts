/**
 * trews/testing: run protocol tests on the in-memory transport and the virtual clock, in
 * milliseconds of real time.
 *
 *   const engine = new Engine({ clock: 'virtual' });
 *   await server.listen('memory:svc');              // same Server/Connection classes as TCP
 *   await client.connect({ memory: 'svc', latency: 20 });
 *   client.write('PING\n');
 *   await runFor(engine, 30_000);                   // 30 virtual seconds, instantly
 *
 * @module trews/testing
 */
import type { Engine } from './engine.js';

/** Options for `settle(engine, options)`. */
export interface SettleOptions {
  /** Stop after this much virtual time has passed (default Infinity). */
  maxTime?: number;
  /** Give up (throw) after this many steps: protects against endless cycles (default 100000). */
  maxSteps?: number;
}

/** Let Node run a few turns: I/O callbacks, immediates and nextTicks queued by the last step. */
async function turns(engine: Engine): Promise<void> {
  do {
    await new Promise<void>((resolve) => setImmediate(resolve));
  } while (engine.pending().callbacks > 0);
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * Virtual clock: run until nothing more is scheduled, advancing the clock from one timer to
 * the next and letting each turn's work run in between. Resolves with the virtual time reached.
 * A `cycle` never lets the engine go idle: bound it with `maxTime` (or use `runFor`).
 */
export async function settle(engine: Engine, options: SettleOptions = {}): Promise<number> {
  if (!engine.virtual) throw new TypeError("settle() needs an Engine created with { clock: 'virtual' }");
  const { maxTime = Infinity, maxSteps = 100_000 } = options;
  const end = engine.now() + maxTime;
  for (let step = 0; step < maxSteps; step++) {
    await turns(engine);
    const { nextDue } = engine.pending();
    if (nextDue === null) return engine.now();
    if (nextDue > end) {
      engine.advance(end - engine.now());
      await turns(engine);
      return engine.now();
    }
    engine.advance(nextDue - engine.now());
  }
  throw new Error(`settle(): still busy after ${maxSteps} steps (a cycle timer? pass maxTime)`);
}

/** Virtual clock: let exactly `ms` of virtual time pass, running everything that falls due. */
export async function runFor(engine: Engine, ms: number): Promise<number> {
  return settle(engine, { maxTime: ms });
}

let counter = 0;

/** A memory address no other test in this process uses: `memory:<prefix>-<n>`. */
export function memoryAddress(prefix = 'test'): string {
  return `memory:${prefix}-${process.pid}-${++counter}`;
}

export { MemorySocket, type LinkOptions } from './memory.js';
