// Smoke test: a real etcd and API server start, the bundled CRDs are served, and an object round-trips.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createNamespace, service, startApi, svcPath, type TestApi } from './helpers/apiserver.js';

let api: TestApi;
before(async () => {
  api = await startApi();
});
after(async () => {
  await api?.stop();
});

test('a Service round-trips through the API with server-set fields and defaults', async () => {
  await createNamespace(api.client, 'smoke');
  const created = await api.client.create(svcPath('smoke'), service('web'));
  assert.equal(created.metadata.name, 'web');
  assert.equal(created.metadata.namespace, 'smoke');
  assert.match(created.metadata.uid!, /^[0-9a-f-]{36}$/);
  assert.equal(created.metadata.generation, 1);
  assert.equal(created.spec.replicas, 1, 'schema default applied');
  const got = await api.client.get(svcPath('smoke', 'web'));
  assert.deepEqual(got, created);
});
