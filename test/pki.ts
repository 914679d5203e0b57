/**
 * Makes the throwaway test CA and certificates with the openssl command (never committed),
 * valid one day. Run once per test run by test/global-setup.ts, which removes the directory
 * in its teardown: vitest's forks workers are killed without running exit handlers, so a
 * directory made by a worker would be left behind, private keys and all.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface TestPKI {
  dir: string;
  caFile: string;
  ca: string;
  /** Server certificate for localhost and 127.0.0.1, signed by the CA. */
  key: string;
  cert: string;
  /** Client certificate (CN=trews-client), signed by the CA. */
  clientKey: string;
  clientCert: string;
  /** A self-signed certificate for localhost that no CA vouches for. */
  selfKey: string;
  selfCert: string;
}

export { hasOpenSSL } from '../examples/shared/dev-cert.js';

/** Make the PKI in a new `trews-pki-*` directory under `parent`; the caller removes it. */
export function makeTestPKI(parent: string): TestPKI {
  const dir = mkdtempSync(path.join(parent, 'trews-pki-'));
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=trews-test-ca');
  const signed = (name: string, subject: string, ext: string) => {
    writeFileSync(file(`${name}.ext`), `${ext}\n`);
    openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
  };
  signed('server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
  signed('client', '/CN=trews-client', 'extendedKeyUsage=clientAuth');
  openssl('req', '-x509', ...ec, '-keyout', 'self.key', '-out', 'self.crt', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost');
  const read = (name: string) => readFileSync(file(name), 'utf8');
  return {
    dir,
    caFile: file('ca.crt'),
    ca: read('ca.crt'),
    key: read('server.key'),
    cert: read('server.crt'),
    clientKey: read('client.key'),
    clientCert: read('client.crt'),
    selfKey: read('self.key'),
    selfCert: read('self.crt'),
  };
}
