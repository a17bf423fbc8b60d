// Events (recorded by the client helper, de-duplicated by count, expiring through an etcd lease)
// and the operational endpoints: /healthz, /readyz following etcd, /metrics.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventRecorder } from '../src/client/event-recorder.js';
import { createNamespace, NS_PATH, service, startApi, svcPath, type TestApi } from './helpers/apiserver.js';
import { startEtcd } from './helpers/etcd.js';

let api: TestApi;

before(async () => {
  api = await startApi();
  await createNamespace(api.client, 'ev');
});
after(async () => {
  await api?.stop();
});

test('repeated events increment count on one Event; events are found by involvedObject.uid', async () => {
  const svc = await api.client.create(svcPath('ev'), service('web'));
  const other = await api.client.create(svcPath('ev'), service('other'));
  const recorder = new EventRecorder(api.client, { component: 'test-controller' });
  await recorder.record(svc, 'Warning', 'HealthCheckFailed', 'GET /health returned 500');
  await recorder.record(svc, 'Warning', 'HealthCheckFailed', 'GET /health returned 500');
  await recorder.record(svc, 'Warning', 'HealthCheckFailed', 'GET /health returned 500');
  await recorder.record(svc, 'Normal', 'Scaled', 'scaled to 2');
  await recorder.record(other, 'Normal', 'Scaled', 'scaled to 2');
  // A second recorder (another process) without the cache also increments.
  await new EventRecorder(api.client, { component: 'test-controller' }).record(svc, 'Warning', 'HealthCheckFailed', 'GET /health returned 500');
  const events = await api.client.list(`${NS_PATH}/ev/events`, { fieldSelector: `involvedObject.uid=${svc.metadata.uid}` });
  assert.equal(events.items.length, 2);
  const failed = events.items.find((e) => e.reason === 'HealthCheckFailed')!;
  assert.equal(failed.count, 4);
  assert.equal(failed.type, 'Warning');
  assert.equal(failed.involvedObject.name, 'web');
  assert.equal(failed.source.component, 'test-controller');
  assert.ok(failed.firstTimestamp <= failed.lastTimestamp);
});

test('Events are attached to an etcd lease of about an hour', async () => {
  const list = await api.client.list(`${NS_PATH}/ev/events`);
  const name = list.items[0]!.metadata.name!;
  const res = await api.server.store.client.kv.range({ key: Buffer.from(`/registry/slipway.dev/events/ev/${name}`) });
  const leaseId = res.kvs[0]!.lease;
  assert.notEqual(String(leaseId), '0', 'the event key has a lease');
  const ttl = await api.server.store.client.leaseClient.leaseTimeToLive({ ID: leaseId });
  assert.ok(Number(ttl.TTL) > 3500 && Number(ttl.TTL) <= 3660, `TTL ${ttl.TTL}`);
  // Other kinds are not leased.
  const svc = await api.server.store.client.kv.range({ key: Buffer.from('/registry/slipway.dev/services/ev/web') });
  assert.equal(String(svc.kvs[0]!.lease), '0');
});

test('a recorder never throws, even when the API refuses the event', async () => {
  const recorder = new EventRecorder(api.client, { component: 'x' });
  const errors: unknown[] = [];
  const r2 = new EventRecorder(api.client, { component: 'x' }, (e) => errors.push(e));
  const ghost = { apiVersion: 'slipway.dev/v1alpha1', kind: 'Service', metadata: { name: 'ghost', namespace: 'no-such-ns', uid: 'u' } };
  await recorder.record(ghost, 'Normal', 'R', 'm');
  await r2.record(ghost, 'Normal', 'R', 'm');
  assert.equal(errors.length, 1);
});

test('/healthz, /readyz and /metrics', async () => {
  const health = await fetch(`${api.url}/healthz`);
  assert.equal(health.status, 200);
  const ready = await fetch(`${api.url}/readyz`);
  assert.equal(ready.status, 200);
  const metrics = await (await fetch(`${api.url}/metrics`, { headers: { authorization: `Bearer ${api.adminToken}` } })).text();
  assert.match(metrics, /slipway_apiserver_requests_total\{verb="create",resource="services",code="201"\} \d+/);
  assert.match(metrics, /slipway_apiserver_request_duration_seconds_bucket\{le="[0-9.]+",verb="get",resource="events"\}|slipway_apiserver_request_duration_seconds_bucket\{le="[0-9.]+",verb="list",resource="events"\}/);
  assert.match(metrics, /slipway_etcd_request_duration_seconds_count\{operation="create"\} \d+/);
  assert.match(metrics, /slipway_apiserver_open_watches/);
});

test('/readyz fails while etcd is down and recovers when it is back', async () => {
  const etcd = await startEtcd();
  const own = await import('./helpers/apiserver.js').then((m) => m.startApi({ etcd }));
  try {
    assert.equal((await fetch(`${own.url}/readyz`)).status, 200);
    etcd.members[0]!.process.kill('SIGSTOP');
    // The signal lands asynchronously: an answer already on its way may still arrive.
    let down = await fetch(`${own.url}/readyz`);
    for (let i = 0; i < 20 && down.status === 200; i++) down = await fetch(`${own.url}/readyz`);
    assert.equal(down.status, 503);
    const body = (await down.json()) as any;
    assert.equal(body.kind, 'Status');
    assert.match(body.message, /etcd/);
    etcd.members[0]!.process.kill('SIGCONT');
    const deadline = Date.now() + 10_000;
    while ((await fetch(`${own.url}/readyz`)).status !== 200) {
      assert.ok(Date.now() < deadline);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    etcd.members[0]!.process.kill('SIGCONT');
    await own.stop();
    await etcd.stop();
  }
});
