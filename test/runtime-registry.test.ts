// Images from a real registry that needs credentials: the Service's imagePullSecretRef supplies
// them, the release pins the registry digest, and a missing or wrong credential fails the release
// at once with a reason that never contains the password.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import Docker from 'dockerode';
import type { Release, Service } from '../src/api/generated/crd-types.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { createNamespace } from './helpers/apiserver.js';
import { buildTestImage, DOCKER_SOCKET, TEST_IMAGE } from './helpers/docker.js';
import { httpGet, nsPath, registerNode, startManager, startPlatform, waitFor, type Platform } from './helpers/platform.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';

const NS = 'registry';
let p: Platform;
let manager: ControllerManager;
let registry: TestRegistry;
let image: string;
let pushedDigest: string;
const docker = new Docker({ socketPath: DOCKER_SOCKET });

const pullSecret = (name: string, password: string) => ({
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'Secret',
  metadata: { name },
  type: 'kubernetes.io/dockerconfigjson',
  stringData: { '.dockerconfigjson': JSON.stringify({ auths: { [registry.address]: { auth: Buffer.from(`${registry.username}:${password}`).toString('base64') } } }) },
});
const service = (name: string, secret?: string) => ({
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'Service',
  metadata: { name },
  spec: { image, replicas: 1, env: [{ name: 'APP_VERSION', value: name }], ...(secret ? { imagePullSecretRef: { name: secret } } : {}) },
});
const failedRelease = (name: string) =>
  waitFor(`${name} failed`, async () => {
    const r = await p.client.get<Release>(nsPath(NS, 'releases', name)).catch(() => undefined);
    return r?.status?.phase === 'Failed' ? r : undefined;
  }, 30_000);

async function drain(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream as AsyncIterable<Buffer>) text += chunk.toString();
  if (/"error"/.test(text)) throw new Error(text);
  return text;
}

before(async () => {
  p = await startPlatform();
  registry = await startRegistry();
  await buildTestImage(docker);
  image = `${registry.address}/slipway/app:1`;
  await docker.getImage(TEST_IMAGE).tag({ repo: `${registry.address}/slipway/app`, tag: '1' });
  const auth = { username: registry.username, password: registry.password, serveraddress: registry.address };
  const output = await drain((await docker.getImage(image).push({ authconfig: auth })) as unknown as NodeJS.ReadableStream);
  pushedDigest = /digest: (sha256:[a-f0-9]{64})/.exec(output)![1]!;
  // Only the registry has it under this name now: the release must pull it.
  await docker.getImage(image).remove();
  manager = await startManager(p.api);
  await registerNode(p.client, 'local');
  await createNamespace(p.client, NS);
});

after(async () => {
  for (const s of (await p.client.list(nsPath(NS, 'services'))).items) await p.client.delete(nsPath(NS, 'services', s.metadata.name!));
  await waitFor('containers removed', async () => (await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })).length === 0, 20_000).catch(() => {});
  await manager?.stop();
  await docker.getImage(image).remove().catch(() => {});
  await registry?.stop();
  await p?.stop();
});

test('without credentials the pull is refused and the release fails at once, saying why', async () => {
  await p.client.create(nsPath(NS, 'services'), service('anonymous'));
  const release = await failedRelease('anonymous-1');
  assert.equal(release.status?.reason, 'ImageUnavailable');
  assert.match(release.status?.message ?? '', /no basic auth credentials|unauthorized/i);
  assert.equal(release.status?.steps?.find((s) => s.name === 'Artifact')?.attempts, 1, 'not retried');
});

test('a wrong password fails the release without revealing it', async () => {
  await p.client.create(nsPath(NS, 'secrets'), pullSecret('wrong-creds', 'hunter2-not-it'));
  await p.client.create(nsPath(NS, 'services'), service('wrong', 'wrong-creds'));
  const release = await failedRelease('wrong-1');
  assert.match(release.status?.message ?? '', /unauthorized|authentication required/i);
  const everything = JSON.stringify([release, await p.client.get<Service>(nsPath(NS, 'services', 'wrong')), await p.client.list(nsPath(NS, 'events'))]);
  assert.doesNotMatch(everything, /hunter2/);
});

test('with the pull Secret the image is pulled and the release pins the registry digest', async () => {
  await p.client.create(nsPath(NS, 'secrets'), pullSecret('registry-creds', registry.password));
  await p.client.create(nsPath(NS, 'services'), service('private', 'registry-creds'));
  const s = await waitFor('private serving', async () => {
    const now = await p.client.get<Service>(nsPath(NS, 'services', 'private'));
    return now.status?.activeRelease === 'private-1' && now.status.readyReplicas === 1 ? now : undefined;
  }, 60_000);
  const e = s.status!.endpoints![0]!;
  assert.equal((await httpGet(`http://${e.host}:${e.port}/`)).body.trim(), 'version=private');
  const release = await p.client.get<Release>(nsPath(NS, 'releases', 'private-1'));
  assert.equal(release.spec?.imageDigest, pushedDigest);
  assert.ok((await docker.getImage(image).inspect()).RepoDigests?.some((d) => d.endsWith(pushedDigest)));
});
