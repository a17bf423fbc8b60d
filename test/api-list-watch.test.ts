// LIST and WATCH against a real etcd: selectors, consistent paging, watch event types,
// resuming from an old revision, 410 after compaction, bookmarks.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeList } from '../src/api/types.js';
import { ApiRequestError } from '../src/client/api-client.js';
import { createNamespace, service, startApi, svcPath, type TestApi } from './helpers/apiserver.js';
import { names, record } from './helpers/watch.js';

let api: TestApi;

before(async () => {
  api = await startApi({ bookmarkIntervalMs: 200 });
  await createNamespace(api.client, 'lw');
  await createNamespace(api.client, 'lw2');
  const fixtures: [string, string, Record<string, string>][] = [
    ['lw', 'a', { app: 'shop', tier: 'web' }],
    ['lw', 'b', { app: 'shop', tier: 'worker' }],
    ['lw', 'c', { app: 'blog', tier: 'web' }],
    ['lw', 'd', {}],
    ['lw2', 'e', { app: 'shop', tier: 'web', weight: '7' }],
  ];
  for (const [ns, name, labels] of fixtures) await api.client.create(svcPath(ns), service(name, {}, labels));
});
after(async () => {
  await api?.stop();
});

const listNames = async (path: string, query: Record<string, string | number> = {}) =>
  (await api.client.list(path, query)).items.map((i) => i.metadata.name);

describe('list', () => {
  test('lists one namespace or all of them, with kind and resourceVersion', async () => {
    const list = await api.client.list(svcPath('lw'));
    assert.equal(list.kind, 'ServiceList');
    assert.equal(list.apiVersion, 'slipway.dev/v1alpha1');
    assert.ok(Number(list.metadata.resourceVersion) > 0);
    assert.deepEqual(list.items.map((i) => i.metadata.name), ['a', 'b', 'c', 'd']);
    assert.ok(list.items.every((i) => i.kind === 'Service' && i.apiVersion === 'slipway.dev/v1alpha1'));
    assert.deepEqual(await listNames('/apis/slipway.dev/v1alpha1/services'), ['a', 'b', 'c', 'd', 'e']);
  });

  test('label selectors: equality, inequality, set-based, existence, numeric', async () => {
    const all = '/apis/slipway.dev/v1alpha1/services';
    assert.deepEqual(await listNames(all, { labelSelector: 'app=shop' }), ['a', 'b', 'e']);
    assert.deepEqual(await listNames(all, { labelSelector: 'app==shop,tier=web' }), ['a', 'e']);
    assert.deepEqual(await listNames(all, { labelSelector: 'app!=shop' }), ['c', 'd']);
    assert.deepEqual(await listNames(all, { labelSelector: 'tier in (web, worker),app notin (blog)' }), ['a', 'b', 'e']);
    assert.deepEqual(await listNames(all, { labelSelector: '!app' }), ['d']);
    assert.deepEqual(await listNames(all, { labelSelector: 'tier' }), ['a', 'b', 'c', 'e']);
    assert.deepEqual(await listNames(all, { labelSelector: 'weight>5' }), ['e']);
  });

  test('field selectors on metadata.name and metadata.namespace', async () => {
    const all = '/apis/slipway.dev/v1alpha1/services';
    assert.deepEqual(await listNames(all, { fieldSelector: 'metadata.name=b' }), ['b']);
    assert.deepEqual(await listNames(all, { fieldSelector: 'metadata.namespace=lw2' }), ['e']);
    assert.deepEqual(await listNames(all, { fieldSelector: 'metadata.namespace!=lw2,metadata.name!=a' }), ['b', 'c', 'd']);
    await assert.rejects(api.client.list(all, { fieldSelector: 'spec.image=x' }), (err: ApiRequestError) => err.code === 400 && /field label not supported/.test(err.message));
    await assert.rejects(api.client.list(all, { labelSelector: 'a in (' }), (err: ApiRequestError) => err.code === 400);
  });

  test('limit + continue pages through a consistent snapshot', async () => {
    await createNamespace(api.client, 'paging');
    for (let i = 0; i < 25; i++) await api.client.create(svcPath('paging'), service(`p${String(i).padStart(2, '0')}`, {}, { half: i % 2 ? 'odd' : 'even' }));
    const first = await api.client.list(svcPath('paging'), { limit: 10 });
    assert.equal(first.items.length, 10);
    assert.equal(first.metadata.remainingItemCount, 15);
    assert.ok(first.metadata.continue);
    // Changes after the first page are not visible in later pages (same revision).
    await api.client.create(svcPath('paging'), service('p99'));
    await api.client.delete(svcPath('paging', 'p24'));
    const seen: (string | undefined)[] = first.items.map((i) => i.metadata.name);
    let token: string | undefined = first.metadata.continue;
    while (token) {
      const page: KubeList = await api.client.list(svcPath("paging"), { limit: 10, continue: token });
      assert.equal(page.metadata.resourceVersion, first.metadata.resourceVersion);
      seen.push(...page.items.map((i) => i.metadata.name));
      token = page.metadata.continue;
    }
    assert.deepEqual(seen, Array.from({ length: 25 }, (_, i) => `p${String(i).padStart(2, '0')}`));
    // With a selector, pages hold only matching items.
    const odd = await api.client.list(svcPath('paging'), { limit: 5, labelSelector: 'half=odd' });
    assert.equal(odd.items.length, 5);
    assert.ok(odd.items.every((i) => i.metadata.labels?.half === 'odd'));
    const rest = await api.client.list(svcPath('paging'), { limit: 100, labelSelector: 'half=odd', continue: odd.metadata.continue! });
    assert.equal(odd.items.length + rest.items.length, 12);
    await assert.rejects(api.client.list(svcPath('paging'), { limit: 5, continue: 'garbage' }), (err: ApiRequestError) => err.code === 400);
    await assert.rejects(api.client.list(svcPath('lw'), { limit: 5, continue: first.metadata.continue! }), (err: ApiRequestError) => err.code === 400, 'a token of another list is refused');
  });
});

describe('watch', () => {
  test('ADDED, MODIFIED, DELETED in order, scoped to a namespace', async () => {
    await createNamespace(api.client, 'w1');
    const rv = (await api.client.list(svcPath('w1'))).metadata.resourceVersion!;
    const rec = record(api.client, svcPath('w1'), { resourceVersion: rv });
    await api.client.create(svcPath('w1'), service('x'));
    await api.client.create(svcPath('lw2'), service('elsewhere'));
    await api.client.patch(svcPath('w1', 'x'), { spec: { replicas: 2 } });
    await api.client.delete(svcPath('w1', 'x'));
    const events = await rec.waitFor((e) => e.length >= 3);
    rec.stop();
    assert.deepEqual(names(events), ['ADDED:x', 'MODIFIED:x', 'DELETED:x']);
    assert.equal(events[1]!.object.spec.replicas, 2);
    const rvs = events.map((e) => Number(e.object.metadata.resourceVersion));
    assert.deepEqual([...rvs].sort((a, b) => a - b), rvs, 'resourceVersions increase');
  });

  test('without resourceVersion a watch starts with the current objects as ADDED', async () => {
    const rec = record(api.client, svcPath('lw'), { labelSelector: 'app=shop' });
    const events = await rec.waitFor((e) => e.length >= 2);
    rec.stop();
    assert.deepEqual(names(events).sort(), ['ADDED:a', 'ADDED:b']);
  });

  test('a selector turns label changes into ADDED and DELETED', async () => {
    await createNamespace(api.client, 'w2');
    await api.client.create(svcPath('w2'), service('s', {}, { color: 'red' }));
    const rv = (await api.client.list(svcPath('w2'))).metadata.resourceVersion!;
    const rec = record(api.client, svcPath('w2'), { resourceVersion: rv, labelSelector: 'color=blue' });
    await api.client.patch(svcPath('w2', 's'), { metadata: { labels: { color: 'blue' } } });
    await api.client.patch(svcPath('w2', 's'), { spec: { replicas: 3 } });
    await api.client.patch(svcPath('w2', 's'), { metadata: { labels: { color: 'green' } } });
    await api.client.delete(svcPath('w2', 's'));
    const events = await rec.waitFor((e) => e.length >= 3);
    await new Promise((r) => setTimeout(r, 200));
    rec.stop();
    assert.deepEqual(names(events), ['ADDED:s', 'MODIFIED:s', 'DELETED:s']);
  });

  test('a single object can be watched with a field selector on its name', async () => {
    await createNamespace(api.client, 'w3');
    await api.client.create(svcPath('w3'), service('one'));
    await api.client.create(svcPath('w3'), service('two'));
    const rv = (await api.client.list(svcPath('w3'))).metadata.resourceVersion!;
    const rec = record(api.client, svcPath('w3'), { resourceVersion: rv, fieldSelector: 'metadata.name=two' });
    await api.client.patch(svcPath('w3', 'one'), { spec: { replicas: 2 } });
    await api.client.patch(svcPath('w3', 'two'), { spec: { replicas: 2 } });
    const events = await rec.waitFor((e) => e.length >= 1);
    rec.stop();
    assert.deepEqual(names(events), ['MODIFIED:two']);
  });

  test('a watch from an old revision replays the missed events in order', async () => {
    await createNamespace(api.client, 'replay');
    const start = (await api.client.list(svcPath('replay'))).metadata.resourceVersion!;
    for (let i = 0; i < 20; i++) await api.client.create(svcPath('replay'), service(`r${i}`));
    for (let i = 0; i < 20; i += 2) await api.client.delete(svcPath('replay', `r${i}`));
    const rec = record(api.client, svcPath('replay'), { resourceVersion: start });
    const events = await rec.waitFor((e) => e.length >= 30);
    rec.stop();
    const expected = [...Array.from({ length: 20 }, (_, i) => `ADDED:r${i}`), ...Array.from({ length: 10 }, (_, i) => `DELETED:r${i * 2}`)];
    assert.deepEqual(names(events), expected);
  });

  test('bookmarks carry a resourceVersion to resume from', async () => {
    const rv = (await api.client.list(svcPath('lw'))).metadata.resourceVersion!;
    const rec = record(api.client, svcPath('lw'), { resourceVersion: rv, allowWatchBookmarks: true });
    const events = await rec.waitFor((e) => e.some((x) => x.type === 'BOOKMARK'), 3_000);
    rec.stop();
    const bookmark = events.find((e) => e.type === 'BOOKMARK')!;
    assert.equal(bookmark.object.kind, 'Service');
    assert.ok(Number(bookmark.object.metadata.resourceVersion) >= Number(rv));
  });

  test('timeoutSeconds ends the stream', async () => {
    const started = Date.now();
    const rv = (await api.client.list(svcPath('lw'))).metadata.resourceVersion!;
    await api.client.watch(svcPath('lw'), { resourceVersion: rv, timeoutSeconds: 1 }, () => {});
    assert.ok(Date.now() - started < 3_000);
  });

  test('an invalid resourceVersion is 400', async () => {
    await assert.rejects(api.client.watch(svcPath('lw'), { resourceVersion: 'abc' }, () => {}), (err: ApiRequestError) => err.code === 400);
  });
});

describe('compaction', () => {
  test('a watch or continue token from a compacted revision gets 410 Expired; the client relists', async () => {
    await createNamespace(api.client, 'compact');
    for (let i = 0; i < 6; i++) await api.client.create(svcPath('compact'), service(`c${i}`));
    const page = await api.client.list(svcPath('compact'), { limit: 2 });
    const old = page.metadata.resourceVersion!;
    // Age the watch cache window out and compact etcd past `old`.
    for (let i = 0; i < 3; i++) await api.client.patch(svcPath('compact', 'c0'), { spec: { replicas: i + 2 } });
    const current = await api.server.store.revision();
    await api.server.store.compact(current);
    const fresh = await import('./helpers/apiserver.js').then((m) => m.startApi({ etcd: api.etcd }));
    try {
      // A second API server has an empty watch cache, so the old revision must come from etcd.
      await assert.rejects(fresh.client.watch(svcPath('compact'), { resourceVersion: old }, () => {}), (err: ApiRequestError) => {
        assert.equal(err.code, 410);
        assert.equal(err.status?.reason, 'Expired');
        return true;
      });
      await assert.rejects(fresh.client.list(svcPath('compact'), { limit: 2, continue: page.metadata.continue! }), (err: ApiRequestError) => err.code === 410);
      // Relisting and watching from the new revision works.
      const relist = await fresh.client.list(svcPath('compact'));
      assert.equal(relist.items.length, 6);
      const rec = record(fresh.client, svcPath('compact'), { resourceVersion: relist.metadata.resourceVersion! });
      await fresh.client.patch(svcPath('compact', 'c1'), { spec: { replicas: 9 } });
      await rec.waitFor((e) => e.length === 1);
      rec.stop();
    } finally {
      await fresh.stop();
    }
  });
});
