// The object service may start a read-modify-write from the server's in-memory copy of an
// object; that copy can lag etcd by a moment. Here the copy is deliberately held at an old
// version (a frozen snapshot in front of the real etcd): no write may be lost or wrongly
// skipped because of it.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeObject } from '../src/api/types.js';
import { ApiError } from '../src/apiserver/errors.js';
import { ObjectService, type Scope } from '../src/apiserver/objects.js';
import { SchemaCompiler } from '../src/apiserver/schema.js';
import { strategies } from '../src/apiserver/strategies.js';
import { createNamespace, service, startApi, svcPath, type TestApi } from './helpers/apiserver.js';

let api: TestApi;
let objects: ObjectService;
let scope: Scope;
const frozen = new Map<string, KubeObject>();

before(async () => {
  api = await startApi();
  await createNamespace(api.client, 'stale');
  const registry = api.server.registry;
  objects = new ObjectService(api.server.store, strategies(registry, new SchemaCompiler()), { phase: async () => 'Active' }, (_r, key) => frozen.get(key));
  const resource = registry.get('slipway.dev', 'services')!;
  scope = { resource, version: resource.versions.get('v1alpha1')!, namespace: 'stale' };
});
after(async () => {
  await api?.stop();
});

/** Creates a Service, freezes the "cache" at that version, then changes it behind the cache's back. */
async function staleSetup(name: string): Promise<{ old: KubeObject; newest: KubeObject }> {
  const old = await api.client.create(svcPath('stale'), service(name, { replicas: 1 }));
  frozen.set(`/registry/slipway.dev/services/stale/${name}`, structuredClone(old));
  const newest = await api.client.patch(svcPath('stale', name), { spec: { replicas: 5 } });
  return { old, newest };
}

test('a merge patch that is a no-op against the stale copy is still applied', async () => {
  await staleSetup('p1');
  const res = await objects.patch(scope, 'p1', 'merge', { spec: { replicas: 1 } }, undefined);
  assert.equal(res.object.spec.replicas, 1);
  assert.equal((await api.client.get(svcPath('stale', 'p1'))).spec.replicas, 1);
});

test('a patch computed from the stale copy is retried on the newest version (no lost update)', async () => {
  await staleSetup('p2');
  await objects.patch(scope, 'p2', 'merge', { metadata: { labels: { touched: 'yes' } } }, undefined);
  const now = await api.client.get(svcPath('stale', 'p2'));
  assert.equal(now.spec.replicas, 5, 'the concurrent change survives');
  assert.equal(now.metadata.labels?.touched, 'yes');
});

test('a PUT at an old resourceVersion is 409 even when it changes nothing against that version', async () => {
  const { old } = await staleSetup('u1');
  await assert.rejects(objects.update(scope, 'u1', structuredClone(old), undefined), (err: ApiError) => err.code === 409);
});

test('a delete that looks already done against the stale copy is checked against etcd', async () => {
  const created = await api.client.create(svcPath('stale'), { ...service('d1'), metadata: { name: 'd1', finalizers: ['example.com/hold'] } });
  await api.client.delete(svcPath('stale', 'd1'));
  const terminating = await api.client.get(svcPath('stale', 'd1'));
  frozen.set('/registry/slipway.dev/services/stale/d1', structuredClone(terminating));
  await api.client.patch(svcPath('stale', 'd1'), { metadata: { labels: { later: 'change' } } });
  const res = await objects.delete(scope, 'd1', { propagationPolicy: 'Foreground' });
  assert.equal(res.code, 202);
  assert.ok(res.object.metadata.finalizers!.includes('foregroundDeletion'), 'the Foreground finalizer was added to the newest version');
  assert.equal(res.object.metadata.labels?.later, 'change');
  assert.ok(created.metadata.uid);
});
