/**
 * Once per test run: a private temp directory for the run (TMPDIR of every worker and child
 * process, so concurrent runs never see each other's files), and the test PKI in it.
 *
 * Teardown removes the PKI and fails the run if a test left any `trews-*` entry behind.
 * Vitest's forks workers are killed without running exit handlers, so anything a test file
 * means to clean up "on exit" is leaked: this guard catches it. The private directory is
 * removed either way.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { hasOpenSSL, makeTestPKI } from './pki.js';

const RUN_PREFIX = 'trews-test-run-';

export default function setup(project: TestProject): () => void {
  removeRunsOfDeadProcesses();
  const runDir = mkdtempSync(path.join(os.tmpdir(), `${RUN_PREFIX}${process.pid}-`));
  const pki = hasOpenSSL() ? makeTestPKI(runDir) : null;
  project.provide('trewsPKI', pki);
  // Workers are forked after global setup and take their environment from this process.
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = runDir;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    if (pki !== null) rmSync(pki.dir, { recursive: true, force: true });
    const left = readdirSync(runDir).filter((name) => name.startsWith('trews-'));
    rmSync(runDir, { recursive: true, force: true });
    if (left.length > 0) {
      process.exitCode = 1; // vitest only logs a teardown error; this makes it fail the run
      throw new Error(`the tests left ${left.length} trews-* entr${left.length === 1 ? 'y' : 'ies'} in the temp folder (removed now): ${left.join(', ')}. Clean up in afterEach/onCleanup, not on process exit.`);
    }
  };
}

/**
 * A run killed before its teardown (Ctrl-C twice, a CI timeout) leaves its folder, test keys
 * included: the next run removes the folders of runs whose process is gone.
 */
function removeRunsOfDeadProcesses(): void {
  for (const name of readdirSync(os.tmpdir())) {
    const pid = Number(new RegExp(`^${RUN_PREFIX}(\\d+)-`).exec(name)?.[1]);
    if (pid > 0 && !isAlive(pid)) rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM'; // alive, someone else's
  }
}
