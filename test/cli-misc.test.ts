// slipctl describe, delete, wait, patch, explain, api-resources, version, help and the
// configuration rules, end to end against a real API server.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNamespace, service, startApi, svcPath, type TestApi } from './helpers/apiserver.js';
import { createCli, whileWatching, type Cli } from './helpers/cli.js';

let api: TestApi;
let cli: Cli;
let work: string;
const NS = 'misc';

before(async () => {
  api = await startApi();
  cli = createCli(api.url, { token: api.adminToken });
  work = mkdtempSync(join(tmpdir(), 'slipctl-misc-'));
  await createNamespace(api.client, NS);
});
after(async () => {
  cli?.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
  await api?.stop();
});

async function setStatus(name: string, status: Record<string, unknown>): Promise<void> {
  const live = await api.client.get(svcPath(NS, name));
  await api.client.request('PUT', `${svcPath(NS, name)}/status`, { body: { ...live, status } });
}

test('describe shows metadata, spec, a Conditions table and the object\'s Events', async () => {
  const created = await api.client.create(svcPath(NS), {
    ...service('shown', { replicas: 2 }, { app: 'shop' }),
    metadata: { name: 'shown', labels: { app: 'shop' }, annotations: { note: 'hello', 'slipway.dev/last-applied-configuration': '{}' } },
  });
  await setStatus('shown', {
    observedGeneration: 1,
    conditions: [{ type: 'Available', status: 'False', reason: 'NoReplicas', message: 'no replica is ready', lastTransitionTime: '2024-01-01T00:00:00Z' }],
  });
  const now = Date.now();
  const event = (name: string, uid: string, extra: Record<string, unknown>) => ({
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Event',
    metadata: { name },
    involvedObject: { apiVersion: 'slipway.dev/v1alpha1', kind: 'Service', name: 'shown', namespace: NS, uid },
    ...extra,
  });
  const events = `/apis/slipway.dev/v1alpha1/namespaces/${NS}/events`;
  await api.client.create(events, event('shown.1', created.metadata.uid!, {
    type: 'Warning', reason: 'HealthCheckFailed', message: 'GET /health: 503', count: 3, source: { component: 'release-controller' },
    firstTimestamp: new Date(now - 600_000).toISOString(), lastTimestamp: new Date(now - 60_000).toISOString(),
  }));
  await api.client.create(events, event('shown.2', created.metadata.uid!, {
    type: 'Normal', reason: 'Created', message: 'created release shown-1', reportingComponent: 'service-controller',
    firstTimestamp: new Date(now - 900_000).toISOString(), lastTimestamp: new Date(now - 900_000).toISOString(),
  }));
  await api.client.create(events, event('other.1', 'another-uid', { reason: 'Unrelated', message: 'about another object' }));

  const res = await cli.run(['describe', 'svc', 'shown', '-n', NS]);
  assert.equal(res.code, 0, res.stderr);
  const out = res.stdout;
  assert.match(out, /^Name: {9}shown\nNamespace: {4}misc\nLabels: {7}app=shop\nAnnotations: {2}note: hello\n/);
  assert.doesNotMatch(out, /last-applied/);
  assert.match(out, /\nSpec:\n {2}image: busybox:1\n {2}replicas: 2\n/);
  assert.match(out, /\nConditions:\n {2}Type\s+Status\s+Reason\s+Message\s+Last Transition\n {2}----/);
  assert.match(out, /\n {2}Available\s+False\s+NoReplicas\s+no replica is ready\s+2024-01-01T00:00:00Z\n/);
  const eventsBlock = out.slice(out.indexOf('\nEvents:\n'));
  assert.match(eventsBlock, /Type\s+Reason\s+Age\s+From\s+Message/);
  const created1 = eventsBlock.indexOf('Created');
  const failed = eventsBlock.indexOf('HealthCheckFailed');
  assert.ok(created1 > 0 && failed > created1, 'sorted by lastTimestamp, oldest first');
  // 60 s old when written; a loaded machine may take a few seconds to get to describe.
  assert.match(eventsBlock, /Warning\s+HealthCheckFailed\s+6\ds \(x3 over 10m\)\s+release-controller\s+GET \/health: 503/);
  assert.match(eventsBlock, /Normal\s+Created\s+15m\s+service-controller\s+created release shown-1/);
  assert.doesNotMatch(eventsBlock, /Unrelated/);

  const none = await cli.run(['describe', 'ns', NS]);
  assert.match(none.stdout, /\nEvents: +<none>\n$/);
});

test('delete by name, by -l and by -f', async () => {
  for (const n of ['d1', 'd2', 'd3']) await api.client.create(svcPath(NS), service(n, {}, { group: n === 'd1' ? 'solo' : 'pair' }));
  const [byName, byLabel] = await Promise.all([cli.run(['delete', 'svc', 'd1', '-n', NS]), cli.run(['delete', 'services', '-l', 'group=pair', '-n', NS])]);
  assert.equal(byName.code, 0, byName.stderr);
  assert.equal(byName.stdout, 'service.slipway.dev "d1" deleted\n');
  assert.equal(byLabel.stdout, 'service.slipway.dev "d2" deleted\nservice.slipway.dev "d3" deleted\n');
  const left = await api.client.list(`/apis/slipway.dev/v1alpha1/namespaces/${NS}/services`, { labelSelector: 'group' });
  assert.equal(left.items.length, 0);

  const file = join(work, 'del.yaml');
  writeFileSync(file, `apiVersion: slipway.dev/v1alpha1\nkind: Service\nmetadata:\n  name: d4\n  namespace: ${NS}\nspec:\n  image: busybox:1\n`);
  assert.equal((await cli.run(['apply', '-f', file])).code, 0);
  const byFile = await cli.run(['delete', '-f', file]);
  assert.equal(byFile.stdout, 'service.slipway.dev "d4" deleted\n', byFile.stderr);

  const missing = await cli.run(['delete', 'svc', 'd4', '-n', NS]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'Error from server (NotFound): services.slipway.dev "d4" not found\n');
  const ignored = await cli.run(['delete', 'svc', 'd4', '-n', NS, '--ignore-not-found']);
  assert.equal(ignored.code, 0);
});

test('delete --wait waits for finalizers to be removed; --wait=false does not', async () => {
  await api.client.create(svcPath(NS), { ...service('held'), metadata: { name: 'held', finalizers: ['test.slipway.dev/hold'] } });
  const del = await whileWatching(api, 'services', () => cli.start(['delete', 'svc', 'held', '-n', NS, '--timeout=20s']));
  assert.match(await del.waitForOutput(/deleted/), /^service\.slipway\.dev "held" deleted\n$/);
  assert.equal(del.child.exitCode, null, 'still waiting while the finalizer is there');
  const live = await api.client.get(svcPath(NS, 'held'));
  assert.ok(live.metadata.deletionTimestamp);
  await api.client.patch(svcPath(NS, 'held'), { metadata: { finalizers: null } });
  const exit = await del.exited();
  assert.equal(exit.code, 0, exit.stderr);
  assert.equal(exit.stdout, 'service.slipway.dev "held" deleted\n');
  await assert.rejects(api.client.get(svcPath(NS, 'held')), /not found/);

  await api.client.create(svcPath(NS), { ...service('held2'), metadata: { name: 'held2', finalizers: ['test.slipway.dev/hold'] } });
  const quick = await cli.run(['delete', 'svc/held2', '-n', NS, '--wait=false']);
  assert.equal(quick.code, 0, quick.stderr);
  const timeout = await cli.run(['delete', 'svc/held2', '-n', NS, '--timeout=500ms']);
  assert.equal(timeout.code, 1);
  assert.match(timeout.stderr, /timed out waiting for the condition on services\.slipway\.dev\/held2 \(still has finalizers: test\.slipway\.dev\/hold\)/);
  await api.client.patch(svcPath(NS, 'held2'), { metadata: { finalizers: null } });
});

test('wait for a condition set through /status; timeout exits 1; --for=delete and jsonpath', async () => {
  await api.client.create(svcPath(NS), service('waited'));
  const waiting = await whileWatching(api, 'services', () => cli.start(['wait', 'svc/waited', '-n', NS, '--for=condition=Ready', '--timeout=20s']));
  await setStatus('waited', { conditions: [{ type: 'Ready', status: 'True', reason: 'Test', message: 'ready', lastTransitionTime: new Date().toISOString() }] });
  const done = await waiting.exited();
  assert.equal(done.code, 0, done.stderr);
  assert.equal(done.stdout, 'service.slipway.dev/waited condition met\n');

  const [timedOut, jp, missing] = await Promise.all([
    cli.run(['wait', 'service', 'waited', '-n', NS, '--for=condition=Ready=False', '--timeout=300ms']),
    cli.run(['wait', 'svc/waited', '-n', NS, '--for=jsonpath={.status.conditions[?(@.type=="Ready")].reason}=Test', '--timeout=2s']),
    cli.run(['wait', 'svc/never', '-n', NS, '--for=condition=Ready', '--timeout=1s']),
  ]);
  assert.equal(timedOut.code, 1);
  assert.equal(timedOut.stderr, 'error: timed out waiting for the condition on services.slipway.dev/waited\n');

  assert.equal(jp.code, 0, jp.stderr);

  const gone = await whileWatching(api, 'services', () => cli.start(['wait', 'svc/waited', '-n', NS, '--for=delete', '--timeout=20s']));
  await api.client.delete(svcPath(NS, 'waited'));
  assert.equal((await gone.exited()).stdout, 'service.slipway.dev/waited condition met\n');

  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /NotFound/);
});

test('patch with a merge patch and a JSON patch', async () => {
  await api.client.create(svcPath(NS), service('patched'));
  const merge = await cli.run(['patch', 'svc', 'patched', '-n', NS, '-p', '{"spec":{"replicas":3}}']);
  assert.equal(merge.stdout, 'service.slipway.dev/patched patched\n', merge.stderr);
  const same = await cli.run(['patch', 'svc/patched', '-n', NS, '-p', 'spec: {replicas: 3}']);
  assert.equal(same.stdout, 'service.slipway.dev/patched patched (no change)\n', same.stderr);
  const json = await cli.run(['patch', 'svc/patched', '-n', NS, '--type', 'json', '-p', '[{"op":"replace","path":"/spec/replicas","value":1}]']);
  assert.equal(json.code, 0, json.stderr);
  assert.equal((await api.client.get(svcPath(NS, 'patched'))).spec.replicas, 1);
  const invalid = await cli.run(['patch', 'svc/patched', '-n', NS, '-p', '{"spec":{"replicas":"many"}}']);
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /^Error from server \(Invalid\): .*spec\.replicas/);
});

test('explain service.spec.healthCheck, --recursive, and an unknown field', async () => {
  const [res, scalar, tree, bad] = await Promise.all([
    cli.run(['explain', 'service.spec.healthCheck']),
    cli.run(['explain', 'svc.spec.healthCheck.path']),
    cli.run(['explain', 'svc.spec', '--recursive']),
    cli.run(['explain', 'svc.spec.healthCheck.nope']),
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^GROUP: {6}slipway\.dev\nKIND: {7}Service\nVERSION: {4}v1alpha1\n\nFIELD: healthCheck <Object>\n\nDESCRIPTION:\n {4}HTTP health check that gates traffic/);
  assert.match(res.stdout, /\nFIELDS:\n {2}failureThreshold\t<integer>\n {4}Consecutive failed probes/);
  assert.match(res.stdout, /\n {2}path\t<string>\n {4}HTTP path requested, starting with "\/"\.\n/);

  assert.match(scalar.stdout, /FIELD: path <string>/);
  assert.match(scalar.stdout, /Default: "\/health"/);
  assert.doesNotMatch(scalar.stdout, /FIELDS:/);

  assert.match(tree.stdout, /\n {2}healthCheck\t<Object>\n {4}failureThreshold\t<integer>\n/);
  assert.match(tree.stdout, /\n {2}env\t<\[\]Object>\n {4}name\t<string> -required-\n/);

  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, 'error: field "spec.healthCheck.nope" does not exist in Service\n');
});

test('api-resources, version and help', async () => {
  const [res, names, version, help, getHelp] = await Promise.all([
    cli.run(['api-resources']),
    cli.run(['api-resources', '-o', 'name']),
    cli.run(['version']),
    cli.run(['help']),
    cli.run(['get', '--help']),
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^NAME\s+SHORTNAMES\s+APIVERSION\s+NAMESPACED\s+KIND\n/);
  assert.match(res.stdout, /\nservices\s+svc\s+slipway\.dev\/v1alpha1\s+true\s+Service\n/);
  assert.match(names.stdout, /^services\.slipway\.dev$/m);

  assert.match(version.stdout, /^Client Version: v\d+\.\d+\.\d+\nServer Version: v\d+\.\d+\.\d+\n$/);

  assert.equal(help.code, 0);
  for (const c of ['apply', 'get', 'describe', 'delete', 'diff', 'wait', 'explain', 'api-resources']) assert.match(help.stdout, new RegExp(`\\n  ${c} `));
  assert.match(getHelp.stdout, /^Show objects/);
  assert.match(getHelp.stdout, /--field-selector=SELECTOR/);
});

test('usage and configuration errors', async () => {
  const missingConfig = join(work, 'missing-config');
  const [unknownCmd, unknownFlag, noConfig, viaFlag, viaEnv, unreachable] = await Promise.all([
    cli.run(['frobnicate']),
    cli.run(['get', 'svc', '--colour']),
    cli.run(['get', 'svc'], { env: { SLIPWAY_CONFIG: missingConfig } }),
    cli.run(['--server', api.url, 'get', 'ns', 'default', '-o', 'name'], { env: { SLIPWAY_CONFIG: missingConfig, SLIPWAY_TOKEN: api.adminToken } }),
    cli.run(['get', 'ns', 'default', '-o', 'name'], { env: { SLIPWAY_CONFIG: missingConfig, SLIPWAY_SERVER: api.url, SLIPWAY_TOKEN: api.adminToken } }),
    cli.run(['get', 'svc', '--server', 'http://127.0.0.1:9'], { timeoutMs: 10_000 }),
  ]);
  assert.equal(unknownCmd.code, 1);
  assert.match(unknownCmd.stderr, /^error: unknown command "frobnicate" for "slipctl"/);
  assert.equal(unknownFlag.code, 1);
  assert.match(unknownFlag.stderr, /^error: unknown flag: --colour\n/);
  assert.equal(noConfig.code, 1);
  assert.match(noConfig.stderr, /^error: no Slipway API server configured .*run `make up`.*--server URL/);
  assert.equal(viaFlag.stdout, 'namespace.slipway.dev/default\n', viaFlag.stderr);
  assert.equal(viaEnv.stdout, 'namespace.slipway.dev/default\n', viaEnv.stderr);
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, /^error: cannot reach the Slipway API at http:\/\/127\.0\.0\.1:9/);
  assert.doesNotMatch(unreachable.stderr, /\n\s+at /);
});
