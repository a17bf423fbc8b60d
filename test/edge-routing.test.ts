// The Caddy edge end to end: a real Caddy on free ports, a real API server, controller manager and
// Docker. Hosts are served through Caddy, unknown hosts get 404, a rollout costs exactly one config
// load while the route keeps answering, unrelated changes cost none, a restarted Caddy gets its
// config back, sticky sessions set Caddy's cookie, and `tls: internal` serves HTTPS.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import Docker from 'dockerode';
import { request } from 'undici';
import type { Node, Service } from '../src/api/generated/crd-types.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { STICKY_COOKIE } from '../src/edge/caddy-config.js';
import { createNamespace } from './helpers/apiserver.js';
import { getViaEdge, settledConfigLoads, startCaddy, type TestCaddy } from './helpers/caddy.js';
import { buildTestImage, DOCKER_SOCKET, TEST_IMAGE } from './helpers/docker.js';
import { API, nsPath, registerNode, startManager, startPlatform, waitFor, waitForEvent, type Platform } from './helpers/platform.js';

const NS = 'edge-routing';
const HOST = 'web.edge.test';
let p: Platform;
let caddy: TestCaddy;
let manager: ControllerManager;
const docker = new Docker({ socketPath: DOCKER_SOCKET });

const viaEdge = (host: string, headers: Record<string, string> = {}) => getViaEdge(caddy.httpPort, host, headers);
const edgeStatus = async () => (await p.client.get<Node>(`${API}/nodes/local`)).status?.edge;
const settledLoads = (quietMs?: number) => settledConfigLoads(p.client, 'local', quietMs);

async function loadsMetric(): Promise<number> {
  const text = await (await fetch(`${manager.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('slipway_edge_config_loads_total{') && l.includes('node="local"') && l.includes('result="success"'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

const HEALTH = { path: '/cgi-bin/health', intervalSeconds: 1, timeoutSeconds: 1, failureThreshold: 2 };
const web = (version: string, edge: Record<string, unknown>) => ({
  apiVersion: 'slipway.dev/v1alpha1',
  kind: 'Service',
  metadata: { name: 'web' },
  spec: { image: TEST_IMAGE, replicas: 2, healthCheck: HEALTH, env: [{ name: 'APP_VERSION', value: version }], edge },
});

before(async () => {
  p = await startPlatform();
  await buildTestImage(docker);
  caddy = await startCaddy();
  manager = await startManager(p.api, { edge: { adminAddress: caddy.adminAddress, httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, resyncMs: 1000, debounceMs: 100 } });
  await registerNode(p.client, 'local', { socket: DOCKER_SOCKET }, { 'slipway.dev/edge': 'true' });
  await createNamespace(p.client, NS);
});

after(async () => {
  for (const s of (await p.client.list(nsPath(NS, 'services'))).items) await p.client.delete(nsPath(NS, 'services', s.metadata.name!));
  await waitFor('test containers removed', async () => (await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })).length === 0, 30_000).catch(() => {});
  await manager?.stop();
  await caddy?.stop();
  await p?.stop();
});

describe('edge routes', () => {
  test('a Service with edge hosts answers through Caddy; an unknown host gets 404', async () => {
    await p.client.create(nsPath(NS, 'services'), web('v1', { hosts: [HOST], tls: 'off', stickySessions: true, maxBodySize: '1Ki' }));
    await waitFor('the app through Caddy', async () => (await viaEdge(HOST)).body === 'version=v1', 90_000, 200);
    const unknown = await viaEdge('nobody.edge.test');
    assert.equal(unknown.status, 404);
    const post = async (chunked: boolean, path = '/', size = 4096) => {
      const body = Buffer.alloc(size);
      const big = await request(`http://127.0.0.1:${caddy.httpPort}${path}`, { method: 'POST', headers: { host: HOST }, body: chunked ? Readable.from([body]) : body });
      await big.body.dump();
      return big.statusCode;
    };
    assert.equal(await post(false), 413, 'a sized body over maxBodySize');
    // A chunked body is cut at the limit while it streams to the app: the client gets 413 unless
    // the app answered first (this test app never reads bodies). /cgi-bin/slow answers after a
    // second, so the proxy has read past the limit by then.
    assert.equal(await post(true, '/cgi-bin/slow'), 413, 'a chunked body over maxBodySize');
    assert.equal(await post(true, '/cgi-bin/slow', 512), 200, 'a chunked body under maxBodySize');
    const config = (await caddy.config()) as { apps: { http: { servers: Record<string, { metrics?: unknown; routes: Array<{ '@id'?: string }> }> } } };
    assert.deepEqual(config.apps.http.servers.http!.metrics, {});
    assert.deepEqual(config.apps.http.servers.http!.routes.map((r) => r['@id']).filter(Boolean), [`service:${NS}/web`]);
    const status = await edgeStatus();
    assert.equal(status?.routes, 1);
    assert.ok((status?.configLoads ?? 0) >= 1);
    assert.match(status?.configHash ?? '', /^[0-9a-f]{16}$/);
    assert.equal(status?.lastError, undefined);
  });

  test('stickySessions sets the affinity cookie once and keeps the client on its replica', async () => {
    const first = await viaEdge(HOST);
    const cookie = String(first.headers['set-cookie'] ?? '');
    assert.match(cookie, new RegExp(`^${STICKY_COOKIE}=[0-9a-f]+`));
    const again = await viaEdge(HOST, { cookie: cookie.split(';')[0]! });
    assert.equal(again.status, 200);
    assert.equal(again.headers['set-cookie'], undefined, 'a client that has the cookie is not moved to another replica');
  });

  test('a rollout costs exactly one config load and the route answers throughout', async () => {
    const before = await settledLoads();
    const metricBefore = await loadsMetric();
    const failures: string[] = [];
    let stop = false;
    const prober = (async () => {
      while (!stop) {
        const r = await viaEdge(HOST);
        if (r.status !== 200) failures.push(`${r.status} ${r.body}`);
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
    await p.client.patch(nsPath(NS, 'services', 'web'), { spec: { env: [{ name: 'APP_VERSION', value: 'v2' }] } });
    await waitFor('v2 through Caddy', async () => (await viaEdge(HOST)).body === 'version=v2', 90_000, 100);
    const after = await settledLoads();
    stop = true;
    await prober;
    assert.equal(after - before, 1, 'one load for the traffic switch');
    assert.equal((await loadsMetric()) - metricBefore, 1);
    assert.deepEqual(failures, []);
  });

  test('changes that leave the routes as they were cost no load; a host another Service owns is refused with a Warning', async () => {
    const before = await settledLoads();
    await p.client.patch(nsPath(NS, 'services', 'web'), { metadata: { labels: { team: 'shop' }, annotations: { note: 'hello' } } });
    await p.client.create(nsPath(NS, 'services'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Service', metadata: { name: 'worker' }, spec: { image: TEST_IMAGE, replicas: 1, healthCheck: HEALTH, edge: { hosts: [HOST], tls: 'off' } } });
    await waitFor('the other Service active', async () => (await p.client.get<Service>(nsPath(NS, 'services', 'worker'))).status?.readyReplicas === 1, 90_000, 200);
    await p.client.patch(nsPath(NS, 'services', 'worker'), { metadata: { labels: { team: 'jobs' } } });
    assert.equal(await settledLoads(3000), before);
    assert.equal((await viaEdge(HOST)).body, 'version=v2');
    const conflict = await waitForEvent(p.client, NS, 'a HostConflict', (e) => e.reason === 'HostConflict' && e.involvedObject?.name === 'worker');
    assert.equal(conflict?.type, 'Warning');
    assert.match(conflict?.message ?? '', new RegExp(`host ${HOST} is not routed to this Service: service ${NS}/web claimed it first`));
  });

  test('a Caddy killed and started again gets its config back', async () => {
    const before = await settledLoads();
    await caddy.kill();
    assert.equal((await viaEdge(HOST)).status, 0);
    await caddy.start();
    await waitFor('the route back after the restart', async () => (await viaEdge(HOST)).body === 'version=v2', 30_000, 100);
    assert.equal(await settledLoads(), before + 1);
  });

  test('tls internal serves HTTPS from Caddy\'s own CA, with HSTS, and redirects HTTP', async () => {
    await p.client.patch(nsPath(NS, 'services', 'web'), { spec: { edge: { tls: 'internal' } } });
    await waitFor('the HTTP->HTTPS redirect', async () => (await viaEdge(HOST)).status === 308, 30_000, 100);
    const ca = () => readFileSync(join(caddy.dir, 'data/caddy/pki/authorities/local/root.crt'), 'utf8');
    const res = await waitFor('HTTPS through Caddy', () => httpsGet(HOST, ca()).catch(() => undefined), 30_000, 200);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'version=v2');
    assert.equal(res.headers['strict-transport-security'], 'max-age=31536000');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    await assert.rejects(httpsGet('nobody.edge.test', ca()), 'an unknown name gets no certificate');
  });
});

function httpsGet(host: string, ca: string): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: caddy.httpsPort, servername: host, headers: { host }, ca, path: '/', timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim(), headers: res.headers }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}
