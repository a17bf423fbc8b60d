// slipctl get, end to end: printer-column tables, -o wide/json/yaml/name/jsonpath, selectors,
// -A, kind names and short names, `-w`, `--raw`, and its errors.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { createNamespace, service, startApi, svcPath, type TestApi } from './helpers/apiserver.js';
import { createCli, whileWatching, type Cli } from './helpers/cli.js';

let api: TestApi;
let cli: Cli;

before(async () => {
  api = await startApi();
  cli = createCli(api.url, { namespace: 'get-a', token: api.adminToken });
  await createNamespace(api.client, 'get-a');
  await createNamespace(api.client, 'get-b');
  await api.client.create(svcPath('get-a'), service('web', { replicas: 2, edge: { hosts: ['web.example.test'] } }, { app: 'shop', tier: 'front' }));
  await api.client.create(svcPath('get-a'), service('worker', {}, { app: 'shop', tier: 'back' }));
  await api.client.create(svcPath('get-b'), service('blog', {}, { app: 'blog' }));
  const web = await api.client.get(svcPath('get-a', 'web'));
  const conditions = [{ type: 'Available', status: 'True', reason: 'Ready', message: 'ok', lastTransitionTime: new Date().toISOString() }];
  await api.client.request('PUT', `${svcPath('get-a', 'web')}/status`, { body: { ...web, status: { readyReplicas: 2, activeRelease: 'web-1', conditions } } });
  await api.client.create('/apis/slipway.dev/v1alpha1/namespaces/get-a/domains', {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Domain',
    metadata: { name: 'shop' },
    spec: { hostname: 'shop.example.test', service: 'web' },
  });
});
after(async () => {
  cli?.cleanup();
  await api?.stop();
});

const rows = (text: string) => text.trimEnd().split('\n').map((l) => l.trim().split(/\s{2,}/));

test('a table from the CRD printer columns, in the config\'s default namespace', async () => {
  const res = await cli.run(['get', 'services']);
  assert.equal(res.code, 0, res.stderr);
  const [header, web, worker] = rows(res.stdout);
  assert.deepEqual(header, ['NAME', 'DESIRED', 'READY', 'RELEASE', 'AVAILABLE', 'AGE']);
  assert.deepEqual(web!.slice(0, 5), ['web', '2', '2', 'web-1', 'True']);
  assert.match(web![5]!, /^\d+s$/, 'date columns print as an age');
  assert.deepEqual(worker!.slice(0, 5), ['worker', '1', '<none>', '<none>', '<none>']);
  assert.match(res.stdout, /^NAME {5}DESIRED {3}READY {4}RELEASE {3}AVAILABLE {3}AGE\nweb {6}2 {9}2 {8}web-1 {5}True {8}\d+s\n/, 'columns are padded like kubectl');
});

test('plural, singular, kind and short names give the same table; -o wide adds priority columns', async () => {
  const [wide, ...outputs] = await Promise.all([
    cli.run(['get', 'svc', '-o', 'wide']),
    ...['svc', 'service', 'Service', 'services.slipway.dev'].map((k) => cli.run(['get', k, '-n', 'get-a'])),
  ]);
  for (const o of outputs) assert.equal(o.stdout.replace(/\d+s\n/g, 'AGE\n'), outputs[0]!.stdout.replace(/\d+s\n/g, 'AGE\n'));
  const [header, web] = rows(wide.stdout);
  assert.deepEqual(header, ['NAME', 'DESIRED', 'READY', 'RELEASE', 'AVAILABLE', 'PROGRESSING', 'IMAGE', 'HOSTS', 'AGE']);
  assert.equal(web![6], 'busybox:1');
  assert.equal(web![7], 'web.example.test');
});

test('-o json, yaml, name and jsonpath', async () => {
  const [one, yaml, names, jp, range] = await Promise.all([
    cli.run(['get', 'svc', 'web', '-o', 'json']),
    cli.run(['get', 'svc', '-oyaml']),
    cli.run(['get', 'svc,domains', '-o', 'name']),
    cli.run(['get', 'svc', 'web', '-o', 'jsonpath={.status.conditions[?(@.type=="Available")].status}']),
    cli.run(['get', 'svc', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.spec.replicas}{"\\n"}{end}']),
  ]);
  const obj = JSON.parse(one.stdout);
  assert.equal(obj.kind, 'Service');
  assert.equal(obj.metadata.name, 'web');
  const list = parse(yaml.stdout);
  assert.equal(list.kind, 'List');
  assert.equal(list.apiVersion, 'v1');
  assert.deepEqual(list.items.map((i: any) => i.metadata.name), ['web', 'worker']);
  assert.equal(names.stdout, 'service.slipway.dev/web\nservice.slipway.dev/worker\ndomain.slipway.dev/shop\n');
  assert.equal(jp.stdout, 'True');
  assert.equal(range.stdout, 'web=2\nworker=1\n');
});

test('-l selects by label, -A lists all namespaces with a NAMESPACE column, --show-labels', async () => {
  const [front, set, labels, fields] = await Promise.all([
    cli.run(['get', 'svc', '-l', 'tier=front', '--no-headers']),
    cli.run(['get', 'svc', '-A', '-l', 'app in (shop,blog),tier!=back']),
    cli.run(['get', 'svc', 'worker', '--show-labels']),
    cli.run(['get', 'svc', '-A', '--field-selector', 'metadata.namespace=get-b', '-o', 'name']),
  ]);
  assert.deepEqual(rows(front.stdout).map((r) => r[0]), ['web']);
  const table = rows(set.stdout);
  assert.deepEqual(table[0]!.slice(0, 2), ['NAMESPACE', 'NAME']);
  assert.deepEqual(table.slice(1).map((r) => `${r[0]}/${r[1]}`), ['get-a/web', 'get-b/blog']);
  assert.match(labels.stdout, /app=shop,tier=back\n$/);
  assert.equal(fields.stdout, 'service.slipway.dev/blog\n');
});

test('kind/name arguments and comma lists print one table per kind', async () => {
  const res = await cli.run(['get', 'svc/web', 'dom/shop']);
  assert.equal(res.code, 0, res.stderr);
  const blocks = res.stdout.split('\n\n');
  assert.equal(blocks.length, 2);
  assert.match(blocks[0]!, /^NAME\s+DESIRED/);
  assert.match(blocks[0]!, /\nservice\.slipway\.dev\/web\s+2/);
  assert.match(blocks[1]!, /^NAME\s+HOSTNAME\s+SERVICE\s+PHASE\s+AGE\n/);
  assert.match(blocks[1]!, /\ndomain\.slipway\.dev\/shop\s+shop\.example\.test\s+web/);
});

test('errors: NotFound, unknown kind, nothing found, bad output format', async () => {
  const [missing, unknown, empty, format] = await Promise.all([
    cli.run(['get', 'svc', 'nope']),
    cli.run(['get', 'gizmos']),
    cli.run(['get', 'releases']),
    cli.run(['get', 'svc', '-o', 'toml']),
  ]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stdout, '');
  assert.equal(missing.stderr, 'Error from server (NotFound): services.slipway.dev "nope" not found\n');
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stderr, 'error: the server doesn\'t have a resource type "gizmos"\n');
  assert.equal(empty.code, 0);
  assert.equal(empty.stderr, 'No resources found in get-a namespace.\n');
  assert.equal(format.code, 1);
  assert.match(format.stderr, /^error: unable to match a printer suitable for the output format "toml"/);
});

test('get -w prints the current rows, then a row for each change', async () => {
  const watch = await whileWatching(api, 'services', () => cli.start(['get', 'svc', '-w']));
  try {
    await watch.waitForOutput(/worker/);
    await api.client.patch(svcPath('get-a', 'worker'), { spec: { replicas: 4 } });
    const out = await watch.waitForOutput(/\nworker\s+4\s/);
    const table = rows(out);
    assert.equal(table[0]![0], 'NAME');
    assert.equal(table.filter((r) => r[0] === 'NAME').length, 1, 'one header');
    assert.deepEqual(table[table.length - 1]!.slice(0, 2), ['worker', '4']);
  } finally {
    await watch.stop();
  }
});

test('get --raw prints the response body', async () => {
  const res = await cli.run(['get', '--raw', '/apis/slipway.dev/v1alpha1']);
  assert.equal(res.code, 0, res.stderr);
  const body = JSON.parse(res.stdout);
  assert.equal(body.kind, 'APIResourceList');
  assert.ok(body.resources.some((r: any) => r.name === 'services' && r.shortNames.includes('svc')));
});
