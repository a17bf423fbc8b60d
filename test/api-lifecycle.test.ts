// Deletion lifecycles: ownerReferences with Background, Foreground and Orphan propagation,
// Namespace deletion emptying the namespace, and a garbage collector that converges after a restart.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeObject } from '../src/api/types.js';
import { ApiRequestError } from '../src/client/api-client.js';
import { createNamespace, NS_PATH, service, startApi, svcPath, type TestApi } from './helpers/apiserver.js';

let api: TestApi;

before(async () => {
  api = await startApi();
});
after(async () => {
  await api?.stop();
});

const releasePath = (ns: string, name?: string) => `${NS_PATH}/${ns}/releases${name ? `/${name}` : ''}`;

function ownedRelease(name: string, owner: KubeObject, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Release',
    metadata: {
      name,
      ownerReferences: [{ apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name!, uid: owner.metadata.uid!, controller: true, blockOwnerDeletion: true }],
      ...extra,
    },
    spec: { service: owner.metadata.name!, revision: 1, image: 'busybox:1' },
  };
}

async function gone(path: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await api.client.get(path);
    } catch (err) {
      if (err instanceof ApiRequestError && err.code === 404) return;
      throw err;
    }
    if (Date.now() > deadline) throw new Error(`${path} still exists after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await api.client.get(path);
    return true;
  } catch (err) {
    if (err instanceof ApiRequestError && err.code === 404) return false;
    throw err;
  }
}

describe('garbage collection', () => {
  test('Background: deleting the owner deletes its dependents afterwards', async () => {
    await createNamespace(api.client, 'gc-bg');
    const owner = await api.client.create(svcPath('gc-bg'), service('web'));
    await api.client.create(releasePath('gc-bg'), ownedRelease('web-1', owner));
    await api.client.create(releasePath('gc-bg'), ownedRelease('web-2', owner));
    const res = await api.client.delete(svcPath('gc-bg', 'web'));
    assert.equal(res.status, 200, 'the owner goes at once');
    await gone(releasePath('gc-bg', 'web-1'));
    await gone(releasePath('gc-bg', 'web-2'));
  });

  test('Foreground: the owner stays (with deletionTimestamp) until its dependents are gone', async () => {
    await createNamespace(api.client, 'gc-fg');
    const owner = await api.client.create(svcPath('gc-fg'), service('web'));
    // The dependent holds a finalizer, so the owner must wait for it.
    await api.client.create(releasePath('gc-fg'), ownedRelease('web-1', owner, { finalizers: ['example.com/hold'] }));
    const res = await api.client.delete(svcPath('gc-fg', 'web'), { propagationPolicy: 'Foreground' });
    assert.equal(res.status, 202);
    assert.ok(res.body.metadata.finalizers!.includes('foregroundDeletion'));
    // The dependent is being deleted, the owner waits.
    const deadline = Date.now() + 5_000;
    while (!(await api.client.get(releasePath('gc-fg', 'web-1'))).metadata.deletionTimestamp) {
      assert.ok(Date.now() < deadline, 'dependent never marked for deletion');
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(await exists(svcPath('gc-fg', 'web')), 'owner still present while a dependent exists');
    await api.client.patch(releasePath('gc-fg', 'web-1'), { metadata: { finalizers: [] } });
    await gone(releasePath('gc-fg', 'web-1'));
    await gone(svcPath('gc-fg', 'web'));
  });

  test('Orphan: dependents stay and lose their owner reference', async () => {
    await createNamespace(api.client, 'gc-or');
    const owner = await api.client.create(svcPath('gc-or'), service('web'));
    await api.client.create(releasePath('gc-or'), ownedRelease('web-1', owner));
    const res = await api.client.delete(svcPath('gc-or', 'web'), { propagationPolicy: 'Orphan' });
    assert.equal(res.status, 202);
    await gone(svcPath('gc-or', 'web'));
    const dependent = await api.client.get(releasePath('gc-or', 'web-1'));
    assert.deepEqual(dependent.metadata.ownerReferences ?? [], []);
  });

  test('a dependent created for an owner that no longer exists is collected', async () => {
    await createNamespace(api.client, 'gc-dangling');
    const owner = await api.client.create(svcPath('gc-dangling'), service('web'));
    await api.client.delete(svcPath('gc-dangling', 'web'));
    await api.client.create(releasePath('gc-dangling'), ownedRelease('web-1', owner));
    await gone(releasePath('gc-dangling', 'web-1'));
  });

  test('an owner re-created under the same name (new uid) does not adopt the old dependents', async () => {
    await createNamespace(api.client, 'gc-uid');
    const owner = await api.client.create(svcPath('gc-uid'), service('web'));
    await api.client.create(releasePath('gc-uid'), { ...ownedRelease('web-1', owner), metadata: { ...ownedRelease('web-1', owner).metadata, finalizers: ['example.com/hold'] } });
    await api.client.delete(svcPath('gc-uid', 'web'));
    await api.client.create(svcPath('gc-uid'), service('web'));
    const deadline = Date.now() + 5_000;
    while (!(await api.client.get(releasePath('gc-uid', 'web-1'))).metadata.deletionTimestamp) {
      assert.ok(Date.now() < deadline, 'dependent of the old owner was not deleted');
      await new Promise((r) => setTimeout(r, 50));
    }
    await api.client.patch(releasePath('gc-uid', 'web-1'), { metadata: { finalizers: [] } });
    await gone(releasePath('gc-uid', 'web-1'));
  });

  test('the collector converges after an API server restart (nothing lives only in memory)', async () => {
    await createNamespace(api.client, 'gc-restart');
    const owner = await api.client.create(svcPath('gc-restart'), service('web'));
    // Write the dependent and delete the owner while no API server (and so no collector) runs.
    const dependent = ownedRelease('web-1', owner);
    await api.server.close();
    const { EtcdStore } = await import('../src/store/etcd-store.js');
    const raw = new EtcdStore({ endpoints: api.etcd.endpoints });
    await raw.create('/registry/slipway.dev/releases/gc-restart/web-1', {
      ...dependent,
      metadata: { ...dependent.metadata, namespace: 'gc-restart', uid: 'dep-uid', creationTimestamp: '2026-01-01T00:00:00Z', generation: 1 },
    });
    await raw.delete('/registry/slipway.dev/services/gc-restart/web');
    raw.close();
    const previous = api;
    const restarted = await startApi({ etcd: api.etcd });
    api = {
      ...restarted,
      stop: async () => {
        await restarted.stop();
        await previous.client.close();
        await previous.etcd.stop();
      },
    };
    await gone(releasePath('gc-restart', 'web-1'));
  });
});

describe('namespace deletion', () => {
  test('deleting a Namespace deletes everything in it, then the Namespace', async () => {
    await createNamespace(api.client, 'doomed');
    await api.client.create(svcPath('doomed'), service('a'));
    await api.client.create(svcPath('doomed'), { ...service('held'), metadata: { name: 'held', finalizers: ['example.com/hold'] } });
    await api.client.create(`${NS_PATH}/doomed/secrets`, { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 's' }, stringData: { a: 'b' } });
    const res = await api.client.delete(`${NS_PATH}/doomed`);
    assert.equal(res.status, 202);
    assert.equal(res.body.status.phase, 'Terminating');
    await assert.rejects(api.client.create(svcPath('doomed'), service('late')), (err: ApiRequestError) => err.code === 403 && /being terminated/.test(err.message));
    await gone(svcPath('doomed', 'a'));
    await gone(`${NS_PATH}/doomed/secrets/s`);
    // The object with a finalizer keeps the namespace alive until the finalizer is removed.
    assert.ok((await api.client.get(svcPath('doomed', 'held'))).metadata.deletionTimestamp);
    assert.ok(await exists(`${NS_PATH}/doomed`));
    await api.client.patch(svcPath('doomed', 'held'), { metadata: { finalizers: [] } });
    await gone(`${NS_PATH}/doomed`);
    // The name can be used again.
    await createNamespace(api.client, 'doomed');
    assert.deepEqual((await api.client.list(svcPath('doomed'))).items, []);
  });
});
