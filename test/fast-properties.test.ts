import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';

// Deleting an instance property drops the object into V8's slow dictionary mode: every hook call
// and field read then costs a hash lookup (it once halved trews' throughput unnoticed). Class-field
// overrides must leave channels with fast properties.
it('channels whose subclasses override readDelimiter, encoding and readTimeout as class fields keep fast properties', () => {
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', 'test/fixtures/fast-properties.ts'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({ connection: true, datagram: true });
});
