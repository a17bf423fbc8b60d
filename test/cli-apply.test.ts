// slipctl apply, create, replace and diff, end to end: the CLI as a subprocess against a real
// API server on a real etcd.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LAST_APPLIED_ANNOTATION } from '../src/api/types.js';
import { CHECKOUT, createNamespace, startApi, svcPath, type TestApi } from './helpers/apiserver.js';
import { createCli, type Cli } from './helpers/cli.js';

const MANIFESTS = resolve(CHECKOUT, 'manifests');
const CRDS = resolve(CHECKOUT, 'crds');
const WEB = svcPath('shop-prod', 'web');

let api: TestApi;
let cli: Cli;
let work: string;

before(async () => {
  api = await startApi();
  cli = createCli(api.url, { token: api.adminToken });
  work = mkdtempSync(join(tmpdir(), 'slipctl-apply-'));
});
after(async () => {
  cli?.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
  await api?.stop();
});

const lines = (text: string) => text.trim().split('\n');

describe('apply of manifests/', () => {
  test('creates every object, then reports all unchanged', async () => {
    const first = await cli.run(['apply', '-f', MANIFESTS]);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(lines(first.stdout), [
      'namespace.slipway.dev/shop-prod created',
      'node.slipway.dev/local created',
      'secret.slipway.dev/shop-env created',
      'secret.slipway.dev/shop-db created',
      'service.slipway.dev/web created',
      'domain.slipway.dev/acme-shop created',
      'backuppolicy.slipway.dev/shop-db created',
      'backuplocation.slipway.dev/local created',
      'backuppolicy.slipway.dev/slipway-etcd created',
    ]);
    const web = await api.client.get(WEB);
    const recorded = JSON.parse(web.metadata.annotations![LAST_APPLIED_ANNOTATION]!);
    assert.equal(recorded.spec.replicas, 2);
    assert.equal(recorded.metadata.annotations, undefined, 'the record does not contain itself');
    assert.equal(recorded.status, undefined);

    const second = await cli.run(['apply', '-f', MANIFESTS]);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(lines(second.stdout), lines(first.stdout).map((l) => l.replace(/created$/, 'unchanged')));
    assert.equal((await api.client.get(WEB)).metadata.resourceVersion, web.metadata.resourceVersion, 'nothing was written');
  });

  test('an edited file: configured, removed fields deleted, server fields, status and others\' fields kept', async () => {
    const before = await api.client.get(WEB);
    const status = { observedGeneration: 1, readyReplicas: 2, conditions: [{ type: 'Available', status: 'True', reason: 'Ready', message: 'ok', lastTransitionTime: '2024-01-01T00:00:00Z' }] };
    await api.client.request('PUT', `${WEB}/status`, { body: { ...before, status } });
    await api.client.patch(WEB, { metadata: { labels: { 'added-by': 'someone-else' } } });

    const dir = join(work, 'edited');
    cpSync(MANIFESTS, dir, { recursive: true });
    const file = join(dir, '20-service.yaml');
    const text = readFileSync(file, 'utf8');
    assert.match(text, /replicas: 2/);
    assert.match(text, /cpus: 0.5/);
    writeFileSync(file, text.replace('replicas: 2', 'replicas: 3').replace(/\n\s+cpus: 0.5/, ''));

    const diff = await cli.run(['diff', '-f', dir]);
    assert.equal(diff.code, 1, diff.stderr);
    assert.match(diff.stdout, /^--- a\/slipway\.dev\.v1alpha1\.Service\.shop-prod\.web$/m);
    assert.match(diff.stdout, /^\+\+\+ b\/slipway\.dev\.v1alpha1\.Service\.shop-prod\.web$/m);
    assert.match(diff.stdout, /^- {2}replicas: 2$/m);
    assert.match(diff.stdout, /^\+ {2}replicas: 3$/m);
    assert.match(diff.stdout, /^- {4}cpus: 0\.5$/m);
    assert.doesNotMatch(diff.stdout, /resourceVersion|last-applied/);
    assert.equal((await api.client.get(WEB)).spec.replicas, 2, 'diff changed nothing');

    const applied = await cli.run(['apply', '-f', dir]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /^service\.slipway\.dev\/web configured$/m);
    assert.match(applied.stdout, /^domain\.slipway\.dev\/acme-shop unchanged$/m);
    const after = await api.client.get(WEB);
    assert.equal(after.spec.replicas, 3);
    assert.equal(after.spec.resources.cpus, undefined, 'the field removed from the file is gone');
    assert.equal(after.spec.resources.memory, '256Mi');
    assert.deepEqual(after.status, status, 'status is kept');
    assert.equal(after.metadata.uid, before.metadata.uid);
    assert.equal(after.metadata.creationTimestamp, before.metadata.creationTimestamp);
    assert.equal(after.metadata.labels!['added-by'], 'someone-else', 'a field set by someone else is kept');
    assert.equal(after.metadata.generation, before.metadata.generation! + 1);

    const again = await cli.run(['diff', '-f', dir]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(again.stdout, '');
  });

  test('diff of an object that does not exist yet shows it as added', async () => {
    const file = join(work, 'new-svc.yaml');
    writeFileSync(file, 'apiVersion: slipway.dev/v1alpha1\nkind: Service\nmetadata:\n  name: fresh\n  namespace: shop-prod\nspec:\n  image: busybox:1\n');
    const res = await cli.run(['diff', '-f', file]);
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stdout, /^\+ {2}image: busybox:1$/m);
    await assert.rejects(api.client.get(svcPath('shop-prod', 'fresh')), /not found/, 'the dry run stored nothing');
  });
});

test('apply from stdin, with -n for manifests without a namespace; a conflicting -n is an error', async () => {
  await createNamespace(api.client, 'stdin-ns');
  const doc = '---\n# comment-only document is skipped\n---\napiVersion: slipway.dev/v1alpha1\nkind: Service\nmetadata:\n  name: piped\nspec:\n  image: busybox:1\n';
  const res = await cli.run(['apply', '-f', '-', '-n', 'stdin-ns'], { stdin: doc });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout, 'service.slipway.dev/piped created\n');
  assert.equal((await api.client.get(svcPath('stdin-ns', 'piped'))).spec.image, 'busybox:1');

  const conflict = await cli.run(['apply', '-f', '-', '--namespace=other'], { stdin: doc.replace('name: piped', 'name: piped\n  namespace: stdin-ns') });
  assert.equal(conflict.code, 1);
  assert.match(conflict.stderr, /the namespace from the provided object "stdin-ns" does not match the namespace "other"/);
});

test('apply of a new CRD and an object of its kind in one invocation (object listed first)', async () => {
  const file = join(work, 'gadgets.yaml');
  writeFileSync(
    file,
    `apiVersion: test.example/v1
kind: Gadget
metadata:
  name: g1
  namespace: default
spec:
  size: 3
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.test.example
spec:
  group: test.example
  names: {plural: gadgets, singular: gadget, kind: Gadget, shortNames: [gdg]}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer, minimum: 1}
`,
  );
  const res = await cli.run(['apply', '-f', file]);
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(lines(res.stdout), ['customresourcedefinition.apiextensions.k8s.io/gadgets.test.example created', 'gadget.test.example/g1 created']);
  const got = await cli.run(['get', 'gdg', 'g1', '-o', 'jsonpath={.spec.size}']);
  assert.equal(got.stdout, '3');
});

test('apply -f crds/ -f manifests/ together works (bundled CRDs unchanged or configured)', async () => {
  const res = await cli.run(['apply', '-f', CRDS, '-f', MANIFESTS, '--dry-run=server']);
  assert.equal(res.code, 0, res.stderr);
  const out = lines(res.stdout);
  assert.ok(out[0]!.startsWith('customresourcedefinition.apiextensions.k8s.io/'), out[0]);
  assert.ok(out.every((l) => l.endsWith('(server dry run)')));
});

test('a bad manifest: 422 with every field path on stderr, exit 1', async () => {
  const file = join(work, 'bad.yaml');
  writeFileSync(file, 'apiVersion: slipway.dev/v1alpha1\nkind: Service\nmetadata:\n  name: bad\n  namespace: shop-prod\nspec:\n  image: busybox:1\n  replicas: -1\n  port: 70000\n');
  const res = await cli.run(['apply', '-f', file]);
  assert.equal(res.code, 1);
  assert.equal(res.stdout, '');
  assert.match(res.stderr, /^Error from server \(Invalid\): error when creating ".*bad\.yaml": Service\.slipway\.dev "bad" is invalid: /);
  assert.match(res.stderr, /spec\.replicas: Invalid value: -1/);
  assert.match(res.stderr, /spec\.port: /);
  assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack trace');
});

test('a YAML syntax error names the file and the document', async () => {
  const file = join(work, 'broken.yaml');
  writeFileSync(file, 'apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\nkind: [unclosed\n');
  const res = await cli.run(['apply', '-f', file]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /^error: error parsing .*broken\.yaml \(document 2\): /);
});

test('create fails for an existing object; replace PUTs; replace --force re-creates', async () => {
  const file = join(work, 'replace.yaml');
  const doc = (image: string) => `apiVersion: slipway.dev/v1alpha1\nkind: Service\nmetadata:\n  name: repl\n  namespace: shop-prod\nspec:\n  image: ${image}\n`;
  writeFileSync(file, doc('busybox:1'));
  const created = await cli.run(['create', '-f', file]);
  assert.equal(created.stdout, 'service.slipway.dev/repl created\n', created.stderr);
  const again = await cli.run(['create', '-f', file]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /Error from server \(AlreadyExists\): error when creating ".*": services\.slipway\.dev "repl" already exists/);

  writeFileSync(file, doc('busybox:2'));
  const replaced = await cli.run(['replace', '-f', file]);
  assert.equal(replaced.stdout, 'service.slipway.dev/repl replaced\n', replaced.stderr);
  const live = await api.client.get(svcPath('shop-prod', 'repl'));
  assert.equal(live.spec.image, 'busybox:2');

  const forced = await cli.run(['replace', '--force', '-f', file]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(forced.stdout, 'service.slipway.dev "repl" deleted\nservice.slipway.dev/repl replaced\n');
  assert.notEqual((await api.client.get(svcPath('shop-prod', 'repl'))).metadata.uid, live.metadata.uid);
});
