// Services built from git on two real Docker nodes: a commit of a real repository is built on the
// builder node and runs on both with the same image ID; a second release of the same commit
// (rollout restart, also after a manager restart) reuses the image; a broken Dockerfile fails
// the release with the log tail while the old release keeps serving; push webhooks are refused
// without the right HMAC and deploy the pushed commit with it; `slipctl logs release/NAME` prints
// the build output.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { Node, Release, Service } from '../src/api/generated/crd-types.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { createNamespace } from './helpers/apiserver.js';
import { createCli, type Cli } from './helpers/cli.js';
import { DOCKER_SOCKET, startSecondNode, type SecondNode } from './helpers/docker.js';
import { appDockerfile, createAppRepo, removeBuiltImages, type TestRepo } from './helpers/git-repo.js';
import { startRegistry, type TestRegistry } from './helpers/registry.js';
import { API, httpGet, nsPath, registerNode, startManager, startPlatform, waitFor, type Platform } from './helpers/platform.js';

const NS = 'builds';
const WEBHOOK_SECRET = 'hook-secret-7c1f';
let p: Platform;
let manager: ControllerManager;
let node2: SecondNode;
let cli: Cli;
let repo: TestRepo;
let registry: TestRegistry;
const local = new Docker({ socketPath: DOCKER_SOCKET });
/** The managers' data directory (build logs), removed at the end. */
const dataDir = mkdtempSync(join(tmpdir(), 'slw-manager-data-'));

const getSvc = (name: string) => p.client.get<Service>(nsPath(NS, 'services', name));
const getRelease = (name: string) => p.client.get<Release>(nsPath(NS, 'releases', name));

/** Waits until every endpoint of the Service answers `version=<version>` and no rollout runs. */
function waitServing(name: string, version: string, replicas: number, timeoutMs = 90_000) {
  return waitFor(`${name} serving ${version} on ${replicas} replicas`, async () => {
    const s = await getSvc(name);
    if (s.status?.readyReplicas !== replicas || s.status?.candidateRelease || s.status.endpoints?.length !== replicas) return undefined;
    for (const e of s.status.endpoints) if ((await httpGet(`http://${e.host}:${e.port}/`)).body.trim() !== `version=${version}`) return undefined;
    return s;
  }, timeoutMs, 200).catch(async (err) => {
    const s = await getSvc(name);
    const releases = (await p.client.list<Release>(nsPath(NS, 'releases'))).items.map((r) => ({ name: r.metadata.name, status: r.status }));
    throw new Error(`${(err as Error).message}; service status: ${JSON.stringify(s.status)}; releases: ${JSON.stringify(releases)}`);
  });
}

async function removeContainers(docker: Docker) {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })) await docker.getContainer(c.Id).remove({ force: true });
}

const sign = (body: string, secret = WEBHOOK_SECRET) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
const postHook = (service: string, body: string, headers: Record<string, string>) =>
  fetch(`${p.api.url}/hooks/git/${NS}/${service}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-github-event': 'push', ...headers }, body });

before(async () => {
  p = await startPlatform();
  node2 = await startSecondNode();
  await removeContainers(node2.docker);
  repo = await createAppRepo('v1');
  registry = await startRegistry();
  manager = await startManager(p.api, { dataDir });
  cli = createCli(p.api.url, { token: p.api.adminToken });
  await createNamespace(p.client, NS);
  await p.client.create(nsPath('slipway-system', 'secrets'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'node2-ssh' }, stringData: { 'ssh-privatekey': node2.privateKey } });
  await p.client.create(nsPath(NS, 'secrets'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'hooks' }, stringData: { 'webhook-secret': WEBHOOK_SECRET } });
  const auth = Buffer.from(`${registry.username}:${registry.password}`).toString('base64');
  await p.client.create(nsPath(NS, 'secrets'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'regcred' }, type: 'kubernetes.io/dockerconfigjson', stringData: { '.dockerconfigjson': JSON.stringify({ auths: { [registry.address]: { auth } } }) } });
  await registerNode(p.client, 'local', { socket: DOCKER_SOCKET }, { 'slipway.dev/builder': 'true' });
  await registerNode(p.client, 'node2', { ssh: { ...node2.dockerSpec.ssh, privateKeySecretRef: { namespace: 'slipway-system', name: 'node2-ssh' } } });
  await waitFor('both nodes Ready', async () => {
    const nodes = (await p.client.list<Node>(`${API}/nodes`)).items;
    return nodes.length === 2 && nodes.every((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  }, 30_000);
});

after(async () => {
  for (const s of (await p.client.list(nsPath(NS, 'services'))).items) await p.client.delete(nsPath(NS, 'services', s.metadata.name!));
  await manager?.stop();
  await Promise.all([removeContainers(local), node2 && removeContainers(node2.docker)]);
  if (repo) await Promise.all([removeBuiltImages(local, repo), node2 && removeBuiltImages(node2.docker, repo)]);
  await node2?.stop();
  await registry?.stop();
  await p?.stop();
  if (repo) await rm(repo.dir, { recursive: true, force: true });
  await rm(dataDir, { recursive: true, force: true });
});

describe('deploy from git', () => {
  let first: Release;

  test('a git URL with a password, or a build without ref, is refused naming the field', async () => {
    for (const [build, field] of [[{ git: 'https://bot:t0ken@git.example.com/a.git', ref: 'main' }, 'spec.build.git'], [{ git: repo.dir }, 'spec.build.ref']] as const) {
      const { code, stderr } = await cli.run(['apply', '-n', NS, '-f', '-'], { stdin: JSON.stringify({ apiVersion: 'slipway.dev/v1alpha1', kind: 'Service', metadata: { name: 'bad' }, spec: { build } }) });
      assert.notEqual(code, 0);
      assert.match(stderr, new RegExp(field.replace(/\./g, '\\.')));
    }
  });

  test('a commit is built on the builder node and runs on both nodes with the same image ID', async () => {
    await p.client.create(nsPath(NS, 'services'), {
      apiVersion: 'slipway.dev/v1alpha1',
      kind: 'Service',
      metadata: { name: 'app' },
      spec: {
        build: { git: repo.dir, ref: 'main', webhookSecretRef: { name: 'hooks' } },
        replicas: 2,
        healthCheck: { path: '/cgi-bin/health', intervalSeconds: 1, timeoutSeconds: 1 },
        strategy: { blueGreen: { keepOldFor: '1s' } },
      },
    });
    const svc = await waitServing('app', 'v1', 2);
    first = await getRelease(svc.status!.activeRelease!);
    const commit = await repo.head();
    assert.equal(first.spec!.source?.commit, commit);
    assert.equal(first.spec!.source?.ref, 'main');
    assert.equal(first.status?.build?.node, 'local');
    assert.equal(first.status?.build?.reused, false);
    assert.deepEqual(first.status?.steps?.map((s) => [s.name, s.result]).slice(0, 2), [['Build', 'Succeeded'], ['Artifact', 'Succeeded']]);
    const digest = first.spec!.imageDigest!;
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
    // Each node runs exactly the recorded image.
    assert.deepEqual(new Set(svc.status!.endpoints!.map((e) => e.node)), new Set(['local', 'node2']));
    for (const docker of [local, node2.docker]) {
      const [c] = await docker.listContainers({ filters: { label: [`slipway.dev/namespace=${NS}`, `slipway.dev/release=${first.metadata.name}`] } });
      assert.ok(c, 'a replica on each node');
      assert.equal((await docker.getContainer(c.Id).inspect()).Image, digest);
      assert.equal((await docker.getImage(digest).inspect()).Config.Labels?.['slipway.dev/git-commit'], commit);
    }
  });

  test('slipctl logs release/NAME prints the build output', async () => {
    const { code, stdout, stderr } = await cli.run(['logs', `release/${first.metadata.name}`, '-n', NS]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /Step 1\/\d+ : FROM scratch/);
    assert.match(stdout, /COPY rootfs\/ \//);
    assert.match(stdout, new RegExp(`# built .* = ${first.spec!.imageDigest}`));
  });

  test('a second release of the same commit reuses the image, also after a manager restart', async () => {
    await manager.stop();
    manager = await startManager(p.api, { dataDir });
    const { code, stderr } = await cli.run(['rollout', 'restart', 'service/app', '-n', NS]);
    assert.equal(code, 0, stderr);
    const svc = await waitFor('a new active release', async () => {
      const s = await getSvc('app');
      return s.status?.activeRelease !== first.metadata.name && !s.status?.candidateRelease && s.status?.readyReplicas === 2 ? s : undefined;
    }, 60_000);
    const second = await getRelease(svc.status!.activeRelease!);
    assert.equal(second.spec!.source?.commit, first.spec!.source?.commit);
    assert.equal(second.spec!.imageDigest, first.spec!.imageDigest);
    assert.equal(second.status?.build?.reused, true);
    assert.match(second.status?.steps?.find((s) => s.name === 'Build')?.message ?? '', /^reused /);
    assert.equal(second.status?.build?.startTime, undefined, 'no build was started');
    const logs = await cli.run(['logs', `release/${second.metadata.name}`, '-n', NS]);
    assert.notEqual(logs.code, 0);
    assert.match(logs.stderr, /reused an image built earlier/);
    await waitServing('app', 'v1', 2);
  });

  test('a broken Dockerfile fails the release with the end of the build log; the active release keeps serving', async () => {
    const active = (await getSvc('app')).status!.activeRelease!;
    const broken = await repo.commit(appDockerfile('v2', 'RUN echo broken-build-marker && exit 3'), 'broken');
    const { code, stderr } = await cli.run(['rollout', 'restart', 'service/app', '-n', NS]);
    assert.equal(code, 0, stderr);
    const failed = await waitFor('a failed release of the broken commit', async () => {
      const list = (await p.client.list<Release>(nsPath(NS, 'releases'))).items;
      return list.find((r) => r.spec?.source?.commit === broken && r.status?.phase === 'Failed');
    }, 90_000);
    assert.equal(failed.status?.reason, 'BuildFailed');
    assert.match(failed.status!.message!, /broken-build-marker/);
    assert.match(failed.status!.message!, /non-zero code: 3/);
    assert.equal(failed.status?.steps?.find((s) => s.name === 'Build')?.result, 'Failed');
    const svc = await waitFor('the Service reporting the failed rollout', async () => {
      const s = await getSvc('app');
      return s.status?.conditions?.find((c) => c.type === 'Progressing')?.reason === 'RolloutFailed' ? s : undefined;
    }, 10_000);
    assert.equal(svc.status?.activeRelease, active);
    await waitServing('app', 'v1', 2);
  });

  test('a push webhook with a wrong or missing signature is refused; a signed one deploys the pushed commit', async () => {
    const fixed = await repo.commit(appDockerfile('v2'), 'fixed');
    const body = JSON.stringify({ ref: 'refs/heads/main', after: fixed, repository: { full_name: 'test/app' } });
    for (const headers of [{} as Record<string, string>, { 'x-hub-signature-256': sign(body, 'wrong-secret') }, { 'x-gitea-signature': sign(body, 'wrong').slice(7) }]) {
      const res = await postHook('app', body, headers);
      assert.equal(res.status, 401);
      assert.doesNotMatch(await res.text(), /hooks|webhook-secret|app/);
    }
    // An unknown service answers exactly like a wrong signature.
    const unknown = await postHook('nope', body, { 'x-hub-signature-256': sign(body) });
    assert.equal(unknown.status, 401);
    assert.equal((await getSvc('app')).spec?.build?.ref, 'main');

    const ok = await postHook('app', body, { 'x-hub-signature-256': sign(body) });
    assert.equal(ok.status, 200, await ok.clone().text());
    const svc = await getSvc('app');
    assert.equal(svc.spec?.build?.ref, fixed);
    await waitServing('app', 'v2', 2);
    const active = await getRelease((await getSvc('app')).status!.activeRelease!);
    assert.equal(active.spec!.source?.commit, fixed);
    assert.match(active.spec!.cause ?? '', /^GitPush: /);

    // Gitea's header works too; a push to another branch is ignored.
    const other = JSON.stringify({ ref: 'refs/heads/feature', after: fixed });
    const ignored = await postHook('app', other, { 'x-gitea-signature': sign(other).slice(7) });
    assert.equal(ignored.status, 202);
  });

  test('with a registry, the build is pushed and the other node pulls exactly that digest', async () => {
    const v3 = await repo.commit(appDockerfile('v3'), 'v3');
    const repository = `${registry.address}/builds/pushed`;
    await p.client.create(nsPath(NS, 'services'), {
      apiVersion: 'slipway.dev/v1alpha1',
      kind: 'Service',
      metadata: { name: 'pushed' },
      spec: { build: { git: `file://${repo.dir}`, ref: v3, registry: { repository, secretRef: { name: 'regcred' } } }, replicas: 2, healthCheck: { path: '/cgi-bin/health', intervalSeconds: 1, timeoutSeconds: 1 } },
    });
    const svc = await waitServing('pushed', 'v3', 2);
    const release = await getRelease(svc.status!.activeRelease!);
    const tag = release.spec!.image!.slice(repository.length + 1);
    assert.ok(release.spec!.image!.startsWith(`${repository}:`));
    // The digest recorded is the registry's.
    const manifest = await fetch(`http://${registry.address}/v2/builds/pushed/manifests/${tag}`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json', authorization: `Basic ${Buffer.from(`${registry.username}:${registry.password}`).toString('base64')}` },
    });
    assert.equal(manifest.status, 200);
    assert.equal(release.spec!.imageDigest, manifest.headers.get('docker-content-digest'));
    // Both nodes run the same image; node2 pulled it by digest (a loaded image has no repo digest).
    const ids = new Set<string>();
    for (const docker of [local, node2.docker]) {
      const [c] = await docker.listContainers({ filters: { label: [`slipway.dev/namespace=${NS}`, `slipway.dev/release=${release.metadata.name}`] } });
      assert.ok(c, 'a replica on each node');
      const image = await docker.getImage((await docker.getContainer(c.Id).inspect()).Image).inspect();
      ids.add(image.Id);
      assert.ok(image.RepoDigests?.includes(`${repository}@${release.spec!.imageDigest}`), `${JSON.stringify(image.RepoDigests)}`);
    }
    assert.equal(ids.size, 1);
    const { stdout } = await cli.run(['logs', `release/${release.metadata.name}`, '-n', NS]);
    assert.match(stdout, new RegExp(`# pushed .* as ${release.spec!.imageDigest}`));
  });
});
