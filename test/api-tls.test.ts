// The API server over TLS: certificates from scripts/gen-certs.sh, CA pinning in the API client,
// slipctl and the controller manager, the plain-HTTP-on-loopback-only rule, and clear errors for
// missing, unreadable or mismatched certificate files.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { createApiServer } from '../src/apiserver/server.js';
import { ApiClient, ApiRequestError } from '../src/client/api-client.js';
import { startControllerManager } from '../src/controllers/manager.js';
import { CHECKOUT, CRDS_DIR, NS_PATH, startApi, type TestApi } from './helpers/apiserver.js';
import { createCli, type Cli } from './helpers/cli.js';
import { startEtcd, type EtcdCluster } from './helpers/etcd.js';

const GEN_CERTS = resolve(CHECKOUT, 'scripts/gen-certs.sh');
const BUILD = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const APISERVER_MAIN = resolve(BUILD, 'src/apiserver/main.js');
const MANAGER_MAIN = resolve(BUILD, 'src/controllers/main.js');

let work: string;
let pki: string;
let otherPki: string;
let ca: string;
let otherCa: string;
let etcd: EtcdCluster;
let api: TestApi;
let cli: Cli;

const genCerts = (dir: string, env: Record<string, string> = {}) =>
  execFileSync('bash', [GEN_CERTS, dir], { encoding: 'utf8', env: { ...process.env, ...env } });

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'slipway-tls-'));
  pki = join(work, 'pki');
  otherPki = join(work, 'other-pki');
  genCerts(pki);
  genCerts(otherPki);
  ca = readFileSync(join(pki, 'ca.crt'), 'utf8');
  otherCa = readFileSync(join(otherPki, 'ca.crt'), 'utf8');
  etcd = await startEtcd();
  api = await startApi({ etcd, tlsCertFile: join(pki, 'apiserver.crt'), tlsKeyFile: join(pki, 'apiserver.key'), ca });
  cli = createCli(api.url, { token: api.adminToken, 'certificate-authority': 'ca.crt' });
  copyFileSync(join(pki, 'ca.crt'), join(dirname(cli.configPath), 'ca.crt'));
});
after(async () => {
  cli?.cleanup();
  await api?.stop();
  await etcd?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const port = () => new URL(api.url).port;
const clientError = async (promise: Promise<unknown>): Promise<ApiRequestError> => {
  const err = await promise.then(
    () => assert.fail('expected the request to fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ApiRequestError, `expected an ApiRequestError, got ${String(err)}`);
  return err;
};

test('gen-certs.sh makes an EC P-256 CA and a server certificate with the expected SANs, keys 0600, idempotently', () => {
  for (const key of ['ca.key', 'apiserver.key']) assert.equal(statSync(join(pki, key)).mode & 0o777, 0o600, key);
  const text = execFileSync('openssl', ['x509', '-in', join(pki, 'apiserver.crt'), '-noout', '-text'], { encoding: 'utf8' });
  assert.match(text, /NIST CURVE: P-256/);
  assert.match(text, /DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/);
  if (hostname() !== 'localhost') assert.ok(text.includes(`DNS:${hostname()}`), 'the hostname is a SAN');
  const caText = execFileSync('openssl', ['x509', '-in', join(pki, 'ca.crt'), '-noout', '-text'], { encoding: 'utf8' });
  assert.match(caText, /CA:TRUE/);
  execFileSync('openssl', ['verify', '-CAfile', join(pki, 'ca.crt'), join(pki, 'apiserver.crt')]);

  // Run again: nothing changes. A changed SAN list reissues the server certificate only.
  const before = ['ca.crt', 'ca.key', 'apiserver.crt', 'apiserver.key'].map((f) => readFileSync(join(otherPki, f), 'utf8'));
  assert.equal(genCerts(otherPki), '');
  assert.deepEqual(['ca.crt', 'ca.key', 'apiserver.crt', 'apiserver.key'].map((f) => readFileSync(join(otherPki, f), 'utf8')), before);
  assert.match(genCerts(otherPki, { SLIPWAY_API_SANS: 'DNS:api.example.test' }), /created the API server certificate/);
  assert.equal(readFileSync(join(otherPki, 'ca.crt'), 'utf8'), before[0]);
  assert.notEqual(readFileSync(join(otherPki, 'apiserver.crt'), 'utf8'), before[2]);
  assert.match(execFileSync('openssl', ['x509', '-in', join(otherPki, 'apiserver.crt'), '-noout', '-text'], { encoding: 'utf8' }), /DNS:api\.example\.test/);
});

test('the TLS server answers https:// and the API client trusting its CA works', async () => {
  assert.match(api.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const list = await api.client.list(NS_PATH);
  assert.ok(list.items.some((ns) => ns.metadata.name === 'default'));
  // `localhost` is a SAN too.
  const byName = new ApiClient({ server: `https://localhost:${port()}`, token: api.adminToken, ca });
  try {
    assert.equal((await byName.get(`${NS_PATH}/default`)).metadata.name, 'default');
  } finally {
    await byName.close();
  }
});

test('a client pinning a different CA, or using the system CAs, is refused with a clear message', async () => {
  const pinned = new ApiClient({ server: api.url, token: api.adminToken, ca: otherCa });
  const unpinned = new ApiClient({ server: api.url, token: api.adminToken });
  try {
    const err = await clientError(pinned.list(NS_PATH));
    assert.equal(err.code, 0);
    assert.match(err.message, /^TLS: the server's certificate is not signed by the configured certificate authority \(/);
    assert.ok(err.message.includes(api.url), err.message);
    const watchErr = await clientError(pinned.watch(NS_PATH, {}, () => false));
    assert.match(watchErr.message, /TLS: the server's certificate is not signed by the configured certificate authority/);
    const sys = await clientError(unpinned.list(NS_PATH));
    assert.match(sys.message, /^TLS: the server's certificate is not signed by a certificate authority this machine trusts, and no certificate authority is configured/);
  } finally {
    await pinned.close();
    await unpinned.close();
  }
});

test('plain HTTP to the TLS port fails with a 400 that says to use https://', async () => {
  const res = await fetch(`http://127.0.0.1:${port()}/readyz`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 400);
  const status = (await res.json()) as { kind: string; message: string };
  assert.equal(status.kind, 'Status');
  assert.match(status.message, /only speaks HTTPS.*https:\/\//);
  const plain = new ApiClient({ server: `http://127.0.0.1:${port()}`, token: api.adminToken });
  try {
    const err = await clientError(plain.list(NS_PATH));
    assert.equal(err.code, 400);
    assert.match(err.message, /only speaks HTTPS/);
  } finally {
    await plain.close();
  }
});

test('the malformed-request guards still answer a Status over TLS', async () => {
  const answer = await new Promise<string>((resolvePromise, reject) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port()), ca, servername: 'localhost' }, () => {
      socket.write('GET /readyz HTTP/1.1\r\nHost: x\r\nThis is not a header\r\n\r\n');
    });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('end', () => resolvePromise(data));
    socket.on('close', () => resolvePromise(data));
    socket.on('error', reject);
  });
  assert.match(answer, /^HTTP\/1\.1 400 /);
  assert.match(answer, /"kind":"Status"/);
  assert.match(answer, /malformed HTTP request/);
});

test('the TLS server does not negotiate below TLS 1.2', async () => {
  const outcome = await new Promise<string>((resolvePromise) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port()), ca, servername: 'localhost', minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }, () => {
      resolvePromise(`connected with ${socket.getProtocol()}`);
      socket.destroy();
    });
    socket.on('error', (err) => resolvePromise(`refused: ${err.message}`));
  });
  assert.match(outcome, /^refused/);
});

test('slipctl with certificate-authority in its config works; without it, or with the wrong CA, it fails clearly', async () => {
  const ok = await cli.run(['get', 'namespaces']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /\bdefault\b/);

  const bare = createCli(api.url, { token: api.adminToken });
  const wrong = createCli(api.url, { token: api.adminToken, 'certificate-authority': join(otherPki, 'ca.crt') });
  const missing = createCli(api.url, { token: api.adminToken, 'certificate-authority': 'no-such-ca.crt' });
  try {
    const none = await bare.run(['get', 'namespaces']);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /^error: TLS: the server's certificate is not signed by a certificate authority this machine trusts/);
    assert.match(none.stderr, /certificate-authority in the slipctl config .* --certificate-authority/);
    assert.doesNotMatch(none.stderr, /\n\s+at /, 'no stack trace');

    const flagged = await bare.run(['get', 'namespaces', '--certificate-authority', join(pki, 'ca.crt')]);
    assert.equal(flagged.code, 0, flagged.stderr);
    assert.match(flagged.stdout, /\bdefault\b/);

    const other = await wrong.run(['get', 'namespaces']);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /^error: TLS: the server's certificate is not signed by the configured certificate authority \(/);
    assert.doesNotMatch(other.stderr, /\n\s+at /);

    const gone = await missing.run(['get', 'namespaces']);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /^error: cannot read the certificate authority .*no-such-ca\.crt \(certificate-authority in .*\): no such file/);
  } finally {
    bare.cleanup();
    wrong.cleanup();
    missing.cleanup();
  }
});

test('the controller manager reaches the TLS API server with its CA', async () => {
  const manager = await startControllerManager({ server: api.url, token: api.managerToken, ca, port: 0, logLevel: 'silent', leaseDurationMs: 4000, renewDeadlineMs: 3000, retryPeriodMs: 500, onLostLeadership: () => {} });
  try {
    const deadline = Date.now() + 15_000;
    while (!manager.isLeader()) {
      assert.ok(Date.now() < deadline, 'the manager did not become leader over TLS');
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await manager.stop();
  }
  const bad = spawnSync(process.execPath, [MANAGER_MAIN, '--server', api.url, '--ca-file', join(work, 'nope.crt'), '--port', '0'], { encoding: 'utf8', timeout: 15_000 });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^slipway-controller-manager: cannot use --ca-file .*nope\.crt: no such file\n$/);
});

test('plain HTTP is refused on non-loopback addresses and accepted on loopback', async () => {
  for (const host of ['0.0.0.0', '::', '10.0.0.1']) {
    const server = createApiServer({ etcdEndpoints: api.etcd.endpoints, crdsDir: CRDS_DIR, logLevel: 'silent' });
    try {
      await assert.rejects(server.listen(0, host), (err: Error) => {
        assert.ok(err.message.startsWith(`refusing to serve plain HTTP on ${host}: give --tls-cert-file and --tls-key-file, or bind to a loopback address`), err.message);
        return true;
      });
    } finally {
      await server.close();
    }
  }
  const loopback = createApiServer({ etcdEndpoints: api.etcd.endpoints, crdsDir: CRDS_DIR, logLevel: 'silent' });
  try {
    const url = await loopback.listen(0, '127.0.0.1');
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal((await fetch(`${url}/readyz`)).status, 200);
  } finally {
    await loopback.close();
  }
  // With TLS, any address is fine.
  const tls = createApiServer({ etcdEndpoints: api.etcd.endpoints, crdsDir: CRDS_DIR, logLevel: 'silent', tlsCertFile: join(pki, 'apiserver.crt'), tlsKeyFile: join(pki, 'apiserver.key') });
  try {
    assert.match(await tls.listen(0, '0.0.0.0'), /^https:\/\/0\.0\.0\.0:\d+$/);
  } finally {
    await tls.close();
  }
});

test('a certificate without its key, unreadable files and a mismatched key are clear errors at start', async () => {
  const garbage = join(work, 'garbage.pem');
  writeFileSync(garbage, 'not a certificate\n');
  const cases: { cert?: string; key?: string; error: RegExp }[] = [
    { cert: join(pki, 'apiserver.crt'), error: /^--tls-cert-file was given without --tls-key-file/ },
    { key: join(pki, 'apiserver.key'), error: /^--tls-key-file was given without --tls-cert-file/ },
    { cert: join(work, 'missing.crt'), key: join(pki, 'apiserver.key'), error: /^cannot read the TLS certificate .*missing\.crt \(--tls-cert-file\): no such file$/ },
    { cert: garbage, key: join(pki, 'apiserver.key'), error: /^the TLS certificate .*garbage\.pem \(--tls-cert-file\) is not a valid PEM certificate/ },
    { cert: join(pki, 'apiserver.crt'), key: garbage, error: /^the TLS private key .*garbage\.pem \(--tls-key-file\) is not a valid unencrypted PEM private key/ },
    { cert: join(pki, 'apiserver.crt'), key: join(otherPki, 'apiserver.key'), error: /^the TLS private key .* does not belong to the certificate / },
  ];
  for (const c of cases) {
    const server = createApiServer({ etcdEndpoints: api.etcd.endpoints, logLevel: 'silent', ...(c.cert ? { tlsCertFile: c.cert } : {}), ...(c.key ? { tlsKeyFile: c.key } : {}) });
    try {
      await assert.rejects(server.listen(0, '127.0.0.1'), (err: Error) => {
        assert.match(err.message, c.error);
        return true;
      });
    } finally {
      await server.close();
    }
  }
  // The process prints one line and exits 1, without a stack trace.
  const run = (args: string[]) => spawnSync(process.execPath, [APISERVER_MAIN, '--etcd-servers', api.etcd.endpoints.join(','), '--port', '0', ...args], { encoding: 'utf8', timeout: 15_000, env: { ...process.env, SLIPWAY_LOG_LEVEL: 'silent' } });
  const half = run(['--tls-cert-file', join(pki, 'apiserver.crt')]);
  assert.equal(half.status, 1);
  assert.equal(half.stderr, 'slipway-apiserver: --tls-cert-file was given without --tls-key-file: serving TLS needs both the certificate and its private key\n');
  const open = run(['--bind-address', '0.0.0.0']);
  assert.equal(open.status, 1);
  assert.match(open.stderr, /^slipway-apiserver: refusing to serve plain HTTP on 0\.0\.0\.0: give --tls-cert-file and --tls-key-file, or bind to a loopback address/);
});
