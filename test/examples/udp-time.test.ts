/** examples/udp-time: the TimeService in-process, and main.ts as a real process stopped with Ctrl-C. */
import dgram from 'node:dgram';
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { TimeService } from '../../examples/udp-time/server.js';
import { onCleanup, testEngine } from '../helpers.js';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Send each datagram and collect replies until `count` have arrived. */
async function query(port: number, datagrams: string[], count: number): Promise<string[]> {
  const socket = dgram.createSocket('udp4');
  onCleanup(() => socket.close());
  const replies: string[] = [];
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${replies.length} of ${count} replies: ${JSON.stringify(replies)}`)), 5000);
    socket.on('message', (data) => {
      replies.push(data.toString());
      if (replies.length === count) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  for (const d of datagrams) await new Promise<void>((resolve, reject) => socket.send(d, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  await done;
  return replies;
}

async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

describe('examples/udp-time', () => {
  it('answers `time` with the ISO time and echoes anything else, lines split over datagrams included', async () => {
    const engine = testEngine();
    const service = new TimeService({ engine });
    await service.listen(0);
    const before = Date.now();
    const [time, echo, split] = await query(service.localAddress!.port, ['time\n', 'hello there\r\n', 'ti', 'me\n'], 3);
    expect(time).toMatch(/\n$/);
    expect(time!.trim()).toMatch(ISO);
    expect(Date.parse(time!.trim())).toBeGreaterThanOrEqual(before - 1000);
    expect(echo).toBe('hello there\n');
    expect(split!.trim()).toMatch(ISO);
  });

  it('main.ts listens on $PORT, answers, and stops cleanly on Ctrl-C', async () => {
    const port = await freeUdpPort();
    // Its own process group, so Ctrl-C reaches npx, tsx and node as it would from a terminal.
    const child = spawn('npx', ['tsx', 'examples/udp-time/main.ts'], {
      env: { ...process.env, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    onCleanup(() => {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // 'close': every holder of the pipes (npx, tsx, node) is gone, not just npx.
    const exited = new Promise<[number | null, string | null]>((resolve) => child.on('close', (code, signal) => resolve([code, signal])));
    const deadline = Date.now() + 15_000;
    while (!out.includes('listening')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`main.ts did not start: ${out}${err}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(out).toContain(`echo time | nc -u -w1 localhost ${port}`);
    const [time] = await query(port, ['time\n'], 1);
    expect(time!.trim()).toMatch(ISO);
    process.kill(-child.pid!, 'SIGINT');
    const [code, signal] = await exited;
    // npx itself may die of the SIGINT; the service says goodbye and frees its port.
    expect(code === 0 || signal === 'SIGINT').toBe(true);
    expect(out).toContain('bye');
    expect(err).not.toMatch(/Error/);
    const again = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.bind(port, '127.0.0.1', resolve);
    });
    again.close();
  });
});
