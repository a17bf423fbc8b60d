// Serving TLS for the API server: loads and checks the certificate and key given with
// --tls-cert-file/--tls-key-file (both or neither; unreadable, invalid or mismatched files are
// clear errors at start), and the rule that plain HTTP is only served on loopback addresses.

import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

export interface ServingCertificate {
  cert: Buffer;
  key: Buffer;
  /** The certificate's subjectAltName (for the start-up log). */
  subjectAltName?: string;
  validTo: Date;
}

function readFile(path: string, what: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message;
    throw new Error(`cannot read the TLS ${what} ${path} (${flag}): ${why}`);
  }
}

/**
 * The serving certificate, or null when neither file is given (plain HTTP). Throws an Error with
 * a message meant for the operator when only one is given or the files cannot be used.
 */
export function loadServingCertificate(certFile?: string, keyFile?: string, now = new Date()): ServingCertificate | null {
  if (!certFile && !keyFile) return null;
  if (!certFile) throw new Error('--tls-key-file was given without --tls-cert-file: serving TLS needs both the certificate and its private key');
  if (!keyFile) throw new Error('--tls-cert-file was given without --tls-key-file: serving TLS needs both the certificate and its private key');
  const cert = readFile(certFile, 'certificate', '--tls-cert-file');
  const key = readFile(keyFile, 'private key', '--tls-key-file');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`the TLS certificate ${certFile} (--tls-cert-file) is not a valid PEM certificate: ${(err as Error).message}`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(`the TLS private key ${keyFile} (--tls-key-file) is not a valid unencrypted PEM private key: ${(err as Error).message}`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new Error(`the TLS private key ${keyFile} does not belong to the certificate ${certFile}`);
  }
  const validTo = new Date(x509.validTo);
  if (validTo.getTime() <= now.getTime()) {
    throw new Error(`the TLS certificate ${certFile} expired on ${validTo.toISOString()}: renew it (make up does so with scripts/gen-certs.sh)`);
  }
  return { cert, key, validTo, ...(x509.subjectAltName ? { subjectAltName: x509.subjectAltName } : {}) };
}

/** True for 127.0.0.0/8, ::1 (also IPv4-mapped ::ffff:127.x.y.z) and `localhost`. */
export function isLoopbackAddress(host: string): boolean {
  const h = host.trim().replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost') return true;
  const family = isIP(h);
  if (family === 4) return h.startsWith('127.');
  if (family === 6) {
    // The URL parser writes IPv6 addresses in their canonical compressed form.
    const canonical = new URL(`http://[${h}]/`).hostname.slice(1, -1);
    return canonical === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(canonical);
  }
  return false;
}

/** Throws unless plain HTTP may be served on `host`. */
export function assertPlainHttpAllowed(host: string): void {
  if (isLoopbackAddress(host)) return;
  const shown = host === '' ? 'all addresses' : host;
  throw new Error(`refusing to serve plain HTTP on ${shown}: give --tls-cert-file and --tls-key-file, or bind to a loopback address (127.0.0.1, ::1 or localhost)`);
}
