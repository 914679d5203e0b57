/**
 * The package as a user gets it: a fresh build, packed by `npm pack`, unpacked into a new
 * `"type": "module"` project (the README's install steps), then imported, required,
 * type-checked under the usual tsconfig settings, and the README's examples run against it.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, onCleanup, Peer, waitFor } from './helpers.js';
import { ROOT, spawnTsx } from './examples/helpers.js';

const run = promisify(execFile);
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

let work: string;
/** The user's project: package.json with "type": "module", trews unpacked in node_modules. */
let project: string;
/** What `npm pack` put in the tarball, without the leading `package/`. */
let packed: string[];
let manifest: { exports: Record<string, unknown>; typesVersions?: Record<string, Record<string, string[]>> };

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'trews-package-'));
  // Build into a copy, so the repository's dist/ (and tests using it) are left alone.
  const staging = path.join(work, 'staging');
  mkdirSync(staging);
  for (const file of ['package.json', 'README.md', 'LICENSE', 'src']) cpSync(path.join(ROOT, file), path.join(staging, file), { recursive: true });
  await run(process.execPath, [path.join(ROOT, 'node_modules/tsup/dist/cli-default.js'), '--out-dir', path.join(staging, 'dist')], { cwd: ROOT });
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: staging });
  const tarball = path.join(work, (JSON.parse(stdout) as Array<{ filename: string }>)[0]!.filename);
  packed = (await run('tar', ['tzf', tarball])).stdout.split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));

  project = path.join(work, 'project');
  const modules = path.join(project, 'node_modules');
  mkdirSync(modules, { recursive: true });
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await run('tar', ['xzf', tarball, '-C', modules]);
  renameSync(path.join(modules, 'package'), path.join(modules, 'trews'));
  // What `npm install trews ioredis` and `npm install -D @types/node` would add, taken from ours.
  mkdirSync(path.join(modules, '@types'));
  for (const dep of ['eventemitter3', 'ws', 'engine.io-parser', 'socket.io-parser', '@socket.io', 'ioredis', '@ioredis', '@types/node', 'vitest']) symlinkSync(path.join(ROOT, 'node_modules', dep), path.join(modules, dep));
  manifest = JSON.parse(readFileSync(path.join(modules, 'trews/package.json'), 'utf8'));
}, 90_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Every file path named in `exports` and `typesVersions`. */
function targets(value: unknown): string[] {
  if (typeof value === 'string') return [value.replace(/^\.\//, '')];
  if (Array.isArray(value)) return value.flatMap(targets);
  if (value && typeof value === 'object') return Object.values(value).flatMap(targets);
  return [];
}

/** The package names (`eventemitter3`, `@types/node`) in a list of module paths. */
function packagesIn(paths: string[]): string[] {
  const names = paths.map((p) => /.*node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(p)?.[1]).filter((n): n is string => n !== undefined);
  return [...new Set(names)].sort();
}

/**
 * Type-check `files` in the user's project and trews' own declarations (as skipLibCheck: false
 * would, without checking every other package's); returns the diagnostics as "file(line): message".
 */
function typeCheck(files: string[], options: ts.CompilerOptions): string[] {
  const program = ts.createProgram(
    files.map((f) => path.join(project, f)),
    { strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, types: ['node'], skipLibCheck: false, ...options },
  );
  const ours = program.getSourceFiles().filter((f) => !f.fileName.includes('/node_modules/') || f.fileName.includes('/node_modules/trews/'));
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...ours.flatMap((f) => [...program.getSyntacticDiagnostics(f), ...program.getSemanticDiagnostics(f)]),
  ];
  return diagnostics.map((d) => {
    const where = d.file ? `${path.relative(project, d.file.fileName)}(${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1})` : '';
    return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

/** The README's ```ts blocks. */
function readmeBlocks(): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

describe('the npm package', () => {
  it('holds the ESM and CommonJS builds with their types, README and LICENSE; no tests, benchmarks or examples', () => {
    expect(packed).toEqual(
      expect.arrayContaining(['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'dist/testing.js', 'dist/testing.cjs']),
    );
    expect(packed.filter((f) => /^(test|bench|examples)\//.test(f))).toEqual([]);
    // Every file that exports or typesVersions points at is in the tarball.
    const named = [...targets(manifest.exports), ...targets(manifest.typesVersions)];
    expect(named.length).toBeGreaterThan(8);
    expect(named.filter((f) => !packed.includes(f))).toEqual([]);
  });

  it('the shipped README links only to absolute URLs (under package.json\'s repository) or to its own headings, so its links work on the registry too', () => {
    const readme = readFileSync(path.join(project, 'node_modules/trews/README.md'), 'utf8');
    const links = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(5);
    expect(links.filter((l) => !/^(https?:\/\/|#)/.test(l))).toEqual([]);
    const repository = (manifest as { homepage?: string }).homepage!.replace(/#readme$/, '');
    expect(links.filter((l) => l.includes('github.com') && !l.startsWith(`${repository}/`))).toEqual([]);
    // GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens.
    const slugs = new Set([...readme.matchAll(/^#+ (.+)$/gm)].map((m) => m[1]!.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replaceAll(' ', '-')));
    expect(links.filter((l) => l.startsWith('#') && !slugs.has(l.slice(1)))).toEqual([]);
  });

  it('import and require give the same public names (root, testing, websocket); the root loads no dependency but eventemitter3', async () => {
    // The ES entries re-export the CommonJS build, so what they load shows in require.cache too.
    writeFileSync(
      path.join(project, 'names.mjs'),
      "import { createRequire } from 'node:module';\n" +
        "const root = await import('trews'), testing = await import('trews/testing'), loaded = Object.keys(createRequire(import.meta.url).cache);\n" +
        "const websocket = await import('trews/websocket');\n" +
        'console.log(JSON.stringify([...[root, testing, websocket].map((m) => Object.keys(m).sort()), loaded]));\n',
    );
    writeFileSync(
      path.join(project, 'names.cjs'),
      "const root = require('trews'), testing = require('trews/testing'), loaded = Object.keys(require.cache);\n" +
        "const websocket = require('trews/websocket');\n" +
        'console.log(JSON.stringify([...[root, testing, websocket].map((m) => Object.keys(m).sort()), loaded]));\n',
    );
    const [esm, cjs] = await Promise.all(
      ['names.mjs', 'names.cjs'].map(async (file) => JSON.parse((await run(process.execPath, [file], { cwd: project })).stdout) as string[][]),
    );
    expect(esm![0]).toEqual(expect.arrayContaining(['Engine', 'Server', 'Connection', 'Client', 'Datagram', 'Struct', 'TrewsError']));
    expect(esm![1]).toEqual(expect.arrayContaining(['runFor', 'settle', 'memoryAddress']));
    expect(esm![2]).toEqual(expect.arrayContaining(['WebSocketServer', 'WebSocketConnection', 'WebSocketClient']));
    expect(cjs!.slice(0, 3)).toEqual(esm!.slice(0, 3));
    expect(esm![0]).not.toContain('__esModule');
    for (const loaded of [esm![3]!, cjs![3]!]) expect(packagesIn(loaded)).toEqual(['eventemitter3', 'trews']);
  });

  it('import and require in one process share one implementation: one Engine.instance(), classes and errors that instanceof recognises across both', async () => {
    writeFileSync(
      path.join(project, 'both.mjs'),
      `import { createRequire } from 'node:module';
import * as imported from 'trews';
import { WebSocketConnection } from 'trews/websocket';
const required = createRequire(import.meta.url)('trews');
const refused = await new imported.Client().connect(['127.0.0.1', 1]).catch((err) => err);
console.log(JSON.stringify([
  imported.Engine.instance() === required.Engine.instance(),
  new required.Client() instanceof imported.Stream,
  new WebSocketConnection() instanceof required.Channel,
  refused instanceof required.ConnectError && refused instanceof required.TrewsError,
]));
imported.Engine.instance().stop();
`,
    );
    const { stdout } = await run(process.execPath, ['both.mjs'], { cwd: project });
    expect(JSON.parse(stdout)).toEqual([true, true, true, true]);
  });

  it('the subpaths share the root\'s classes and Engine, with import and with require', async () => {
    const check = (load: (name: string) => string) => `
const { Engine, Stream } = ${load('trews')};
const { WebSocketConnection } = ${load('trews/websocket')};
const { MemorySocket } = ${load('trews/testing')};
const channel = new WebSocketConnection();
console.log(JSON.stringify([channel instanceof Stream, channel.engine === Engine.instance(), typeof MemorySocket]));
`;
    writeFileSync(path.join(project, 'shared.mjs'), check((name) => `await import('${name}')`));
    writeFileSync(path.join(project, 'shared.cjs'), check((name) => `require('${name}')`));
    const results = await Promise.all(['shared.mjs', 'shared.cjs'].map(async (file) => JSON.parse((await run(process.execPath, [file], { cwd: project })).stdout) as unknown));
    expect(results).toEqual([
      [true, true, 'function'],
      [true, true, 'function'],
    ]);
  });

  it('its types resolve under nodenext (ESM and CommonJS), bundler and node10, without esModuleInterop', () => {
    // The @ts-expect-error lines fail the check if the types degrade to `any`.
    const consumer = `
import { Connection, Engine, Server, type ConnectError } from 'trews';
import { runFor } from 'trews/testing';
import { WebSocketConnection, WebSocketServer } from 'trews/websocket';
export const ws: WebSocketServer<WebSocketConnection> | null = null;
class Echo extends Connection {
  override readDelimiter = '\\n';
  override onRead(line: Buffer) { this.write(line); }
  override onConnectError(err: ConnectError) { console.log(err.code); }
}
export async function main(): Promise<number> {
  const engine = new Engine({ clock: 'virtual' });
  await new Server(Echo, { engine }).listen('memory:echo');
  // @ts-expect-error now() is a number
  const wrong: string = engine.now();
  void wrong;
  // @ts-expect-error runFor resolves with a number
  const late: Promise<string> = runFor(engine, 10);
  return late.then(Number);
}
`;
    writeFileSync(path.join(project, 'consumer.ts'), consumer);
    writeFileSync(path.join(project, 'consumer.cts'), consumer);
    const base = { esModuleInterop: false, allowSyntheticDefaultImports: false };
    const { ModuleKind: M, ModuleResolutionKind: R } = ts;
    expect({
      'nodenext, ESM': typeCheck(['consumer.ts'], { ...base, module: M.NodeNext, moduleResolution: R.NodeNext }),
      'nodenext, CommonJS (.cts)': typeCheck(['consumer.cts'], { ...base, module: M.NodeNext, moduleResolution: R.NodeNext }),
      'node16, ESM': typeCheck(['consumer.ts'], { ...base, module: M.Node16, moduleResolution: R.Node16 }),
      bundler: typeCheck(['consumer.ts'], { ...base, module: M.ESNext, moduleResolution: R.Bundler }),
      'node10, CommonJS': typeCheck(['consumer.ts'], { ...base, module: M.CommonJS, moduleResolution: R.Node10 }),
    }).toEqual({ 'nodenext, ESM': [], 'nodenext, CommonJS (.cts)': [], 'node16, ESM': [], bundler: [], 'node10, CommonJS': [] });
  }, 60_000);
});

describe('the README, against the package', () => {
  it('every complete TypeScript example (one that imports trews) type-checks as a user would compile it', () => {
    const complete = readmeBlocks().filter((code) => /from 'trews(\/[a-z.-]+)?'/.test(code));
    expect(complete.length).toBeGreaterThanOrEqual(6);
    const dir = path.join(project, 'readme');
    mkdirSync(dir, { recursive: true });
    complete.forEach((code, i) => writeFileSync(path.join(dir, `example-${i + 1}.ts`), code));
    const files = readdirSync(dir).map((f) => path.join('readme', f));
    expect(typeCheck(files, { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext })).toEqual([]);
  }, 60_000);

  /** The README's first example, listening on port 0 instead of 4000 (the one change) so parallel runs never collide. */
  function shoutExample(): string {
    const shout = readmeBlocks()[0]!;
    expect(shout).toContain('await server.listen(4000);');
    return shout.replace('listen(4000)', 'listen(0)');
  }

  /** Wait for the example's "listening on" line, then talk to it as `nc` would. */
  async function shoutsBack(child: ChildProcess): Promise<void> {
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = () => child.exitCode !== null || child.signalCode !== null;
    const wake = (fn: () => void) => {
      child.stdout!.once('data', fn);
      child.once('exit', fn);
    };
    await waitFor(() => /port: \d+/.test(out) || exited(), wake, 'the "listening on" line', 15_000, () => `stdout: ${out}; stderr: ${err}`);
    expect(exited() ? `exited: ${err}` : 'running').toBe('running');
    const peer = new Peer(Number(/port: (\d+)/.exec(out)![1]));
    await peer.write('hello there\nbye\n');
    await peer.untilClosed();
    expect(peer.text).toBe('Hello! I shout back. Send "bye" to leave.\nHELLO THERE\nBYE!\n');
    expect(peer.ended).toBe(true);
    expect(err).toBe('');
  }

  it('the first example runs as written (npx tsx shout.ts) and shouts back over a real socket', async () => {
    writeFileSync(path.join(project, 'shout.ts'), shoutExample());
    await shoutsBack(spawnTsx('shout.ts', [], {}, project));
  });

  it('in a clone, after the quick start (npm install builds dist/), the first example runs there as written: npx tsx shout.ts finds the built package', async () => {
    const scratch = path.join(ROOT, 'scratch');
    mkdirSync(scratch, { recursive: true });
    const dir = mkdtempSync(path.join(scratch, 'readme-'));
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'shout.ts'), shoutExample());
    await shoutsBack(spawnTsx('shout.ts', [], {}, dir));
  });

  it.skipIf(!hasOpenssl)('the TLS section as written: its openssl command makes the files its server reads, and its client gets the echo through a verified connection', async () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const tls = readme.slice(readme.indexOf('## TLS'));
    const openssl = /```sh\n([\s\S]*?)```/.exec(tls)![1]!;
    const [server, client] = [...tls.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const dir = mkdtempSync(path.join(project, 'tls-'));
    await run('sh', ['-c', openssl], { cwd: dir });
    // The one change: a free port instead of 4443, so parallel runs never collide.
    const port = String(await freePort());
    expect(server).toContain('listen(4443)');
    expect(client).toContain("['localhost', 4443]");
    writeFileSync(path.join(dir, 'tls-server.ts'), server!.replace('4443', port));
    writeFileSync(path.join(dir, 'tls-client.ts'), client!.replace('4443', port));
    const listening = spawnTsx('tls-server.ts', [], {}, dir);
    let out = '';
    listening.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('listening on'), (fn) => listening.stdout.once('data', fn), 'the TLS server', 15_000, () => out);
    const answer = await run(process.execPath, [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), 'tls-client.ts'], { cwd: dir, timeout: 15_000 });
    expect(answer.stdout).toBe('the server says HELLO OVER TLS\n');
  });

  it('its JavaScript form (without override and : string, as the README says) runs with node shout.mjs', async () => {
    const js = shoutExample().replaceAll('override ', '').replace('(line: string)', '(line)');
    writeFileSync(path.join(project, 'shout.mjs'), js);
    const child = spawn(process.execPath, ['shout.mjs'], { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] });
    onCleanup(() => child.kill('SIGKILL'));
    await shoutsBack(child);
  });
});

describe('the API reference (npm run docs)', () => {
  it('builds, and every type the public API mentions can be imported or is deliberately internal', async () => {
    // TypeDoc warns when an exported signature uses a type the package does not export: a
    // type users cannot name. `--emit none` checks without writing HTML.
    const { stdout, stderr } = await run(process.execPath, [path.join(ROOT, 'node_modules/typedoc/bin/typedoc'), '--emit', 'none'], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    });
    const lines = `${stdout}${stderr}`.split('\n');
    expect(lines.filter((l) => /\[error\]|not included in the documentation|intentionally not exported/.test(l))).toEqual([]);
    // typedoc.json treats warnings as errors: any would have made the run above reject.
    expect(lines.filter((l) => /\[warning\]/.test(l))).toEqual([]);
  }, 60_000);
});
