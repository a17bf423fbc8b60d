// A real ACME CA for tests: Debian's pebble on free loopback ports. Pebble ships no certificates,
// so a throwaway CA and a listener certificate for 127.0.0.1/localhost are made with openssl.
// Validation is immediate (PEBBLE_VA_NOSLEEP=1), good nonces are never rejected, DNS lookups go
// to the given server (a test's dnsmasq), and challenges are made against the given HTTP and TLS
// ports (the edge's Caddy). The issuing root changes with every start: `rootPem` is read from the
// management interface's /roots/0.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const run = promisify(execFile);

export interface TestPebble {
  /** ACME directory URL (`https://127.0.0.1:P/dir`). */
  readonly directoryUrl: string;
  /** PEM file of the CA that signed Pebble's own HTTPS listener (Caddy's `trusted_roots_pem_files`). */
  readonly listenerCaFile: string;
  /** PEM of the root that signs the issued certificates (what a client of the edge must trust). */
  readonly rootPem: string;
  /** Pebble's log so far (validation attempts, orders). */
  output(): string;
  stop(): Promise<void>;
}

export interface PebbleOptions {
  /** `host:port` of the DNS server Pebble resolves challenge hostnames with. */
  dnsServer: string;
  /** Port Pebble makes http-01 challenges on (the edge's HTTP port). */
  httpPort: number;
  /** Port Pebble makes tls-alpn-01 challenges on (the edge's HTTPS port). */
  tlsPort: number;
}

/** A CA and a certificate for 127.0.0.1 and localhost signed by it, in `dir`. */
async function makeListenerCertificate(dir: string): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const caKey = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.pem');
  const keyFile = join(dir, 'listener.key');
  const csr = join(dir, 'listener.csr');
  const certFile = join(dir, 'listener.pem');
  const ext = join(dir, 'listener.ext');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', '/CN=slipway test pebble listener CA']);
  await run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', '/CN=localhost']);
  await writeFile(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n');
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext]);
  return { caFile, certFile, keyFile };
}

/**
 * GET over HTTPS trusting only `ca`; with `hostname`, sent with that SNI and Host (as
 * `curl --resolve hostname:port:ip --cacert ca`). Status and body text.
 */
export function httpsGet(url: string, ca: string, hostname?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, timeout: 5_000, agent: false, ...(hostname ? { servername: hostname, headers: { host: hostname } } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export async function startPebble(o: PebbleOptions): Promise<TestPebble> {
  const dir = await mkdtemp(join(tmpdir(), 'slw-pebble-'));
  const { caFile, certFile, keyFile } = await makeListenerCertificate(dir);
  const [port, managementPort] = [await freePort(), await freePort()];
  const config = join(dir, 'pebble.json');
  await writeFile(config, JSON.stringify({ pebble: { listenAddress: `127.0.0.1:${port}`, managementListenAddress: `127.0.0.1:${managementPort}`, certificate: certFile, privateKey: keyFile, httpPort: o.httpPort, tlsPort: o.tlsPort, ocspResponderURL: '', externalAccountBindingRequired: false } }));
  const child: ChildProcess = spawn('pebble', ['-config', config, '-dnsserver', o.dnsServer], {
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out = (out + d).slice(-500_000)));
  child.stderr!.on('data', (d) => (out = (out + d).slice(-500_000)));
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const ca = await readFile(caFile, 'utf8');
  const directoryUrl = `https://127.0.0.1:${port}/dir`;
  const deadline = Date.now() + 10_000;
  let rootPem = '';
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pebble exited with ${child.exitCode}: ${out.slice(-2000)}`);
    try {
      const dirRes = await httpsGet(directoryUrl, ca);
      const root = await httpsGet(`https://127.0.0.1:${managementPort}/roots/0`, ca);
      if (dirRes.status === 200 && root.status === 200 && root.body.includes('BEGIN CERTIFICATE')) {
        rootPem = root.body;
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`pebble did not start within 10 s: ${out.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    directoryUrl,
    listenerCaFile: caFile,
    rootPem,
    output: () => out,
    async stop() {
      process.removeListener('exit', kill);
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        });
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
