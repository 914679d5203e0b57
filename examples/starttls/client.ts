/**
 * The client side of the STARTTLS example: a whole session, upgrading to TLS half way.
 *
 *   TLS_CA=/path/to/ca.crt npx tsx examples/starttls/client.ts alice
 *
 * Environment: TLS_CA (PEM file of the CA to trust; for the throwaway certificate
 * `main.ts` makes, the certificate itself; unset: the system's trusted CAs), HOST (default
 * localhost), PORT (default 2525). It prints the session, one line per message.
 *
 * In your own project, import from 'trews' instead of '../../src/index.js'.
 */
import { readFileSync } from 'node:fs';
import { Client, type Engine, type TLSError } from '../../src/index.js';
import { isMain } from '../shared/is-main.js';

export interface SessionOptions {
  /** The name to say HELLO with. */
  name: string;
  /** PEM CA certificate(s) to trust; default: Node's bundled CAs. */
  ca?: string | Buffer;
  /** The name the server's certificate must carry (default 'localhost'). */
  servername?: string;
  engine?: Engine;
}

/**
 * Reads the server's replies and answers each one: a small state machine driven by
 * `onRead`, Pants style. `transcript` records the session ('C: ...' / 'S: ...' lines).
 */
export class StartTlsClient extends Client {
  override readDelimiter = '\n';
  override encoding = 'utf8';
  readonly transcript: string[] = [];
  readonly #options: SessionOptions;
  #step: 'greeting' | 'starttls' | 'handshake' | 'hello' | 'quit' | 'done' = 'greeting';
  #failure: Error | null = null;

  constructor(options: SessionOptions) {
    super({ engine: options.engine });
    this.#options = options;
  }

  /** Why the session did not complete, or null if it did (read it after close). */
  get failure(): Error | null {
    return this.#step === 'done' ? null : (this.#failure ?? new Error(`the connection closed during step ${this.#step}`));
  }

  #send(line: string): void {
    this.transcript.push(`C: ${line}`);
    this.write(line + '\n');
  }

  override onRead(line: string): void {
    this.transcript.push(`S: ${line}`);
    const code = line.slice(0, 3);
    switch (this.#step) {
      case 'greeting':
        if (code !== '220') return this.#fail(line);
        this.#send('STARTTLS');
        this.#step = 'starttls';
        return;
      case 'starttls':
        if (code !== '220') return this.#fail(line);
        // The frame boundary: start TLS right here, in onRead of the go-ahead line. Any bytes
        // after that line are the server's TLS bytes and go to the TLS layer, not to onRead.
        // The certificate is verified against `ca` and must name `servername`.
        // A failed handshake (bad certificate, wrong name) calls onTLSError below.
        void this.startTLS({
          ...(this.#options.ca !== undefined && { ca: this.#options.ca }),
          servername: this.#options.servername ?? 'localhost',
        });
        this.#step = 'handshake';
        return;
      case 'handshake':
        return this.#fail(line); // the server must not send plain text after its go-ahead
      case 'hello':
        if (code !== '250') return this.#fail(line);
        this.#send('QUIT');
        this.#step = 'quit';
        return;
      case 'quit':
        if (code !== '221') return this.#fail(line);
        this.#step = 'done';
        void this.close();
        return;
      case 'done':
        return;
    }
  }

  override onTLSHandshake(): void {
    this.transcript.push('-- TLS handshake done: encrypted from here on --');
    // Writing right after startTLS() would work too: trews holds such writes until the
    // handshake completes, then sends them encrypted. Here is simply the clearest place.
    this.#send(`HELLO ${this.#options.name}`);
    this.#step = 'hello';
  }

  override onTLSError(err: TLSError): void {
    this.#failure = err;
    void this.close(false);
  }

  #fail(line: string): void {
    this.#failure = new Error(`unexpected reply in step ${this.#step}: ${line}`);
    void this.close(false);
  }
}

/** Run one session against `host:port`; resolves with its transcript, rejects if it failed. */
export async function runSession(host: string, port: number, options: SessionOptions): Promise<string[]> {
  const client = new StartTlsClient(options);
  await client.connect([host, port]); // plain TCP: TLS comes later, with STARTTLS
  await client.whenClosed();
  const failure = client.failure;
  if (failure !== null) throw Object.assign(failure, { transcript: client.transcript });
  return client.transcript;
}

async function main(): Promise<void> {
  const name = process.argv[2] ?? 'trews';
  const caFile = process.env.TLS_CA;
  const host = process.env.HOST ?? 'localhost';
  const port = Number(process.env.PORT ?? 2525);
  try {
    const transcript = await runSession(host, port, { name, ...(caFile ? { ca: readFileSync(caFile) } : {}) });
    for (const line of transcript) console.log(line);
  } catch (err) {
    for (const line of (err as { transcript?: string[] }).transcript ?? []) console.log(line);
    throw err;
  }
}

if (isMain(import.meta.url)) {
  main().catch((err: Error) => {
    console.error(`starttls client: ${err.message}`);
    process.exitCode = 1;
  });
}
