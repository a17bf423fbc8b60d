// Protective limits and the cost model: many API watches share one etcd watch, requests beyond
// the in-flight limit get 429 with Retry-After, and the API server compacts old etcd history.

import { setMaxListeners } from 'node:events';
import { test } from 'node:test';
import { Agent } from 'undici';
import assert from 'node:assert/strict';
import { ApiClient, ApiRequestError } from '../src/client/api-client.js';
import { createNamespace, service, startApi, svcPath } from './helpers/apiserver.js';

/** etcd's own count of open watchers (from its /metrics). */
async function etcdWatchers(endpoint: string): Promise<number> {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const m = /^etcd_debugging_mvcc_watcher_total (\d+)/m.exec(text);
  assert.ok(m, 'etcd exposes etcd_debugging_mvcc_watcher_total');
  return Number(m[1]);
}

test('200 API watches on one resource cost one etcd watch, and all receive each change', async () => {
  const api = await startApi();
  const controller = new AbortController();
  try {
    await createNamespace(api.client, 'fanout');
    // Warm the resource's cache: its single etcd watch exists from the first API watch on.
    const rv = (await api.client.list(svcPath('fanout'))).metadata.resourceVersion!;
    const before = await etcdWatchers(api.etcd.endpoints[0]!);
    const watchers = 200;
    const seen = new Array<number>(watchers).fill(0);
    setMaxListeners(watchers + 10, controller.signal);
    const client = new ApiClient({ server: api.url, token: api.adminToken, dispatcher: new Agent({ connections: watchers + 10 }) });
    for (let i = 0; i < watchers; i++) {
      void client.watch(svcPath('fanout'), { resourceVersion: rv }, () => {
        seen[i]!++;
      }, controller.signal);
    }
    const deadline = Date.now() + 10_000;
    while (Number((/slipway_apiserver_open_watches\{resource="services"\} (\d+)/.exec(await (await fetch(`${api.url}/metrics`, { headers: { authorization: `Bearer ${api.adminToken}` } })).text()) ?? [])[1] ?? 0) < watchers) {
      assert.ok(Date.now() < deadline, 'watches did not open');
      await new Promise((r) => setTimeout(r, 50));
    }
    const after = await etcdWatchers(api.etcd.endpoints[0]!);
    assert.ok(after - before <= 1, `etcd watchers went from ${before} to ${after}`);
    await api.client.create(svcPath('fanout'), service('one'));
    while (seen.some((n) => n < 1)) {
      assert.ok(Date.now() < deadline, `only ${seen.filter((n) => n > 0).length} watchers got the event`);
      await new Promise((r) => setTimeout(r, 20));
    }
    controller.abort();
    await client.close();
  } finally {
    controller.abort();
    await api.stop();
  }
});

test('requests beyond the in-flight limit get 429 with Retry-After, never a 5xx', async () => {
  const api = await startApi({ maxInflight: 2 });
  try {
    await createNamespace(api.client, 'busy');
    const codes = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        api.client.create(svcPath('busy'), service(`s${i}`)).then(
          () => 201,
          (err: ApiRequestError) => {
            if (err.code === 429) assert.equal(err.status?.details?.retryAfterSeconds, 1);
            return err.code;
          },
        ),
      ),
    );
    assert.ok(codes.includes(429), `codes: ${[...new Set(codes)]}`);
    assert.ok(codes.every((c) => c === 201 || c === 429), `codes: ${[...new Set(codes)]}`);
    const res = await fetch(`${api.url}/readyz`);
    assert.equal(res.status, 200, 'health endpoints are not limited');
  } finally {
    await api.stop();
  }
});

test('the API server compacts etcd history older than its compaction interval', async () => {
  const api = await startApi({ compactionIntervalMs: 300 });
  try {
    await createNamespace(api.client, 'history');
    const first = await api.client.create(svcPath('history'), service('a'));
    for (let i = 0; i < 5; i++) await api.client.patch(svcPath('history', 'a'), { spec: { replicas: i + 2 } });
    const deadline = Date.now() + 5_000;
    for (;;) {
      try {
        await api.server.store.list('/registry/slipway.dev/services/', { revision: Number(first.metadata.resourceVersion) });
      } catch (err) {
        assert.match(String((err as Error).message), /compacted/);
        break;
      }
      assert.ok(Date.now() < deadline, 'history was never compacted');
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await api.stop();
  }
});
