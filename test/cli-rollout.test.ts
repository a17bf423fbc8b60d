// slipctl rollout (status, history, undo, restart), cordon, uncordon, drain, logs and exec, end
// to end against a real API server. The test plays the controllers: it creates Releases and Nodes
// and writes their status (and the Services') through the status subresource, and a small real
// HTTP server registered in the Lease stands in for the controller manager behind logs and exec.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse } from 'yaml';
import { ApiRequestError } from '../src/client/api-client.js';
import type { KubeObject } from '../src/api/types.js';
import { createNamespace, NS_PATH, service, startApi, svcPath, type TestApi } from './helpers/apiserver.js';
import { createCli, whileWatching, type Cli } from './helpers/cli.js';

const NS = 'roll';
const RELEASES = `${NS_PATH}/${NS}/releases`;
const NODES = '/apis/slipway.dev/v1alpha1/nodes';

let api: TestApi;
let cli: Cli;
let manager: Server;
let seen: { method: string; url: string; body: string }[] = [];
let handle: (req: IncomingMessage, res: ServerResponse, body: string) => void = (_req, res) => res.end();

before(async () => {
  api = await startApi();
  cli = createCli(api.url, { namespace: NS, token: api.adminToken });
  await createNamespace(api.client, NS);
  await createNamespace(api.client, 'slipway-system').catch((err) => {
    if (!(err instanceof ApiRequestError && err.code === 409)) throw err; // the server may create it
  });
  manager = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, body });
      handle(req, res, body);
    });
  });
  await new Promise<void>((resolve) => manager.listen(0, '127.0.0.1', resolve));
  await api.client.create(`${NS_PATH}/slipway-system/leases`, {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Lease',
    metadata: { name: 'slipway-controller-manager' },
    spec: { holderIdentity: 'test-manager', holderAddress: `http://127.0.0.1:${(manager.address() as AddressInfo).port}` },
  });
});
after(async () => {
  cli?.cleanup();
  manager?.closeAllConnections();
  await new Promise((r) => manager?.close(r));
  await api?.stop();
});

async function setStatus(path: string, status: Record<string, unknown>): Promise<void> {
  const live = await api.client.get(path);
  await api.client.request('PUT', `${path}/status`, { body: { ...live, status } });
}

const setServiceStatus = (name: string, status: Record<string, unknown>) => setStatus(svcPath(NS, name), status);
const setReleaseStatus = (name: string, status: Record<string, unknown>) => setStatus(`${RELEASES}/${name}`, status);

async function createRelease(svc: string, revision: number, template: Record<string, unknown>, status: Record<string, unknown>, cause = 'SpecChange'): Promise<KubeObject> {
  const name = `${svc}-${revision}`;
  await api.client.create(RELEASES, {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Release',
    metadata: { name, labels: { 'slipway.dev/service': svc } },
    spec: { service: svc, revision, image: template.image, template, cause },
  });
  await setReleaseStatus(name, status);
  return api.client.get(`${RELEASES}/${name}`);
}

const progressing = (reason: string, status = reason === 'RolloutFailed' ? 'False' : 'True') => ({
  type: 'Progressing',
  status,
  reason,
  lastTransitionTime: new Date().toISOString(),
});

const step = (name: string, result: string, extra: Record<string, unknown> = {}) => ({ name, result, startTime: new Date().toISOString(), ...extra });

test('rollout status prints each step once as it changes and exits 0 when the rollout completes', async () => {
  await api.client.create(svcPath(NS), service('web', { replicas: 2 }));
  await createRelease('web', 1, { image: 'busybox:1' }, { phase: 'Completed', steps: [step('Artifact', 'Succeeded')] });
  await createRelease('web', 2, { image: 'busybox:2' }, { phase: 'CandidateStarted', steps: [step('Artifact', 'Succeeded'), step('StartCandidate', 'Running')] });
  await setServiceStatus('web', { observedGeneration: 0, activeRelease: 'web-1', candidateRelease: 'web-2', conditions: [progressing('RolloutInProgress')] });

  const proc = await whileWatching(api, 'releases', () => cli.start(['rollout', 'status', 'service/web']));
  await proc.waitForOutput(/StartCandidate Running\n/);
  const steps = [step('Artifact', 'Succeeded'), step('StartCandidate', 'Succeeded'), step('HealthCheck', 'Running')];
  await setReleaseStatus('web-2', { phase: 'HealthValidating', readyReplicas: 1, steps });
  await proc.waitForOutput(/HealthCheck Running \(1\/2 replicas healthy\)\n/);
  await setReleaseStatus('web-2', { phase: 'HealthValidating', readyReplicas: 2, steps });
  await proc.waitForOutput(/\(2\/2 replicas healthy\)\n/);
  const done = [step('Artifact', 'Succeeded'), step('StartCandidate', 'Succeeded'), step('HealthCheck', 'Succeeded'), step('ShiftTraffic', 'Succeeded')];
  await setReleaseStatus('web-2', { phase: 'Completed', readyReplicas: 2, steps: done });
  await proc.waitForOutput(/ShiftTraffic Succeeded\n/);
  assert.equal(proc.child.exitCode, null, 'still waiting: the Service has not finished the rollout');
  await setServiceStatus('web', { observedGeneration: 1, activeRelease: 'web-2', previousRelease: 'web-1', currentRevision: 2, conditions: [progressing('RolloutComplete')] });
  const res = await proc.exited();
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(res.stdout.trimEnd().split('\n'), [
    'Release web-2: Artifact Succeeded',
    'Release web-2: StartCandidate Running',
    'Release web-2: StartCandidate Succeeded',
    'Release web-2: HealthCheck Running (1/2 replicas healthy)',
    'Release web-2: HealthCheck Running (2/2 replicas healthy)',
    'Release web-2: HealthCheck Succeeded (2/2 replicas healthy)',
    'Release web-2: ShiftTraffic Succeeded',
    'service "web" successfully rolled out (release web-2)',
  ]);

  const again = await cli.run(['rollout', 'status', 'svc/web']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, 'service "web" successfully rolled out (release web-2)\n', 'a finished rollout is reported at once');
});

test('rollout status exits 1 with the Release\'s reason when the rollout failed', async () => {
  await api.client.create(svcPath(NS), service('bad', { replicas: 2 }));
  await createRelease('bad', 1, { image: 'busybox:1' }, { phase: 'Completed' });
  await createRelease('bad', 2, { image: 'busybox:broken' }, {
    phase: 'Failed',
    reason: 'HealthCheckTimeout',
    message: '1/2 replicas healthy after 5m',
    readyReplicas: 1,
    steps: [step('Artifact', 'Succeeded'), step('StartCandidate', 'Succeeded'), step('HealthCheck', 'Failed', { message: 'GET /health: 503' })],
  });
  await setServiceStatus('bad', {
    observedGeneration: 1,
    currentRevision: 2,
    activeRelease: 'bad-1',
    conditions: [progressing('RolloutFailed'), { type: 'Degraded', status: 'True', reason: 'RolloutFailed', message: 'release bad-2 failed' }],
  });
  const res = await cli.run(['rollout', 'status', 'bad']);
  assert.equal(res.code, 1);
  assert.match(res.stdout, /Release bad-2: HealthCheck Failed \(1\/2 replicas healthy\): GET \/health: 503\n$/);
  assert.equal(res.stderr, 'error: service "bad" rollout failed (release bad-2): HealthCheckTimeout: 1/2 replicas healthy after 5m\n');
});

test('rollout status: --watch=false reports once, --timeout ends a rollout that does not finish', async () => {
  await api.client.create(svcPath(NS), service('slow'));
  await createRelease('slow', 1, { image: 'busybox:1' }, { phase: 'Migrating', steps: [step('Artifact', 'Succeeded'), step('Migrate', 'Running', { attempts: 2 })] });
  await setServiceStatus('slow', { observedGeneration: 1, candidateRelease: 'slow-1', conditions: [progressing('RolloutInProgress')] });
  const once = await cli.run(['rollout', 'status', 'service/slow', '--watch=false']);
  assert.equal(once.code, 0, once.stderr);
  assert.equal(once.stdout, 'Release slow-1: Artifact Succeeded\nRelease slow-1: Migrate Running (attempt 2)\n');
  const timed = await cli.run(['rollout', 'status', 'service/slow', '--timeout', '1s']);
  assert.equal(timed.code, 1);
  assert.equal(timed.stderr, 'error: timed out waiting for service "slow" to roll out (release slow-1 at step Migrate)\n');
  const wrong = await cli.run(['rollout', 'status', 'release/slow-1']);
  assert.equal(wrong.code, 1);
  assert.equal(wrong.stderr, 'error: rollout status works with services only (got releases "slow-1")\n');
  const misplaced = await cli.run(['rollout', 'history', 'slow', '--timeout', '1s']);
  assert.match(misplaced.stderr, /^error: --timeout is not a flag of rollout history/);
});

test('rollout history lists releases by revision with the active one marked; --revision prints a template', async () => {
  const res = await cli.run(['rollout', 'history', 'service/web']);
  assert.equal(res.code, 0, res.stderr);
  const lines = res.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^REVISION {3}RELEASE {3}PHASE {7}ACTIVE {3}CAUSE {8}IMAGE {7}AGE$/);
  assert.match(lines[1]!, /^1 {10}web-1 {5}Completed {12}SpecChange {3}busybox:1 {3}\d+s$/);
  assert.match(lines[2]!, /^2 {10}web-2 {5}Completed {3}\* {8}SpecChange {3}busybox:2 {3}\d+s$/);
  assert.equal(lines.length, 3);
  const one = await cli.run(['rollout', 'history', 'web', '--revision', '1']);
  assert.equal(one.code, 0, one.stderr);
  assert.deepEqual(parse(one.stdout), { image: 'busybox:1' });
  const missing = await cli.run(['rollout', 'history', 'web', '--revision', '9']);
  assert.equal(missing.stderr, 'error: revision 9 not found for service "web" (revisions: 1, 2)\n');
  const none = await cli.run(['rollout', 'history', 'svc/nope']);
  assert.equal(none.code, 1);
  assert.equal(none.stderr, 'Error from server (NotFound): services.slipway.dev "nope" not found\n');
});

test('rollout undo writes the previous template back, removing fields it did not have', async () => {
  const current = {
    image: 'shop:2',
    replicas: 3,
    command: ['node', 'server.js'],
    env: [{ name: 'MODE', value: 'new' }, { name: 'EXTRA', value: 'x' }],
    healthCheck: { path: '/healthz' },
    edge: { hosts: ['shop.example.test'] },
  };
  await api.client.create(svcPath(NS), service('shop', current));
  await createRelease('shop', 1, { image: 'shop:1', port: 8080, env: [{ name: 'MODE', value: 'old' }] }, { phase: 'Completed' });
  const live = await api.client.get(svcPath(NS, 'shop'));
  await createRelease('shop', 2, { image: 'shop:2', command: live.spec.command, env: live.spec.env, healthCheck: live.spec.healthCheck, port: 3000 }, { phase: 'Completed' });
  await createRelease('shop', 3, { image: 'shop:3' }, { phase: 'Failed', reason: 'MigrationFailed', message: 'exit code 1' });

  const none = await cli.run(['rollout', 'undo', 'service/shop']);
  assert.equal(none.code, 1);
  assert.equal(none.stderr, 'error: no previous release to roll back to for service "shop"\n');

  await setServiceStatus('shop', { observedGeneration: 1, activeRelease: 'shop-2', previousRelease: 'shop-1' });
  const res = await cli.run(['rollout', 'undo', 'service/shop']);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout, 'service/shop rolled back to revision 1\n');
  const after = await api.client.get(svcPath(NS, 'shop'));
  assert.equal(after.metadata.annotations?.['slipway.dev/change-cause'], 'rollback to revision 1');
  assert.equal(after.spec.image, 'shop:1');
  assert.equal(after.spec.port, 8080);
  assert.deepEqual(after.spec.env, [{ name: 'MODE', value: 'old' }]);
  assert.equal(after.spec.command, undefined, 'command was not part of revision 1');
  assert.equal(after.spec.healthCheck, undefined, 'healthCheck was not part of revision 1');
  assert.equal(after.spec.replicas, 3, 'fields outside the template stay');
  assert.deepEqual(after.spec.edge, live.spec.edge);

  const failed = await cli.run(['rollout', 'undo', 'service/shop', '--to-revision', '3']);
  assert.equal(failed.code, 1);
  assert.equal(failed.stderr, 'error: release shop-3 (revision 3) failed (MigrationFailed: exit code 1); use --force to roll back to it anyway\n');
  const forced = await cli.run(['rollout', 'undo', 'service/shop', '--to-revision', '3', '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal((await api.client.get(svcPath(NS, 'shop'))).spec.image, 'shop:3');

  const back = await cli.run(['rollout', 'undo', 'shop', '--to-revision=2']);
  assert.equal(back.stdout, 'service/shop rolled back to revision 2\n');
  const two = await api.client.get(svcPath(NS, 'shop'));
  assert.deepEqual(two.spec.healthCheck, live.spec.healthCheck);
  assert.deepEqual(two.spec.command, ['node', 'server.js']);
  assert.equal(two.metadata.annotations?.['slipway.dev/change-cause'], 'rollback to revision 2');
  const same = await cli.run(['rollout', 'undo', 'shop', '--to-revision=2']);
  assert.equal(same.stdout, 'service/shop skipped rollback (current template already matches revision 2)\n');
  const unknown = await cli.run(['rollout', 'undo', 'shop', '--to-revision=7']);
  assert.equal(unknown.stderr, 'error: revision 7 not found for service "shop" (revisions: 1, 2, 3)\n');
});

test('rollout restart sets slipway.dev/restartedAt to now', async () => {
  const before = Date.now();
  const res = await cli.run(['rollout', 'restart', 'service/web']);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout, 'service/web restarted\n');
  const at = (await api.client.get(svcPath(NS, 'web'))).metadata.annotations?.['slipway.dev/restartedAt'];
  assert.match(at ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assert.ok(Date.parse(at!) >= before - 1000 && Date.parse(at!) <= Date.now() + 1000);
});

async function createNode(name: string, runningContainers: number): Promise<void> {
  await api.client.create(NODES, { apiVersion: 'slipway.dev/v1alpha1', kind: 'Node', metadata: { name }, spec: { docker: { socket: '/var/run/docker.sock' } } });
  await setStatus(`${NODES}/${name}`, { runningContainers });
}

test('cordon and uncordon set spec.unschedulable; uncordon withdraws a drain request', async () => {
  await createNode('n1', 0);
  const c = await cli.run(['cordon', 'n1']);
  assert.equal(c.stdout, 'node/n1 cordoned\n');
  assert.equal((await api.client.get(`${NODES}/n1`)).spec.unschedulable, true);
  assert.equal((await cli.run(['cordon', 'node/n1'])).stdout, 'node/n1 already cordoned\n');
  await api.client.patch(`${NODES}/n1`, { metadata: { annotations: { 'slipway.dev/drain': '2024-01-01T00:00:00Z' } } });
  const u = await cli.run(['uncordon', 'n1']);
  assert.equal(u.stdout, 'node/n1 uncordoned\n');
  const node = await api.client.get(`${NODES}/n1`);
  assert.equal(node.spec.unschedulable, false);
  assert.equal(node.metadata.annotations?.['slipway.dev/drain'], undefined);
  assert.equal((await cli.run(['uncordon', 'n1'])).stdout, 'node/n1 already uncordoned\n');
  const missing = await cli.run(['cordon', 'nope']);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'Error from server (NotFound): nodes.slipway.dev "nope" not found\n');
});

test('drain cordons, requests the drain and waits until the node is empty', async () => {
  await createNode('n2', 1);
  await api.client.create(svcPath(NS), service('api'));
  const endpoint = (node: string) => ({ node, containerName: `${NS}.api-1-0`, host: '10.0.0.2', port: 31000, ready: true });
  await setServiceStatus('api', { observedGeneration: 1, activeRelease: 'api-1', endpoints: [endpoint('n2')] });

  const proc = await whileWatching(api, 'nodes', () => cli.start(['drain', 'n2', '--timeout', '30s']));
  await proc.waitForOutput(/waiting for node\/n2 to drain: 1 replica container running; endpoints on it: roll\/api \(1\)\n/);
  const node = await api.client.get(`${NODES}/n2`);
  assert.equal(node.spec.unschedulable, true);
  assert.match(node.metadata.annotations?.['slipway.dev/drain'] ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  // The controller starts the replacement elsewhere, then removes the old replica.
  await setServiceStatus('api', { observedGeneration: 1, activeRelease: 'api-1', endpoints: [endpoint('n2'), endpoint('n3')] });
  await setStatus(`${NODES}/n2`, { runningContainers: 0 });
  await proc.waitForOutput(/0 replica containers running; endpoints on it: roll\/api \(1\)\n/);
  assert.equal(proc.child.exitCode, null, 'an endpoint still names the node');
  await setServiceStatus('api', { observedGeneration: 1, activeRelease: 'api-1', endpoints: [endpoint('n3')] });
  const res = await proc.exited();
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^node\/n2 cordoned\n/);
  assert.match(res.stdout, /\nnode\/n2 drained\n$/);
});

test('drain exits 1 with what is left when the timeout passes', async () => {
  await createNode('n4', 2);
  const res = await cli.run(['drain', 'n4', '--timeout', '1s']);
  assert.equal(res.code, 1);
  assert.equal(res.stderr, 'error: timed out after 1s waiting for node/n4 to drain: 2 replica containers running\n');
});

test('logs streams the log endpoint through the API server', async () => {
  seen = [];
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('[roll.web-2-0] one\n[roll.web-2-1] two\n');
  };
  const res = await cli.run(['logs', 'svc/web', '--tail', '2', '--timestamps', '--release', 'web-2']);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout, '[roll.web-2-0] one\n[roll.web-2-1] two\n');
  assert.deepEqual(seen.map((s) => s.url), ['/v1/namespaces/roll/services/web/log?tailLines=2&release=web-2&timestamps=true']);

  let finish!: () => void;
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.write('[roll.web-2-0] first\n');
    finish = () => res.end('[roll.web-2-0] last\n');
  };
  const follow = cli.start(['logs', '-f', 'web']);
  await follow.waitForOutput(/first\n/);
  assert.equal(follow.child.exitCode, null, 'still following');
  finish();
  const done = await follow.exited();
  assert.equal(done.code, 0, done.stderr);
  assert.equal(done.stdout, '[roll.web-2-0] first\n[roll.web-2-0] last\n');
  assert.equal(seen.at(-1)!.url, '/v1/namespaces/roll/services/web/log?follow=true');

  const missing = await cli.run(['logs', 'nope']);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'Error from server (NotFound): services.slipway.dev "nope" not found\n');
});

test('exec writes the command\'s output to stdout and stderr and exits with its exit code', async () => {
  seen = [];
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const line = (o: unknown) => `${JSON.stringify(o)}\n`;
    res.write(line({ stream: 'stdout', data: Buffer.from('hello ').toString('base64') }));
    res.write(line({ stream: 'stderr', data: Buffer.from('oops\n').toString('base64') }));
    res.write(line({ stream: 'stdout', data: Buffer.from('wörld\n').toString('base64') }));
    res.end(line({ exitCode: 7 }));
  };
  const res = await cli.run(['exec', 'service/web', '--replica', '1', '--', 'sh', '-c', 'echo hello; exit 7']);
  assert.equal(res.code, 7, res.stderr);
  assert.equal(res.stdout, 'hello wörld\n');
  assert.equal(res.stderr, 'oops\n');
  assert.equal(seen[0]!.url, '/v1/namespaces/roll/services/web/exec');
  assert.deepEqual(JSON.parse(seen[0]!.body), { command: ['sh', '-c', 'echo hello; exit 7'], replica: 1 });

  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.end(`${JSON.stringify({ exitCode: 0 })}\n`);
  };
  assert.equal((await cli.run(['exec', 'web', '--', 'true'])).code, 0);
  const noCommand = await cli.run(['exec', 'web']);
  assert.equal(noCommand.code, 1);
  assert.match(noCommand.stderr, /^error: exec needs a command after --/);
  const badReplica = await cli.run(['exec', 'web', '--replica', '-2', '--', 'ls']);
  assert.equal(badReplica.stderr, 'error: invalid value "-2" for --replica: expected an integer >= 0\n');
});

test('help lists the new commands with their usage', async () => {
  const res = await cli.run(['help']);
  for (const name of ['rollout', 'logs', 'exec', 'cordon', 'uncordon', 'drain']) assert.match(res.stdout, new RegExp(`\\n  ${name} +\\S`));
  const rollout = await cli.run(['rollout', '--help']);
  assert.match(rollout.stdout, /Usage:\n {2}slipctl rollout status\|history\|undo\|restart service\/NAME/);
});
