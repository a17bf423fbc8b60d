// `make bench`: deploy from git. For each of RUNS runs, a fresh commit of a small app (the busybox
// test app: FROM scratch + COPY rootfs, APP_VERSION baked in) in a real local git repository is
// deployed two ways on the same Docker Engine, alternating which goes first:
//   Slipway: from the create call of a new Service with spec.build (git, ref main) until the app
//            answers `GET /` with its version through the Caddy edge (the Service's edge host);
//   raw:     `docker build` of the same checkout + `docker run -p`, until the container answers.
// Each side builds its own commit (different APP_VERSION), so neither gets the other's layer
// cache for the changed layer, and both share the cached base layers (warmed up first). Prints
// p50 of each, the ratio (target <= 1.3x) and PASS/MISS; exits non-zero only when the bench broke.
// `--runs N` (default 5).

import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import Docker from 'dockerode';
import type { Service } from '../src/api/generated/crd-types.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { createNamespace } from '../test/helpers/apiserver.js';
import { startCaddy, type TestCaddy } from '../test/helpers/caddy.js';
import { DOCKER_SOCKET } from '../test/helpers/docker.js';
import { createAppRepo, removeBuiltImages, type TestRepo } from '../test/helpers/git-repo.js';
import { httpGet, nsPath, registerNode, startManager, startPlatform, waitFor, type Platform } from '../test/helpers/platform.js';

const run = promisify(execFile);
const argv = process.argv.slice(2);
const RUNS = argv.includes('--runs') ? Math.max(1, Number(argv[argv.indexOf('--runs') + 1]) || 5) : 5;
const NS = 'bench-build';
const TARGET = 1.3;
const POLL_MS = 25;
const docker = new Docker({ socketPath: DOCKER_SOCKET });
const now = () => performance.now();
const dataDir = mkdtempSync(join(tmpdir(), 'slw-manager-data-'));

function p50(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.ceil(sorted.length / 2) - 1]!;
}
const secs = (ms: number) => (ms / 1000).toFixed(2);

async function viaEdge(caddy: TestCaddy, host: string): Promise<string> {
  try {
    const res = await request(`http://127.0.0.1:${caddy.httpPort}/`, { headers: { host }, headersTimeout: 2000, bodyTimeout: 2000 });
    const body = await res.body.text();
    return res.statusCode === 200 ? body.trim() : '';
  } catch {
    return '';
  }
}

/** When the Service's own replica answered `version=<version>` (no edge), ms after `start` (100 ms granularity). */
function replicaAnswers(p: Platform, name: string, version: string, start: number): Promise<number> {
  return waitFor(`${name} replica answering`, async () => {
    const e = (await p.client.get<Service>(nsPath(NS, 'services', name)).catch(() => undefined))?.status?.endpoints?.find((x) => x.ready);
    return e && (await httpGet(`http://${e.host}:${e.port}/`, 1000)).body.trim() === `version=${version}` ? now() - start : undefined;
  }, 180_000, 100); // every 100 ms: polling the in-process API server must not slow down what is measured
}

/**
 * Slipway: new Service built from `repo` at main, until its edge host answers `version=<version>`;
 * also when its replica itself first answered as a ready endpoint (the part before the edge).
 */
async function slipwayRun(p: Platform, caddy: TestCaddy, repo: TestRepo, name: string, version: string, replicaTimes: number[] = []): Promise<number> {
  const host = `${name}.bench.test`;
  const start = now();
  await p.client.create(nsPath(NS, 'services'), {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Service',
    metadata: { name },
    spec: { build: { git: repo.dir, ref: 'main' }, healthCheck: { path: '/cgi-bin/health', intervalSeconds: 1, timeoutSeconds: 1 }, edge: { hosts: [host], tls: 'off' } },
  });
  const replica = replicaAnswers(p, name, version, start);
  await waitFor(`${name} answering through the edge`, async () => (await viaEdge(caddy, host)) === `version=${version}`, 180_000, POLL_MS);
  const elapsed = now() - start;
  replicaTimes.push(await replica);
  await p.client.delete(nsPath(NS, 'services', name));
  return elapsed;
}

/** Raw Docker: `docker build` of the checkout and `docker run`, until the container answers. */
async function rawRun(repo: TestRepo, name: string, version: string): Promise<number> {
  const tag = `slw-bench-raw:${name}`;
  const start = now();
  await run('docker', ['build', '-q', '-t', tag, repo.dir]);
  const { stdout } = await run('docker', ['run', '-d', '--name', name, '-p', '127.0.0.1::3000', tag]);
  const id = stdout.trim();
  const port = (await docker.getContainer(id).inspect()).NetworkSettings.Ports['3000/tcp']![0]!.HostPort;
  await waitFor(`${name} answering`, async () => (await httpGet(`http://127.0.0.1:${port}/`, 1000)).body.trim() === `version=${version}`, 60_000, POLL_MS);
  const elapsed = now() - start;
  await docker.getContainer(id).remove({ force: true });
  await docker.getImage(tag).remove({ force: true }).catch(() => {});
  return elapsed;
}

async function main(): Promise<void> {
  const p = await startPlatform();
  const caddy = await startCaddy();
  let manager: ControllerManager | undefined;
  const repos: TestRepo[] = [];
  try {
    manager = await startManager(p.api, { dataDir, edge: { adminAddress: caddy.adminAddress, httpPort: caddy.httpPort, httpsPort: caddy.httpsPort, resyncMs: 2000 } });
    await createNamespace(p.client, NS);
    await registerNode(p.client, 'local', { socket: DOCKER_SOCKET }, { 'slipway.dev/edge': 'true', 'slipway.dev/builder': 'true' });
    // Warm-up (not measured): the base layers (COPY rootfs/) are cached for both sides afterwards.
    const warm = await createAppRepo('warm');
    repos.push(warm);
    await rawRun(warm, 'slw-bench-warm', 'warm');
    await slipwayRun(p, caddy, warm, 'warm', 'warm');

    const slipway: number[] = [];
    const raw: number[] = [];
    const replica: number[] = [];
    for (let i = 1; i <= RUNS; i++) {
      const repo = await createAppRepo(`s${i}`);
      repos.push(repo);
      const rawRepo = await createAppRepo(`r${i}`);
      repos.push(rawRepo);
      const sides = [
        async () => slipway.push(await slipwayRun(p, caddy, repo, `app${i}`, `s${i}`, replica)),
        async () => raw.push(await rawRun(rawRepo, `slw-bench-raw-${process.pid}-${i}`, `r${i}`)),
      ];
      if (i % 2 === 0) sides.reverse();
      for (const side of sides) await side();
      console.log(`run ${i}: slipway ${secs(slipway.at(-1)!)} s through the edge (replica answering after ${secs(replica.at(-1)!)} s), raw docker build + run ${secs(raw.at(-1)!)} s`);
    }
    const ratio = p50(slipway) / p50(raw);
    console.log(`\ndeploy from git, apply of a new Service to serving through the Caddy edge (p50 of ${RUNS}): ${secs(p50(slipway))} s`);
    console.log(`  of which until the replica itself answered as a ready endpoint (p50):              ${secs(p50(replica))} s (${(p50(replica) / p50(raw)).toFixed(2)}x raw)`);
    console.log(`raw docker build + docker run until it answers (p50 of ${RUNS}):                         ${secs(p50(raw))} s`);
    console.log(`ratio: ${ratio.toFixed(2)}x (target <= ${TARGET}x) ${ratio <= TARGET ? 'PASS' : 'MISS'}`);
  } finally {
    await manager?.stop();
    for (const c of await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })) await docker.getContainer(c.Id).remove({ force: true });
    await caddy.stop();
    await p.stop();
    await rm(dataDir, { recursive: true, force: true });
    for (const repo of repos) {
      await removeBuiltImages(docker, repo);
      await rm(repo.dir, { recursive: true, force: true });
    }
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`bench/build failed: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
