/**
 * The rpc example: the service and the demo client in-process (memory transport and TCP port
 * 0), and `main.ts` run as a process: it answers, finishes a slow answer in progress when
 * told to stop, and exits 0 on SIGINT.
 */
import { describe, expect, it } from 'vitest';
import { MessageClient, RemoteError } from '../../src/index.js';
import { memoryAddress, settle } from '../../src/testing.js';
import { startRpcServer } from '../../examples/rpc/service.js';
import { runDemo, type Result } from '../../examples/rpc/client.js';
import { freePort, portOf, testEngine } from '../helpers.js';
import { spawnWithTsx } from './helpers.js';

const EXPECTED: Result[] = [
  { call: 'add(1, 2, 3)', ok: true, value: 6 },
  { call: 'echo({"hello":"world"})', ok: true, value: { hello: 'world' } },
  { call: 'add("one", "two")', ok: false, value: 'ERR_BAD_PARAMS' },
  { call: 'divide(1, 0)', ok: false, value: 'ERR_UNKNOWN_METHOD' },
  { call: 'slow(300, "slow and steady")', ok: true, value: 'slow and steady' },
];

async function waitUntil(predicate: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('rpc example, in-process', () => {
  it('on the memory transport and the virtual clock: results as they complete, the slow one at 300 ms', async () => {
    const engine = testEngine({ clock: 'virtual' });
    const address = memoryAddress('rpc');
    await startRpcServer({ address, engine });
    const lines: string[] = [];
    const demo = runDemo(address, { engine, print: (line) => lines.push(`${engine.now()} ${line}`) });
    await settle(engine);
    expect(await demo).toEqual(EXPECTED);
    expect(lines.at(-1)).toBe('300 slow(300, "slow and steady") = "slow and steady"');
    expect(lines[3]).toMatch(/^0 divide\(1, 0\) failed: no method "divide"; try add, echo, slow \[ERR_UNKNOWN_METHOD\]$/);
  });

  it('over TCP on port 0', async () => {
    const engine = testEngine();
    const server = await startRpcServer({ address: ['127.0.0.1', 0], engine });
    expect(await runDemo(['127.0.0.1', portOf(server.localAddress)], { engine })).toEqual(EXPECTED);
    await server.close();
  });
});

describe('rpc example main.ts', () => {
  it('serves on $PORT; on SIGINT it still answers the request in progress, then exits 0', async () => {
    const port = await freePort();
    const { child, stdout, stderr, exited } = spawnWithTsx('examples/rpc/main.ts', { PORT: String(port) });
    await waitUntil(() => stdout().includes('listening') || child.exitCode !== null, 'the banner');
    expect(stdout()).toContain(`listening on tcp port ${port} — try: npx tsx examples/rpc/client.ts ${port}`);

    const engine = testEngine();
    expect(await runDemo(['127.0.0.1', port], { engine })).toEqual(EXPECTED);

    // A slow request in flight when the server is told to stop: its answer still arrives.
    const client = new MessageClient({ engine });
    await client.connect(['127.0.0.1', port]);
    const slow = client.request({ method: 'slow', params: [400, 'finished anyway'] });
    const quick = await client.request({ method: 'add', params: [2, 2] }); // the slow one is now in progress
    expect(quick).toBe(4);
    child.kill('SIGINT');
    expect(await slow).toBe('finished anyway');
    const refused = await client.request({ method: 'echo', params: [1] }).catch((e: unknown) => e);
    expect(refused instanceof RemoteError || (refused as Error).name === 'ClosedError').toBe(true);
    await client.whenClosed();
    const { code, signal } = await exited;
    expect({ code, signal, stderr: stderr() }).toEqual({ code: 0, signal: null, stderr: '' });
    expect(stdout()).toContain('bye');
  });
});
