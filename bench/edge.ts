// `make bench`: the Caddy edge. (1) Zero downtime: a load generator (keep-alive and new-connection
// clients, >= 300 requests/s) through a real Caddy while a 2-replica BlueGreen Service goes through
// 10 rollouts and 2 `slipctl rollout undo`s; failed and non-2xx responses, p50/p99 latency and
// Caddy config loads are counted, against a quiet baseline period first; then the same load
// against a `strategy: Recreate` Service to show that the generator does see downtime when there
// is some. (2) Rendering and loading a 1,000-route config into Caddy, and proof that an unchanged
// config sends no load. Prints each figure, ratios and PASS/MISS; exits non-zero only when the
// bench itself broke.

import { request as httpRequest } from 'node:http';
import { cpus, loadavg } from 'node:os';
import Docker from 'dockerode';
import { Agent, request } from 'undici';
import type { Release, Service } from '../src/api/generated/crd-types.js';
import { deepEqual } from '../src/api/deep-equal.js';
import { CaddyAdmin, ensureConfig, type CaddyAdminApi } from '../src/edge/caddy-admin.js';
import { renderCaddyConfig } from '../src/edge/caddy-config.js';
import { edgeSites, type EdgeSite } from '../src/edge/sites.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { createNamespace } from '../test/helpers/apiserver.js';
import { enableTcpMigrateReq, getViaEdge, STALE_CONNECTION, settledConfigLoads, startCaddy, type TestCaddy } from '../test/helpers/caddy.js';
import { createCli } from '../test/helpers/cli.js';
import { buildTestImage, DOCKER_SOCKET, TEST_IMAGE } from '../test/helpers/docker.js';
import { nsPath, registerNode, startManager, startPlatform, waitFor, type Platform } from '../test/helpers/platform.js';

const NS = 'bench-edge';
const HEALTH = { path: '/cgi-bin/health', intervalSeconds: 1, timeoutSeconds: 1, failureThreshold: 2 };
const ROLLOUTS = 10;
const UNDOS = 2;
const KEEPALIVE_CLIENTS = 6;
const NEW_CONNECTION_CLIENTS = 4;
const PER_CLIENT_RPS = 45;
const docker = new Docker({ socketPath: DOCKER_SOCKET });

const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
function percentile(samples: number[], p: number): number {
  if (!samples.length) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
const results: string[] = [];
function target(name: string, ok: boolean, detail: string): void {
  results.push(`${ok ? 'PASS' : 'MISS'}  ${name}: ${detail}`);
}

// ---- load generator ---------------------------------------------------------------------------


interface LoadStats {
  requests: number;
  /** Keep-alive requests sent again after the server closed their idle connection. */
  retried: number;
  failed: number;
  non2xx: number;
  latencies: number[];
  seconds: number;
  examples: string[];
}

/** Paced clients: half reuse keep-alive connections (undici), half open a new connection per request (node:http, agent: false). */
function startLoad(port: number, host: string): { stop(): Promise<LoadStats> } {
  const stats: LoadStats = { requests: 0, retried: 0, failed: 0, non2xx: 0, latencies: [], seconds: 0, examples: [] };
  const agent = new Agent({ keepAliveTimeout: 30_000, connections: KEEPALIVE_CLIENTS });
  let running = true;
  const started = now();
  const record = (status: number, ms: number, error?: string) => {
    stats.requests++;
    stats.latencies.push(ms);
    if (error) stats.failed++;
    else if (status < 200 || status > 299) stats.non2xx++;
    if ((error || status < 200 || status > 299) && stats.examples.length < 5) stats.examples.push(error ?? `HTTP ${status}`);
  };
  // Like browsers and most HTTP clients, a GET that fails because the server closed the idle
  // keep-alive connection it was sent on is sent once more (RFC 9112 9.3.1); such retries are counted.
  const keepAlive = async () => {
    const t = now();
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await request(`http://127.0.0.1:${port}/`, { dispatcher: agent, headers: { host }, headersTimeout: 10_000, bodyTimeout: 10_000 });
        await res.body.text();
        record(res.statusCode, now() - t);
        return;
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (attempt === 0 && STALE_CONNECTION.has(code)) {
          stats.retried++;
          continue;
        }
        record(0, now() - t, `keep-alive: ${(err as Error).message}`);
        return;
      }
    }
  };
  const newConnection = () =>
    new Promise<void>((done) => {
      const t = now();
      const req = httpRequest({ host: '127.0.0.1', port, path: '/', agent: false, headers: { host, connection: 'close' }, timeout: 10_000 }, (res) => {
        res.resume();
        res.on('end', () => {
          record(res.statusCode ?? 0, now() - t);
          done();
        });
        res.on('error', (err) => {
          record(0, now() - t, `new connection: ${err.message}`);
          done();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        record(0, now() - t, `new connection: ${err.message}`);
        done();
      });
      req.end();
    });
  const client = async (once: () => Promise<void>, offset: number) => {
    const interval = 1000 / PER_CLIENT_RPS;
    let next = now() + offset;
    while (running) {
      const wait = next - now();
      if (wait > 0) await sleep(wait);
      next += interval;
      await once();
    }
  };
  const clients = [
    ...Array.from({ length: KEEPALIVE_CLIENTS }, (_, i) => client(keepAlive, i * 3)),
    ...Array.from({ length: NEW_CONNECTION_CLIENTS }, (_, i) => client(newConnection, i * 5 + 1)),
  ];
  return {
    async stop() {
      running = false;
      await Promise.all(clients);
      await agent.close();
      stats.seconds = (now() - started) / 1000;
      return stats;
    },
  };
}

function describeLoad(name: string, s: LoadStats): string {
  return `${name}: ${s.requests} requests in ${fmt(s.seconds)} s (${fmt(s.requests / s.seconds, 0)} req/s), failed ${s.failed}, non-2xx ${s.non2xx}, keep-alive retries after a closed idle connection ${s.retried}, p50 ${fmt(percentile(s.latencies, 50))} ms, p99 ${fmt(percentile(s.latencies, 99))} ms, max ${fmt(Math.max(...s.latencies))} ms${s.examples.length ? `; e.g. ${[...new Set(s.examples)].join(' | ')}` : ''}`;
}

// ---- platform ---------------------------------------------------------------------------------

let p: Platform;
let caddy: TestCaddy;
let manager: ControllerManager;

const getSvc = (name: string) => p.client.get<Service>(nsPath(NS, 'services', name));

const viaEdge = async (host: string) => (await getViaEdge(caddy.httpPort, host)).body;

function service(name: string, strategy: 'BlueGreen' | 'Recreate') {
  return {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Service',
    metadata: { name },
    spec: { image: TEST_IMAGE, replicas: 2, healthCheck: HEALTH, env: [{ name: 'APP_VERSION', value: 'v1' }], strategy: { type: strategy }, edge: { hosts: [`${name}.bench.test`], tls: 'off' } },
  };
}

async function rollTo(name: string, version: string): Promise<void> {
  const before = (await getSvc(name)).status?.activeRelease;
  await p.client.patch(nsPath(NS, 'services', name), { spec: { env: [{ name: 'APP_VERSION', value: version }] } });
  await waitUntilServed(name, version, before);
}

async function waitUntilServed(name: string, version: string, previousRelease: string | undefined): Promise<void> {
  await waitFor(`${name} serving ${version}`, async () => {
    const s = await getSvc(name);
    return s.status?.activeRelease !== previousRelease && !s.status?.candidateRelease && s.status?.readyReplicas === 2 && (await viaEdge(`${name}.bench.test`)) === `version=${version}`;
  }, 120_000, 100);
}

const settledLoads = () => settledConfigLoads(p.client, 'local', 3000);

// ---- (1) zero downtime ------------------------------------------------------------------------

async function zeroDowntime(): Promise<void> {
  const cli = createCli(p.api.url, { token: p.api.adminToken, namespace: NS });
  await p.client.create(nsPath(NS, 'services'), service('bg', 'BlueGreen'));
  await waitUntilServed('bg', 'v1', undefined);

  const quiet = startLoad(caddy.httpPort, 'bg.bench.test');
  await sleep(5000);
  const baseline = await quiet.stop();
  console.log(describeLoad('baseline, no rollouts (BlueGreen service)', baseline));

  const loadsBefore = await settledLoads();
  const load = startLoad(caddy.httpPort, 'bg.bench.test');
  const started = now();
  for (let i = 2; i <= ROLLOUTS + 1; i++) await rollTo('bg', `v${i}`);
  for (let u = 0; u < UNDOS; u++) {
    const s = await getSvc('bg');
    const previous = ((await p.client.get<Release>(nsPath(NS, 'releases', s.status!.previousRelease!))).spec!.template as { env: Array<{ value: string }> }).env[0]!.value;
    const out = await cli.run(['rollout', 'undo', 'service/bg']);
    if (out.code !== 0) throw new Error(`slipctl rollout undo failed: ${out.stderr}`);
    await waitUntilServed('bg', previous, s.status?.activeRelease);
  }
  const stats = await load.stop();
  const loadsAfter = await settledLoads();
  const changes = ROLLOUTS + UNDOS;
  console.log(describeLoad(`BlueGreen: ${ROLLOUTS} rollouts + ${UNDOS} undos in ${fmt((now() - started) / 1000)} s`, stats));
  console.log(`Caddy config loads during them: ${loadsAfter - loadsBefore} (${fmt((loadsAfter - loadsBefore) / changes, 2)} per rollout)`);
  console.log(`p99 ratio rollouts/baseline: ${fmt(percentile(stats.latencies, 99) / percentile(baseline.latencies, 99), 2)}`);
  target('0 failed or non-2xx requests across the BlueGreen run', stats.failed + stats.non2xx === 0, `${stats.failed} failed, ${stats.non2xx} non-2xx of ${stats.requests} (${stats.retried} keep-alive requests retried once after Caddy closed their idle connection)`);
  target('load generator >= 300 req/s', stats.requests / stats.seconds >= 300, `${fmt(stats.requests / stats.seconds, 0)} req/s`);
  target('one Caddy load per rollout', loadsAfter - loadsBefore === changes, `${loadsAfter - loadsBefore} loads for ${changes} rollouts`);

  // Changes that leave routes alone: labels and annotations on the routed Service.
  const before = await settledLoads();
  for (let i = 0; i < 10; i++) await p.client.patch(nsPath(NS, 'services', 'bg'), { metadata: { labels: { bench: `l${i}` }, annotations: { note: `n${i}` } } });
  const after = await settledLoads();
  console.log(`10 unrelated changes (labels, annotations): ${after - before} loads`);
  target('unrelated changes cause no load', after === before, `${after - before} loads`);

  // The same generator against Recreate: downtime must show.
  await p.client.create(nsPath(NS, 'services'), service('rc', 'Recreate'));
  await waitUntilServed('rc', 'v1', undefined);
  const rcLoad = startLoad(caddy.httpPort, 'rc.bench.test');
  for (let i = 2; i <= 4; i++) await rollTo('rc', `v${i}`);
  const rc = await rcLoad.stop();
  console.log(describeLoad('Recreate: 3 rollouts (control: downtime expected)', rc));
  target('the generator sees Recreate downtime', rc.failed + rc.non2xx > 0, `${rc.failed + rc.non2xx} failed or non-2xx (BlueGreen: ${stats.failed + stats.non2xx})`);
  cli.cleanup();
}

// ---- (2) 1,000 routes -------------------------------------------------------------------------

function sites(n: number, port: number): EdgeSite[] {
  return Array.from({ length: n }, (_, i) => ({ id: `service:bench/app${i}`, hosts: [`app${i}.bench.test`], tls: 'off' as const, upstreams: [{ host: '127.0.0.1', port: port + (i % 50) }], stickySessions: i % 2 === 0, maxBodyBytes: 1 << 20 }));
}

async function thousandRoutes(): Promise<void> {
  const spare = await startCaddy();
  let posts = 0;
  const real = new CaddyAdmin(spare.adminAddress);
  const counting: CaddyAdminApi = { getConfig: () => real.getConfig(), replaceConfig: (c, e) => (posts++, real.replaceConfig(c, e)), close: () => real.close() };
  const options = { adminAddress: spare.adminAddress, httpPort: spare.httpPort, httpsPort: spare.httpsPort };
  try {
    // Render from desired state: 1,000 Services (with their status) to sites to the Caddy config.
    const services = sites(1000, 20000).map((site, i) => ({
      metadata: { name: `app${i}`, namespace: 'bench', creationTimestamp: '2026-01-01T00:00:00Z' },
      spec: { edge: { hosts: site.hosts, tls: 'off' as const, stickySessions: site.stickySessions, maxBodySize: '1Mi' } },
      status: { activeRelease: `app${i}-1`, endpoints: site.upstreams.map((u, n) => ({ node: 'local', containerName: `bench.app${i}-1-${n}`, host: u.host, port: u.port, ready: true })) },
    })) as unknown as Service[];
    const renderMs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = now();
      renderCaddyConfig(edgeSites(services, [], { onDemand: false }), options);
      renderMs.push(now() - t);
    }
    // Changed configs: read + compare (what every reconcile does), then the load itself.
    const checkChangedMs: number[] = [];
    const loadMs: number[] = [];
    const floorMs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const config = renderCaddyConfig(sites(1000, 20000 + i), options);
      let t = now();
      const current = await counting.getConfig();
      if (deepEqual(current.config, config)) throw new Error('configs expected to differ');
      checkChangedMs.push(now() - t);
      t = now();
      await counting.replaceConfig(config, current.etag);
      loadMs.push(now() - t);
      // Caddy's floor: the same 1,000 host routes answering a static response (no proxies to provision).
      const floor = renderCaddyConfig(sites(1000, 20000 + i).map((site) => ({ ...site, upstreams: [] })), options);
      const before = await counting.getConfig();
      t = now();
      await counting.replaceConfig(floor, before.etag);
      floorMs.push(now() - t);
    }
    await ensureConfig(counting, renderCaddyConfig(sites(1000, 20009), options));
    const postsBefore = posts;
    const checkMs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = now();
      await ensureConfig(counting, renderCaddyConfig(sites(1000, 20009), options));
      checkMs.push(now() - t);
    }
    const p50Load = percentile(loadMs, 50);
    console.log(`render 1,000 Services into a Caddy config: p50 ${fmt(percentile(renderMs, 50), 2)} ms, max ${fmt(Math.max(...renderMs), 2)} ms`);
    console.log(`read + compare a changed 1,000-route config: p50 ${fmt(percentile(checkChangedMs, 50))} ms`);
    console.log(`load 1,000 proxy routes into Caddy (POST /config/): p50 ${fmt(p50Load)} ms, max ${fmt(Math.max(...loadMs))} ms`);
    console.log(`baseline, Caddy's floor: 1,000 static-response routes: p50 ${fmt(percentile(floorMs, 50))} ms (ratio proxy routes/floor ${fmt(p50Load / percentile(floorMs, 50), 1)})`);
    console.log(`unchanged 1,000-route config, 10 times: ${posts - postsBefore} loads sent; read + compare p50 ${fmt(percentile(checkMs, 50))} ms (ratio load/check ${fmt(p50Load / percentile(checkMs, 50), 1)})`);
    target('1,000-route load <= 150 ms', p50Load <= 150, `p50 ${fmt(p50Load)} ms (machine load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} CPUs)`);
    target('an unchanged config sends no load', posts === postsBefore, `${posts - postsBefore} loads`);
  } finally {
    await real.close();
    await spare.stop();
  }
}

async function main(): Promise<void> {
  p = await startPlatform();
  try {
    await buildTestImage(docker);
    caddy = await startCaddy();
    manager = await startManager(p.api, { edge: { adminAddress: caddy.adminAddress, httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, resyncMs: 2000 } });
    await registerNode(p.client, 'local', { socket: DOCKER_SOCKET }, { 'slipway.dev/edge': 'true' });
    await createNamespace(p.client, NS);
    console.log(`-- (1) zero downtime through Caddy (net.ipv4.tcp_migrate_req = ${enableTcpMigrateReq() || 'not available'}, as make up sets it)`);
    await zeroDowntime();
    console.log('-- (2) 1,000 routes');
    await thousandRoutes();
  } finally {
    for (const s of (await p.client.list(nsPath(NS, 'services')).catch(() => ({ items: [] }))).items) await p.client.delete(nsPath(NS, 'services', s.metadata.name!)).catch(() => {});
    await waitFor('bench containers removed', async () => (await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })).length === 0, 60_000).catch(() => {});
    await manager?.stop();
    await caddy?.stop();
    await p.stop();
  }
  console.log(results.join('\n'));
}

main().catch((err) => {
  console.error(`bench/edge failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
