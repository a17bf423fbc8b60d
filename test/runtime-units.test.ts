// The controller runtime's pure parts, compared exactly: Docker create options built from a
// release, placement, template hashing, durations and quantities, release steps, the work queue's
// one-worker-per-key and backoff rules, conditions, and health counts with fast start-up probes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBytes } from '../src/api/quantity.js';
import { setCondition } from '../src/controllers/runtime/conditions.js';
import { WorkQueue } from '../src/controllers/runtime/work-queue.js';
import { buildContainerOptions, type ContainerPlan } from '../src/controllers/service/container-spec.js';
import { HealthCounts, nextProbeMs, STARTUP_PROBE_MS } from '../src/controllers/service/health.js';
import { placeReplicas, type NodeCandidate } from '../src/controllers/service/placement.js';
import { stepsForReactivation, withStep } from '../src/controllers/service/release-status.js';
import { configHash, templateOf } from '../src/controllers/service/template.js';
import { parseDuration } from '../src/controllers/service-controller.js';

const plan: ContainerPlan = {
  cluster: 'c1',
  namespace: 'shop',
  service: 'web',
  release: 'web-3',
  configHash: 'h',
  imageId: 'sha256:' + 'a'.repeat(64),
  template: {
    image: 'hello:1',
    port: 8080,
    args: ['serve'],
    resources: { memory: '256Mi', cpus: 0.5 },
    volumes: [{ name: 'data', mountPath: '/data' }],
    security: { readOnlyRootFilesystem: true, tmpfs: [{ mountPath: '/tmp', size: '16Mi' }], runAsUser: 1000 },
    migrate: { command: ['node', 'migrate.js'] },
  },
  env: ['A=1'],
  role: 'replica',
  replica: 2,
  hostIp: '10.0.0.5',
};

test('replica container options: owner labels, hardening, limits, a published port', () => {
  assert.deepEqual(buildContainerOptions('shop.web-3-2', plan), {
    name: 'shop.web-3-2',
    Image: plan.imageId,
    Env: ['A=1', 'PORT=8080', 'SLIPWAY_SERVICE=web', 'SLIPWAY_RELEASE=web-3'],
    Labels: {
      'slipway.dev/managed-by': 'slipway',
      'slipway.dev/cluster': 'c1',
      'slipway.dev/namespace': 'shop',
      'slipway.dev/service': 'web',
      'slipway.dev/release': 'web-3',
      'slipway.dev/role': 'replica',
      'slipway.dev/config-hash': 'h',
      'slipway.dev/replica': '2',
      'slipway.dev/cpus': '0.5',
      'slipway.dev/memory-bytes': String(256 * 2 ** 20),
    },
    StopTimeout: 30,
    HostConfig: {
      Init: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      Privileged: false,
      ReadonlyRootfs: true,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
      Tmpfs: { '/tmp': `rw,noexec,nosuid,size=${16 * 2 ** 20}` },
      Binds: ['shop-web-data:/data'],
      Memory: 256 * 2 ** 20,
      NanoCpus: 500_000_000,
      RestartPolicy: { Name: 'unless-stopped' },
      PortBindings: { '8080/tcp': [{ HostIp: '10.0.0.5', HostPort: '' }] },
    },
    ExposedPorts: { '8080/tcp': {} },
    Cmd: ['serve'],
    User: '1000',
  });
});

test('migration container options: the migrate command, no restart, no port', () => {
  const options = buildContainerOptions('shop.web-3-migrate', { ...plan, role: 'migrate', replica: undefined } as ContainerPlan);
  assert.deepEqual(options.Entrypoint, ['node', 'migrate.js']);
  assert.deepEqual(options.Cmd, []);
  assert.deepEqual(options.HostConfig.RestartPolicy, { Name: 'no' });
  assert.equal(options.HostConfig.PortBindings, undefined);
  assert.equal(options.Labels['slipway.dev/role'], 'migrate');
  assert.equal(options.Labels['slipway.dev/replica'], undefined);
});

const node = (name: string, extra: Partial<NodeCandidate> = {}): NodeCandidate => ({ name, labels: {}, ready: true, unschedulable: false, allocatedCpus: 0, allocatedMemoryBytes: 0, replicasOfService: 0, ...extra });

test('placement spreads over matching, Ready, schedulable nodes with room, fewest replicas first', () => {
  const nodes = [
    node('a', { labels: { role: 'app' }, replicasOfService: 1 }),
    node('b', { labels: { role: 'app' } }),
    node('c', { labels: { role: 'app' }, ready: false }),
    node('d', { labels: { role: 'app' }, unschedulable: true }),
    node('e', { labels: { role: 'db' } }),
    node('f', { labels: { role: 'app' }, memoryBytes: 100, allocatedMemoryBytes: 60 }),
  ];
  assert.deepEqual(placeReplicas(nodes, { role: 'app' }, { cpus: 0, memoryBytes: 50 }, 4), ['b', 'a', 'b', 'a']);
  assert.deepEqual(placeReplicas(nodes, { role: 'app' }, { cpus: 0, memoryBytes: 10 }, 3), ['b', 'f', 'a'], 'f has room for a small replica');
  assert.deepEqual(placeReplicas([node('x', { cpus: 1 })], undefined, { cpus: 0.6, memoryBytes: 0 }, 3), ['x'], 'capacity runs out');
  assert.deepEqual(placeReplicas(nodes, { role: 'gpu' }, { cpus: 0, memoryBytes: 0 }, 1), []);
});

test('the config hash covers the template and restarts, not replicas or edge settings', () => {
  const svc = (spec: Record<string, unknown>) => ({ apiVersion: 'slipway.dev/v1alpha1', kind: 'Service', metadata: { name: 'web' }, spec } as any);
  const base = configHash(templateOf(svc({ image: 'a:1', env: [{ name: 'X', value: '1' }], replicas: 2 })));
  assert.equal(configHash(templateOf(svc({ replicas: 5, env: [{ name: 'X', value: '1' }], image: 'a:1', edge: { hosts: ['x.test'] } }))), base);
  assert.notEqual(configHash(templateOf(svc({ image: 'a:2', env: [{ name: 'X', value: '1' }] }))), base);
  assert.notEqual(configHash(templateOf(svc({ image: 'a:1', env: [{ name: 'X', value: '1' }] })), '2026-01-01T00:00:00Z'), base);
});

test('durations and quantities', () => {
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('500ms'), 500);
  assert.throws(() => parseDuration('10 minutes'), /invalid duration/);
  assert.equal(parseBytes('1.5Gi'), 1.5 * 2 ** 30);
  assert.equal(parseBytes('2G'), 2e9);
  assert.equal(parseBytes(1024), 1024);
  assert.throws(() => parseBytes('12 apples'), /invalid quantity/);
});

test('release steps keep their order; a release rolled out again keeps its artifact and migration only', () => {
  let steps = withStep(undefined, 'Migrate', { result: 'Succeeded' });
  steps = withStep(steps, 'Artifact', { result: 'Succeeded' });
  steps = withStep(steps, 'HealthCheck', { result: 'Running', message: '1/2' });
  assert.deepEqual(steps.map((s) => s.name), ['Artifact', 'Migrate', 'HealthCheck']);
  assert.ok(steps[0]!.endTime);
  assert.equal(steps[2]!.endTime, undefined);
  assert.deepEqual(stepsForReactivation(steps).map((s) => s.name), ['Artifact', 'Migrate']);
});

test('conditions keep their transition time while the status holds', () => {
  const first = setCondition([], { type: 'Ready', status: 'True', reason: 'A' });
  const again = setCondition([{ ...first[0]!, lastTransitionTime: '2020-01-01T00:00:00Z' }], { type: 'Ready', status: 'True', reason: 'B' });
  assert.equal(again[0]!.lastTransitionTime, '2020-01-01T00:00:00Z');
  assert.equal(again[0]!.reason, 'B');
  const flipped = setCondition(again, { type: 'Ready', status: 'False' });
  assert.notEqual(flipped[0]!.lastTransitionTime, '2020-01-01T00:00:00Z');
});

test('work queue: never two workers on one key, adds during a run run again, failures back off', async () => {
  const running = new Set<string>();
  const runs: string[] = [];
  let overlap = false;
  let failuresLeft = 2;
  const flakyStarts: number[] = [];
  const queue = new WorkQueue(
    async (key) => {
      if (running.has(key)) overlap = true;
      running.add(key);
      runs.push(key);
      if (key === 'flaky') flakyStarts.push(Date.now());
      await new Promise((r) => setTimeout(r, 20));
      running.delete(key);
      if (key === 'flaky' && failuresLeft-- > 0) throw new Error('transient');
    },
    { concurrency: 4, baseBackoffMs: 50 },
  );
  queue.add('a');
  queue.add('a');
  queue.add('b');
  queue.start();
  await new Promise((r) => setTimeout(r, 5));
  queue.add('a'); // while a runs: once more afterwards
  queue.add('a');
  queue.add('flaky');
  await new Promise((r) => setTimeout(r, 400));
  await queue.shutdown();
  assert.equal(overlap, false);
  assert.equal(runs.filter((k) => k === 'a').length, 2);
  assert.equal(runs.filter((k) => k === 'b').length, 1);
  assert.equal(runs.filter((k) => k === 'flaky').length, 3, 'retried until it succeeded');
  const [t0, t1, t2] = flakyStarts as [number, number, number];
  assert.ok(t1 - t0 >= 20 + 45, `first retry after the base backoff (${t1 - t0} ms)`);
  assert.ok(t2 - t1 >= 20 + 95, `second retry after the doubled backoff (${t2 - t1} ms)`);
});

test('health counts: a replica that never passed is probed fast, but its failures count once per interval', () => {
  const counts = new HealthCounts();
  const fail = { ok: false, detail: 'GET /health failed: connect ECONNREFUSED' };
  assert.equal(nextProbeMs(undefined, 2000), STARTUP_PROBE_MS);
  assert.equal(counts.record('c1', fail, 2000, 0).failures, 1);
  assert.equal(counts.record('c1', fail, 2000, 250).failures, 1, 'a start-up probe within the interval is not counted');
  assert.equal(counts.record('c1', fail, 2000, 1999).failures, 1);
  assert.equal(counts.record('c1', fail, 2000, 2000).failures, 2, 'one interval after the last counted failure');
  assert.equal(nextProbeMs(counts.get('c1'), 2000), STARTUP_PROBE_MS);
  const passed = counts.record('c1', { ok: true, detail: 'GET /health answered 200' }, 2000, 2100);
  assert.deepEqual([passed.successes, passed.failures, passed.passed], [1, 0, true]);
  assert.equal(nextProbeMs(passed, 2000), 2000, 'once it passed, the interval');
  // After passing, every failure counts (probes come at the interval).
  assert.equal(counts.record('c1', fail, 2000, 2200).failures, 1);
  assert.equal(counts.record('c1', fail, 2000, 2300).failures, 2);
  assert.equal(nextProbeMs(undefined, 100), 100, 'an interval shorter than the start-up cadence wins');
});
