/**
 * `npx tsx examples/tls-echo/main.ts`: the upper-casing TLS echo on port $PORT (default
 * 4443, all interfaces). Ctrl-C stops it.
 *
 * Certificates: TLS_KEY and TLS_CERT name your own PEM key and certificate files. Without
 * them, a throwaway self-signed certificate for localhost is made with the openssl command
 * into a temp directory (removed again on exit).
 */
import { startTlsEcho, type RunningTlsEcho } from './server.js';
import { credentialsFromEnv, type Credentials } from '../shared/dev-cert.js';

const port = Number(process.env.PORT ?? 4443);

let credentials: Credentials;
try {
  credentials = credentialsFromEnv();
} catch (err) {
  console.error(`tls-echo: ${(err as Error).message}`);
  process.exit(1);
}
const { certFile } = credentials;
if (credentials.generated) {
  console.log(`no TLS_KEY/TLS_CERT given: made a throwaway self-signed certificate for localhost in ${credentials.dir}`);
  console.log('  (to use your own: TLS_KEY=/path/to/key.pem TLS_CERT=/path/to/cert.pem npx tsx examples/tls-echo/main.ts)');
}

let echo: RunningTlsEcho;
try {
  echo = await startTlsEcho({ port, key: credentials.key, cert: credentials.cert });
} catch (err) {
  credentials.remove();
  console.error(`tls-echo: ${(err as Error).message}`);
  process.exit(1);
}
// One write, so whoever watches for the "listening" line gets the hints with it.
const hints = credentials.generated
  ? // The throwaway certificate is its own CA: tell the client to trust exactly it.
    [
      `  openssl s_client -connect localhost:${echo.port} -quiet -CAfile ${certFile}`,
      `  TLS_CA=${certFile} PORT=${echo.port} npx tsx examples/tls-echo/client.ts 'hello there'`,
    ]
  : [
      `  openssl s_client -connect localhost:${echo.port} -quiet   (add -CAfile <your CA file> unless a public CA signed ${certFile})`,
      `  TLS_CA=<your CA file> PORT=${echo.port} npx tsx examples/tls-echo/client.ts 'hello there'`,
    ];
console.log([`trews TLS echo listening on port ${echo.port}. Try it (type a line, get it back in capitals):`, ...hints].join('\n'));

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return; // npx and tsx may pass the same Ctrl-C on again
  stopping = true;
  await echo.close();
  credentials.remove();
  console.log('bye');
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
