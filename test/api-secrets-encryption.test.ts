// Secrets encrypted at rest: a real API server with --encryption-key-file on a real etcd, read
// behind its back with the etcd client. No plaintext in etcd; GET/LIST/WATCH see the values;
// rotation with a new active key and `slipctl secrets rekey`; unknown keys, tampered and moved
// ciphertext and a group-readable key file are refused with clear errors.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import type { KubeObject } from '../src/api/types.js';
import { createApiServer } from '../src/apiserver/server.js';
import { ApiRequestError } from '../src/client/api-client.js';
import { encryptValue, ENVELOPE_PREFIX, parseKeyFile } from '../src/store/encryption.js';
import { createNamespace, NS_PATH, startApi, type TestApi } from './helpers/apiserver.js';
import { createCli } from './helpers/cli.js';
import { startEtcd, type EtcdCluster } from './helpers/etcd.js';
import { record } from './helpers/watch.js';

const PLAIN = 'p4ssw0rd-plain';
const PLAIN_B64 = Buffer.from(PLAIN).toString('base64');
const PREFIX = '/registry/slipway.dev/secrets/';
const API_MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../src/apiserver/main.js');

let etcd: EtcdCluster;
let api: TestApi;
let raw: Etcd3;
let dir: string;
let keyFile: string;
const k1 = randomBytes(32).toString('base64');
const k2 = randomBytes(32).toString('base64');

const secretsPath = (ns: string, name?: string) => `${NS_PATH}/${ns}/secrets${name ? `/${name}` : ''}`;
const secret = (name: string, stringData: Record<string, string>, labels?: Record<string, string>) => ({
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'Secret',
  metadata: { name, ...(labels ? { labels } : {}) },
  stringData,
});
const decoded = (obj: KubeObject, field: string) => Buffer.from(obj.data[field], 'base64').toString('utf8');

function writeKeys(doc: unknown, mode = 0o600, file = keyFile): void {
  writeFileSync(file, JSON.stringify(doc), { mode });
  chmodSync(file, mode);
}

async function stored(ns: string, name: string): Promise<Buffer> {
  const value = await raw.get(`${PREFIX}${ns}/${name}`).buffer();
  assert.ok(value, `no value in etcd for ${ns}/${name}`);
  return value;
}

/** The request's failure: a Status, never a dropped connection or a stack. */
async function failure(p: Promise<unknown>): Promise<ApiRequestError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ApiRequestError, `expected an API error, got ${String(err)}`);
    assert.ok(err.status, `expected a Status body, got: ${err.message}`);
    assert.equal(err.status.kind, 'Status');
    assert.doesNotMatch(err.status.message, /\n\s+at /, 'no stack trace in the message');
    return err;
  }
  assert.fail('the request succeeded');
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'slipway-enc-'));
  keyFile = join(dir, 'encryption-key.json');
  writeKeys({ keys: [{ id: 'k1', secret: k1 }] });
  etcd = await startEtcd();
  api = await startApi({ etcd, encryptionKeyFile: keyFile });
  raw = new Etcd3({ hosts: etcd.endpoints });
  for (const ns of ['enc', 'enc-bad', 'enc-tamper']) await createNamespace(api.client, ns);
});

after(async () => {
  await api?.stop();
  raw?.close();
  await etcd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a Secret is stored encrypted under the active key; GET, LIST and WATCH see its values', async () => {
  const watch = record(api.client, secretsPath('enc'));
  try {
    await new Promise((r) => setTimeout(r, 200));
    const created = await api.client.create(secretsPath('enc'), secret('db', { password: PLAIN }, { app: 'db' }));
    assert.equal(decoded(created, 'password'), PLAIN);
    assert.equal(created.stringData, undefined, 'stringData is write-only');

    const value = await stored('enc', 'db');
    assert.ok(value.subarray(0, ENVELOPE_PREFIX.length + 3).equals(Buffer.from(`${ENVELOPE_PREFIX}k1:`)), `stored value starts ${value.subarray(0, 40).toString('latin1')}`);
    assert.equal(value.includes(PLAIN), false, 'no plaintext value in etcd');
    assert.equal(value.includes(PLAIN_B64), false, 'no base64 value in etcd');
    assert.equal(value.includes('password'), false, 'no data keys in etcd either');

    assert.equal(decoded(await api.client.get(secretsPath('enc', 'db')), 'password'), PLAIN);
    const list = await api.client.list(secretsPath('enc'));
    assert.deepEqual(list.items.map((i) => [i.metadata.name, decoded(i, 'password')]), [['db', PLAIN]]);
    const all = await api.client.list(`${NS_PATH.replace(/\/namespaces$/, '')}/secrets`);
    assert.ok(all.items.some((i) => i.metadata.name === 'db' && decoded(i, 'password') === PLAIN), 'cluster-wide list');
    const selected = await api.client.list(secretsPath('enc'), { labelSelector: 'app=db' });
    assert.equal(decoded(selected.items[0]!, 'password'), PLAIN, 'list with a selector (decoded path)');
    const paged = await api.client.list(secretsPath('enc'), { limit: '1' });
    assert.equal(decoded(paged.items[0]!, 'password'), PLAIN, 'paged list');

    const events = await watch.waitFor((es) => es.some((e) => e.type === 'ADDED' && e.object.metadata.name === 'db'));
    assert.equal(decoded(events.find((e) => e.type === 'ADDED')!.object, 'password'), PLAIN);

    // A watch replaying from a resourceVersion (the watch cache's window) decrypts too.
    const replay = record(api.client, secretsPath('enc'), { resourceVersion: String(Number(created.metadata.resourceVersion) - 1) });
    try {
      const replayed = await replay.waitFor((es) => es.some((e) => e.object?.metadata?.name === 'db'));
      assert.equal(decoded(replayed.find((e) => e.object?.metadata?.name === 'db')!.object, 'password'), PLAIN);
    } finally {
      replay.stop();
    }

    const updated = await api.client.patch(secretsPath('enc', 'db'), { stringData: { password: `${PLAIN}-2` } });
    assert.equal(decoded(updated, 'password'), `${PLAIN}-2`);
    const after = await stored('enc', 'db');
    assert.equal(after.includes(PLAIN), false);
    assert.ok(after.toString('latin1').startsWith(`${ENVELOPE_PREFIX}k1:`));
    await watch.waitFor((es) => es.some((e) => e.type === 'MODIFIED' && decoded(e.object, 'password') === `${PLAIN}-2`));
  } finally {
    watch.stop();
  }
});

test('a Secret written before encryption was on still reads', async () => {
  const legacy = {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Secret',
    metadata: { name: 'legacy', namespace: 'enc', uid: 'legacy-uid', creationTimestamp: '2024-01-01T00:00:00Z' },
    data: { token: Buffer.from('old-plain-token').toString('base64') },
  };
  await raw.put(`${PREFIX}enc/legacy`).value(JSON.stringify(legacy));
  const got = await api.client.get(secretsPath('enc', 'legacy'));
  assert.equal(decoded(got, 'token'), 'old-plain-token');
});

test('rotation: a new active key encrypts new writes after a reload; secrets rekey re-encrypts the rest', async () => {
  writeKeys({ keys: [{ id: 'k1', secret: k1 }, { id: 'k2', secret: k2 }], active: 'k2' });
  api.server.reloadEncryptionKeys(); // what SIGHUP does
  await api.client.create(secretsPath('enc'), secret('fresh', { password: PLAIN }));
  assert.ok((await stored('enc', 'fresh')).toString('latin1').startsWith(`${ENVELOPE_PREFIX}k2:`));
  assert.ok((await stored('enc', 'db')).toString('latin1').startsWith(`${ENVELOPE_PREFIX}k1:`), 'older secrets keep their key until rekey');
  assert.equal(decoded(await api.client.get(secretsPath('enc', 'db')), 'password'), `${PLAIN}-2`, 'old key still reads');

  const token = (api as { adminToken?: string }).adminToken;
  const cli = createCli(api.url, token ? { token } : {});
  try {
    const res = await cli.run(['secrets', 'rekey']);
    assert.equal(res.code, 0, res.stderr);
    // db and legacy (plaintext) are rewritten; fresh is already under k2.
    assert.equal(res.stdout, 're-encrypted 2 secrets with key k2\n');
    const again = await cli.run(['secrets', 'rekey']);
    assert.equal(again.stdout, 're-encrypted 0 secrets with key k2\n');
  } finally {
    cli.cleanup();
  }

  const values = await raw.getAll().prefix(PREFIX).buffers();
  assert.ok(Object.keys(values).length >= 3);
  for (const [key, value] of Object.entries(values)) {
    const text = value.toString('latin1');
    assert.ok(text.startsWith(`${ENVELOPE_PREFIX}k2:`), `${key} is under k2`);
    assert.equal(text.includes(`${ENVELOPE_PREFIX}k1:`), false);
    assert.equal(value.includes(PLAIN), false);
    assert.equal(value.includes('old-plain-token'), false);
  }
  for (const name of ['db', 'fresh']) assert.match(decoded(await api.client.get(secretsPath('enc', name)), 'password'), /^p4ssw0rd-plain/);
  assert.equal(decoded(await api.client.get(secretsPath('enc', 'legacy')), 'token'), 'old-plain-token');
  const list = await api.client.list(secretsPath('enc'));
  assert.deepEqual(list.items.map((i) => i.metadata.name).sort(), ['db', 'fresh', 'legacy']);

  // k1 can now leave the key file.
  writeKeys({ keys: [{ id: 'k2', secret: k2 }] });
  api.server.reloadEncryptionKeys();
  assert.equal(decoded(await api.client.get(secretsPath('enc', 'db')), 'password'), `${PLAIN}-2`);
});

test('a value under a key that is not in the key file fails to read with a Status; the server keeps serving', async () => {
  const watch = record(api.client, secretsPath('enc-bad'));
  try {
    await new Promise((r) => setTimeout(r, 200));
    const key = `${PREFIX}enc-bad/orphan`;
    const plaintext = Buffer.from(JSON.stringify({ apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'orphan', namespace: 'enc-bad', uid: 'u1' }, data: { password: PLAIN_B64 } }));
    const value = encryptValue({ keys: new Map([['k1', Buffer.from(k1, 'base64')]]), active: 'k1' }, plaintext, key);
    await raw.put(key).value(value);

    const err = await failure(api.client.get(secretsPath('enc-bad', 'orphan')));
    assert.equal(err.code, 500);
    assert.match(err.status!.message, /cannot decrypt secret enc-bad\/orphan: key id k1 is not in the key file/);
    const listErr = await failure(api.client.list(secretsPath('enc-bad')));
    assert.match(listErr.status!.message, /key id k1 is not in the key file/);

    // Open watches end with an ERROR event naming the cause (clients relist).
    const events = await watch.waitFor((es) => es.some((e) => (e.type as string) === 'ERROR'));
    const error = events.find((e) => (e.type as string) === 'ERROR')!.object as unknown as { message: string };
    assert.match(error.message, /cannot decrypt secret enc-bad\/orphan/);

    // Everything else still works, and a server starting on this etcd comes up.
    assert.equal(decoded(await api.client.get(secretsPath('enc', 'db')), 'password'), `${PLAIN}-2`);
    await api.client.create(secretsPath('enc'), secret('after-bad', { password: PLAIN }));
    const second = await startApi({ etcd, encryptionKeyFile: keyFile });
    try {
      assert.equal(decoded(await second.client.get(secretsPath('enc', 'after-bad')), 'password'), PLAIN);
      assert.equal((await second.client.request('GET', '/readyz')).status, 200);
    } finally {
      await second.stop();
    }

    // rekey reports the value it could not re-encrypt rather than pretending.
    const rekey = await failure(api.client.request('POST', '/apis/slipway.dev/v1alpha1/secrets-rekey', { body: {} }));
    assert.match(rekey.status!.message, /could not be: cannot decrypt secret enc-bad\/orphan/);

    // Deleting it behind the server's back restores a clean state for the next tests.
    await raw.delete().key(key);
  } finally {
    watch.stop();
  }
});

test('tampered or moved ciphertext is detected by the GCM tag and reported, never returned', async () => {
  await api.client.create(secretsPath('enc-tamper'), secret('t', { password: PLAIN }));
  const value = Buffer.from(await stored('enc-tamper', 't'));
  value[value.length - 30] = value[value.length - 30]! ^ 0x01;
  await raw.put(`${PREFIX}enc-tamper/t`).value(value);
  const err = await failure(api.client.get(secretsPath('enc-tamper', 't')));
  assert.equal(err.code, 500);
  assert.match(err.status!.message, /cannot decrypt secret enc-tamper\/t: the stored value failed its integrity check/);
  assert.equal(JSON.stringify(err.status).includes(PLAIN_B64), false);

  // A valid ciphertext copied under another key fails too (the etcd key is authenticated data).
  await raw.put(`${PREFIX}enc-tamper/moved`).value(await stored('enc', 'fresh'));
  const moved = await failure(api.client.get(secretsPath('enc-tamper', 'moved')));
  assert.match(moved.status!.message, /cannot decrypt secret enc-tamper\/moved: the stored value failed its integrity check/);
  await raw.delete().prefix(`${PREFIX}enc-tamper/`);
});

test('a key file readable by group or others is refused at start with a clear message', () => {
  const loose = join(dir, 'loose.json');
  writeKeys({ keys: [{ id: 'k1', secret: k1 }] }, 0o644, loose);
  assert.equal(statSync(loose).mode & 0o777, 0o644);
  assert.throws(
    () => createApiServer({ etcdEndpoints: etcd.endpoints, encryptionKeyFile: loose, logLevel: 'silent' }),
    /encryption key file .*loose\.json has mode 0644: it must be readable by its owner only \(run: chmod 600 /,
  );
  // The real process: one line on stderr, exit 1, no stack trace.
  const run = spawnSync(process.execPath, [API_MAIN, '--etcd-servers', etcd.endpoints[0]!, '--port', '0', '--encryption-key-file', loose], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /^slipway-apiserver: encryption key file .* has mode 0644/);
  assert.doesNotMatch(run.stderr, /\n\s+at /);
});

test('key file validation names the field at fault', () => {
  const cases: [unknown, RegExp][] = [
    [{ keys: [] }, /"keys" must be a non-empty array/],
    [{ keys: [{ id: 'k1', secret: 'c2hvcnQ=' }] }, /keys\[0\]\.secret must decode to 32 bytes, got 5/],
    [{ keys: [{ id: 'k1', secret: 'not base64!' }] }, /keys\[0\]\.secret must be a base64 string/],
    [{ keys: [{ id: 'a:b', secret: k1 }] }, /keys\[0\]\.id must be 1-64 characters/],
    [{ keys: [{ id: 'k1', secret: k1 }, { id: 'k1', secret: k2 }] }, /keys\[1\]\.id "k1" is used by more than one key/],
    [{ keys: [{ id: 'k1', secret: k1 }], active: 'k9' }, /"active" names key "k9", which is not in "keys"/],
    [{ keys: [{ id: 'k1', secret: k1 }], extra: 1 }, /unknown field "extra"/],
  ];
  for (const [doc, message] of cases) assert.throws(() => parseKeyFile(JSON.stringify(doc), 'f.json'), message);
  assert.throws(() => parseKeyFile('{', 'f.json'), /encryption key file f\.json: not valid JSON/);
  const ok = parseKeyFile(JSON.stringify({ keys: [{ id: 'k1', secret: k1 }, { id: 'k2', secret: k2 }] }), 'f.json');
  assert.equal(ok.active, 'k1', 'the first key is active by default');
});

test('without a key file Secrets are stored as before; encrypted ones and rekey fail with clear Statuses', async () => {
  const plain = await startApi({ etcd });
  try {
    await createNamespace(plain.client, 'enc-plain').catch(() => {});
    await plain.client.create(secretsPath('enc-plain'), secret('p', { password: PLAIN }));
    assert.ok((await stored('enc-plain', 'p')).includes(PLAIN_B64), 'stored unencrypted, as without this feature');
    const err = await failure(plain.client.get(secretsPath('enc', 'db')));
    assert.match(err.status!.message, /cannot decrypt secret enc\/db: it is encrypted with key id k2, but the API server has no encryption key file/);
    const rekey = await failure(plain.client.request('POST', '/apis/slipway.dev/v1alpha1/secrets-rekey', { body: {} }));
    assert.equal(rekey.code, 400);
    assert.match(rekey.status!.message, /encryption at rest is not configured/);
  } finally {
    await plain.stop();
  }
  // The encrypting server picks the plaintext Secret up on its next rekey.
  const res = await api.client.request('POST', '/apis/slipway.dev/v1alpha1/secrets-rekey', { body: {} });
  assert.deepEqual(res.body, { rewritten: 1, activeKeyId: 'k2' });
  assert.ok((await stored('enc-plain', 'p')).toString('latin1').startsWith(`${ENVELOPE_PREFIX}k2:`));
});
