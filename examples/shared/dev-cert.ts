/**
 * A throwaway self-signed certificate for trying the TLS examples on your own machine, made
 * with the `openssl` command into a fresh temp directory. Never use it for anything real:
 * nobody vouches for it, and clients must be told to trust it explicitly (pass its
 * certificate as `ca`, or `-CAfile` to openssl).
 *
 * For real use, get a key and certificate from your CA (or Let's Encrypt) and point the
 * examples at them with TLS_KEY / TLS_CERT.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface DevCertificate {
  /** The temp directory holding the files; `remove()` deletes it. */
  dir: string;
  keyFile: string;
  certFile: string;
  /** PEM text of the private key and of the certificate (which is also its own CA). */
  key: string;
  cert: string;
  /** Delete the temp directory (safe to call more than once). */
  remove(): void;
}

/** True if the `openssl` command can be run. */
export function hasOpenSSL(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Make a self-signed certificate (EC P-256, valid `days` days) for `localhost` and 127.0.0.1
 * (and ::1). Throws, with openssl's message, if the command is missing or fails.
 */
export function makeDevCertificate({ days = 7, prefix = 'trews-dev-cert-' }: { days?: number; prefix?: string } = {}): DevCertificate {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const keyFile = path.join(dir, 'localhost.key');
  const certFile = path.join(dir, 'localhost.crt');
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', keyFile, '-out', certFile, '-days', String(days),
        '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (err) {
    remove();
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    const why = (err as { code?: string }).code === 'ENOENT' ? 'the openssl command was not found' : (stderr || (err as Error).message);
    throw new Error(`could not make a self-signed certificate: ${why}`, { cause: err });
  }
  return { dir, keyFile, certFile, key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), remove };
}

export interface Credentials {
  key: string;
  cert: string;
  /** Where the certificate is, to tell users (`-CAfile`); for a dev certificate, also the CA to trust. */
  certFile: string;
  /** True if the pair is a throwaway made by `makeDevCertificate`. */
  generated: boolean;
  /** A generated pair's temp directory (null for your own files). */
  dir: string | null;
  /** Delete a generated certificate's temp directory (a no-op for your own files). */
  remove(): void;
}

/**
 * The key and certificate named by the environment variables TLS_KEY and TLS_CERT (PEM file
 * paths), or, when neither is set, a fresh throwaway self-signed pair for localhost.
 */
export function credentialsFromEnv(env: NodeJS.ProcessEnv = process.env): Credentials {
  const keyFile = env.TLS_KEY;
  const certFile = env.TLS_CERT;
  if (keyFile || certFile) {
    if (!keyFile || !certFile) throw new Error('set both TLS_KEY and TLS_CERT (paths to PEM files), or neither for a throwaway certificate');
    return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), certFile, generated: false, dir: null, remove() {} };
  }
  const dev = makeDevCertificate();
  return { key: dev.key, cert: dev.cert, certFile: dev.certFile, generated: true, dir: dev.dir, remove: dev.remove };
}
