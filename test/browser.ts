/**
 * Debian's Chromium for the browser tests, driven by playwright-core (which downloads no
 * browser). `.ci/run` installs it; the tests skip only where it is missing.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { onCleanup } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';

/** True when Debian's chromium is installed. */
export const hasChromium = existsSync(CHROMIUM);

/**
 * A headless Chromium, closed after the test. Without the background-networking flags it
 * tries to reach Google's hosts, which this machine's closed network refuses.
 */
export async function launchChromium(): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30_000,
  });
  onCleanup(() => browser.close());
  return browser;
}
