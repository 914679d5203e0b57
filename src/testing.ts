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

/**
 * Virtual clock: run until nothing more is scheduled, advancing the clock from one timer to
 * the next and letting each turn's work run in between. Resolves with the virtual time reached.
 * A `cycle` never lets the engine go idle: bound it with `maxTime` (or use `runFor`).
 */
export async function settle(engine: Engine, options: SettleOptions = {}): Promise<number> {
  if (!engine.virtual) throw new TypeError("settle() needs an Engine created with { clock: 'virtual' }");
  const { maxTime = Infinity, maxSteps = 100_000 } = options;
  return engine._settle(maxTime, maxSteps);
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
