// Git sources and build control on real components: an ssh:// repository served by a real sshd,
// read with a deploy key from a Secret and a pinned host key (a different host key is refused and
// nothing is deployed); spec.build.poll turning a new commit on the branch into a release; a build
// that exceeds its timeout, and one superseded by a newer ref, are stopped and fail their release;
// a build cut off by a manager restart is run again by the next manager.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { Release, Service } from '../src/api/generated/crd-types.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { createNamespace } from './helpers/apiserver.js';
import { createCli, type Cli } from './helpers/cli.js';
import { DOCKER_SOCKET, startSecondNode, type SecondNode } from './helpers/docker.js';
import { appDockerfile, createAppRepo, removeBuiltImages, type TestRepo } from './helpers/git-repo.js';
import { httpGet, nsPath, registerNode, startManager, startPlatform, waitFor, type Platform } from './helpers/platform.js';

const NS = 'build-sources';
let p: Platform;
let manager: ControllerManager;
let sshd: SecondNode;
let cli: Cli;
let repo: TestRepo;
const local = new Docker({ socketPath: DOCKER_SOCKET });
/** The managers' data directory (build logs), removed at the end. */
const dataDir = mkdtempSync(join(tmpdir(), 'slw-manager-data-'));

const getSvc = (name: string) => p.client.get<Service>(nsPath(NS, 'services', name));
const releasesOf = async (svc: string) => (await p.client.list<Release>(nsPath(NS, 'releases'), { labelSelector: `slipway.dev/service=${svc}` })).items;
const service = (name: string, build: Record<string, unknown>) => ({
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'Service',
  metadata: { name },
  spec: { build, healthCheck: { path: '/cgi-bin/health', intervalSeconds: 1, timeoutSeconds: 1 }, strategy: { blueGreen: { keepOldFor: '1s' } } },
});

function waitServing(name: string, version: string, timeoutMs = 90_000) {
  return waitFor(`${name} serving ${version}`, async () => {
    const s = await getSvc(name);
    const e = s.status?.endpoints?.[0];
    if (!e || s.status?.readyReplicas !== 1 || s.status.candidateRelease) return undefined;
    return (await httpGet(`http://${e.host}:${e.port}/`)).body.trim() === `version=${version}` ? s : undefined;
  }, timeoutMs, 200).catch(async (err) => {
    throw new Error(`${(err as Error).message}; status: ${JSON.stringify((await getSvc(name)).status)}; releases: ${JSON.stringify((await releasesOf(name)).map((r) => r.status))}`);
  });
}

async function removeContainers(docker: Docker) {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })) await docker.getContainer(c.Id).remove({ force: true });
}

/** Running build containers of a `RUN sleep <seconds>` step. */
async function sleepingBuildContainers(seconds: number): Promise<number> {
  return (await local.listContainers()).filter((c) => c.Command.includes(`sleep ${seconds}`)).length;
}

before(async () => {
  p = await startPlatform();
  sshd = await startSecondNode();
  repo = await createAppRepo('v1');
  manager = await startManager(p.api, { dataDir });
  cli = createCli(p.api.url, { token: p.api.adminToken });
  await createNamespace(p.client, NS);
  await p.client.create(nsPath(NS, 'secrets'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'deploy-key' }, stringData: { 'ssh-privatekey': sshd.privateKey } });
  await registerNode(p.client, 'local', { socket: DOCKER_SOCKET });
});

after(async () => {
  for (const s of (await p.client.list(nsPath(NS, 'services'))).items) await p.client.delete(nsPath(NS, 'services', s.metadata.name!));
  await manager?.stop();
  await removeContainers(local);
  if (repo) await removeBuiltImages(local, repo);
  await sshd?.stop();
  await p?.stop();
  if (repo) await rm(repo.dir, { recursive: true, force: true });
  await rm(dataDir, { recursive: true, force: true });
});

describe('git sources', () => {
  test('ssh:// with a deploy key and the pinned host key deploys; another host key is refused', async () => {
    const url = `ssh://root@127.0.0.1:${sshd.sshPort}${repo.dir}`;
    await p.client.create(nsPath(NS, 'services'), service('pinned-wrong', { git: url, ref: 'main', sshKeySecretRef: { name: 'deploy-key' }, hostKey: sshd.otherHostKey }));
    await p.client.create(nsPath(NS, 'services'), service('over-ssh', { git: url, ref: 'main', sshKeySecretRef: { name: 'deploy-key' }, hostKey: sshd.hostKey }));
    await waitServing('over-ssh', 'v1');
    const [release] = await releasesOf('over-ssh');
    assert.equal(release!.spec?.source?.commit, await repo.head());
    assert.equal(release!.spec?.source?.git, url);

    const refused = await waitFor('pinned-wrong refused', async () => {
      const s = await getSvc('pinned-wrong');
      return s.status?.conditions?.find((c) => c.type === 'Progressing' && c.reason === 'SourceUnavailable');
    }, 30_000);
    assert.match(refused.message ?? '', /Host key verification failed/);
    assert.equal((await releasesOf('pinned-wrong')).length, 0, 'nothing is deployed from an unverified host');
    // The deploy key is never shown, and its temp files are gone.
    const status = JSON.stringify((await getSvc('pinned-wrong')).status) + JSON.stringify(release!.status);
    assert.ok(!status.includes(sshd.privateKey.split('\n')[1]!), 'no key material in status');
    // Other fetches over ssh may be running right now: each one's temp dir must go when it ends.
    await waitFor('no git ssh temp dirs left', async () => (await readdir(tmpdir())).every((f) => !f.startsWith('slw-git-ssh-')), 15_000);
  });

  test('spec.build.poll makes a release of a new commit on the branch', async () => {
    await p.client.create(nsPath(NS, 'services'), service('polled', { git: `file://${repo.dir}`, ref: 'main', poll: '1s' }));
    await waitServing('polled', 'v1');
    const v2 = await repo.commit(appDockerfile('v2'), 'v2');
    await waitServing('polled', 'v2');
    const releases = await releasesOf('polled');
    assert.equal(releases.at(-1)!.spec?.source?.commit, v2);
    assert.equal((await getSvc('polled')).status?.build?.commit, v2);
    // Later tests commit slow builds to main: stop following it.
    await p.client.delete(nsPath(NS, 'services', 'polled'));
  });

  test('a build running past its timeout is stopped and fails the release', async () => {
    const slow = await repo.commit(appDockerfile('slow', 'RUN sleep 71'), 'slow');
    await p.client.create(nsPath(NS, 'services'), service('timeout', { git: repo.dir, ref: slow, timeoutSeconds: 10 }));
    await waitFor('the slow build runs', async () => (await sleepingBuildContainers(71)) > 0, 60_000);
    const failed = await waitFor('the release failed', async () => (await releasesOf('timeout')).find((r) => r.status?.phase === 'Failed'), 60_000);
    assert.equal(failed.status?.reason, 'BuildTimeout');
    assert.match(failed.status?.message ?? '', /did not finish within 10s/);
    await waitFor('the build container is gone', async () => (await sleepingBuildContainers(71)) === 0, 20_000);
  });

  test('a newer ref cancels the running build; the new commit is deployed', async () => {
    const slow = await repo.commit(appDockerfile('slow', 'RUN sleep 72'), 'slow again');
    await p.client.create(nsPath(NS, 'services'), service('superseded', { git: repo.dir, ref: slow }));
    const building = await waitFor('a release in Building', async () => (await releasesOf('superseded')).find((r) => r.status?.phase === 'Building'), 60_000);
    await waitFor('the slow build runs', async () => (await sleepingBuildContainers(72)) > 0, 60_000);
    const follow = cli.start(['logs', `release/${building.metadata.name}`, '-n', NS, '-f']);
    await follow.waitForOutput(/Step 1\/\d+ : FROM scratch/, 30_000);
    const good = await repo.commit(appDockerfile('v3'), 'v3');
    await p.client.patch(nsPath(NS, 'services', 'superseded'), { spec: { build: { ref: good } } }, 'merge');
    await waitServing('superseded', 'v3');
    const old = (await releasesOf('superseded')).find((r) => r.metadata.name === building.metadata.name)!;
    assert.equal(old.status?.phase, 'Failed');
    assert.equal(old.status?.reason, 'Superseded');
    await waitFor('the cancelled build container is gone', async () => (await sleepingBuildContainers(72)) === 0, 20_000);
    // The followed log ends with the cancellation.
    const ended = await follow.exited();
    assert.match(ended.stdout, /# build failed: .*superseded/);
  });

  test('a build interrupted by a manager restart is run again by the next manager and the release completes', async () => {
    const slowish = await repo.commit(appDockerfile('v4', 'RUN sleep 3'), 'v4');
    await p.client.create(nsPath(NS, 'services'), service('restarted', { git: repo.dir, ref: slowish }));
    const building = await waitFor('a release in Building', async () => (await releasesOf('restarted')).find((r) => r.status?.phase === 'Building'), 60_000);
    await manager.stop();
    manager = await startManager(p.api, { dataDir });
    await waitServing('restarted', 'v4');
    const release = (await releasesOf('restarted')).find((r) => r.metadata.name === building.metadata.name)!;
    assert.equal(release.status?.phase, 'Completed');
    assert.equal(release.status?.build?.reused, false);
    const { stdout } = await cli.run(['logs', `release/${release.metadata.name}`, '-n', NS]);
    assert.match(stdout, /# built .* in [0-9.]+s/);
  });
});
