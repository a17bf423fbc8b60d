// Secrets in use: a Service reading a Secret rolls out again when the Secret changes (cause
// SecretChange, the Release recording a hash of the versions it used), unless it opted out; and
// the debug logs of the API server and the controller manager through all of it never contain a
// secret value, a token, or their base64.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import type { Release, Service } from '../src/api/generated/crd-types.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { createNamespace, startApi, type TestApi } from './helpers/apiserver.js';
import { buildTestImage, DOCKER_SOCKET, ensureDockerd, TEST_IMAGE } from './helpers/docker.js';
import { nsPath, registerNode, startManager, waitFor } from './helpers/platform.js';

const NS = 'secret-use';
const VALUES = ['leak-canary-7f3a9c', 'leak-canary-second-41b2'];
let api: TestApi;
let manager: ControllerManager;
let logs = '';
const docker = new Docker({ socketPath: DOCKER_SOCKET });

const capture = () => {
  const stream = new PassThrough();
  stream.on('data', (d: Buffer) => (logs += d.toString()));
  return stream;
};
const getSvc = (name: string) => api.client.get<Service>(nsPath(NS, 'services', name));
const service = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'Service',
  metadata: { name },
  spec: { image: TEST_IMAGE, replicas: 1, envFrom: [{ secretRef: { name: 'app-secrets' } }], healthCheck: { path: '/cgi-bin/health', intervalSeconds: 1 }, ...extra },
});
const active = (name: string, release: string) =>
  waitFor(`${name} active=${release}`, async () => {
    const s = await getSvc(name);
    return s.status?.activeRelease === release && s.status.readyReplicas === 1 && !s.status.candidateRelease ? s : undefined;
  }, 60_000);

before(async () => {
  await ensureDockerd();
  await buildTestImage(docker);
  api = await startApi({ logLevel: 'debug', logDestination: capture() });
  manager = await startManager(api, { logLevel: 'debug', logDestination: capture() });
  await registerNode(api.client, 'local');
  await createNamespace(api.client, NS);
  await api.client.create(nsPath(NS, 'secrets'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'app-secrets' }, stringData: { API_KEY: VALUES[0] } });
});

after(async () => {
  for (const s of (await api.client.list(nsPath(NS, 'services'))).items) await api.client.delete(nsPath(NS, 'services', s.metadata.name!));
  await waitFor('containers removed', async () => (await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })).length === 0, 20_000).catch(() => {});
  await manager?.stop();
  await api?.stop();
});

test('a changed Secret rolls out the Services that read it; one that opted out stays', async () => {
  await api.client.create(nsPath(NS, 'services'), service('reader'));
  await api.client.create(nsPath(NS, 'services'), service('steady', { rolloutOnSecretChange: false }));
  await active('reader', 'reader-1');
  await active('steady', 'steady-1');
  const first = await api.client.get<Release>(nsPath(NS, 'releases', 'reader-1'));
  assert.match(first.spec?.secretsHash ?? '', /^[a-f0-9]{32}$/);

  await api.client.patch(nsPath(NS, 'secrets', 'app-secrets'), { stringData: { API_KEY: VALUES[1] } });
  await active('reader', 'reader-2');
  const second = await api.client.get<Release>(nsPath(NS, 'releases', 'reader-2'));
  assert.equal(second.spec?.cause, 'SecretChange');
  assert.notEqual(second.spec?.secretsHash, first.spec?.secretsHash);
  const [c] = await docker.listContainers({ filters: { label: [`slipway.dev/namespace=${NS}`, 'slipway.dev/release=reader-2'] } });
  assert.ok((await docker.getContainer(c!.Id).inspect()).Config.Env.includes(`API_KEY=${VALUES[1]}`));

  await new Promise((r) => setTimeout(r, 1500));
  assert.equal((await getSvc('steady')).status?.activeRelease, 'steady-1', 'rolloutOnSecretChange: false keeps the release');
  assert.equal((await api.client.list(nsPath(NS, 'releases'), { labelSelector: 'slipway.dev/service=steady' })).items.length, 1);
});

test('the debug logs of the API server and the controller manager contain no secret value or token', () => {
  assert.ok(logs.length > 10_000, `captured ${logs.length} bytes of logs`);
  assert.match(logs, /"component":"apiserver"/);
  assert.match(logs, /"component":"controller-manager"/);
  const forbidden = [...VALUES, ...VALUES.map((v) => Buffer.from(v).toString('base64')), api.adminToken, api.managerToken];
  for (const value of forbidden) assert.equal(logs.includes(value), false, `the logs contain ${value.slice(0, 12)}…`);
});
