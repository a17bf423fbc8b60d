// The controller manager as real processes: two managers elect one leader through the Lease; the
// leader is SIGKILLed in the middle of a rollout (its migration running) and the other takes over
// and finishes it without running the migration twice. Also the operator's tools against a live
// manager: rollout status/history/undo, logs and exec through the API server, and /metrics.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Docker from 'dockerode';
import type { Lease, Release, Service } from '../src/api/generated/crd-types.js';
import { createNamespace } from './helpers/apiserver.js';
import { createCli, type Cli } from './helpers/cli.js';
import { buildTestImage, DOCKER_SOCKET, TEST_IMAGE } from './helpers/docker.js';
import { httpGet, nsPath, registerNode, spawnManager, startPlatform, waitFor, waitForEvent, type ManagerProcess, type Platform } from './helpers/platform.js';

const NS = 'managers';
let p: Platform;
let cli: Cli;
const managers: ManagerProcess[] = [];
const docker = new Docker({ socketPath: DOCKER_SOCKET });

const getSvc = (name: string) => p.client.get<Service>(nsPath(NS, 'services', name));
const lease = () => p.client.get<Lease>(nsPath('slipway-system', 'leases', 'slipway-controller-manager'));
const service = (name: string, version: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'Service',
  metadata: { name },
  spec: { image: TEST_IMAGE, replicas: 2, env: [{ name: 'APP_VERSION', value: version }], healthCheck: { path: '/cgi-bin/health', intervalSeconds: 1 }, ...spec },
});

function waitActive(name: string, release: string, timeoutMs = 60_000) {
  return waitFor(`${name} active=${release}`, async () => {
    const s = await getSvc(name);
    return s.status?.activeRelease === release && s.status.readyReplicas === s.spec?.replicas && !s.status.candidateRelease ? s : undefined;
  }, timeoutMs, 100);
}

before(async () => {
  p = await startPlatform();
  await buildTestImage(docker);
  await docker.getVolume(`${NS}-web-data`).remove().catch(() => {});
  cli = createCli(p.api.url, { token: p.api.adminToken });
  await createNamespace(p.client, NS);
  await registerNode(p.client, 'local');
});

after(async () => {
  for (const s of (await p.client.list(nsPath(NS, 'services'))).items) await p.client.delete(nsPath(NS, 'services', s.metadata.name!));
  if (!managers.some((m) => m.child.exitCode === null)) managers.push(spawnManager(p.api));
  await waitFor('containers removed', async () => (await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })).length === 0, 30_000).catch(() => {});
  await Promise.all(managers.map((m) => m.kill('SIGTERM')));
  await p?.stop();
});

describe('leader election', () => {
  test('one of two managers leads; killed mid-rollout, the other takes over and finishes', async () => {
    managers.push(spawnManager(p.api), spawnManager(p.api));
    const first = await waitFor('a leader', async () => (await lease().catch(() => undefined))?.spec?.holderIdentity, 20_000);
    const leader = managers.find((m) => first.endsWith(`-${m.child.pid}`) || first.includes(`-${m.child.pid}-`))!;
    assert.ok(leader, `leader ${first} is one of the two managers`);
    const follower = managers.find((m) => m !== leader)!;

    const migrate = { command: ['sh', '-c', 'sleep 3; echo "migrated $SLIPWAY_RELEASE" >> /data/migrations'] };
    await p.client.create(nsPath(NS, 'services'), service('web', 'v1', { volumes: [{ name: 'data', mountPath: '/data' }], migrate }));
    await waitFor('migration running', async () => {
      const r = await p.client.get<Release>(nsPath(NS, 'releases', 'web-1')).catch(() => undefined);
      return r?.status?.phase === 'Migrating';
    }, 30_000, 50);
    await leader.kill('SIGKILL');

    const s = await waitActive('web', 'web-1', 60_000);
    const next = (await lease()).spec!;
    assert.notEqual(next.holderIdentity, first);
    assert.ok(next.holderIdentity!.includes(`-${follower.child.pid}-`));
    assert.equal(next.leaseTransitions, 1);
    for (const e of s.status!.endpoints!) assert.equal((await httpGet(`http://${e.host}:${e.port}/`)).body.trim(), 'version=v1');
    const exec = await cli.run(['exec', 'service/web', '-n', NS, '--', 'cat', '/data/migrations']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout.trim(), 'migrated web-1', 'the migration ran exactly once');
  });
});

describe('operator tools against a live manager', () => {
  test('rollout status follows a rollout to success and history lists it', async () => {
    await p.client.patch(nsPath(NS, 'services', 'web'), { spec: { env: [{ name: 'APP_VERSION', value: 'v2' }] } });
    const status = await cli.run(['rollout', 'status', 'service/web', '-n', NS, '--timeout', '60s'], { timeoutMs: 70_000 });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /successfully rolled out \(release web-2\)/);
    const history = await cli.run(['rollout', 'history', 'service/web', '-n', NS]);
    assert.equal(history.code, 0, history.stderr);
    assert.match(history.stdout, /^REVISION\s+RELEASE\s+PHASE\s+ACTIVE/m);
    assert.match(history.stdout, /^1\s+web-1\s+Completed/m);
    assert.match(history.stdout, /^2\s+web-2\s+Completed\s+\*/m);
  });

  test('rollout status exits non-zero with the reason when a rollout fails', async () => {
    await p.client.patch(nsPath(NS, 'services', 'web'), { spec: { env: [{ name: 'APP_VERSION', value: 'v3' }, { name: 'HEALTH', value: 'fail' }], healthCheck: { failureThreshold: 2 } } });
    const status = await cli.run(['rollout', 'status', 'service/web', '-n', NS, '--timeout', '60s'], { timeoutMs: 70_000 });
    assert.notEqual(status.code, 0);
    assert.match(status.stderr + status.stdout, /HealthCheckFailed|health check/);
    assert.equal((await getSvc('web')).status?.activeRelease, 'web-2');
  });

  test('rollout undo returns to the previous release at once while it is warm', async () => {
    // Undo from web-2 to web-1: web-1 is still warm (kept for 10 minutes by default).
    await p.client.patch(nsPath(NS, 'services', 'web'), { spec: { env: [{ name: 'APP_VERSION', value: 'v2' }], healthCheck: { failureThreshold: 3 } } });
    await waitActive('web', 'web-2');
    const migrations = (await cli.run(['exec', 'service/web', '-n', NS, '--', 'cat', '/data/migrations'])).stdout;
    assert.match(migrations, /^migrated web-1\nmigrated web-2\n/, 'each release migrated once');
    const started = Date.now();
    const undo = await cli.run(['rollout', 'undo', 'service/web', '-n', NS, '--to-revision', '1']);
    assert.equal(undo.code, 0, undo.stderr);
    const s = await waitActive('web', 'web-1');
    const seconds = (Date.now() - started) / 1000;
    assert.ok(seconds < 10, `undo took ${seconds}s`);
    await waitForEvent(p.client, NS, 'a RolledBack naming the release', (e) => e.reason === 'RolledBack' && e.involvedObject?.name === 'web' && /to web-1/.test(e.message ?? ''));
    for (const e of s.status!.endpoints!) assert.equal((await httpGet(`http://${e.host}:${e.port}/`)).body.trim(), 'version=v1');
    const release = await p.client.get<Release>(nsPath(NS, 'releases', 'web-1'));
    assert.equal(release.status?.steps?.find((st) => st.name === 'Migrate')?.result, 'Succeeded', 'the migration is not run again');
    const exec = await cli.run(['exec', 'service/web', '-n', NS, '--', 'cat', '/data/migrations']);
    assert.equal(exec.stdout, migrations, 'rolling back to web-1 ran no migration');
  });

  test('logs merge every replica with prefixes; exec returns the exit code', async () => {
    const logs = await cli.run(['logs', 'service/web', '-n', NS, '--tail', '50']);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, new RegExp(`^\\[${NS}\\.web-1-0\\] app starting version=v1$`, 'm'));
    assert.match(logs.stdout, new RegExp(`^\\[${NS}\\.web-1-1\\] app starting version=v1$`, 'm'));
    const failing = await cli.run(['exec', 'service/web', '-n', NS, '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    assert.equal(failing.code, 7);
    assert.equal(failing.stdout.trim(), 'out');
    assert.equal(failing.stderr.trim(), 'err');
  });

  test('the manager exposes reconcile metrics', async () => {
    const holder = (await lease()).spec!.holderAddress!;
    const text = await (await fetch(`${holder}/metrics`)).text();
    assert.match(text, /slipway_controller_reconcile_total\{controller="service",result="(success|requeue)"\} \d+/);
    assert.match(text, /slipway_controller_reconcile_duration_seconds_count\{controller="node"\} \d+/);
    assert.match(text, /slipway_workqueue_depth\{controller="service"\} \d+/);
    assert.match(text, /slipway_release_outcomes_total\{result="succeeded"\} [1-9]/);
    assert.match(text, /slipway_controller_manager_leader 1/);
  });

  test('containers of a Service deleted while no manager ran are removed when one starts', async () => {
    await Promise.all(managers.map((m) => m.kill('SIGKILL')));
    const before = await docker.listContainers({ filters: { label: [`slipway.dev/namespace=${NS}`, 'slipway.dev/service=web'] } });
    assert.ok(before.length >= 2);
    await p.client.delete(nsPath(NS, 'services', 'web'));
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await docker.listContainers({ filters: { label: [`slipway.dev/namespace=${NS}`, 'slipway.dev/service=web'] } })).length, before.length, 'nothing acts without a manager');
    managers.push(spawnManager(p.api));
    await waitFor('orphaned containers removed', async () => (await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`, 'slipway.dev/service=web'] } })).length === 0, 40_000);
  });
});
