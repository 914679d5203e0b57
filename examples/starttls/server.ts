/**
 * STARTTLS: a tiny SMTP-flavoured line protocol that starts in plain text and upgrades the
 * same connection to TLS on request. The reusable part is `StartTlsConnection` and
 * `startStartTlsServer()`; `main.ts` runs it and `client.ts` does a whole session.
 *
 *   S: 220 ready                       (plain text, on connect)
 *   C: STARTTLS
 *   S: 220 go ahead                    (still plain text) ... then the TLS handshake
 *   C: HELLO alice                     (encrypted from here on)
 *   S: 250 hello alice (tls)
 *   C: QUIT
 *   S: 221 bye                         (and the server closes the connection)
 *
 * Also: `EHLO x` lists what the server can do (so `openssl s_client -starttls smtp` can
 * drive it), `HELLO` before STARTTLS is refused with 530, anything else is 500.
 *
 * The frame boundary rule, which makes STARTTLS safe with trews:
 *  - bytes written before `startTLS()` go out in plain text (the `220 go ahead` below),
 *    everything written after it is encrypted;
 *  - bytes received after the STARTTLS line go to the TLS layer, even ones that already
 *    arrived in the same packet as that line (an eager client's ClientHello): trews hands
 *    whatever it has buffered but not delivered to TLS instead of to `onRead`.
 * So call `startTLS()` from `onRead` of the STARTTLS line itself, not later: bytes buffered
 * after that line are handshake bytes, not commands. This is also what defeats STARTTLS
 * command injection: plain-text commands a man in the middle appends after STARTTLS are fed
 * to the TLS handshake (which then fails) and never run as if they had come encrypted.
 *
 * In your own project, import from 'trews' instead of '../../src/index.js'.
 */
import { Connection, Server, type Engine, type OverflowError } from '../../src/index.js';

export interface Credentials {
  key: string | Buffer;
  cert: string | Buffer;
}

/** A server whose connections can upgrade with its key and certificate. */
export class StartTlsServer extends Server<StartTlsConnection> {
  constructor(
    readonly credentials: Credentials,
    options: { engine?: Engine } = {},
  ) {
    super(StartTlsConnection, options);
  }
}

export class StartTlsConnection extends Connection {
  declare server: StartTlsServer;
  override readDelimiter = '\n';
  override encoding = 'utf8';
  override bufferSize = 1024; // the longest command line accepted, in bytes
  override closeTimeout = 1000; // do not wait long for interactive clients at shutdown

  override onConnect(): void {
    this.write('220 ready\n');
  }

  override onRead(line: string): void {
    if (line.endsWith('\r')) line = line.slice(0, -1); // SMTP clients send \r\n
    const space = line.indexOf(' ');
    const verb = (space === -1 ? line : line.slice(0, space)).toUpperCase();
    const arg = space === -1 ? '' : line.slice(space + 1).trim();
    switch (verb) {
      case 'STARTTLS':
        if (this.encrypted) {
          this.write('454 TLS is already active\n');
          return;
        }
        // Written before startTLS(): goes out in plain text, ahead of the handshake.
        this.write('220 go ahead\n');
        // From here the connection is the TLS server side. Bytes after the STARTTLS line
        // (the client's ClientHello, even if it came in the same packet) go to TLS; anything
        // written from now on is encrypted. A failed handshake calls onTLSError (which by
        // default logs and closes this connection); the server keeps serving others.
        void this.startTLS({ key: this.server.credentials.key, cert: this.server.credentials.cert });
        return;
      case 'EHLO':
        // SMTP-style multi-line reply: '-' after the code means "more lines follow".
        this.write(this.encrypted ? '250 trews starttls example\n' : '250-trews starttls example\n250 STARTTLS\n');
        return;
      case 'HELLO':
        if (!this.encrypted) this.write('530 send STARTTLS first\n');
        else if (arg === '') this.write('501 usage: HELLO <name>\n');
        else this.write(`250 hello ${arg} (tls)\n`);
        return;
      case 'QUIT':
        this.write('221 bye\n');
        void this.close(); // flush the reply, then close (with TLS: close_notify, then FIN)
        return;
      default:
        this.write('500 unknown command\n');
    }
  }

  /** A line over bufferSize: say so and carry on (the framer has dropped it up to its '\n'). */
  override onOverflowError(_err: OverflowError): void {
    this.write('500 line too long\n');
  }
}

export interface StartTlsOptions extends Credentials {
  /** TCP port (0: any free port). */
  port: number;
  /** Interface to listen on (default: all interfaces). */
  host?: string;
  engine?: Engine;
}

export interface RunningStartTls {
  server: StartTlsServer;
  port: number;
  close(): Promise<void>;
}

/** Listen in plain text; connections upgrade to TLS when they send STARTTLS. */
export async function startStartTlsServer({ port, host, key, cert, engine }: StartTlsOptions): Promise<RunningStartTls> {
  const server = new StartTlsServer({ key, cert }, { engine });
  try {
    await server.listen(host === undefined ? port : [host, port]);
  } catch (err) {
    await server.close();
    throw err;
  }
  return {
    server,
    port: (server.localAddress as { port: number }).port,
    close: async () => {
      await server.close();
    },
  };
}
