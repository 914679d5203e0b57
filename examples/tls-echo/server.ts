/**
 * An upper-casing line echo over TLS: every line a client sends comes back in capitals.
 * The reusable part is `UpperEcho` (the connection) and `startTlsEcho()`; `main.ts` runs it
 * from the command line and `client.ts` talks to it.
 *
 * Serving TLS is one option on the server: `new Server(UpperEcho, { tls: { key, cert } })`.
 * The connection class is the same one you would write for plain TCP: by the time
 * `onConnect` runs the handshake is done, and `onRead` gets decrypted lines.
 *
 * In your own project, import from 'trews' instead of '../../src/index.js'.
 */
import { Connection, Server, type Engine, type TLSServerOptions } from '../../src/index.js';

export class UpperEcho extends Connection {
  override readDelimiter = '\n';
  override encoding = 'utf8';
  override bufferSize = 16 * 1024; // the longest line accepted, in bytes
  // Interactive clients (openssl s_client) keep their side open: when the server stops,
  // do not wait the default 10 s for them to answer our close.
  override closeTimeout = 1000;

  override onRead(line: string): void {
    if (line.endsWith('\r')) line = line.slice(0, -1); // clients that send \r\n
    this.write(line.toUpperCase() + '\n');
  }
}

export interface TlsEchoOptions {
  /** TCP port (0: any free port). */
  port: number;
  /** Interface to listen on (default: all interfaces). */
  host?: string;
  /** PEM private key and certificate chain (strings or Buffers). */
  key: string | Buffer;
  cert: string | Buffer;
  /** More server TLS options (client certificates, ALPN, ...), merged over key and cert. */
  tls?: Omit<TLSServerOptions, 'key' | 'cert'>;
  /** The engine to run in (default: the process-wide one). */
  engine?: Engine;
}

export interface RunningTlsEcho {
  server: Server<UpperEcho>;
  /** The port listened on (useful with port 0). */
  port: number;
  /** Stop listening and close every connection. */
  close(): Promise<void>;
}

/** Listen for TLS clients and echo their lines in capitals. */
export async function startTlsEcho({ port, host, key, cert, tls, engine }: TlsEchoOptions): Promise<RunningTlsEcho> {
  const server = new Server(UpperEcho, { engine, tls: { ...tls, key, cert } });
  try {
    await server.listen(host === undefined ? port : [host, port]);
  } catch (err) {
    await server.close();
    throw err;
  }
  const address = server.localAddress as { port: number };
  return {
    server,
    port: address.port,
    close: async () => {
      await server.close();
    },
  };
}
