/**
 * A TLS client for the upper-casing echo: connects with certificate verification on, sends
 * one line, prints the reply.
 *
 *   TLS_CA=/path/to/ca-or-self-signed.crt npx tsx examples/tls-echo/client.ts 'hello there'
 *
 * Environment: TLS_CA (PEM file of the CA that signed the server's certificate; for the
 * throwaway certificate `main.ts` makes, the certificate itself; unset: the system's
 * trusted CAs), HOST (default localhost: it must match a name in the certificate), PORT
 * (default 4443).
 *
 * In your own project, import from 'trews' instead of '../../src/index.js'.
 */
import { readFileSync } from 'node:fs';
import { Client, type Engine } from '../../src/index.js';
import { isMain } from '../shared/is-main.js';

/** Sends lines and hands back the replies, in order. */
export class EchoClient extends Client {
  override readDelimiter = '\n';
  override encoding = 'utf8';
  readonly #waiting: Array<{ resolve: (line: string) => void; reject: (err: Error) => void }> = [];

  /** Send one line; resolves with the server's reply line. */
  ask(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.write(line + '\n');
    });
  }

  override onRead(line: string): void {
    this.#waiting.shift()?.resolve(line);
  }

  override onClose(): void {
    for (const waiter of this.#waiting.splice(0)) waiter.reject(new Error('the server closed the connection before replying'));
  }
}

export interface AskOptions {
  host?: string;
  port: number;
  /** PEM CA certificate(s) to trust; default: Node's bundled CAs. */
  ca?: string | Buffer;
  engine?: Engine;
}

/** Connect over TLS (verifying the certificate and host name), send `line`, return the reply. */
export async function askTlsEcho(line: string, { host = 'localhost', port, ca, engine }: AskOptions): Promise<string> {
  const client = new EchoClient({ engine });
  // Verification is on: the certificate must chain to `ca` and name `host`. Turning it off
  // takes an explicit `rejectUnauthorized: false` (then anyone in the middle can listen in).
  await client.connect([host, port], { tls: ca === undefined ? true : { ca } });
  try {
    return await client.ask(line);
  } finally {
    await client.close();
  }
}

async function main(): Promise<void> {
  const line = process.argv.slice(2).join(' ') || 'hello from trews';
  const caFile = process.env.TLS_CA;
  const host = process.env.HOST ?? 'localhost';
  const port = Number(process.env.PORT ?? 4443);
  const reply = await askTlsEcho(line, { host, port, ...(caFile ? { ca: readFileSync(caFile) } : {}) });
  console.log(`sent:  ${line}`);
  console.log(`reply: ${reply}`);
}

if (isMain(import.meta.url)) {
  main().catch((err: Error) => {
    console.error(`tls-echo client: ${err.message}`);
    process.exitCode = 1;
  });
}
