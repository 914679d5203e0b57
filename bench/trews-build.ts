/**
 * Which trews a benchmark should run when per-connection costs matter (idle, churn): the
 * built package (dist/index.js), as users run it, whenever it is at least as new as every
 * file in src/. Otherwise src/ through tsx, which compiles with esbuild's keepNames: every
 * arrow-function class field then gets its `name` redefined per instance, costing ~2 KB of
 * heap and a few % of CPU per connection that the built package does not pay. The output
 * says which one ran.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BENCH_DIR } from './lib.js';

type Trews = typeof import('../src/index.js');

const DIST = join(BENCH_DIR, '..', 'dist', 'index.js');
const SRC = join(BENCH_DIR, '..', 'src');

/** The path of an up-to-date dist/index.js, or null (with why). */
export function builtTrews(): { path: string | null; what: string } {
  const newestSrc = Math.max(...readdirSync(SRC).map((f) => statSync(join(SRC, f)).mtimeMs));
  if (existsSync(DIST) && statSync(DIST).mtimeMs >= newestSrc) return { path: DIST, what: 'trews from the built package (dist/index.js)' };
  return {
    path: null,
    what:
      'trews from src/ through tsx: dist/ is missing or older than src/ (run `npm run build` first); ' +
      "tsx's keepNames makes each trews connection cost ~2 KB more heap and more CPU to create than the built package",
  };
}

/** The trews module to benchmark, and a line saying which one it is. */
export async function importTrews(): Promise<{ trews: Trews; what: string }> {
  const built = builtTrews();
  const trews = (built.path !== null ? await import(pathToFileURL(built.path).href) : await import('../src/index.js')) as Trews;
  return { trews, what: built.what };
}
