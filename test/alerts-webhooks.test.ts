// Alerts and webhooks on a real platform: built-in AlertRules, a real second node whose sshd is
// stopped going NotReady (Alert Pending → Firing → Resolved), Backups and a BackupPolicy whose
// status reports failure or staleness, a failing rollout raising the deploy failure rate; signed
// webhook deliveries to real HTTP receivers on loopback, retried after 500s with one idempotency
// key, dead and hanging endpoints that delay nobody else, rollout notifications, and deliveries
// left pending across a controller manager restart. Also the Event → webhook type mapping.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Docker from 'dockerode';
import type { Alert, AlertRule, Event as SlipwayEvent, Service, Webhook } from '../src/api/generated/crd-types.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { createNamespace } from './helpers/apiserver.js';
import { buildTestImage, DOCKER_SOCKET, startSecondNode, TEST_IMAGE, type SecondNode } from './helpers/docker.js';
import { API, nsPath, registerNode, startManager, startPlatform, waitFor, type Platform } from './helpers/platform.js';
import { payload, retryDelayMs, sign, webhookEventType } from '../src/controllers/webhooks/delivery.js';
import { freePort } from './helpers/ports.js';
import { record, type Recorder } from './helpers/watch.js';

const NS = 'alerting';
const NS_FAIL = 'alerting-fail';
const SECRET = 'webhook-signing-secret-0123456789';
const ALERT_INTERVAL_MS = 500;
const local = new Docker({ socketPath: DOCKER_SOCKET });

let p: Platform;
let manager: ControllerManager;
/** The managers' schedule clock runs this far ahead (the backup Stale test moves it). */
let clockSkewMs = 0;
const clock = () => Date.now() + clockSkewMs;
let node2: SecondNode;
/** Receives every webhook of the `everything` Webhook in slipway-system. */
let main: Receiver;
const receivers: Receiver[] = [];

// ---------------------------------------------------------------- a webhook receiver

interface Received {
  at: number;
  headers: IncomingHttpHeaders;
  raw: string;
  body: { id: string; type: string; time: string; object: { kind: string; namespace: string | null; name: string }; reason: string; message: string; alert?: Record<string, any> };
}

interface Receiver {
  url: string;
  requests: Received[];
  /** Decides the status of the n-th request (0-based); default 200. */
  respond: (n: number) => number;
  close(): Promise<void>;
}

async function startReceiver(respond: (n: number) => number = () => 200, hang = false): Promise<Receiver> {
  const requests: Received[] = [];
  const receiver: Receiver = { url: '', requests, respond, close: async () => {} };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      requests.push({ at: Date.now(), headers: req.headers, raw, body: JSON.parse(raw) });
      if (hang) return; // never answers: the sender must time out
      res.statusCode = receiver.respond(requests.length - 1);
      res.end(res.statusCode >= 300 ? 'receiver says no' : 'ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  receivers.push(receiver);
  return receiver;
}

function assertSigned(r: Received): void {
  const header = String(r.headers['x-slipway-signature'] ?? '');
  assert.match(header, /^sha256=[0-9a-f]{64}$/);
  const expected = createHmac('sha256', SECRET).update(r.raw).digest();
  assert.ok(timingSafeEqual(Buffer.from(header.slice(7), 'hex'), expected), 'the signature is the HMAC-SHA256 of the body');
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.headers['x-slipway-event'], r.body.type);
  assert.equal(r.headers['x-slipway-delivery'], r.body.id);
  assert.match(r.body.id, /^[0-9a-f-]{36}:\d+$/, 'delivery id: Event uid and count');
}

// ---------------------------------------------------------------- API helpers

const getAlert = (name: string) => p.client.get<Alert>(`${API}/alerts/${name}`).catch(() => undefined);
const getWebhook = (ns: string, name: string) => p.client.get<Webhook>(nsPath(ns, 'webhooks', name));
const getSvc = (ns: string, name: string) => p.client.get<Service>(nsPath(ns, 'services', name));

function waitAlert(name: string, state: string, timeoutMs = 30_000) {
  return waitFor(`alert ${name} ${state}`, async () => {
    const a = await getAlert(name);
    return a?.status?.state === state ? a : undefined;
  }, timeoutMs, 50).catch(async (err) => {
    throw new Error(`${(err as Error).message}; alert: ${JSON.stringify(await getAlert(name))}`);
  });
}

async function eventsAbout(kind: string, name: string, reason: string, namespace = 'default'): Promise<SlipwayEvent[]> {
  const list = await p.client.list<SlipwayEvent>(nsPath(namespace, 'events'), { fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name},reason=${reason}` });
  return list.items;
}

async function createWebhook(ns: string, name: string, url: string, events: string[], extra: Record<string, unknown> = {}): Promise<void> {
  await p.client.create(nsPath(ns, 'webhooks'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Webhook', metadata: { name }, spec: { url, events, secretRef: { name: 'hooks' }, ...extra } });
}

const createSecret = (ns: string) => p.client.create(nsPath(ns, 'secrets'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'hooks' }, stringData: { secret: SECRET } });

const deliveriesOf = (r: Receiver, type: string, pred: (x: Received) => boolean = () => true) => r.requests.filter((x) => x.body.type === type && pred(x));

function service(name: string, spec: Record<string, unknown>) {
  return { apiVersion: 'slipway.dev/v1alpha1', kind: 'Service', metadata: { name }, spec: { image: TEST_IMAGE, replicas: 1, nodeSelector: { role: 'local' }, healthCheck: { path: '/cgi-bin/health', intervalSeconds: 1, timeoutSeconds: 1, failureThreshold: 2 }, ...spec } };
}

async function removeContainers(docker: Docker): Promise<void> {
  for (const ns of [NS, NS_FAIL]) {
    for (const c of await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${ns}`] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
  }
}

// ---------------------------------------------------------------- setup

before(async () => {
  p = await startPlatform();
  node2 = await startSecondNode();
  await Promise.all([buildTestImage(local), removeContainers(local), removeContainers(node2.docker)]);
  manager = await startManager(p.api, { alertIntervalMs: ALERT_INTERVAL_MS, clock });
  for (const ns of [NS, NS_FAIL]) await createNamespace(p.client, ns);
  for (const ns of ['slipway-system', NS]) await createSecret(ns);
  await p.client.create(nsPath('slipway-system', 'secrets'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'node2-ssh' }, stringData: { 'ssh-privatekey': node2.privateKey } });
  // The test's Services select role=local, so they stay on the local node (which has the image).
  await registerNode(p.client, 'local', { socket: DOCKER_SOCKET }, { role: 'local' });
  await registerNode(p.client, 'node2', { ssh: { ...node2.dockerSpec.ssh, privateKeySecretRef: { namespace: 'slipway-system', name: 'node2-ssh' } } }, { role: 'remote' });
  main = await startReceiver();
  await createWebhook('slipway-system', 'everything', main.url, ['release.started', 'release.completed', 'release.failed', 'release.rolled_back', 'alert.firing', 'alert.resolved', 'backup.failed']);
});

after(async () => {
  for (const ns of [NS, NS_FAIL]) {
    for (const s of (await p.client.list(nsPath(ns, 'services')).catch(() => ({ items: [] }))).items) await p.client.delete(nsPath(ns, 'services', s.metadata.name!)).catch(() => {});
  }
  await waitFor('test containers removed', async () => (await local.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })).length === 0, 20_000).catch(() => {});
  await manager?.stop();
  await Promise.all(receivers.map((r) => r.close()));
  await Promise.all([removeContainers(local), node2 && removeContainers(node2.docker)]);
  await node2?.stop();
  await p?.stop();
});

// ---------------------------------------------------------------- tests

describe('event mapping', () => {
  const event = (reason: string, kind: string, message = ''): SlipwayEvent =>
    ({ apiVersion: 'slipway.dev/v1alpha1', kind: 'Event', metadata: { name: 'e', namespace: 'shop', uid: '6f1c2d3e-0000-4000-8000-000000000001', resourceVersion: '7' }, involvedObject: { kind, namespace: 'shop', name: 'web' }, reason, message, count: 3, lastTimestamp: '2025-01-01T00:00:00Z' }) as SlipwayEvent;

  test('Event reasons map to webhook event types, by the kind of object they are about', () => {
    const cases: Array<[string, string, string, string | undefined]> = [
      ['RolloutStarted', 'Release', '', 'release.started'],
      ['MigrationSucceeded', 'Release', '', 'release.migration_succeeded'],
      ['RolloutFailed', 'Service', '', 'release.failed'],
      ['TrafficShifted', 'Service', '', 'release.completed'],
      ['ReleaseCreated', 'Service', 'Created release web-3 (revision 3, rollback to revision 1)', 'release.rolled_back'],
      ['ReleaseCreated', 'Service', 'Created release web-2 (revision 2, SpecChange)', undefined],
      ['RolledBack', 'Service', '', 'release.rolled_back'],
      ['DNSVerified', 'Domain', '', 'domain.dns_verified'],
      ['CertificateReady', 'Domain', '', 'domain.cert_active'],
      ['DomainFailed', 'Domain', '', 'domain.failed'],
      ['BackupFailed', 'Backup', '', 'backup.failed'],
      ['BackupStale', 'BackupPolicy', '', 'backup.stale'],
      ['AlertFiring', 'Alert', '', 'alert.firing'],
      ['AlertResolved', 'Alert', '', 'alert.resolved'],
      ['RolloutStarted', 'Service', '', undefined],
      ['NodeNotReady', 'Node', '', undefined],
    ];
    for (const [reason, kind, message, type] of cases) assert.equal(webhookEventType(event(reason, kind, message)), type, `${reason} on ${kind}`);
  });

  test('the body names the occurrence (uid:count) and is signed with HMAC-SHA256', () => {
    const e = event('TrafficShifted', 'Service', 'Release web-2 is now active');
    const body = payload(e, 'release.completed');
    assert.deepEqual(JSON.parse(body), { id: '6f1c2d3e-0000-4000-8000-000000000001:3', type: 'release.completed', time: '2025-01-01T00:00:00Z', object: { kind: 'Service', namespace: 'shop', name: 'web' }, reason: 'TrafficShifted', message: 'Release web-2 is now active' });
    assert.equal(sign(body, Buffer.from('k')), `sha256=${createHmac('sha256', 'k').update(body).digest('hex')}`);
    assert.deepEqual([1, 2, 3, 4, 12].map((n) => retryDelayMs(n)), [1000, 2000, 4000, 8000, 300_000]);
  });
});

describe('alert rules', () => {
  test('the built-in rules are created, and the HTTP ones report that they have no data', async () => {
    const names = ['builtin-node-not-ready', 'builtin-node-disk-pressure', 'builtin-node-memory-pressure', 'builtin-deploy-failure-rate', 'builtin-certificate-expiring', 'builtin-backup-failed', 'builtin-backup-stale', 'builtin-http-error-rate', 'builtin-http-latency-p95'];
    const rules = await waitFor('built-in rules', async () => {
      const list = (await p.client.list<AlertRule>(`${API}/alertrules`)).items;
      return names.every((n) => list.some((r) => r.metadata.name === n)) ? list : undefined;
    }, 20_000);
    const notReady = rules.find((r) => r.metadata.name === 'builtin-node-not-ready')!;
    assert.deepEqual(notReady.spec, { type: 'NodeNotReady', for: '0s', severity: 'critical', disabled: false });
    assert.equal(rules.find((r) => r.metadata.name === 'builtin-node-disk-pressure')!.spec?.threshold, 0.85);
    assert.equal(rules.find((r) => r.metadata.name === 'builtin-deploy-failure-rate')!.spec?.window, '1h');
    const http = await waitFor('http rule status', async () => {
      const r = await p.client.get<AlertRule>(`${API}/alertrules/builtin-http-error-rate`);
      return r.status?.message ? r : undefined;
    });
    assert.match(http.status!.message!, /^no data/);
  });

  test('a node whose sshd stops goes NotReady: its Alert goes Pending, then Firing, then Resolved when sshd is back', async () => {
    await waitFor('node2 Ready', async () => (await p.client.get(`${API}/nodes/node2`)).status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'), 30_000);
    await p.client.patch(`${API}/alertrules/builtin-node-not-ready`, { spec: { for: '1s' } });
    const name = 'builtin-node-not-ready.node.node2';
    const watch: Recorder = record(p.client, `${API}/alerts`);
    try {
      await node2.stopSshd();
      const firing = await waitAlert(name, 'Firing');
      const states = watch.events.filter((e) => e.object.metadata?.name === name).map((e) => e.object.status?.state).filter(Boolean);
      assert.equal(states[0], 'Pending', `first state Pending (states: ${states.join(',')})`);
      assert.ok(Date.parse(firing.status!.firedAt!) - Date.parse(firing.status!.since!) >= 1000, 'fires only after `for`');
      assert.equal(firing.spec?.severity, 'critical');
      assert.deepEqual(firing.spec?.subject, { kind: 'Node', name: 'node2' });
      assert.deepEqual(firing.status?.labels, { rule: 'builtin-node-not-ready', type: 'NodeNotReady', severity: 'critical', kind: 'Node', name: 'node2' });
      assert.match(firing.status?.message ?? '', /Node node2 is NotReady \(ConnectionFailed\)/);

      const [event] = await waitFor('AlertFiring event', async () => {
        const list = await eventsAbout('Alert', name, 'AlertFiring');
        return list.length ? list : undefined;
      });
      assert.equal(event!.type, 'Warning');
      const metrics = await (await fetch(`${manager.url}/metrics`)).text();
      assert.match(metrics, /slipway_alerts_firing\{rule="builtin-node-not-ready"\} 1/);
      const delivery = await waitFor('alert.firing delivered', () => deliveriesOf(main, 'alert.firing', (r) => r.body.object.name === name)[0]);
      assertSigned(delivery);
      assert.deepEqual(delivery.body.object, { kind: 'Alert', namespace: null, name });
      assert.equal(delivery.body.reason, 'AlertFiring');
      assert.equal(delivery.body.alert?.rule, 'builtin-node-not-ready');
      assert.equal(delivery.body.alert?.severity, 'critical');

      await node2.startSshd();
      const resolved = await waitAlert(name, 'Resolved', 30_000);
      assert.ok(resolved.status?.resolvedAt);
      assert.equal(resolved.status?.firedAt, firing.status?.firedAt, 'firedAt is kept');
      const [resolvedEvent] = await waitFor('AlertResolved event', async () => {
        const list = await eventsAbout('Alert', name, 'AlertResolved');
        return list.length ? list : undefined;
      });
      assert.equal(resolvedEvent!.type, 'Normal');
      const resolvedDelivery = await waitFor('alert.resolved delivered', () => deliveriesOf(main, 'alert.resolved', (r) => r.body.object.name === name)[0]);
      assertSigned(resolvedDelivery);
      assert.notEqual(resolvedDelivery.body.id, delivery.body.id);
      assert.match(await (await fetch(`${manager.url}/metrics`)).text(), /slipway_alerts_firing\{rule="builtin-node-not-ready"\} 0/);
    } finally {
      watch.stop();
      await node2.startSshd().catch(() => {});
    }
  });
});

/** Receives the namespaced `flaky` Webhook's deliveries (500 twice, then 200). */
let retrying: Receiver;

describe('backup alerts and webhook delivery', () => {
  let hanging: Receiver;
  let deadUrl: string;

  test('a failed Backup fires BackupFailed; a namespaced webhook gets it signed after two 500s with one idempotency key, unhindered by dead endpoints', async () => {
    retrying = await startReceiver((n) => (n < 2 ? 500 : 200));
    hanging = await startReceiver(() => 200, true);
    deadUrl = `http://127.0.0.1:${await freePort()}/nothing-listens`;
    await createWebhook(NS, 'dead', deadUrl, ['alert.firing']);
    await createWebhook(NS, 'hanging', hanging.url, ['alert.firing'], { timeoutSeconds: 4 });
    await createWebhook(NS, 'flaky', retrying.url, ['alert.firing', 'alert.resolved']);

    await p.client.create(nsPath(NS, 'backups'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Backup', metadata: { name: 'db-1' }, spec: { policy: 'db' } });
    const t0 = Date.now();
    await p.client.patch(nsPath(NS, 'backups', 'db-1') + '/status', { status: { phase: 'Failed', startTime: new Date(t0 - 5000).toISOString(), completionTime: new Date(t0).toISOString(), error: 'mysqldump: Access denied for user backup' } });
    const name = `builtin-backup-failed.backuppolicy.${NS}.db`;
    const firing = await waitAlert(name, 'Firing');
    assert.equal(firing.status?.value, 1);
    assert.deepEqual(firing.spec?.subject, { kind: 'BackupPolicy', namespace: NS, name: 'db' });
    assert.match(firing.status?.message ?? '', /1 consecutive backup of policy alerting\/db failed; newest db-1: mysqldump: Access denied/);
    const firedAt = Date.parse(firing.status!.firedAt!);

    // Three attempts of one delivery: 500, 500 (1 s later), 200 (2 s after that).
    const attempts = await waitFor('three attempts', () => (retrying.requests.length >= 3 ? retrying.requests.slice(0, 3) : undefined), 20_000);
    for (const a of attempts) assertSigned(a);
    assert.equal(new Set(attempts.map((a) => a.headers['x-slipway-delivery'])).size, 1, 'the same idempotency key on every attempt');
    assert.equal(new Set(attempts.map((a) => a.raw)).size, 1, 'the same body on every attempt');
    assert.deepEqual(attempts.map((a) => a.headers['x-slipway-attempt']), ['1', '2', '3']);
    assert.equal(attempts[0]!.body.type, 'alert.firing');
    assert.deepEqual(attempts[0]!.body.object, { kind: 'Alert', namespace: null, name });
    assert.ok(attempts[0]!.at - firedAt < 2500, `first attempt ${attempts[0]!.at - firedAt} ms after firing: neither the dead nor the hanging endpoint delays it`);
    assert.ok(attempts[1]!.at - attempts[0]!.at >= 900, 'backoff 1 s');
    assert.ok(attempts[2]!.at - attempts[1]!.at >= 1900, 'backoff 2 s');

    const flaky = await waitFor('flaky delivered', async () => {
      const w = await getWebhook(NS, 'flaky');
      return w.status?.delivered === 1 ? w : undefined;
    });
    assert.equal(flaky.status?.lastDelivery?.attempts, 3);
    assert.equal(flaky.status?.lastDelivery?.code, 200);
    assert.equal(flaky.status?.lastDelivery?.result, 'Delivered');
    assert.equal(flaky.status?.lastDelivery?.id, attempts[0]!.body.id);
    assert.equal(flaky.status?.pendingDeliveries, 0);
    assert.match(flaky.status?.lastError ?? '', /answered 500: receiver says no .*attempt 2 of 8/);
    assert.equal(flaky.status?.conditions?.find((c) => c.type === 'Healthy')?.status, 'True');

    const dead = await waitFor('dead endpoint error recorded', async () => {
      const w = await getWebhook(NS, 'dead');
      return w.status?.lastError ? w : undefined;
    });
    assert.match(dead.status!.lastError!, /ECONNREFUSED/);
    assert.equal(dead.status?.conditions?.find((c) => c.type === 'Healthy')?.reason, 'DeliveryFailed');
    assert.equal(dead.status?.pendingDeliveries, 1, 'kept for retry');
    assert.ok((dead.status?.pending?.[0]?.attempts ?? 0) >= 1);
    assert.ok(Date.parse(dead.status!.pending![0]!.nextAttemptTime!) > Date.parse(dead.status!.lastErrorTime!), 'next attempt scheduled later');

    const hung = await waitFor('hanging endpoint timed out', async () => {
      const w = await getWebhook(NS, 'hanging');
      return w.status?.lastError ? w : undefined;
    }, 15_000);
    assert.match(hung.status!.lastError!, /no answer within 4s/);
    assert.equal(hanging.requests.length >= 1, true);

    // The cluster-wide webhook got it too (it subscribes to alert.firing), exactly once.
    await waitFor('everything webhook got the backup alert', () => deliveriesOf(main, 'alert.firing', (r) => r.body.object.name === name).length === 1);
  });

  test('a newer successful Backup resolves the alert', async () => {
    await p.client.create(nsPath(NS, 'backups'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Backup', metadata: { name: 'db-2' }, spec: { policy: 'db' } });
    await p.client.patch(nsPath(NS, 'backups', 'db-2') + '/status', { status: { phase: 'Succeeded', completionTime: new Date(Date.now() + 1000).toISOString(), verified: true } });
    const name = `builtin-backup-failed.backuppolicy.${NS}.db`;
    await waitAlert(name, 'Resolved');
    const resolved = await waitFor('flaky got alert.resolved', () => deliveriesOf(retrying, 'alert.resolved')[0]);
    assertSigned(resolved);
    assert.equal(resolved.body.object.name, name);
    assert.equal(resolved.body.alert?.state, 'Resolved');
  });

  test('a BackupPolicy the backup controller finds Stale fires BackupStale', async () => {
    // Suspended, so it never runs: three days on the managers' clock without a success make it stale.
    await p.client.create(nsPath(NS, 'backuppolicies'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'BackupPolicy', metadata: { name: 'nightly' }, spec: { target: { type: 'etcd', etcd: { endpoints: ['http://127.0.0.1:1'] } }, schedule: '0 3 * * *', location: 'offsite', suspend: true } });
    clockSkewMs = 3 * 86_400_000;
    try {
      const alert = await waitAlert(`builtin-backup-stale.backuppolicy.${NS}.nightly`, 'Firing');
      assert.match(alert.status?.message ?? '', /stale: no successful backup since the policy was created/);
    } finally {
      clockSkewMs = 0;
    }
    await waitAlert(`builtin-backup-stale.backuppolicy.${NS}.nightly`, 'Resolved');
  });
});

describe('rollout notifications', () => {
  test('a rollout sends release.started and release.completed; a failed one release.failed and raises the deploy failure rate', async () => {
    await p.client.create(nsPath(NS, 'services'), service('web', { env: [{ name: 'APP_VERSION', value: 'v1' }] }));
    await p.client.create(nsPath(NS_FAIL, 'services'), service('bad', { env: [{ name: 'HEALTH', value: 'fail' }] }));
    await waitFor('web active', async () => (await getSvc(NS, 'web')).status?.activeRelease === 'web-1', 60_000);
    const started = await waitFor('release.started', () => deliveriesOf(main, 'release.started', (r) => r.body.object.name === 'web-1')[0]);
    assertSigned(started);
    assert.deepEqual(started.body.object, { kind: 'Release', namespace: NS, name: 'web-1' });
    assert.equal(started.body.reason, 'RolloutStarted');
    const completed = await waitFor('release.completed', () => deliveriesOf(main, 'release.completed', (r) => r.body.object.name === 'web')[0]);
    assertSigned(completed);
    assert.deepEqual(completed.body.object, { kind: 'Service', namespace: NS, name: 'web' });
    assert.match(completed.body.message, /web-1 is now active/);
    assert.ok(started.at <= completed.at);

    const failed = await waitFor('release.failed', () => deliveriesOf(main, 'release.failed', (r) => r.body.object.name === 'bad')[0], 60_000);
    assertSigned(failed);
    assert.deepEqual(failed.body.object, { kind: 'Service', namespace: NS_FAIL, name: 'bad' });
    assert.match(failed.body.message, /bad-1 failed \(HealthCheckFailed\)/);
    const rate = await waitAlert(`builtin-deploy-failure-rate.namespace.${NS_FAIL}`, 'Firing');
    assert.equal(rate.status?.value, 1);
    assert.deepEqual(rate.spec?.subject, { kind: 'Namespace', name: NS_FAIL });
    assert.equal(await getAlert(`builtin-deploy-failure-rate.namespace.${NS}`), undefined, 'no alert where every release succeeded');
  });
});

describe('at least once', () => {
  test('a delivery still failing when the manager stops is made by the next manager, with the same id and body', async () => {
    const durable = await startReceiver(() => 503);
    await createWebhook('slipway-system', 'durable', durable.url, ['release.started']);
    await p.client.patch(nsPath(NS, 'services', 'web'), { spec: { env: [{ name: 'APP_VERSION', value: 'v2' }] } });
    const first = await waitFor('release.started attempted', () => durable.requests[0], 30_000);
    assertSigned(first);
    assert.equal(first.body.type, 'release.started');
    if (first.body.object.name !== 'web-2') {
      const evs = (await p.client.list<any>(nsPath(NS, 'events'))).items.filter((e) => e.reason === 'RolloutStarted');
      const svc = await getSvc(NS, 'web');
      console.error('DIAG', JSON.stringify({ first: first.body, hook: (await getWebhook('slipway-system', 'durable')).metadata, evs: evs.map((e) => ({ n: e.involvedObject.name, c: e.count, f: e.firstTimestamp, l: e.lastTimestamp, rv: e.metadata.resourceVersion })), active: svc.status?.activeRelease }));
    }
    assert.deepEqual(first.body.object, { kind: 'Release', namespace: NS, name: 'web-2' });
    await waitFor('failure recorded', async () => ((await getWebhook('slipway-system', 'durable')).status?.pending?.[0]?.attempts ?? 0) >= 1);

    await manager.stop();
    const seenWhileDown = durable.requests.length;
    durable.respond = () => 200;
    manager = await startManager(p.api, { alertIntervalMs: ALERT_INTERVAL_MS, clock });
    const hook = await waitFor('delivered by the new manager', async () => {
      const w = await getWebhook('slipway-system', 'durable');
      return w.status?.delivered === 1 ? w : undefined;
    }, 30_000);
    const last = durable.requests.at(-1)!;
    assert.ok(durable.requests.length > seenWhileDown);
    assert.equal(last.headers['x-slipway-delivery'], first.headers['x-slipway-delivery'], 'same idempotency key after the restart');
    assert.equal(last.raw, first.raw);
    assert.equal(hook.status?.lastDelivery?.code, 200);
    assert.equal(hook.status?.lastDelivery?.attempts, Number(last.headers['x-slipway-attempt']));
    assert.equal(hook.status?.pendingDeliveries, 0);
    // Nothing older was delivered again: the cursor survived the restart.
    assert.deepEqual([...new Set(durable.requests.map((r) => r.body.id))], [first.body.id]);
    await waitFor('web-2 active', async () => (await getSvc(NS, 'web')).status?.activeRelease === 'web-2', 60_000);
  });

  test('a namespaced webhook only receives the alerts about its own namespace', () => {
    const subjects = new Set(retrying.requests.map((r) => `${r.body.alert?.subject?.kind}/${r.body.alert?.subject?.namespace}`));
    assert.deepEqual([...subjects], [`BackupPolicy/${NS}`], 'no Node alerts, no alerts of other namespaces');
  });
});
