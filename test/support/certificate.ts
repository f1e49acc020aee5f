import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findOnPath } from '../../packages/coordinator/src/local-stack/process-util.ts';

/** A certificate's files in a folder, and their PEM text. */
export interface Certificate {
  keyFile: string;
  certFile: string;
  key: string;
  cert: string;
}

/**
 * Writes a self-signed certificate for 127.0.0.1 - its own CA, so a client trusts it given the same file -
 * to `dir`/key.pem and cert.pem with openssl (EC P-256, one day).
 */
export async function selfSignedCertificate(dir: string): Promise<Certificate> {
  const openssl = await findOnPath('openssl');
  if (openssl === undefined)
    throw new Error('openssl was not found on PATH (a TLS test needs a certificate)');
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  const made = spawnSync(
    openssl,
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { encoding: 'utf8' },
  );
  if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr}`);
  return { keyFile, certFile, key: await readFile(keyFile, 'utf8'), cert: await readFile(certFile, 'utf8') };
}
