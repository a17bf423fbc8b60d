// A remote edge node: its Caddy's admin API listens on the node's loopback only, so the edge
// controller reaches it through the node's SSH connection (a TCP channel the node opens to its own
// 127.0.0.1). Real sshd, real Caddy, real API server and controller manager.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Node } from '../src/api/generated/crd-types.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { startCaddy, type TestCaddy } from './helpers/caddy.js';
import { startSecondNode, type SecondNode } from './helpers/docker.js';
import { API, httpGet, nsPath, registerNode, startManager, startPlatform, waitFor, type Platform } from './helpers/platform.js';

let p: Platform;
let node2: SecondNode;
let caddy: TestCaddy;
let manager: ControllerManager;

before(async () => {
  p = await startPlatform();
  node2 = await startSecondNode();
  caddy = await startCaddy();
  manager = await startManager(p.api, { edge: { adminAddress: caddy.adminAddress, httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, resyncMs: 1000, debounceMs: 50 } });
  await p.client.create(nsPath('slipway-system', 'secrets'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'edge2-ssh' }, stringData: { 'ssh-privatekey': node2.privateKey } });
});

after(async () => {
  await manager?.stop();
  await caddy?.stop();
  await node2?.stop();
  await p?.stop();
});

test('a remote edge node gets its config through its SSH connection, and again after Caddy restarts', async () => {
  await registerNode(p.client, 'edge2', { ssh: { ...node2.dockerSpec.ssh, privateKeySecretRef: { namespace: 'slipway-system', name: 'edge2-ssh' } } }, { 'slipway.dev/edge': 'true' });
  const status = await waitFor('edge2 config loaded', async () => {
    const edge = (await p.client.get<Node>(`${API}/nodes/edge2`)).status?.edge;
    return edge?.configLoads ? edge : undefined;
  }, 30_000, 100);
  assert.equal(status.routes, 0);
  assert.equal(status.lastError, undefined);
  // Caddy now runs Slipway's config: unknown hosts get the catch-all 404 (the bootstrap config had no server at all).
  assert.equal((await httpGet(`http://127.0.0.1:${caddy.httpPort}/`)).status, 404);
  assert.deepEqual((await caddy.config() as { admin: unknown }).admin, { listen: caddy.adminAddress });

  await caddy.kill();
  await waitFor('lastError while Caddy is down', async () => ((await p.client.get<Node>(`${API}/nodes/edge2`)).status?.edge?.lastError ?? '').includes('does not answer'), 15_000, 100);
  await caddy.start();
  await waitFor('config back after the restart', async () => (await httpGet(`http://127.0.0.1:${caddy.httpPort}/`)).status === 404, 15_000, 100);
  const after = await waitFor('status after the restart', async () => {
    const edge = (await p.client.get<Node>(`${API}/nodes/edge2`)).status?.edge;
    return edge?.configLoads === status.configLoads! + 1 && !edge.lastError ? edge : undefined;
  }, 15_000, 100);
  assert.equal(after.configHash, status.configHash);
});
