// Optimistic concurrency under load: 64 clients doing read-modify-write on one object lose no
// update, and a real 3-member etcd cluster keeps serving with one member killed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiClient, ApiRequestError } from '../src/client/api-client.js';
import { createNamespace, service, startApi, svcPath } from './helpers/apiserver.js';
import { startEtcd } from './helpers/etcd.js';

test('64 concurrent read-modify-write clients on one object lose no update', async () => {
  const api = await startApi();
  try {
    await createNamespace(api.client, 'rmw');
    await api.client.create(svcPath('rmw'), { ...service('counter'), metadata: { name: 'counter', annotations: { count: '0' } } });
    const clients = 64;
    const incrementsEach = 3;
    let conflicts = 0;
    const worker = async () => {
      const client = new ApiClient({ server: api.url, token: api.adminToken });
      for (let i = 0; i < incrementsEach; i++) {
        for (;;) {
          const current = await client.get(svcPath('rmw', 'counter'));
          const next = String(Number(current.metadata.annotations!.count) + 1);
          try {
            await client.replace(svcPath('rmw', 'counter'), { ...current, metadata: { ...current.metadata, annotations: { count: next } } });
            break;
          } catch (err) {
            if (err instanceof ApiRequestError && err.code === 409) {
              conflicts++;
              // Like client-go's RetryOnConflict: back off a little (jittered) and retry.
              await new Promise((r) => setTimeout(r, Math.random() * 10));
              continue;
            }
            throw err;
          }
        }
      }
      await client.close();
    };
    await Promise.all(Array.from({ length: clients }, worker));
    const final = await api.client.get(svcPath('rmw', 'counter'));
    assert.equal(final.metadata.annotations!.count, String(clients * incrementsEach));
    assert.ok(conflicts > 0, 'the clients really raced (some writes were refused as stale)');
  } finally {
    await api.stop();
  }
});

test('merge patches from 64 concurrent clients are all applied (server-side retry)', async () => {
  const api = await startApi();
  try {
    await createNamespace(api.client, 'patchers');
    await api.client.create(svcPath('patchers'), service('target'));
    await Promise.all(
      Array.from({ length: 64 }, (_, i) => api.client.patch(svcPath('patchers', 'target'), { metadata: { labels: { [`p${i}`]: 'x' } } })),
    );
    const final = await api.client.get(svcPath('patchers', 'target'));
    assert.equal(Object.keys(final.metadata.labels ?? {}).length, 64);
  } finally {
    await api.stop();
  }
});

test('a 3-member etcd cluster with one member killed keeps serving reads and writes', async () => {
  const etcd = await startEtcd(3);
  const api = await startApi({ etcd });
  try {
    await createNamespace(api.client, 'ha');
    for (let i = 0; i < 5; i++) await api.client.create(svcPath('ha'), service(`before-${i}`));
    // Kill the member the client is most likely talking to first, then another round of work.
    await etcd.members[0]!.kill('SIGKILL');
    const deadline = Date.now() + 30_000;
    let written = 0;
    for (let i = 0; i < 10; i++) {
      for (;;) {
        try {
          await api.client.create(svcPath('ha'), service(`after-${i}`));
          written++;
          break;
        } catch (err) {
          // One in-flight call may hit the dead member; the client fails over to the others.
          if (Date.now() > deadline) throw err;
          if (err instanceof ApiRequestError && err.code === 409) {
            written++;
            break;
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    }
    assert.equal(written, 10);
    const list = await api.client.list(svcPath('ha'));
    assert.equal(list.items.length, 15);
    const got = await api.client.get(svcPath('ha', 'before-3'));
    assert.equal(got.metadata.name, 'before-3');
    const patched = await api.client.patch(svcPath('ha', 'after-9'), { spec: { replicas: 3 } });
    assert.equal(patched.spec.replicas, 3);
  } finally {
    await api.stop();
    await etcd.stop();
  }
});
