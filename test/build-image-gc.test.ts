// Built images are collected: with revisionHistoryLimit 1, the image of a pruned Release is removed
// from the node while the images of the kept Releases stay; deleting the Service removes the rest.
// Images another installation built, and images Slipway did not build, are left alone.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import Docker from 'dockerode';
import type { Node, Release, Service } from '../src/api/generated/crd-types.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { createNamespace } from './helpers/apiserver.js';
import { buildLabelledTestImage, buildTestImage, DOCKER_SOCKET } from './helpers/docker.js';
import { appDockerfile, createAppRepo, removeBuiltImages, type TestRepo } from './helpers/git-repo.js';
import { API, httpGet, nsPath, registerNode, startManager, startPlatform, waitFor, waitForEvent, type Platform } from './helpers/platform.js';

const NS = 'image-gc';
const local = new Docker({ socketPath: DOCKER_SOCKET });
/** A built-looking image of another installation (same labels, another cluster id). */
const FOREIGN_IMAGE = 'slipway-test-app:foreign-build-1';
let p: Platform;
let manager: ControllerManager;
let repo: TestRepo;

const getSvc = (name: string) => p.client.get<Service>(nsPath(NS, 'services', name));
const exists = (ref: string) => local.getImage(ref).inspect().then(() => true, () => false);

before(async () => {
  p = await startPlatform();
  repo = await createAppRepo('v1');
  await buildTestImage(local);
  await buildLabelledTestImage(local, FOREIGN_IMAGE, { 'slipway.dev/build-key': '0000', 'slipway.dev/cluster': 'another-installation' });
  // Collect every half second, whatever the image's age.
  manager = await startManager(p.api, { imageGcIntervalMs: 500, imageGcMinAgeMs: 0 });
  await createNamespace(p.client, NS);
  await registerNode(p.client, 'local');
  await waitFor('node Ready', async () => (await p.client.get<Node>(`${API}/nodes/local`)).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'), 30_000);
});

after(async () => {
  await manager?.stop();
  for (const c of await local.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })) await local.getContainer(c.Id).remove({ force: true });
  if (repo) await removeBuiltImages(local, repo);
  await local.getImage(FOREIGN_IMAGE).remove({ force: true }).catch(() => {});
  await p?.stop();
  if (repo) await rm(repo.dir, { recursive: true, force: true });
});

/** Waits until the Service's only replica answers `version=<version>`; returns its active Release. */
async function serving(version: string): Promise<Release> {
  const svc = await waitFor(`serving ${version}`, async () => {
    const s = await getSvc('gc');
    const [e] = s.status?.endpoints ?? [];
    if (!e || s.status?.candidateRelease || (await httpGet(`http://${e.host}:${e.port}/`)).body.trim() !== `version=${version}`) return undefined;
    return s;
  }, 90_000, 200).catch(async (err) => {
    const releases = (await p.client.list<Release>(nsPath(NS, 'releases'))).items.map((r) => ({ name: r.metadata.name, status: r.status }));
    throw new Error(`${(err as Error).message}; service status: ${JSON.stringify((await getSvc('gc')).status)}; releases: ${JSON.stringify(releases)}`);
  });
  return p.client.get<Release>(nsPath(NS, 'releases', svc.status!.activeRelease!));
}

test('the image of a pruned Release is removed, kept Releases keep theirs, and deleting the Service removes the rest', async () => {
  await p.client.create(nsPath(NS, 'services'), {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Service',
    metadata: { name: 'gc' },
    spec: { build: { git: repo.dir, ref: 'main' }, replicas: 1, revisionHistoryLimit: 1, healthCheck: { path: '/cgi-bin/health', intervalSeconds: 1, timeoutSeconds: 1 }, strategy: { blueGreen: { keepOldFor: '0s' } } },
  });
  const first = await serving('v1');
  const images = [first.spec!.imageDigest!];
  for (const version of ['v2', 'v3']) {
    const commit = await repo.commit(appDockerfile(version), `app ${version}`);
    await p.client.patch(nsPath(NS, 'services', 'gc'), { spec: { build: { ref: commit } } });
    images.push((await serving(version)).spec!.imageDigest!);
  }
  assert.equal(new Set(images).size, 3, 'three commits, three images');

  // Releases 2 and 3 are kept (active and previous); release 1 is pruned, then its image goes.
  await waitFor('release gc-1 pruned', async () => !(await p.client.list<Release>(nsPath(NS, 'releases'))).items.some((r) => r.metadata.name === first.metadata.name), 30_000);
  await waitFor('the image of gc-1 removed', async () => !(await exists(images[0]!)), 30_000);
  // Events about cluster-scoped objects (the Node) are in namespace default, as in Kubernetes.
  const event = await waitForEvent(p.client, 'default', 'a BuiltImagesRemoved', (e) => e.reason === 'BuiltImagesRemoved' && e.involvedObject?.name === 'local');
  assert.match(event.message ?? '', /removed 1 built image\(s\) no Release refers to/);
  assert.ok(await exists(images[1]!), 'the previous release keeps its image (rollback)');
  assert.ok(await exists(images[2]!), 'the active release keeps its image');
  const [endpoint] = (await getSvc('gc')).status!.endpoints!;
  assert.equal((await httpGet(`http://${endpoint!.host}:${endpoint!.port}/`)).body.trim(), 'version=v3', 'the active release still serves');

  await p.client.delete(nsPath(NS, 'services', 'gc'));
  await waitFor('the remaining built images removed', async () => !(await exists(images[1]!)) && !(await exists(images[2]!)), 60_000);
  assert.ok(await exists(FOREIGN_IMAGE), "another installation's built image is left alone");
  assert.ok(await exists('slipway-test-app:1'), 'an image Slipway did not build is left alone');
});
