// Nodes on real Docker Engines: the local one by socket and a second dockerd reached over a real
// sshd through one persistent SSH connection. Heartbeats and Ready, a changed host key refused,
// placement by labels and spreading, images copied to a node with the same digest, cordon and
// drain without dropping below the ready count, and replicas moved off a lost node.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Docker from 'dockerode';
import type { Node, Release, Service } from '../src/api/generated/crd-types.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { createNamespace } from './helpers/apiserver.js';
import { createCli, type Cli } from './helpers/cli.js';
import { buildLabelledTestImage, DOCKER_SOCKET, startSecondNode, type SecondNode } from './helpers/docker.js';
import { API, httpGet, nsPath, registerNode, startManager, startPlatform, waitFor, type Platform } from './helpers/platform.js';

const NS = 'nodes';
let p: Platform;
let manager: ControllerManager;
let node2: SecondNode;
let cli: Cli;
const local = new Docker({ socketPath: DOCKER_SOCKET });

const getNode = (name: string) => p.client.get<Node>(`${API}/nodes/${name}`);
const getSvc = (name: string) => p.client.get<Service>(nsPath(NS, 'services', name));
const service = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'Service',
  metadata: { name },
  spec: { image: NODES_IMAGE, env: [{ name: 'APP_VERSION', value: name }], healthCheck: { path: '/cgi-bin/health', intervalSeconds: 1, timeoutSeconds: 1 }, ...spec },
});
const ready = (n: Node) => n.status?.conditions?.find((c) => c.type === 'Ready');

/** Containers of a service on one Docker, by name. */
async function namesOn(docker: Docker, svc: string): Promise<string[]> {
  const list = await docker.listContainers({ filters: { label: [`slipway.dev/namespace=${NS}`, `slipway.dev/service=${svc}`] } });
  return list.map((c) => c.Names[0]!.slice(1)).sort();
}

function waitServing(name: string, replicas: number, timeoutMs = 60_000) {
  return waitFor(`${name}: ${replicas} ready replicas answering`, async () => {
    const s = await getSvc(name);
    if (s.status?.readyReplicas !== replicas || s.status?.candidateRelease || s.status.endpoints?.length !== replicas) return undefined;
    for (const e of s.status.endpoints) if ((await httpGet(`http://${e.host}:${e.port}/`)).body.trim() !== `version=${name}`) return undefined;
    return s;
  }, timeoutMs, 100).catch(async (err) => {
    const s = await getSvc(name);
    throw new Error(`${(err as Error).message}; status: ${JSON.stringify(s.status)}`);
  });
}

/**
 * The test app under an image of this file's own (an extra label makes its id differ), so removing
 * it from node2 cannot take the shared test image from test files running at the same time.
 */
const NODES_IMAGE = 'slipway-test-app:nodes-1';

async function removeSlipwayContainers(docker: Docker) {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })) await docker.getContainer(c.Id).remove({ force: true });
}

before(async () => {
  p = await startPlatform();
  node2 = await startSecondNode();
  await Promise.all([buildLabelledTestImage(local, NODES_IMAGE, { 'slipway.test.copy': 'runtime-nodes' }), removeSlipwayContainers(node2.docker)]);
  // The image is only on the local node: node2 must receive it from there.
  await node2.docker.getImage(NODES_IMAGE).remove({ force: true }).catch(() => {});
  manager = await startManager(p.api);
  cli = createCli(p.api.url, { token: p.api.adminToken });
  await createNamespace(p.client, NS);
  await p.client.create(nsPath('slipway-system', 'secrets'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'node2-ssh' }, stringData: { 'ssh-privatekey': node2.privateKey } });
  await registerNode(p.client, 'local', { socket: DOCKER_SOCKET }, { 'slipway.dev/edge': 'true' });
  await registerNode(p.client, 'node2', { ssh: { ...node2.dockerSpec.ssh, privateKeySecretRef: { namespace: 'slipway-system', name: 'node2-ssh' } } }, { role: 'app' });
});

after(async () => {
  for (const s of (await p.client.list(nsPath(NS, 'services'))).items) await p.client.delete(nsPath(NS, 'services', s.metadata.name!));
  await waitFor('test containers removed', async () => (await namesOn(local, '')).length === 0, 20_000).catch(() => {});
  await manager?.stop();
  await Promise.all([removeSlipwayContainers(local), node2 && removeSlipwayContainers(node2.docker)]);
  await node2?.stop();
  await p?.stop();
});

describe('nodes', () => {
  test('a node reached over SSH becomes Ready and reports its Docker', async () => {
    const node = await waitFor('node2 Ready', async () => {
      const n = await getNode('node2');
      return ready(n)?.status === 'True' ? n : undefined;
    }, 20_000);
    assert.match(node.status?.dockerVersion ?? '', /^\d+\.\d+/);
    assert.ok((node.status?.capacity?.cpus ?? 0) >= 1);
    assert.ok((node.status?.capacity?.memoryBytes ?? 0) > 0);
    assert.ok(node.status?.lastHeartbeatTime);
    assert.deepEqual(node.status?.addresses, [{ type: 'InternalIP', address: '127.0.0.1' }]);
    const localNode = await waitFor('local Ready', async () => {
      const n = await getNode('local');
      return ready(n)?.status === 'True' ? n : undefined;
    });
    assert.ok(localNode.status?.capacity?.diskTotalBytes, 'disk is measured on the local node');
  });

  test('a node whose SSH host key does not match the pinned one is refused', async () => {
    await registerNode(p.client, 'impostor', { ssh: { ...node2.dockerSpec.ssh, hostKey: node2.otherHostKey, privateKeySecretRef: { namespace: 'slipway-system', name: 'node2-ssh' } } });
    const node = await waitFor('impostor NotReady', async () => {
      const n = await getNode('impostor');
      return ready(n)?.status === 'False' ? n : undefined;
    }, 20_000);
    assert.equal(ready(node)?.reason, 'HostKeyMismatch');
    assert.match(ready(node)?.message ?? '', /expected SHA256:\S+, got SHA256:\S+/);
    await p.client.delete(`${API}/nodes/impostor`);
  });
});

describe('placement', () => {
  test('a nodeSelector places every replica on matching nodes, with the image copied there by digest', async () => {
    await p.client.create(nsPath(NS, 'services'), service('app', { replicas: 2, nodeSelector: { role: 'app' } }));
    const s = await waitServing('app', 2);
    assert.deepEqual(s.status?.endpoints?.map((e) => e.node), ['node2', 'node2']);
    assert.deepEqual(await namesOn(node2.docker, 'app'), [`${NS}.app-1-0`, `${NS}.app-1-1`]);
    assert.deepEqual(await namesOn(local, 'app'), []);
    const release = await p.client.get<Release>(nsPath(NS, 'releases', 'app-1'));
    const [c] = await node2.docker.listContainers({ filters: { label: [`slipway.dev/service=app`] } });
    assert.equal((await node2.docker.getContainer(c!.Id).inspect()).Image, release.spec?.imageDigest, 'node2 runs exactly the release digest');
  });

  test('without a selector replicas spread over nodes, fewest first', async () => {
    await p.client.create(nsPath(NS, 'services'), service('spread', { replicas: 2 }));
    const s = await waitServing('spread', 2);
    assert.deepEqual(s.status?.endpoints?.map((e) => e.node).sort(), ['local', 'node2']);
  });

  test('a selector no node matches leaves the release waiting, saying why', async () => {
    await p.client.create(nsPath(NS, 'services'), service('nowhere', { replicas: 1, nodeSelector: { role: 'gpu' } }));
    const release = await waitFor('step message', async () => {
      const r = await p.client.get<Release>(nsPath(NS, 'releases', 'nowhere-1')).catch(() => undefined);
      return r?.status?.steps?.find((s) => s.name === 'StartCandidate' && /labels do not match nodeSelector/.test(s.message ?? '')) ? r : undefined;
    });
    assert.equal(release.status?.phase, 'ArtifactReady');
    await p.client.delete(nsPath(NS, 'services', 'nowhere'));
  });
});

describe('cordon, drain and node loss', () => {
  test('drain waits while no other node may take a replica, naming what blocks it', async () => {
    const result = await cli.run(['drain', 'node2', '--timeout', '3s'], { timeoutMs: 20_000 });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /timed out after 3s waiting for node\/node2 to drain: .*nodes\/app \(2\)/);
    const s = await waitServing('app', 2);
    assert.deepEqual(s.status?.endpoints?.map((e) => e.node), ['node2', 'node2'], 'replicas stay where they can run');
    assert.equal((await cli.run(['uncordon', 'node2'])).code, 0);
    await p.client.delete(nsPath(NS, 'services', 'app'));
    await waitFor('app removed from node2', async () => (await namesOn(node2.docker, 'app')).length === 0);
  });

  test('drain moves replicas off a node without dropping below the ready count', async () => {
    let minReady = Infinity;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await getSvc('spread');
        minReady = Math.min(minReady, s.status?.readyReplicas ?? 0);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const result = await cli.run(['drain', 'node2', '--timeout', '60s'], { timeoutMs: 70_000 });
    sampling = false;
    await sampler;
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.equal(minReady, 2, 'the Service never had fewer than 2 ready replicas');
    const s = await waitServing('spread', 2);
    assert.deepEqual(s.status?.endpoints?.map((e) => e.node), ['local', 'local']);
    assert.deepEqual(await namesOn(node2.docker, 'spread'), []);
    const node = await getNode('node2');
    assert.equal(node.spec?.unschedulable, true);
    assert.equal((await cli.run(['uncordon', 'node2'])).code, 0);
    assert.equal((await getNode('node2')).spec?.unschedulable, false);
  });

  test('replicas on a lost node start elsewhere, and duplicates go when it returns', async () => {
    await p.client.create(nsPath(NS, 'services'), service('survivor', { replicas: 2 }));
    const before = await waitServing('survivor', 2);
    assert.deepEqual(before.status?.endpoints?.map((e) => e.node).sort(), ['local', 'node2']);
    await node2.stopSshd();
    try {
      await waitFor('node2 NotReady', async () => ready(await getNode('node2'))?.status === 'False', 20_000);
      const moved = await waitServing('survivor', 2, 30_000);
      assert.deepEqual(moved.status?.endpoints?.map((e) => e.node), ['local', 'local']);
    } finally {
      await node2.startSshd();
    }
    await waitFor('node2 Ready again', async () => ready(await getNode('node2'))?.status === 'True', 20_000);
    await waitFor('the stale copy on node2 removed', async () => (await namesOn(node2.docker, 'survivor')).length === 0, 30_000);
    await waitServing('survivor', 2);
  });
});
