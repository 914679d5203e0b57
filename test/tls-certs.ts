/**
 * The test CA and certificates (see test/pki.ts), made once per run by test/global-setup.ts
 * and removed in its teardown; tests read them here.
 */
import { inject } from 'vitest';
import { hasOpenSSL, type TestPKI } from './pki.js';

export { hasOpenSSL, type TestPKI };

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's test PKI (null without openssl). */
    trewsPKI: TestPKI | null;
  }
}

export function testPKI(): TestPKI {
  const pki = inject('trewsPKI');
  if (!pki) throw new Error('no test PKI: the openssl command is missing, or vitest ran without test/global-setup.ts');
  return pki;
}
