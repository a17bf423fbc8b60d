// CustomResourceDefinitions as a kind: applying a CRD serves a new kind at once (no restart),
// with its schema enforced and its discovery entry; invalid CRDs are refused field by field;
// deleting a CRD deletes its objects and stops serving it.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiRequestError } from '../src/client/api-client.js';
import { createNamespace, startApi, type TestApi } from './helpers/apiserver.js';

let api: TestApi;
const CRDS = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

before(async () => {
  api = await startApi();
  await createNamespace(api.client, 'crd-test');
});
after(async () => {
  await api?.stop();
});

function widgetCrd(extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'widgets.example.com' },
    spec: {
      group: 'example.com',
      scope: 'Namespaced',
      names: { plural: 'widgets', singular: 'widget', kind: 'Widget', shortNames: ['wd'] },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [{ name: 'Size', type: 'integer', jsonPath: '.spec.size' }],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: {
                spec: {
                  type: 'object',
                  required: ['size'],
                  properties: {
                    size: { type: 'integer', minimum: 1, description: 'How big.' },
                    color: { type: 'string', enum: ['red', 'blue'], default: 'red' },
                  },
                },
                status: { type: 'object', properties: { ready: { type: 'boolean' } } },
              },
            },
          },
        },
      ],
      ...extra,
    },
  };
}

const widgets = '/apis/example.com/v1/namespaces/crd-test/widgets';

test('a new CRD is served immediately, with its schema, defaults and discovery', async () => {
  await assert.rejects(api.client.list(widgets), (err: ApiRequestError) => err.code === 404);
  const crd = await api.client.create(CRDS, widgetCrd());
  assert.equal(crd.status.conditions.find((c: any) => c.type === 'Established').status, 'True');
  const created = await api.client.create(widgets, { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w1' }, spec: { size: 3 } });
  assert.equal(created.spec.color, 'red');
  await assert.rejects(
    api.client.create(widgets, { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w2' }, spec: { size: 0, color: 'green' } }),
    (err: ApiRequestError) => {
      const fields = err.status!.details!.causes!.map((c) => c.field).sort();
      assert.deepEqual(fields, ['spec.color', 'spec.size']);
      return err.code === 422;
    },
  );
  const discovery = (await api.client.request('GET', '/apis/example.com/v1')).body;
  const entry = discovery.resources.find((r: any) => r.name === 'widgets');
  assert.deepEqual(entry.shortNames, ['wd']);
  assert.equal(entry.namespaced, true);
  assert.ok(discovery.resources.some((r: any) => r.name === 'widgets/status'));
  const groups = (await api.client.request('GET', '/apis')).body.groups.map((g: any) => g.name);
  assert.ok(groups.includes('example.com'));
});

test('a second API server on the same etcd serves the new kind too, without restart', async () => {
  const other = await import('./helpers/apiserver.js').then((m) => m.startApi({ etcd: api.etcd }));
  try {
    const list = await other.client.list(widgets);
    assert.deepEqual(list.items.map((i) => i.metadata.name), ['w1']);
  } finally {
    await other.stop();
  }
});

test('updating the CRD schema takes effect for new writes', async () => {
  const current = await api.client.get(`${CRDS}/widgets.example.com`);
  const schema = current.spec.versions[0].schema.openAPIV3Schema;
  schema.properties.spec.properties.color.enum = ['red', 'blue', 'green'];
  await api.client.replace(`${CRDS}/widgets.example.com`, current);
  const green = await api.client.create(widgets, { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w3' }, spec: { size: 1, color: 'green' } });
  assert.equal(green.spec.color, 'green');
});

test('invalid CRDs are refused with the offending fields named', async () => {
  const bad = widgetCrd({ scope: 'Galactic', names: { plural: 'Gadgets', kind: 'gadget' } });
  bad.metadata.name = 'gadgets.example.com';
  await assert.rejects(api.client.create(CRDS, bad), (err: ApiRequestError) => {
    const fields = err.status!.details!.causes!.map((c) => c.field);
    assert.ok(fields.includes('spec.scope'), JSON.stringify(fields));
    assert.ok(fields.includes('spec.names.plural'), JSON.stringify(fields));
    assert.ok(fields.includes('spec.names.kind'), JSON.stringify(fields));
    return err.code === 422;
  });
  const unstructural = widgetCrd();
  unstructural.metadata.name = 'things.example.com';
  unstructural.spec.names = { plural: 'things', singular: 'thing', kind: 'Thing', shortNames: [] };
  (unstructural.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties as any).size = { description: 'no type' };
  await assert.rejects(api.client.create(CRDS, unstructural), (err: ApiRequestError) => {
    assert.ok(err.status!.details!.causes!.some((c) => c.field === 'spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].type'), JSON.stringify(err.status));
    return err.code === 422;
  });
  const clash = widgetCrd();
  clash.metadata.name = 'gizmos.example.com';
  clash.spec.names = { plural: 'gizmos', singular: 'gizmo', kind: 'Widget', shortNames: [] };
  await assert.rejects(api.client.create(CRDS, clash), (err: ApiRequestError) => err.code === 422 && /already served/.test(err.message));
});

test('deleting a CRD deletes its objects and stops serving the kind', async () => {
  // A finalizer on one widget holds the CRD in Terminating, so creation can be seen refused.
  await api.client.patch(`${widgets}/w1`, { metadata: { finalizers: ['example.com/hold'] } });
  const res = await api.client.delete(`${CRDS}/widgets.example.com`);
  assert.equal(res.status, 202);
  await assert.rejects(
    api.client.create(widgets, { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'late' }, spec: { size: 1 } }),
    (err: ApiRequestError) => err.code === 405 && /terminating/.test(err.message),
  );
  await api.client.patch(`${widgets}/w1`, { metadata: { finalizers: [] } });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await api.client.get(`${CRDS}/widgets.example.com`);
    } catch (err) {
      if (err instanceof ApiRequestError && err.code === 404) break;
      throw err;
    }
    assert.ok(Date.now() < deadline, 'CRD still present');
    await new Promise((r) => setTimeout(r, 50));
  }
  await assert.rejects(api.client.list(widgets), (err: ApiRequestError) => err.code === 404);
  const keys = await api.server.store.count('/registry/example.com/widgets/');
  assert.equal(keys, 0, 'no widget is left in etcd');
});
