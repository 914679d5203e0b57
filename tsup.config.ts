import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/testing.ts', 'src/websocket/index.ts'],
  format: ['esm', 'cjs'],
  // Shared chunks for CommonJS too (ESM always has them): without it each CJS entry bundles its
  // own copy of the core, and require('trews/websocket') channels are not require('trews')
  // Streams and live in another Engine.instance().
  splitting: true,
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  tsconfig: 'tsconfig.build.json',
});
