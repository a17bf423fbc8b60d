// Authentication and authorization against a real API server: an authorization matrix of every
// built-in role (and a namespace-scoped token) × verb × resource, including watches and Secret
// reads, with exact 401/403/2xx answers; expired and revoked tokens refused; RoleBindings granting
// more; and the CLI's token, auth can-i and whoami commands.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { ApiClient } from '../src/client/api-client.js';
import { createNamespace, startApi, type TestApi } from './helpers/apiserver.js';
import { createCli } from './helpers/cli.js';

const API = '/apis/slipway.dev/v1alpha1';
let api: TestApi;
const tokens: Record<string, string> = {};

async function requestToken(spec: Record<string, unknown>): Promise<string> {
  const res = await api.client.request('POST', `${API}/tokenrequests`, { body: { apiVersion: 'slipway.dev/v1alpha1', kind: 'TokenRequest', spec } });
  assert.equal(res.status, 201);
  return res.body.status.token;
}

/** Status code of one request made with `token` (undefined: no Authorization header). */
async function call(token: string | undefined, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; json: any }> {
  const res = await request(`${api.url}${path}`, {
    method: method as 'GET',
    headers: { ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': contentType } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (path.includes('watch=true') && res.statusCode === 200) {
    res.body.on('error', () => {});
    res.body.destroy();
    return { status: res.statusCode, json: null };
  }
  const text = await res.body.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.statusCode, json };
}

/** The id and secret parts of `slw_<id>_<secret>` (the secret may itself contain `_`). */
const parts = (token: string) => {
  const m = /^slw_([a-f0-9]{12})_(.+)$/.exec(token)!;
  return { id: m[1]!, secret: m[2]! };
};

const obj = (kind: string, name: string, extra: Record<string, unknown>) => ({ apiVersion: 'slipway.dev/v1alpha1', kind, metadata: { name }, ...extra });
const KINDS: Record<string, { path: (name?: string) => string; make: (name: string) => unknown }> = {
  services: { path: (n) => `${API}/namespaces/team/services${n ? `/${n}` : ''}`, make: (n) => obj('Service', n, { spec: { image: 'busybox:1' } }) },
  secrets: { path: (n) => `${API}/namespaces/team/secrets${n ? `/${n}` : ''}`, make: (n) => obj('Secret', n, { stringData: { password: 'matrix-secret-value' } }) },
  nodes: { path: (n) => `${API}/nodes${n ? `/${n}` : ''}`, make: (n) => obj('Node', n, { spec: { docker: { socket: '/var/run/docker.sock' } } }) },
  rolebindings: { path: (n) => `${API}/namespaces/team/rolebindings${n ? `/${n}` : ''}`, make: (n) => obj('RoleBinding', n, { roleRef: { kind: 'ClusterRole', name: 'viewer' }, subjects: [{ kind: 'User', name: 'nobody' }] }) },
  services_other_ns: { path: (n) => `${API}/namespaces/other/services${n ? `/${n}` : ''}`, make: (n) => obj('Service', n, { spec: { image: 'busybox:1' } }) },
};
const VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] as const;

/** Who may do what: the expected result of the matrix (true: 2xx). */
const EXPECTED: Record<string, Record<string, readonly string[]>> = {
  admin: { services: VERBS, secrets: VERBS, nodes: VERBS, rolebindings: VERBS, services_other_ns: VERBS },
  deployer: { services: VERBS, secrets: ['get', 'list'], nodes: ['get', 'list', 'watch'], rolebindings: [], services_other_ns: VERBS },
  viewer: { services: ['get', 'list', 'watch'], secrets: ['get', 'list'], nodes: ['get', 'list', 'watch'], rolebindings: [], services_other_ns: ['get', 'list', 'watch'] },
  'deployer-in-team': { services: VERBS, secrets: ['get', 'list'], nodes: [], rolebindings: [], services_other_ns: [] },
};

let counter = 0;
async function attempt(token: string, kind: string, verb: (typeof VERBS)[number]): Promise<number> {
  const k = KINDS[kind]!;
  const name = `m${++counter}`;
  if (['get', 'update', 'patch', 'delete'].includes(verb)) await api.client.create(k.path(), k.make(name));
  switch (verb) {
    case 'get':
      return (await call(token, 'GET', k.path(name))).status;
    case 'list':
      return (await call(token, 'GET', k.path())).status;
    case 'watch':
      return (await call(token, 'GET', `${k.path()}?watch=true&timeoutSeconds=1`)).status;
    case 'create':
      return (await call(token, 'POST', k.path(), k.make(name))).status;
    case 'update': {
      const current = await api.client.get(k.path(name));
      return (await call(token, 'PUT', k.path(name), { ...current, metadata: { ...current.metadata, labels: { touched: 'yes' } } })).status;
    }
    case 'patch':
      return (await call(token, 'PATCH', k.path(name), { metadata: { labels: { touched: 'yes' } } }, 'application/merge-patch+json')).status;
    case 'delete':
      return (await call(token, 'DELETE', k.path(name))).status;
  }
}

before(async () => {
  api = await startApi();
  await createNamespace(api.client, 'team');
  await createNamespace(api.client, 'other');
  tokens.admin = api.adminToken;
  tokens.deployer = await requestToken({ role: 'deployer', description: 'matrix' });
  tokens.viewer = await requestToken({ role: 'viewer' });
  tokens['deployer-in-team'] = await requestToken({ role: 'deployer', namespace: 'team' });
});
after(async () => {
  await api?.stop();
});

describe('authorization matrix', () => {
  for (const role of Object.keys(EXPECTED)) {
    test(`role ${role}`, async () => {
      const got: string[] = [];
      const want: string[] = [];
      for (const kind of Object.keys(KINDS)) {
        for (const verb of VERBS) {
          const status = await attempt(tokens[role]!, kind, verb);
          const allowed = EXPECTED[role]![kind]!.includes(verb);
          got.push(`${kind} ${verb} ${status >= 200 && status < 300 ? '2xx' : status}`);
          want.push(`${kind} ${verb} ${allowed ? '2xx' : 403}`);
        }
      }
      assert.deepEqual(got, want);
    });
  }
});

describe('authentication', () => {
  test('no token, a malformed header, and an unknown token get 401 with a Status', async () => {
    for (const token of [undefined, '', 'slw_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'x'.repeat(40)]) {
      const res = await call(token, 'GET', `${API}/namespaces/team/services`);
      assert.equal(res.status, 401);
      assert.equal(res.json.kind, 'Status');
      assert.equal(res.json.reason, 'Unauthorized');
    }
    assert.equal((await call(undefined, 'GET', '/healthz')).status, 200, 'health needs no token');
    assert.equal((await call(undefined, 'GET', '/metrics')).status, 401, 'metrics do');
  });

  test('an expired token and a revoked token are refused', async () => {
    const issued = Date.now();
    const shortLived = await requestToken({ role: 'viewer', ttl: '1s' });
    assert.equal((await call(shortLived, 'GET', `${API}/namespaces/team/services`)).status, 200);
    // Expiry has second precision and is rounded up: the token lives at least 1 s, at most 2 s.
    for (;;) {
      const status = (await call(shortLived, 'GET', `${API}/namespaces/team/services`)).status;
      if (status === 401) break;
      assert.equal(status, 200);
      assert.ok(Date.now() - issued < 5_000, 'the token expires within about 2 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(Date.now() - issued >= 1_000, 'the token lived at least its ttl');
    const revoked = await requestToken({ role: 'viewer' });
    assert.equal((await call(revoked, 'GET', `${API}/namespaces/team/services`)).status, 200);
    await api.client.delete(`${API}/tokens/${parts(revoked).id}`);
    assert.equal((await call(revoked, 'GET', `${API}/namespaces/team/services`)).status, 401);
  });

  test('Tokens store only a hash of the secret', async () => {
    const token = await requestToken({ role: 'viewer' });
    const stored = JSON.stringify(await api.client.get(`${API}/tokens/${parts(token).id}`));
    assert.equal(stored.includes(parts(token).secret), false);
  });
});

describe('details', () => {
  test('a 403 names the user, the verb, the resource and the namespace', async () => {
    const res = await call(tokens['deployer-in-team'], 'GET', `${API}/namespaces/other/services`);
    assert.equal(res.status, 403);
    assert.equal(res.json.reason, 'Forbidden');
    assert.match(res.json.message, /token:[a-f0-9]{12} \(role deployer in namespace team\) cannot list services in namespace "other": missing permission "list" on "services"/);
  });

  test('without get on secrets, values are hidden: keys and sizes only', async () => {
    await api.client.create(KINDS.secrets!.path(), KINDS.secrets!.make('visible'));
    const one = await call(tokens.deployer, 'GET', KINDS.secrets!.path('visible'));
    assert.equal(one.json.data, undefined);
    assert.deepEqual(one.json.dataSizes, { password: 'matrix-secret-value'.length });
    const list = await call(tokens.viewer, 'GET', KINDS.secrets!.path());
    assert.ok(list.json.items.length > 0);
    assert.doesNotMatch(JSON.stringify(list.json), /matrix-secret-value|bWF0cml4LXNlY3JldC12YWx1ZQ/);
    const admin = await call(tokens.admin, 'GET', KINDS.secrets!.path('visible'));
    assert.equal(Buffer.from(admin.json.data.password, 'base64').toString(), 'matrix-secret-value');
  });

  test('cluster-wide lists need a cluster-wide grant', async () => {
    assert.equal((await call(tokens.deployer, 'GET', `${API}/services`)).status, 200);
    assert.equal((await call(tokens['deployer-in-team'], 'GET', `${API}/services`)).status, 403);
  });

  test('a RoleBinding grants a token more, at once', async () => {
    const token = await requestToken({ role: 'viewer' });
    const id = parts(token).id;
    assert.equal((await call(token, 'POST', KINDS.services!.path(), KINDS.services!.make('granted'))).status, 403);
    await api.client.create(`${API}/namespaces/team/rolebindings`, obj('RoleBinding', 'ci-deploys', { roleRef: { kind: 'ClusterRole', name: 'deployer' }, subjects: [{ kind: 'Token', name: id }] }));
    assert.equal((await call(token, 'POST', KINDS.services!.path(), KINDS.services!.make('granted'))).status, 201);
    assert.equal((await call(token, 'POST', KINDS.services_other_ns!.path(), KINDS.services_other_ns!.make('granted'))).status, 403, 'only in the binding\'s namespace');
  });

  test('slipctl token create/list/revoke, auth can-i and whoami', async () => {
    const admin = createCli(api.url, { token: api.adminToken, namespace: 'team' });
    const created = await admin.run(['token', 'create', '--role', 'deployer', '-n', 'team', '--ttl', '1h', '--description', 'cli test']);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    assert.match(token, /^slw_[a-f0-9]{12}_[A-Za-z0-9_-]{43}$/);
    assert.match(created.stderr, /shown only this once/);
    const list = await admin.run(['token', 'list']);
    assert.match(list.stdout, new RegExp(`^${parts(token).id}\\s+deployer\\s+team\\s+`, 'm'));
    assert.equal(list.stdout.includes(parts(token).secret), false);
    const dep = createCli(api.url, { token, namespace: 'team' });
    assert.deepEqual(await dep.run(['auth', 'can-i', 'create', 'services']).then((r) => [r.code, r.stdout.trim()]), [0, 'yes']);
    assert.deepEqual(await dep.run(['auth', 'can-i', 'get', 'secrets']).then((r) => [r.code, r.stdout.trim()]), [1, 'no']);
    assert.deepEqual(await dep.run(['auth', 'can-i', 'create', 'services', '-n', 'other']).then((r) => [r.code, r.stdout.trim()]), [1, 'no']);
    assert.match((await dep.run(['auth', 'whoami'])).stdout, /^token:[a-f0-9]{12}\s+role deployer in namespace team$/m);
    const denied = await dep.run(['get', 'secrets', 'visible', '-o', 'json']);
    assert.equal(denied.code, 0, denied.stderr);
    assert.doesNotMatch(denied.stdout, /matrix-secret-value/);
    assert.equal((await admin.run(['token', 'revoke', parts(token).id])).code, 0);
    const after = await dep.run(['get', 'services']);
    assert.notEqual(after.code, 0);
    assert.match(after.stderr, /Unauthorized/);
  });

  test('a client without a token is told what to do', async () => {
    const anon = new ApiClient({ server: api.url });
    await assert.rejects(anon.list(`${API}/namespaces`), /Unauthorized: a valid bearer token is required/);
    await anon.close();
  });
});
