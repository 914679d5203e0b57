import { describe, it, expect } from 'vitest';
import { Engine, Timer } from '../src/engine.js';
import { Client } from '../src/client.js';

/** One turn of the event loop (not a sleep: resolves on the next setImmediate). */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A promise with its resolver, for awaiting a timer's own firing. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const virtual = (): Engine => new Engine({ clock: 'virtual' });

describe('Engine instances', () => {
  it('Engine.instance() is a singleton; new Engine() is isolated', () => {
    const a = Engine.instance();
    expect(Engine.instance()).toBe(a);
    const b = new Engine();
    expect(b).not.toBe(a);
    expect(b).toBeInstanceOf(Engine);
    expect(b.channels).not.toBe(a.channels);
    expect(b.virtual).toBe(false);
  });

  it('rejects an unknown clock', () => {
    expect(() => new Engine({ clock: 'fast' as unknown as 'real' })).toThrow(TypeError);
  });
});

describe('turn timers: callback and loop', () => {
  it('callback runs once, on the next turn, with its arguments', async () => {
    const engine = new Engine();
    const calls: unknown[][] = [];
    const done = deferred();
    const timer = engine.callback(
      (a: number, b: string) => {
        calls.push([a, b]);
        done.resolve();
      },
      1,
      'two',
    );
    expect(timer).toBeInstanceOf(Timer);
    expect(timer.kind).toBe('callback');
    expect(timer.active).toBe(true);
    expect(calls).toEqual([]); // not synchronously
    await done.promise;
    expect(calls).toEqual([[1, 'two']]);
    expect(timer.active).toBe(false);
    await turn();
    await turn();
    expect(calls).toHaveLength(1);
  });

  it('a cancelled callback never runs', async () => {
    const engine = new Engine();
    let ran = false;
    const timer = engine.callback(() => (ran = true));
    timer.cancel();
    expect(timer.active).toBe(false);
    await turn();
    await turn();
    expect(ran).toBe(false);
    timer.cancel(); // cancelling twice is harmless
  });

  it('loop runs every turn and may cancel itself (after 3 turns)', async () => {
    const engine = new Engine();
    let count = 0;
    const done = deferred();
    const seen: unknown[] = [];
    const timer: Timer = engine.loop((tag: string) => {
      seen.push(tag);
      count++;
      if (count === 3) {
        timer.cancel();
        done.resolve();
      }
    }, 'x');
    expect(timer.kind).toBe('loop');
    await done.promise;
    expect(timer.active).toBe(false);
    for (let i = 0; i < 5; i++) await turn();
    expect(count).toBe(3);
    expect(seen).toEqual(['x', 'x', 'x']);
  });

  it('a loop runs once per turn, interleaved with other turns', async () => {
    const engine = new Engine();
    let count = 0;
    const timer = engine.loop(() => count++);
    await turn();
    const after1 = count;
    await turn();
    await turn();
    timer.cancel();
    expect(after1).toBeGreaterThanOrEqual(1);
    expect(count - after1).toBeGreaterThanOrEqual(1);
    expect(count).toBeLessThanOrEqual(4);
    const frozen = count;
    await turn();
    await turn();
    expect(count).toBe(frozen);
  });
});

describe('defer and cycle', () => {
  it.each([0, -1, NaN, Infinity, -Infinity])('reject a delay of %s with RangeError', (ms) => {
    for (const engine of [new Engine(), virtual()]) {
      expect(() => engine.defer(ms, () => {})).toThrow(RangeError);
      expect(() => engine.cycle(ms, () => {})).toThrow(RangeError);
    }
  });

  it('reject a non-number delay with RangeError', () => {
    const engine = new Engine();
    expect(() => engine.defer('5' as unknown as number, () => {})).toThrow(RangeError);
    expect(() => engine.cycle(undefined as unknown as number, () => {})).toThrow(RangeError);
  });

  it('cancelling one timer never touches another with the same delay (identity, not deadline)', async () => {
    const engine = new Engine();
    const fired: string[] = [];
    const done = deferred();
    const a = engine.defer(15, () => fired.push('a'));
    const b = engine.defer(15, () => {
      fired.push('b');
      done.resolve();
    });
    a.cancel();
    expect(a.active).toBe(false);
    expect(b.active).toBe(true);
    await done.promise;
    expect(fired).toEqual(['b']);
    expect(b.active).toBe(false);
  });

  it('the same holds on the virtual clock, for defers and cycles', () => {
    const engine = virtual();
    const fired: string[] = [];
    const a = engine.defer(10, () => fired.push('a'));
    engine.defer(10, () => fired.push('b'));
    const c = engine.cycle(10, () => fired.push('c'));
    engine.cycle(10, () => fired.push('d'));
    a.cancel();
    c.cancel();
    engine.advance(20);
    expect(fired).toEqual(['b', 'd', 'd']);
  });

  it('a real defer(20) fires after at least ~20 ms of now()', async () => {
    const engine = new Engine();
    const start = engine.now();
    const fired = deferred<number>();
    engine.defer(20, (at: string) => fired.resolve(at === 'arg' ? engine.now() : -1), 'arg');
    const at = await fired.promise;
    // Node's timers run off the loop's millisecond clock: allow 1 ms of rounding.
    expect(at - start).toBeGreaterThanOrEqual(19);
  });

  it('a real cycle fires repeatedly and may cancel itself', async () => {
    const engine = new Engine();
    let count = 0;
    const done = deferred();
    const timer: Timer = engine.cycle(2, () => {
      if (++count === 3) {
        timer.cancel();
        done.resolve();
      }
    });
    expect(timer.kind).toBe('cycle');
    await done.promise;
    expect(timer.active).toBe(false);
    // Await a later timer of the same engine: the cancelled cycle must not have fired again.
    const later = deferred();
    engine.defer(10, () => later.resolve());
    await later.promise;
    expect(count).toBe(3);
  });

  it('a long real defer (over 2^31-1 ms, about 24.9 days) does not fire early', async () => {
    const engine = new Engine();
    let fired = false;
    let cycled = 0;
    const long = engine.defer(2 ** 31, () => (fired = true));
    const longCycle = engine.cycle(2 ** 32, () => cycled++);
    const later = deferred();
    engine.defer(30, () => later.resolve());
    await later.promise;
    const early = [fired, cycled];
    long.cancel();
    longCycle.cancel();
    expect(early).toEqual([false, 0]);
  });
});

describe('virtual clock', () => {
  it('now() starts at 0 and only moves with advance(ms)', async () => {
    const engine = virtual();
    expect(engine.virtual).toBe(true);
    expect(engine.now()).toBe(0);
    await turn();
    expect(engine.now()).toBe(0);
    engine.advance(5);
    expect(engine.now()).toBe(5);
    engine.advance(0);
    expect(engine.now()).toBe(5);
    engine.advance(2.5);
    expect(engine.now()).toBe(7.5);
  });

  it('fires timers in deadline order, equal deadlines in creation order, now() = deadline inside', () => {
    const engine = virtual();
    const log: Array<[string, number]> = [];
    const at = (name: string) => () => log.push([name, engine.now()]);
    engine.defer(30, at('d30'));
    engine.defer(10, at('d10a'));
    engine.defer(20, at('d20'));
    engine.defer(10, at('d10b'));
    engine.cycle(15, at('c15'));
    engine.defer(10, at('d10c'));
    engine.defer(46, at('d46'));
    engine.advance(40);
    expect(log).toEqual([
      ['d10a', 10],
      ['d10b', 10],
      ['d10c', 10],
      ['c15', 15],
      ['d20', 20],
      ['d30', 30],
      ['c15', 30],
    ]);
    expect(engine.now()).toBe(40);
    log.length = 0;
    engine.advance(6);
    expect(log).toEqual([
      ['c15', 45],
      ['d46', 46],
    ]);
  });

  it('nothing fires before its deadline', () => {
    const engine = virtual();
    let fired = 0;
    engine.defer(10, () => fired++);
    engine.advance(9.999);
    expect(fired).toBe(0);
    engine.advance(0.001);
    expect(fired).toBe(1);
    engine.advance(100);
    expect(fired).toBe(1);
  });

  it('a cycle fires floor(total / period) times across several advance calls', () => {
    const engine = virtual();
    let count = 0;
    const times: number[] = [];
    engine.cycle(3, () => {
      count++;
      times.push(engine.now());
    });
    const steps = [1, 1, 1, 5, 2, 0, 7, 13, 2];
    let total = 0;
    for (const step of steps) {
      engine.advance(step);
      total += step;
      expect(count).toBe(Math.floor(total / 3));
    }
    expect(times).toEqual(Array.from({ length: count }, (_, i) => 3 * (i + 1)));
  });

  it('a cycle may cancel itself; one advance over many periods stops at once', () => {
    const engine = virtual();
    let count = 0;
    const timer: Timer = engine.cycle(4, () => {
      if (++count === 2) timer.cancel();
    });
    engine.advance(100);
    expect(count).toBe(2);
    expect(timer.active).toBe(false);
    engine.advance(100);
    expect(count).toBe(2);
  });

  it('a timer created inside a timer during advance fires in the same advance if due', () => {
    const engine = virtual();
    const log: Array<[string, number]> = [];
    engine.defer(3, () => {
      log.push(['outer', engine.now()]);
      engine.defer(5, () => log.push(['inner due 8', engine.now()]));
      engine.defer(20, () => log.push(['inner due 23', engine.now()]));
    });
    engine.defer(9, () => log.push(['plain 9', engine.now()]));
    engine.advance(10);
    expect(log).toEqual([
      ['outer', 3],
      ['inner due 8', 8],
      ['plain 9', 9],
    ]);
    engine.advance(13);
    expect(log.at(-1)).toEqual(['inner due 23', 23]);
  });

  it('a timer may cancel a later timer due in the same advance', () => {
    const engine = virtual();
    const fired: string[] = [];
    const victim = engine.defer(5, () => fired.push('victim'));
    engine.defer(2, () => {
      fired.push('killer');
      victim.cancel();
    });
    engine.advance(10);
    expect(fired).toEqual(['killer']);
  });

  it('timer arguments are passed through', () => {
    const engine = virtual();
    const got: unknown[] = [];
    engine.defer(1, (a: number, b: string) => got.push(a, b), 7, 'x');
    engine.cycle(1, (c: boolean) => got.push(c), true);
    engine.advance(1);
    expect(got).toEqual([7, 'x', true]);
  });

  it('advance on a real engine throws TypeError', () => {
    expect(() => new Engine().advance(1)).toThrow(TypeError);
    expect(() => Engine.instance().advance(1)).toThrow(TypeError);
  });

  it.each([-1, NaN, Infinity, -Infinity])('advance(%s) throws RangeError', (ms) => {
    const engine = virtual();
    expect(() => engine.advance(ms)).toThrow(RangeError);
    expect(engine.now()).toBe(0);
  });
});

describe('real clock', () => {
  it('now() is monotonic over 1000 reads', () => {
    const engine = new Engine();
    let prev = engine.now();
    expect(typeof prev).toBe('number');
    expect(Number.isFinite(prev)).toBe(true);
    for (let i = 0; i < 1000; i++) {
      const t = engine.now();
      expect(t).toBeGreaterThanOrEqual(prev);
      prev = t;
    }
  });
});

describe('start and stop', () => {
  it('start() returns a promise resolved by stop()', async () => {
    const engine = new Engine();
    let resolved = false;
    const running = engine.start().then(() => (resolved = true));
    expect(engine.running).toBe(true);
    expect(engine.start()).toBe(engine.start()); // the same run
    await turn();
    expect(resolved).toBe(false);
    const result = await engine.stop();
    expect(result).toEqual({ forced: 0 });
    await running;
    expect(resolved).toBe(true);
    expect(engine.running).toBe(false);
  });

  it('stop() without start() resolves', async () => {
    await expect(new Engine().stop()).resolves.toEqual({ forced: 0 });
  });

  it('stop() cancels every timer: a virtual cycle stops firing', async () => {
    const engine = virtual();
    let cycles = 0;
    let defers = 0;
    const cycle = engine.cycle(10, () => cycles++);
    const defer = engine.defer(15, () => defers++);
    engine.advance(25);
    expect([cycles, defers]).toEqual([2, 1]);
    await engine.stop();
    expect(cycle.active).toBe(false);
    expect(defer.active).toBe(false);
    engine.advance(100);
    expect([cycles, defers]).toEqual([2, 1]);
  });

  it('stop() cancels every timer on the real clock too', async () => {
    const engine = new Engine();
    let cycles = 0;
    let fired = 0;
    const first = deferred();
    const cycle = engine.cycle(1, () => {
      cycles++;
      first.resolve();
    });
    const defer = engine.defer(5, () => fired++);
    const cb = engine.callback(() => fired++);
    const loop = engine.loop(() => fired++);
    await first.promise;
    await engine.stop();
    for (const timer of [cycle, defer, cb, loop]) expect(timer.active).toBe(false);
    const frozen = [cycles, fired];
    // Await a timer created after stop: the stopped ones must not have run since.
    const later = deferred();
    engine.defer(20, () => later.resolve());
    await later.promise;
    expect([cycles, fired]).toEqual(frozen);
  });

  it('stop() closes channels and resolves when they are closed', async () => {
    const engine = new Engine();
    const client = new Client({ engine });
    expect(engine.channels.has(client)).toBe(true);
    await engine.stop();
    expect(client.closed).toBe(true);
    expect(engine.channels.size).toBe(0);
  });
});

describe('errors thrown in timers', () => {
  it("go to the engine's 'error' event with the Timer as source", () => {
    const lines: string[] = [];
    const engine = new Engine({ clock: 'virtual', log: (m) => lines.push(m) });
    const seen: Array<[unknown, unknown]> = [];
    engine.on('error', (err, source) => seen.push([err, source]));
    const boom = new Error('boom');
    const timer = engine.defer(1, () => {
      throw boom;
    });
    let after = 0;
    engine.defer(2, () => after++);
    expect(() => engine.advance(5)).not.toThrow();
    expect(seen).toEqual([[boom, timer]]);
    expect(seen[0]![1]).toBe(timer);
    expect(after).toBe(1); // later timers still fire
    expect(lines).toEqual([]);
  });

  it('a throwing cycle keeps cycling and reports each time', () => {
    const engine = new Engine({ clock: 'virtual', log: () => {} });
    const sources: unknown[] = [];
    engine.on('error', (_err, source) => sources.push(source));
    const timer = engine.cycle(1, () => {
      throw new Error('again');
    });
    engine.advance(3);
    expect(sources).toEqual([timer, timer, timer]);
    timer.cancel();
  });

  it('without a listener they are written through the log option and never crash', async () => {
    const lines: string[] = [];
    const logged = deferred();
    const engine = new Engine({
      log: (m) => {
        lines.push(m);
        logged.resolve();
      },
    });
    engine.callback(() => {
      throw new Error('callback went wrong');
    });
    await logged.promise;
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/callback went wrong/);
    expect(lines[0]).toMatch(/callback timer/);
  });

  it('without a listener, virtual timers log too; non-Error values are logged', () => {
    const lines: string[] = [];
    const engine = new Engine({ clock: 'virtual', log: (m) => lines.push(m) });
    engine.defer(1, () => {
      throw 'a string'; // eslint-disable-line no-throw-literal
    });
    engine.advance(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/a string/);
    expect(lines[0]).toMatch(/defer timer/);
  });

  it("an 'error' listener that throws is logged, not thrown", () => {
    const lines: string[] = [];
    const engine = new Engine({ clock: 'virtual', log: (m) => lines.push(m) });
    engine.on('error', () => {
      throw new Error('listener broke');
    });
    engine.defer(1, () => {
      throw new Error('original');
    });
    expect(() => engine.advance(1)).not.toThrow();
    expect(lines.join('\n')).toMatch(/listener broke/);
    expect(lines.join('\n')).toMatch(/original/);
  });

  it('a log function that throws does not crash the engine', () => {
    const engine = new Engine({
      clock: 'virtual',
      log: () => {
        throw new Error('logger broke');
      },
    });
    let after = 0;
    engine.defer(1, () => {
      throw new Error('x');
    });
    engine.defer(1, () => after++);
    expect(() => engine.advance(1)).not.toThrow();
    expect(after).toBe(1);
  });

  it('reportError without a listener logs the error', () => {
    const lines: string[] = [];
    const engine = new Engine({ log: (m) => lines.push(m) });
    engine.reportError(new Error('reported'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/reported/);
  });
});

describe('engine.channels', () => {
  it('is a live set: a new Client is in it, and leaves it once closed', async () => {
    const engine = new Engine();
    const channels = engine.channels;
    const client = new Client({ engine });
    expect(channels.has(client)).toBe(true);
    expect(engine.channels.has(client)).toBe(true);
    expect(Engine.instance().channels.has(client)).toBe(false);
    const other = new Client({ engine });
    expect(channels.size).toBe(2);
    await client.close();
    expect(client.closed).toBe(true);
    expect(channels.has(client)).toBe(false);
    expect(channels.has(other)).toBe(true);
    await other.close();
    expect(channels.size).toBe(0);
  });

  it('a channel without { engine } joins the singleton', async () => {
    const client = new Client();
    expect(client.engine).toBe(Engine.instance());
    expect(Engine.instance().channels.has(client)).toBe(true);
    await client.close();
    expect(Engine.instance().channels.has(client)).toBe(false);
  });
});
