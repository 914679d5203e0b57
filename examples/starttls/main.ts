/**
 * `npx tsx examples/starttls/main.ts`: the STARTTLS example server on port $PORT (default
 * 2525, all interfaces). Ctrl-C stops it.
 *
 * Certificates: TLS_KEY and TLS_CERT name your own PEM key and certificate files. Without
 * them, a throwaway self-signed certificate for localhost is made with the openssl command
 * into a temp directory (removed again on exit).
 */
import { startStartTlsServer, type RunningStartTls } from './server.js';
import { credentialsFromEnv, type Credentials } from '../shared/dev-cert.js';

const port = Number(process.env.PORT ?? 2525);

let credentials: Credentials;
try {
  credentials = credentialsFromEnv();
} catch (err) {
  console.error(`starttls: ${(err as Error).message}`);
  process.exit(1);
}
const { certFile } = credentials;
if (credentials.generated) {
  console.log(`no TLS_KEY/TLS_CERT given: made a throwaway self-signed certificate for localhost in ${credentials.dir}`);
  console.log('  (to use your own: TLS_KEY=/path/to/key.pem TLS_CERT=/path/to/cert.pem npx tsx examples/starttls/main.ts)');
}

let running: RunningStartTls;
try {
  running = await startStartTlsServer({ port, key: credentials.key, cert: credentials.cert });
} catch (err) {
  credentials.remove();
  console.error(`starttls: ${(err as Error).message}`);
  process.exit(1);
}
const ca = credentials.generated ? certFile : '<your CA file>';
// One write, so whoever watches for the "listening" line gets the hints with it.
console.log(
  [
    `trews STARTTLS example listening on port ${running.port} (plain text until STARTTLS). Try it:`,
    `  TLS_CA=${ca} PORT=${running.port} npx tsx examples/starttls/client.ts alice`,
    `  openssl s_client -connect localhost:${running.port} -starttls smtp -quiet -CAfile ${ca}   (then type: HELLO you, QUIT)`,
  ].join('\n'),
);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return; // npx and tsx may pass the same Ctrl-C on again
  stopping = true;
  await running.close();
  credentials.remove();
  console.log('bye');
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
