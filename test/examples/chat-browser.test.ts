/**
 * The chat's web page in a real headless Chromium (Debian's, driven by playwright-core): a
 * line typed in the browser reaches an nc client over TCP, and the nc client's reply shows in
 * the page. Skipped only when /usr/bin/chromium (or nc) is missing.
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/index.js';
import { startChat } from '../../examples/chat/chat.js';
import { hasChromium, launchChromium } from '../browser.js';
import { onCleanup, tempDir } from '../helpers.js';

const TIMEOUT = 10_000;

/** A chat user in `nc` (a real process) over TCP. */
class NcUser {
  readonly child;
  output = '';
  #waiters: Array<() => void> = [];

  constructor(port: number) {
    this.child = spawn('nc', ['127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child.stdout.on('data', (d: Buffer) => {
      this.output += d.toString();
      for (const wake of this.#waiters.splice(0)) wake();
    });
    onCleanup(() => this.child.kill());
  }

  type(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  /** Resolves once `text` has been shown; fails after the timeout. */
  sees(text: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nc did not show ${JSON.stringify(text)}; it shows ${JSON.stringify(this.output)}`)), TIMEOUT);
      const check = () => {
        if (!this.output.includes(text)) return void this.#waiters.push(check);
        clearTimeout(timer);
        resolve();
      };
      check();
    });
  }
}

const hasNc = spawnSync('nc', ['-h'], { stdio: 'ignore' }).error === undefined;

describe.skipIf(!hasChromium || !hasNc)('chat example in a browser', () => {
  it('a line typed in Chromium reaches an nc client, and its reply shows in the page', async () => {
    const logged: string[] = [];
    const engine = new Engine({ log: (line) => logged.push(line) });
    const chat = await startChat({ port: 0, path: path.join(tempDir(), 'chat.sock'), webPort: 0, engine });
    onCleanup(async () => {
      await chat.close();
      await engine.stop();
    });

    const browser = await launchChromium();
    const page = await browser.newPage();
    page.setDefaultTimeout(TIMEOUT);
    await page.goto(`http://127.0.0.1:${chat.webPort}/`);
    const lines = page.locator('#log .line');
    await expect.poll(() => lines.first().textContent(), { timeout: TIMEOUT }).toBe('Welcome to trews chat! What is your nickname?');
    const say = async (text: string) => {
      await page.fill('#line', text);
      await page.press('#line', 'Enter');
    };
    await say('webby');
    await page.getByText('* hello webby, nobody else is here yet. Type /help for commands.').waitFor();

    const nc = new NcUser(chat.port!);
    await nc.sees('Welcome to trews chat! What is your nickname?');
    nc.type('tcpuser');
    await nc.sees('* hello tcpuser, also here: webby. Type /help for commands.');
    await page.getByText('* tcpuser has joined').waitFor();

    await say('hello from chromium ✓');
    await nc.sees('<webby> hello from chromium ✓');
    nc.type('hi browser');
    await page.getByText('<tcpuser> hi browser').waitFor();

    expect(chat.web!.connections.size).toBe(1);
    await say('/quit');
    await nc.sees('* webby has left');
    await page.getByText('closed (1000)').waitFor();
    expect(logged).toEqual([]);
  }, 60_000);
});
