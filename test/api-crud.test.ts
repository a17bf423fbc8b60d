// Object semantics of the API server against a real etcd: server-set fields, generation,
// status subresource, optimistic concurrency, patches, dry runs, field validation, finalizers.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiRequestError } from '../src/client/api-client.js';
import { createNamespace, NS_PATH, service, startApi, svcPath, type TestApi } from './helpers/apiserver.js';

let api: TestApi;
const NS = 'crud';

before(async () => {
  api = await startApi();
  await createNamespace(api.client, NS);
});
after(async () => {
  await api?.stop();
});

/** Runs `fn`, expecting it to fail with the given HTTP code; returns the error's Status. */
async function expectError(fn: () => Promise<unknown>, code: number, reason?: string) {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof ApiRequestError, `expected an API error, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    assert.equal(err.status?.kind, 'Status');
    assert.equal(err.status?.code, code);
    if (reason) assert.equal(err.status?.reason, reason);
    return err.status!;
  }
  assert.fail(`expected HTTP ${code}`);
}

describe('create', () => {
  test('sets uid, creationTimestamp, generation and resourceVersion; ignores client values and status', async () => {
    const body = service('create-1');
    const created = await api.client.create(svcPath(NS), {
      ...body,
      metadata: { ...body.metadata, uid: 'mine', resourceVersion: '5', creationTimestamp: '2000-01-01T00:00:00Z' },
      status: { readyReplicas: 9 },
    });
    assert.notEqual(created.metadata.uid, 'mine');
    assert.notEqual(created.metadata.creationTimestamp, '2000-01-01T00:00:00Z');
    assert.ok(Number(created.metadata.resourceVersion) > 0);
    assert.equal(created.status, undefined, 'status is only written through /status');
  });

  test('a duplicate name is 409 AlreadyExists', async () => {
    await api.client.create(svcPath(NS), service('dup'));
    const status = await expectError(() => api.client.create(svcPath(NS), service('dup')), 409, 'AlreadyExists');
    assert.match(status.message, /services.slipway.dev "dup" already exists/);
  });

  test('generateName makes a unique name', async () => {
    const a = await api.client.create(svcPath(NS), { ...service('x'), metadata: { generateName: 'gen-' } });
    const b = await api.client.create(svcPath(NS), { ...service('x'), metadata: { generateName: 'gen-' } });
    assert.match(a.metadata.name!, /^gen-[a-z0-9]{5}$/);
    assert.notEqual(a.metadata.name, b.metadata.name);
  });

  test('the namespace must exist', async () => {
    const status = await expectError(() => api.client.create(svcPath('nowhere'), service('a')), 404, 'NotFound');
    assert.match(status.message, /namespaces.slipway.dev "nowhere" not found/);
  });

  test('a body namespace different from the path is 400', async () => {
    const body = service('ns-mismatch');
    await expectError(() => api.client.create(svcPath(NS), { ...body, metadata: { ...body.metadata, namespace: 'other' } }), 400, 'BadRequest');
  });

  test('a wrong kind or apiVersion is 400', async () => {
    await expectError(() => api.client.create(svcPath(NS), { ...service('k'), kind: 'Domain' }), 400);
    await expectError(() => api.client.create(svcPath(NS), { ...service('k'), apiVersion: 'slipway.dev/v9' }), 400);
  });

  test('invalid specs are 422 with one cause per field path', async () => {
    const status = await expectError(
      () =>
        api.client.create(
          svcPath(NS),
          service('bad', { replicas: 'two', env: [{ name: 'A', value: '1' }, { name: 7 }], strategy: { type: 'Sideways' } }),
        ),
      422,
      'Invalid',
    );
    const fields = status.details!.causes!.map((c) => c.field);
    assert.ok(fields.includes('spec.replicas'), JSON.stringify(fields));
    assert.ok(fields.includes('spec.env[1].name'), JSON.stringify(fields));
    assert.ok(fields.includes('spec.strategy.type'), JSON.stringify(fields));
    const strategyCause = status.details!.causes!.find((c) => c.field === 'spec.strategy.type')!;
    assert.match(strategyCause.message, /Unsupported value: "Sideways": supported values: "BlueGreen", "Recreate"/);
  });

  test('unknown fields are rejected by default, pruned with fieldValidation=Ignore, warned with Warn', async () => {
    const status = await expectError(() => api.client.create(svcPath(NS), service('unknown-1', { replicaz: 3 })), 422);
    assert.equal(status.details!.causes![0]!.field, 'spec.replicaz');
    const pruned = await api.client.create(svcPath(NS), service('unknown-2', { replicaz: 3 }), { fieldValidation: 'Ignore' });
    assert.equal(pruned.spec.replicaz, undefined);
    const res = await api.client.request('POST', svcPath(NS), { body: service('unknown-3', { replicaz: 3 }), query: { fieldValidation: 'Warn' } });
    assert.equal(res.status, 201);
    assert.match(String(res.headers.warning), /^299 - "unknown field .*spec\.replicaz/);
  });

  test('invalid names and labels are 422 naming the field', async () => {
    const s1 = await expectError(() => api.client.create(svcPath(NS), service('Not_Valid')), 422);
    assert.ok(s1.details!.causes!.some((c) => c.field === 'metadata.name'));
    const s2 = await expectError(() => api.client.create(svcPath(NS), service('labelled', {}, { 'bad key!': 'v' })), 422);
    assert.ok(s2.details!.causes!.some((c) => c.field === 'metadata.labels["bad key!"]'), JSON.stringify(s2.details));
  });

  test('dryRun=All validates and returns the object without storing it', async () => {
    const res = await api.client.create(svcPath(NS), service('dry'), { dryRun: 'All' });
    assert.equal(res.metadata.name, 'dry');
    await expectError(() => api.client.get(svcPath(NS, 'dry')), 404, 'NotFound');
    await expectError(() => api.client.create(svcPath(NS), service('dry', { replicas: -1 }), { dryRun: 'All' }), 422);
  });
});

describe('update and patch', () => {
  test('PUT needs resourceVersion; a stale one is 409 Conflict', async () => {
    const created = await api.client.create(svcPath(NS), service('put-1'));
    const { resourceVersion: _rv, ...metaWithoutRv } = created.metadata;
    const missing = await expectError(() => api.client.replace(svcPath(NS, 'put-1'), { ...created, metadata: metaWithoutRv }), 422);
    assert.equal(missing.details!.causes![0]!.field, 'metadata.resourceVersion');
    const updated = await api.client.replace(svcPath(NS, 'put-1'), { ...created, spec: { ...created.spec, replicas: 3 } });
    assert.equal(updated.spec.replicas, 3);
    assert.equal(updated.metadata.generation, 2);
    await expectError(() => api.client.replace(svcPath(NS, 'put-1'), { ...created, spec: { ...created.spec, replicas: 4 } }), 409, 'Conflict');
  });

  test('generation bumps on spec changes only; status writes go through /status only', async () => {
    const created = await api.client.create(svcPath(NS), service('gen-1'));
    const labelled = await api.client.patch(svcPath(NS, 'gen-1'), { metadata: { labels: { a: 'b' } } });
    assert.equal(labelled.metadata.generation, 1, 'metadata changes do not bump generation');
    const withStatus = await api.client.patch(svcPath(NS, 'gen-1') + '/status', { status: { readyReplicas: 1, observedGeneration: 1 } });
    assert.equal(withStatus.status.readyReplicas, 1);
    assert.equal(withStatus.metadata.generation, 1);
    const ignored = await api.client.patch(svcPath(NS, 'gen-1'), { status: { readyReplicas: 7 }, spec: { replicas: 2 } });
    assert.equal(ignored.status.readyReplicas, 1, 'status changes through the main resource are ignored');
    assert.equal(ignored.metadata.generation, 2);
    const statusIgnoresSpec = await api.client.patch(svcPath(NS, 'gen-1') + '/status', { spec: { replicas: 9 }, status: { readyReplicas: 2 } });
    assert.equal(statusIgnoresSpec.spec.replicas, 2, 'spec changes through /status are ignored');
    assert.equal(statusIgnoresSpec.status.readyReplicas, 2);
    assert.equal(created.metadata.uid, statusIgnoresSpec.metadata.uid);
    const bad = await expectError(() => api.client.patch(svcPath(NS, 'gen-1') + '/status', { status: { readyReplicas: 'x' } }), 422);
    assert.equal(bad.details!.causes![0]!.field, 'status.readyReplicas');
  });

  test('an update that changes nothing is not written (same resourceVersion)', async () => {
    const created = await api.client.create(svcPath(NS), service('noop-1'));
    const again = await api.client.replace(svcPath(NS, 'noop-1'), created);
    assert.equal(again.metadata.resourceVersion, created.metadata.resourceVersion);
    const patched = await api.client.patch(svcPath(NS, 'noop-1'), { spec: { replicas: 1 } });
    assert.equal(patched.metadata.resourceVersion, created.metadata.resourceVersion);
  });

  test('merge patch: null removes a field; a pinned stale resourceVersion is 409', async () => {
    const created = await api.client.create(svcPath(NS), service('mp-1', { command: ['sh'], args: ['-c', 'true'] }));
    const patched = await api.client.patch(svcPath(NS, 'mp-1'), { spec: { args: null } });
    assert.equal(patched.spec.args, undefined);
    assert.deepEqual(patched.spec.command, ['sh']);
    await expectError(() => api.client.patch(svcPath(NS, 'mp-1'), { metadata: { resourceVersion: created.metadata.resourceVersion }, spec: { replicas: 5 } }), 409, 'Conflict');
  });

  test('JSON patch: ops apply, a failed test op is 422', async () => {
    await api.client.create(svcPath(NS), service('jp-1'));
    const patched = await api.client.patch(svcPath(NS, 'jp-1'), [{ op: 'replace', path: '/spec/replicas', value: 4 }, { op: 'add', path: '/metadata/labels', value: { x: 'y' } }], 'json');
    assert.equal(patched.spec.replicas, 4);
    assert.deepEqual(patched.metadata.labels, { x: 'y' });
    await expectError(() => api.client.patch(svcPath(NS, 'jp-1'), [{ op: 'test', path: '/spec/replicas', value: 1 }], 'json'), 422);
  });

  test('changing name, uid or kind through a patch is refused', async () => {
    await api.client.create(svcPath(NS), service('ident-1'));
    await expectError(() => api.client.patch(svcPath(NS, 'ident-1'), { metadata: { name: 'other' } }), 400);
    await expectError(() => api.client.patch(svcPath(NS, 'ident-1'), { metadata: { uid: 'forged' } }), 409);
    await expectError(() => api.client.patch(svcPath(NS, 'ident-1'), { kind: 'Domain' }), 400);
  });

  test('a patch through a strategic-merge or apply content type is 415', async () => {
    await api.client.create(svcPath(NS), service('ct-1'));
    await expectError(() => api.client.request('PATCH', svcPath(NS, 'ct-1'), { body: { spec: {} }, contentType: 'application/strategic-merge-patch+json' }), 415);
  });
});

describe('delete and finalizers', () => {
  test('delete removes an object without finalizers and returns it', async () => {
    await api.client.create(svcPath(NS), service('del-1'));
    const res = await api.client.delete(svcPath(NS, 'del-1'));
    assert.equal(res.status, 200);
    assert.equal(res.body.metadata.name, 'del-1');
    await expectError(() => api.client.get(svcPath(NS, 'del-1')), 404);
    await expectError(() => api.client.delete(svcPath(NS, 'del-1')), 404);
  });

  test('with finalizers: 202, deletionTimestamp set, gone when the last finalizer is removed', async () => {
    const created = await api.client.create(svcPath(NS), { ...service('fin-1'), metadata: { name: 'fin-1', finalizers: ['example.com/hold', 'example.com/other'] } });
    const res = await api.client.delete(svcPath(NS, 'fin-1'));
    assert.equal(res.status, 202);
    assert.ok(res.body.metadata.deletionTimestamp);
    const again = await api.client.delete(svcPath(NS, 'fin-1'));
    assert.equal(again.status, 202, 'deleting a terminating object is idempotent');
    await expectError(() => api.client.patch(svcPath(NS, 'fin-1'), { metadata: { finalizers: ['example.com/hold', 'example.com/other', 'example.com/new'] } }), 422);
    await api.client.patch(svcPath(NS, 'fin-1'), { metadata: { finalizers: ['example.com/other'] } });
    assert.ok((await api.client.get(svcPath(NS, 'fin-1'))).metadata.deletionTimestamp);
    await api.client.patch(svcPath(NS, 'fin-1'), { metadata: { finalizers: [] } });
    await expectError(() => api.client.get(svcPath(NS, 'fin-1')), 404);
    assert.ok(created.metadata.uid);
  });

  test('preconditions on uid and resourceVersion', async () => {
    const created = await api.client.create(svcPath(NS), service('pre-1'));
    await expectError(() => api.client.delete(svcPath(NS, 'pre-1'), { preconditions: { uid: 'other' } }), 409, 'Conflict');
    await expectError(() => api.client.delete(svcPath(NS, 'pre-1'), { preconditions: { resourceVersion: '1' } }), 409, 'Conflict');
    const res = await api.client.delete(svcPath(NS, 'pre-1'), { preconditions: { uid: created.metadata.uid!, resourceVersion: created.metadata.resourceVersion! } });
    assert.equal(res.status, 200);
  });

  test('dryRun delete keeps the object', async () => {
    await api.client.create(svcPath(NS), service('drydel'));
    await api.client.delete(svcPath(NS, 'drydel'), undefined, { dryRun: 'All' });
    assert.equal((await api.client.get(svcPath(NS, 'drydel'))).metadata.name, 'drydel');
  });

  test('deletecollection with a label selector deletes only the selected objects', async () => {
    await createNamespace(api.client, 'coll');
    for (const [name, tier] of [['c1', 'a'], ['c2', 'a'], ['c3', 'b']] as const) await api.client.create(svcPath('coll'), service(name, {}, { tier }));
    await api.client.request('DELETE', svcPath('coll'), { query: { labelSelector: 'tier=a' } });
    const left = await api.client.list(svcPath('coll'));
    assert.deepEqual(left.items.map((i) => i.metadata.name), ['c3']);
  });
});

describe('kinds with special rules', () => {
  test('Secret stringData is folded into base64 data and never stored', async () => {
    const path = `${NS_PATH}/${NS}/secrets`;
    const created = await api.client.create(path, { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 's1' }, stringData: { password: 'hunter2' }, data: { user: Buffer.from('bob').toString('base64') } });
    assert.equal(created.stringData, undefined);
    assert.equal(Buffer.from(created.data.password, 'base64').toString(), 'hunter2');
    assert.equal(Buffer.from(created.data.user, 'base64').toString(), 'bob');
    await expectError(() => api.client.create(path, { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 's2' }, data: { k: 'not base64!' } }), 422);
  });

  test('Namespace gets phase Active and a finalizer; cluster-scoped paths only', async () => {
    const ns = await api.client.get(`${NS_PATH}/${NS}`);
    assert.equal(ns.status.phase, 'Active');
    assert.ok(ns.metadata.finalizers!.includes('slipway.dev/namespace-content'));
    await expectError(() => api.client.get(`${NS_PATH}/${NS}/namespaces/x`), 404);
    await expectError(() => api.client.request('POST', '/apis/slipway.dev/v1alpha1/services', { body: service('x') }), 405);
  });
});

describe('errors', () => {
  test('unknown paths are 404 Status, wrong methods 405, malformed JSON 400, bodies over 1.5 MiB 413', async () => {
    await expectError(() => api.client.get('/apis/slipway.dev/v1alpha1/widgets'), 404, 'NotFound');
    await expectError(() => api.client.get('/nothing/here'), 404, 'NotFound');
    await expectError(() => api.client.request('POST', svcPath(NS, 'x')), 405, 'MethodNotAllowed');
    await expectError(() => api.client.request('POST', svcPath(NS), { body: '{"kind":' }), 400, 'BadRequest');
    await expectError(() => api.client.request('POST', svcPath(NS), { body: JSON.stringify({ ...service('big'), x: 'a'.repeat(2 * 1024 * 1024) }) }), 413, 'RequestEntityTooLarge');
    await expectError(() => api.client.request('POST', svcPath(NS), { body: 'hello', contentType: 'text/plain' }), 415, 'UnsupportedMediaType');
  });

  test('YAML bodies are accepted', async () => {
    const yaml = 'apiVersion: slipway.dev/v1alpha1\nkind: Service\nmetadata:\n  name: from-yaml\nspec:\n  image: busybox:1\n';
    const res = await api.client.request('POST', svcPath(NS), { body: yaml, contentType: 'application/yaml' });
    assert.equal(res.status, 201);
    assert.equal(res.body.metadata.name, 'from-yaml');
  });
});
