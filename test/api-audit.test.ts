// The audit trail: a real API server writing to a temp audit directory, checked through the
// auditevents endpoint, the files themselves and `slipctl audit`. Writes (with their 2xx/409/422
// codes), Secret reads, exec and git push webhooks are recorded, plain reads are not, Secret values never reach the
// files, rotation by size keeps queries whole, and filters and bad query values behave.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { ApiClient, ApiRequestError } from '../src/client/api-client.js';
import { sha256Hex } from '../src/apiserver/auth/tokens.js';
import { AuditLog, type AuditRecord } from '../src/apiserver/audit/audit-log.js';
import { parseAuditQuery, parseTime } from '../src/apiserver/audit/audit-routes.js';
import { auditTable } from '../cli/commands/audit.js';
import { createNamespace, NS_PATH, service, startApi, svcPath, type TestApi } from './helpers/apiserver.js';
import { createCli, type Cli } from './helpers/cli.js';
import { startEtcd, type EtcdCluster } from './helpers/etcd.js';

const AUDIT_PATH = '/apis/slipway.dev/v1alpha1/auditevents';
const NS = 'audit-a';
const SECRET_VALUE = 'hunter2-Sup3r-s3cret-VALUE-9f1c';
const VIEWER_TOKEN = `viewer-${'v'.repeat(40)}`;
const secretsPath = (ns: string, name?: string) => `${NS_PATH}/${ns}/secrets${name ? `/${name}` : ''}`;

let root: string;
let etcd: EtcdCluster;
let api: TestApi;
let cli: Cli;

async function audit(a: TestApi, query: Record<string, string> = {}): Promise<AuditRecord[]> {
  const res = await a.client.request<{ kind: string; apiVersion: string; items: AuditRecord[] }>('GET', AUDIT_PATH, { query });
  assert.equal(res.body.kind, 'AuditEventList');
  assert.equal(res.body.apiVersion, 'slipway.dev/v1alpha1');
  return res.body.items;
}

function filesOf(dir: string): string {
  return readdirSync(dir)
    .filter((f) => f.startsWith('audit.log'))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('');
}

async function expectCode(code: number, fn: () => Promise<unknown>): Promise<void> {
  await assert.rejects(fn, (err: unknown) => err instanceof ApiRequestError && err.code === code);
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'slipway-audit-'));
  // A directory that does not exist yet: the server creates it (0700).
  etcd = await startEtcd();
  api = await startApi({ etcd, auditDir: join(root, 'main', 'audit'), tokens: [{ hash: sha256Hex(VIEWER_TOKEN), user: 'viewer-bob', role: 'viewer' }] });
  cli = createCli(api.url, { token: api.adminToken });
  await createNamespace(api.client, NS);
});

after(async () => {
  cli?.cleanup();
  await api?.stop();
  await etcd?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('records', () => {
  test('writes are recorded with who, what, the code and the request id; plain reads are not', async () => {
    const svc = svcPath(NS);
    await api.client.request('POST', svc, { body: service('web'), headers: { 'x-request-id': 'audit-create-1' } });
    await expectCode(409, () => api.client.create(svc, service('web')));
    await expectCode(422, () => api.client.create(svc, service('Bad_Name')));
    await api.client.patch(svcPath(NS, 'web'), { metadata: { labels: { tier: 'front' } } });
    const current = await api.client.get(svcPath(NS, 'web'));
    await api.client.replace(svcPath(NS, 'web'), { ...current, metadata: { ...current.metadata, labels: { tier: 'back' } } });
    await api.client.list(svc);
    await api.client.delete(svcPath(NS, 'web'));

    const items = await audit(api, { namespace: NS, resource: 'services' });
    // Newest first: delete, update, patch, 422, 409, create.
    assert.deepEqual(
      items.map((r) => [r.verb, r.code, r.name]),
      [
        ['delete', 200, 'web'],
        ['update', 200, 'web'],
        ['patch', 200, 'web'],
        ['create', 422, 'Bad_Name'],
        ['create', 409, 'web'],
        ['create', 201, 'web'],
      ],
    );
    const created = items.at(-1)!;
    assert.equal(created.requestId, 'audit-create-1');
    assert.equal(created.group, 'slipway.dev');
    assert.equal(created.resource, 'services');
    assert.equal(created.namespace, NS);
    assert.match(created.sourceIP ?? '', /127\.0\.0\.1$/);
    assert.match(created.userAgent ?? '', /slipway-client/);
    assert.ok(Math.abs(Date.parse(created.time) - Date.now()) < 60_000, created.time);
    for (const r of items) assert.match(r.requestId ?? '', /^[A-Za-z0-9._-]+$/);
    // startApi()'s client authenticates with the static admin token (no token id).
    for (const r of items) assert.equal(r.user, 'admin', JSON.stringify(r));
    // The GET and the LIST of Services went unrecorded.
    assert.ok(!items.some((r) => r.verb === 'get' || r.verb === 'list'));
  });

  test('Secrets: writes and every read are recorded, the values never are', async () => {
    await api.client.create(secretsPath(NS), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'db' }, stringData: { password: SECRET_VALUE } });
    await api.client.patch(secretsPath(NS, 'db'), { stringData: { other: `${SECRET_VALUE}-2` } });
    await api.client.get(secretsPath(NS, 'db'));
    await api.client.list(secretsPath(NS));
    await api.client.create(svcPath(NS), service('plain'));
    await api.client.get(svcPath(NS, 'plain'));

    const items = await audit(api, { resource: 'secrets', namespace: NS });
    assert.deepEqual(
      items.map((r) => [r.verb, r.code, r.name ?? null]),
      [
        ['list', 200, null],
        ['get', 200, 'db'],
        ['patch', 200, 'db'],
        ['create', 201, 'db'],
      ],
    );
    const services = await audit(api, { resource: 'services', namespace: NS, verb: 'get' });
    assert.deepEqual(services, [], 'a GET of a Service is not audited');

    const text = filesOf(join(root, 'main', 'audit'));
    assert.ok(text.includes('"resource":"secrets"'));
    for (const forbidden of [SECRET_VALUE, Buffer.from(SECRET_VALUE).toString('base64'), 'stringData', 'hunter2']) {
      assert.ok(!text.includes(forbidden), `the audit files contain ${forbidden}`);
    }
  });

  test('a watch of Secrets is recorded while it is still open', async () => {
    const stop = new AbortController();
    const watching = api.client.watch(secretsPath(NS), {}, () => undefined, stop.signal).catch(() => undefined);
    try {
      let found: AuditRecord[] = [];
      for (let i = 0; i < 100 && found.length === 0; i++) {
        found = await audit(api, { resource: 'secrets', verb: 'watch' });
        if (!found.length) await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(found.length, 1);
      assert.equal(found[0]!.code, 200);
      assert.equal(found[0]!.namespace, NS);
    } finally {
      stop.abort();
      await watching;
    }
  });

  test('exec is recorded as an exec of the Service, without its command', async () => {
    await expectCode(404, () => api.client.request('POST', `${svcPath(NS, 'nosuch')}/exec`, { body: { command: ['sh', '-c', 'echo TOPSECRET-CMD'] } }));
    const [record] = await audit(api, { resource: 'services/exec', limit: '1' });
    assert.ok(record);
    assert.equal(record.verb, 'create');
    assert.equal(record.resource, 'services');
    assert.equal(record.subresource, 'exec');
    assert.equal(record.name, 'nosuch');
    assert.equal(record.code, 404);
    assert.ok(!filesOf(join(root, 'main', 'audit')).includes('TOPSECRET'));
  });

  test('refused requests are recorded, without a user', async () => {
    const res = await request(`${api.url}${secretsPath(NS, 'db')}`, { headers: { authorization: 'Bearer nonsense', 'x-request-id': 'audit-401' } });
    await res.body.text();
    assert.equal(res.statusCode, 401);
    const items = await audit(api, { resource: 'secrets', limit: '5' });
    const refused = items.find((r) => r.requestId === 'audit-401');
    assert.ok(refused, JSON.stringify(items));
    assert.equal(refused.code, 401);
    assert.equal(refused.user, undefined);
    assert.equal(refused.name, 'db');
  });

  test('push webhooks are recorded, refused ones without a user, the payload never', async () => {
    await api.client.create(secretsPath(NS), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'hooks' }, stringData: { 'webhook-secret': 'hook-secret-audit' } });
    await api.client.create(svcPath(NS), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Service', metadata: { name: 'hooked' }, spec: { build: { git: '/srv/git/app.git', ref: 'main', webhookSecretRef: { name: 'hooks' } } } });
    const body = JSON.stringify({ ref: 'refs/heads/main', after: 'c'.repeat(40), head_commit: { message: 'PAYLOAD-MARKER' } });
    const post = async (signature: string, id: string) => {
      const res = await request(`${api.url}/hooks/git/${NS}/hooked`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': signature, 'x-request-id': id }, body });
      await res.body.text();
      return res.statusCode;
    };
    assert.equal(await post('sha256=' + '0'.repeat(64), 'hook-wrong'), 401);
    assert.equal(await post(`sha256=${createHmac('sha256', 'hook-secret-audit').update(body).digest('hex')}`, 'hook-right'), 200);
    const items = await audit(api, { resource: 'services/git-hook', limit: '5' });
    const wrong = items.find((r) => r.requestId === 'hook-wrong');
    const right = items.find((r) => r.requestId === 'hook-right');
    assert.ok(wrong && right, JSON.stringify(items));
    assert.deepEqual([wrong.code, wrong.user, wrong.verb, wrong.namespace, wrong.name], [401, undefined, 'create', NS, 'hooked']);
    assert.deepEqual([right.code, right.user, right.verb, right.resource, right.subresource], [200, 'system:git-webhook', 'create', 'services', 'git-hook']);
    assert.ok(!filesOf(join(root, 'main', 'audit')).includes('PAYLOAD-MARKER'));
  });

  test('forbidden requests are recorded with the user; the audit query itself needs permission', async () => {
    const viewer = new ApiClient({ server: api.url, token: VIEWER_TOKEN });
    try {
      await expectCode(403, () => viewer.request('GET', AUDIT_PATH));
      assert.deepEqual(
        (await audit(api, { user: 'viewer-bob' })).map((r) => [r.verb, r.resource, r.code]),
        [['list', 'auditevents', 403]],
      );
      await expectCode(403, () => viewer.create(svcPath(NS), service('sneaky')));
      // A viewer may list Secrets, so a GET answers with the values hidden (and is recorded).
      assert.equal((await viewer.get(secretsPath(NS, 'db'))).data, undefined);
    } finally {
      await viewer.close();
    }
    assert.deepEqual(
      (await audit(api, { user: 'viewer-bob' })).map((r) => [r.verb, r.resource, r.code]),
      [
        ['get', 'secrets', 200],
        ['create', 'services', 403],
        ['list', 'auditevents', 403],
      ],
    );
  });

  test('the files are 0600 in a 0700 directory', () => {
    const dir = join(root, 'main', 'audit');
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'audit.log')).mode & 0o777, 0o600);
  });
});

describe('queries', () => {
  test('filters: verb, since, until, limit, user', async () => {
    const deletes = await audit(api, { verb: 'delete' });
    assert.ok(deletes.length >= 1 && deletes.every((r) => r.verb === 'delete'));
    assert.equal((await audit(api, { since: '1h' })).length, (await audit(api, {})).length);
    assert.deepEqual(await audit(api, { since: new Date(Date.now() + 60_000).toISOString() }), []);
    assert.deepEqual(await audit(api, { until: '2000-01-01T00:00:00Z' }), []);
    const all = await audit(api);
    const [newest] = await audit(api, { limit: '1' });
    assert.deepEqual(newest, all[0]);
    assert.ok(all.every((r, i) => i === 0 || Date.parse(all[i - 1]!.time) >= Date.parse(r.time)), 'newest first');
    assert.deepEqual(await audit(api, { user: 'nobody-at-all' }), []);
    const user = all.find((r) => r.user)?.user;
    if (user) assert.ok((await audit(api, { user })).every((r) => r.user === user));
  });

  test('bad query values are a 400 naming the parameter', async () => {
    for (const [param, value] of [
      ['since', 'yesterday'],
      ['until', '5 minutes'],
      ['limit', '0'],
      ['limit', 'many'],
      ['verb', 'DROP TABLE'],
      ['namespace', 'Not_A_Namespace'],
      ['resource', 'secrets; rm'],
    ] as const) {
      await assert.rejects(
        () => api.client.request('GET', AUDIT_PATH, { query: { [param]: value } }),
        (err: unknown) => err instanceof ApiRequestError && err.code === 400 && err.message.includes(param),
        `${param}=${value}`,
      );
    }
    await expectCode(405, () => api.client.request('POST', AUDIT_PATH, { body: {} }));
  });

  test('time parsing and query checks', () => {
    const now = Date.parse('2024-05-01T12:00:00Z');
    assert.equal(parseTime('1h', now), now - 3_600_000);
    assert.equal(parseTime('1h30m', now), now - 5_400_000);
    assert.equal(parseTime('7d', now), now - 7 * 86_400_000);
    assert.equal(parseTime('2024-05-01T10:00:00+02:00', now), Date.parse('2024-05-01T08:00:00Z'));
    assert.equal(parseTime('2024-05-01', now), null);
    assert.equal(parseTime('10', now), null);
    assert.deepEqual(parseAuditQuery({ since: '1h', limit: '5', verb: 'delete' }, now), { since: now - 3_600_000, limit: 5, verb: 'delete' });
    assert.throws(() => parseAuditQuery({ user: ['a', 'b'] }, now), /user was given more than once/);
    assert.throws(() => parseAuditQuery({ since: '1m', until: '1h' }, now), /since must not be later than until/);
  });
});

describe('rotation and failures', () => {
  test('rotates by size, keeps N files, and queries span them; a torn line is skipped', async () => {
    const dir = join(root, 'rotating');
    const small = await startApi({ etcd, auditDir: dir, auditMaxBytes: 1200, auditMaxFiles: 3 });
    try {
      await createNamespace(small.client, 'rot');
      for (let i = 0; i < 6; i++) await small.client.create(svcPath('rot'), service(`s${i}`));
      let files = readdirSync(dir).sort();
      assert.ok(files.includes('audit.log.1'), `no rotation: ${files.join(' ')}`);
      for (const f of files) {
        assert.ok(statSync(join(dir, f)).size <= 1200, `${f} is larger than the limit`);
        assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
      }
      const created = await audit(small, { namespace: 'rot', resource: 'services' });
      assert.deepEqual(created.map((r) => r.verb), Array(6).fill('create'), 'the records of every file');

      // A crash mid-write leaves a torn last line: skipped by queries, and the next record starts cleanly.
      appendFileSync(join(dir, 'audit.log'), '{"time":"2024-01-01T00:00:00.000Z","verb":"cre');
      await small.client.create(svcPath('rot'), service('after-tear'));
      const latest = await audit(small, { namespace: 'rot', limit: '1' });
      assert.equal(latest[0]!.verb, 'create');
      assert.equal(latest[0]!.code, 201);

      // Many more records: only audit.log and audit.log.1..3 remain, the oldest records are gone.
      for (let i = 6; i < 30; i++) await small.client.delete(svcPath('rot', `s${i % 6}`)).catch(() => undefined);
      files = readdirSync(dir).sort();
      assert.deepEqual(files, ['audit.log', 'audit.log.1', 'audit.log.2', 'audit.log.3']);
      const kept = await audit(small, { namespace: 'rot', limit: '10000' });
      const onDisk = files.flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n')).filter((l) => l.startsWith('{') && l.endsWith('}')).filter((l) => l.includes('"namespace":"rot"'));
      assert.equal(kept.length, onDisk.length);
      assert.ok(kept.length < 31, `${kept.length} of 31 records kept: the oldest files should be gone`);
    } finally {
      await small.stop();
    }
  });

  test('a failed write does not fail the request and is counted', async () => {
    const notADir = join(root, 'a-file');
    writeFileSync(notADir, 'x');
    const broken = await startApi({ etcd, auditDir: join(notADir, 'audit') });
    try {
      await createNamespace(broken.client, 'audit-broken');
      const metrics = await (await request(`${broken.url}/metrics`, { headers: { authorization: `Bearer ${broken.adminToken}` } })).body.text();
      const m = /^slipway_audit_write_errors_total (\d+)$/m.exec(metrics);
      assert.ok(m && Number(m[1]) >= 1, metrics.split('\n').filter((l) => l.includes('audit')).join('\n'));
    } finally {
      await broken.stop();
    }
  });

  test('AuditLog: a record larger than the limit gets a file of its own; maxFiles 0 keeps none', async () => {
    const dir = join(root, 'unit');
    const registry = new Registry();
    const log = new AuditLog({ dir, maxBytes: 100, maxFiles: 0, registry });
    const big = { time: new Date().toISOString(), verb: 'create', resource: 'x'.repeat(200), code: 201 };
    await log.append(big);
    await log.append({ ...big, resource: 'small', time: new Date().toISOString() });
    assert.deepEqual(readdirSync(dir), ['audit.log']);
    const items = await log.query();
    assert.deepEqual(items.map((r) => r.resource), ['small']);
    await log.close();
    assert.match(await registry.metrics(), /slipway_audit_write_errors_total 0/);
  });
});

describe('slipctl audit', () => {
  test('--resource secrets prints the table', async () => {
    const res = await cli.run(['audit', '--resource', 'secrets', '-n', NS]);
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^TIME\s+USER\s+VERB\s+RESOURCE\s+NAMESPACE\s+NAME\s+CODE\s+SOURCE$/);
    assert.ok(lines.some((l) => /\bget\s+secrets\s+audit-a\s+db\s+200\s+\S*127\.0\.0\.1/.test(l)), res.stdout);
    assert.ok(lines.slice(1).every((l) => /\bsecrets\b/.test(l)), res.stdout);
  });

  test('-o json, filters and a bad --since', async () => {
    const json = await cli.run(['audit', '--verb', 'delete', '--since', '1h', '-o', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const list = JSON.parse(json.stdout) as { kind: string; items: AuditRecord[] };
    assert.equal(list.kind, 'AuditEventList');
    assert.ok(list.items.length >= 1 && list.items.every((r) => r.verb === 'delete'));
    const bad = await cli.run(['audit', '--since', 'last-tuesday']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /since/);
    const none = await cli.run(['audit', '--user', 'nobody-at-all']);
    assert.equal(none.code, 0);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /No audit records found/);
  });

  test('table rendering', () => {
    const out = auditTable([{ time: '2024-05-01T12:00:00.123Z', user: 'admin', verb: 'create', resource: 'services', subresource: 'exec', namespace: 'ns', name: 'web', code: 200, sourceIP: '127.0.0.1' }, { time: '2024-05-01T11:00:00.000Z', verb: 'get', code: 401 }]);
    assert.equal(
      out,
      [
        'TIME                   USER     VERB     RESOURCE        NAMESPACE   NAME   CODE   SOURCE',
        '2024-05-01T12:00:00Z   admin    create   services/exec   ns          web    200    127.0.0.1',
        '2024-05-01T11:00:00Z   <none>   get      <none>                             401    ',
        '',
      ].join('\n'),
    );
  });
});
