/**
 * `npx tsx examples/rpc/client.ts [port]`: call the service with several requests at once and
 * print each result as it comes (the slow one last, whatever the order they were sent in).
 *
 * In your own project, import from 'trews' instead of '../../src/index.js'.
 */
import { MessageClient, RemoteError, type AddressInput, type Engine } from '../../src/index.js';
import { isMain } from '../shared/is-main.js';
import type { Call } from './service.js';

/** One call's outcome, in the order they completed. */
export interface Result {
  call: string;
  ok: boolean;
  value: unknown;
}

const CALLS: Call[] = [
  { method: 'slow', params: [300, 'slow and steady'] },
  { method: 'add', params: [1, 2, 3] },
  { method: 'echo', params: [{ hello: 'world' }] },
  { method: 'add', params: ['one', 'two'] },
  { method: 'divide', params: [1, 0] },
];

/** Connect, send every call at once, collect the results as they complete, close. */
export async function runDemo(address: AddressInput, options: { engine?: Engine; print?: (line: string) => void } = {}): Promise<Result[]> {
  const print = options.print ?? (() => {});
  const client = new MessageClient({ ...(options.engine && { engine: options.engine }), requestTimeout: 5000 });
  await client.connect(address);
  const results: Result[] = [];
  await Promise.all(
    CALLS.map(async (call) => {
      const label = `${call.method}(${(call.params ?? []).map((p) => JSON.stringify(p)).join(', ')})`;
      try {
        const value = await client.request(call);
        results.push({ call: label, ok: true, value });
        print(`${label} = ${JSON.stringify(value)}`);
      } catch (err) {
        const code = err instanceof RemoteError ? err.remoteCode : (err as { code?: string }).code;
        results.push({ call: label, ok: false, value: code });
        print(`${label} failed: ${(err as Error).message} [${code}]`);
      }
    }),
  );
  await client.close();
  return results;
}

if (isMain(import.meta.url)) {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 4043);
  runDemo(['localhost', port], { print: console.log }).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`rpc client: ${(err as Error).message}`);
      process.exit(1);
    },
  );
}
