import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { defineConfig } from 'tsup';

const ENTRIES = ['src/index.ts', 'src/testing.ts', 'src/websocket/index.ts', 'src/socket.io/index.ts', 'src/redis/index.ts'];

/**
 * One implementation behind both entry points: the CommonJS build is the code, and each ES
 * module entry re-exports it by name. A process that imports `trews` and also requires it (or
 * loads a dependency that does) then shares one `Engine.instance()` and one set of classes, so
 * `instanceof` holds across both (the dual-package hazard). tsup still writes an ESM build for
 * its declarations; its JavaScript is replaced here.
 */
function esmOverCjs(outDir: string): void {
  for (const entry of ENTRIES) {
    const base = path.join(outDir, path.relative('src', entry).replace(/\.ts$/, ''));
    // The names Node's CommonJS lexer finds (`exports.Name = ...`), read without running the build.
    const cjs = readFileSync(`${base}.cjs`, 'utf8');
    const names = [...new Set([...cjs.matchAll(/\bexports\.([A-Za-z_$][\w$]*)\s*=/g)].map((m) => m[1]))].filter((n) => n !== '__esModule');
    const from = `./${path.basename(base)}.cjs`;
    writeFileSync(`${base}.js`, `// The CommonJS build is the implementation: one copy whether trews is imported or required.\nexport { ${names.join(', ')} } from '${from}';\n`);
    rmSync(`${base}.js.map`, { force: true });
  }
  // The ES build's shared chunks are no longer imported by anything.
  for (const file of readdirSync(outDir)) if (/^chunk-.*\.js(\.map)?$/.test(file)) rmSync(path.join(outDir, file));
}

export default defineConfig((cli) => ({
  entry: ENTRIES,
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  // CommonJS too: the entries share one copy of the core (trews/testing and trews/websocket use trews' Engine).
  splitting: true,
  target: 'node20',
  tsconfig: 'tsconfig.build.json',
  async onSuccess() {
    esmOverCjs(cli.outDir ?? 'dist');
  },
}));
