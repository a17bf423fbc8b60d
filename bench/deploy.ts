// `make bench`: deploy latency of Slipway against Docker Swarm, in one run on the same machine,
// same Docker Engine and same image (the busybox test app). For each side, p50 and p95 over
// RUNS runs of: a new 2-replica service from the create call (`slipctl apply` / `docker service
// create`) until both replicas are healthy and answer `GET /` with the expected version; an update
// of APP_VERSION (Slipway BlueGreen; Swarm's default stop-first rolling update, then start-first)
// until both serve the new version; and a `docker kill`ed replica until it (or its replacement)
// serves again. Both sides gate on the same HTTP health check (1 s interval). Prints each figure,
// the Slipway/Swarm ratio and PASS/MISS per target; exits non-zero only if the bench itself
// broke. `--runs N` (default 10). Runs alternate (Slipway run i, then Swarm run i) so load from
// anything else on the machine falls on both sides alike.
//
// Swarm: initialised with `--advertise-addr 127.0.0.1` if the engine is not in a swarm (and left
// again at the end); tasks publish port 3000 with mode=host on a host port Docker picks (the
// routing mesh needs IPVS, which this kernel lacks). If Swarm cannot start, Slipway's figures
// are still printed.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import type { Service } from '../src/api/generated/crd-types.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { createNamespace } from '../test/helpers/apiserver.js';
import { buildTestImage, DOCKER_SOCKET, TEST_IMAGE } from '../test/helpers/docker.js';
import { httpGet, nsPath, registerNode, startManager, startPlatform, waitFor, type Platform } from '../test/helpers/platform.js';

const run = promisify(execFile);
const argv = process.argv.slice(2);
const RUNS = argv.includes('--runs') ? Math.max(1, Number(argv[argv.indexOf('--runs') + 1]) || 10) : 10;
const NS = 'bench-deploy';
const SWARM_PREFIX = 'slwbench-';
const HEALTH = { path: '/cgi-bin/health', intervalSeconds: 1 };
const POLL_MS = 25;
const docker = new Docker({ socketPath: DOCKER_SOCKET });

// ---- measuring ------------------------------------------------------------------------------

const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const secs = (ms: number) => fmt(ms / 1000, 2);
const spread = (xs: number[]) => (xs.length ? `p50 ${secs(percentile(xs, 50))} s, p95 ${secs(percentile(xs, 95))} s, min ${secs(Math.min(...xs))} s, max ${secs(Math.max(...xs))} s` : 'n/a');
const targets: { name: string; ok: boolean; detail: string }[] = [];
function target(name: string, ok: boolean, detail: string): void {
  targets.push({ name, ok, detail });
}

interface Figure {
  name: string;
  slipway: number[];
  swarm: number[];
  slipwayNote?: string;
  swarmNote?: string;
}
const figures: Figure[] = [];
const figure = (name: string): Figure => {
  const f: Figure = { name, slipway: [], swarm: [] };
  figures.push(f);
  return f;
};

const body = async (port: number, host = '127.0.0.1') => (await httpGet(`http://${host}:${port}/`, 1000)).body.trim();

// ---- Slipway ---------------------------------------------------------------------------------

function slipwaySvc(name: string, version: string) {
  return { apiVersion: 'slipway.dev/v1alpha1', kind: 'Service', metadata: { name }, spec: { image: TEST_IMAGE, replicas: 2, healthCheck: HEALTH, env: [{ name: 'APP_VERSION', value: version }] } };
}

const slipwayContainers = (service?: string) =>
  docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`, ...(service ? [`slipway.dev/service=${service}`] : [])] } });

/** Waits until the Service's active release (not `notRelease`) has 2 ready endpoints that both answer `version=<version>`. */
async function slipwayServing(p: Platform, name: string, version: string, notRelease?: string, timeoutMs = 60_000): Promise<Service> {
  return waitFor(`${name} serving ${version}`, async () => {
    const s = await p.client.get<Service>(nsPath(NS, 'services', name));
    const st = s.status;
    if (!st?.activeRelease || st.activeRelease === notRelease || st.candidateRelease || st.readyReplicas !== 2) return undefined;
    const eps = st.endpoints ?? [];
    if (eps.length !== 2 || !eps.every((e) => e.ready)) return undefined;
    const bodies = await Promise.all(eps.map((e) => body(e.port, e.host)));
    return bodies.every((b) => b === `version=${version}`) ? s : undefined;
  }, timeoutMs, POLL_MS);
}

/** One timed run of each kind on Slipway; each returns milliseconds. */
class SlipwaySide {
  version = 'v0';
  restartedInPlace = 0;
  constructor(private readonly p: Platform) {}

  /** Warm-up (not timed), and the Service the updates and kills then use. */
  async setup(): Promise<void> {
    await this.p.client.create(nsPath(NS, 'services'), slipwaySvc('upd', this.version));
    await slipwayServing(this.p, 'upd', this.version);
  }

  async create(i: number): Promise<number> {
    const name = `new-${i}`;
    const t = now();
    await this.p.client.create(nsPath(NS, 'services'), slipwaySvc(name, 'v1'));
    await slipwayServing(this.p, name, 'v1');
    const ms = now() - t;
    // One at a time, so runs do not overlap.
    await this.p.client.delete(nsPath(NS, 'services', name));
    await waitFor(`${name} containers removed`, async () => (await slipwayContainers(name)).length === 0, 60_000, 100);
    return ms;
  }

  async update(): Promise<number> {
    const before = (await this.p.client.get<Service>(nsPath(NS, 'services', 'upd'))).status?.activeRelease;
    const version = `v${Number(this.version.slice(1)) + 1}`;
    const t = now();
    await this.p.client.patch(nsPath(NS, 'services', 'upd'), { spec: { env: [{ name: 'APP_VERSION', value: version }] } });
    await slipwayServing(this.p, 'upd', version, before);
    this.version = version;
    return now() - t;
  }

  async kill(i: number): Promise<number> {
    const s = await slipwayServing(this.p, 'upd', this.version);
    const victim = s.status!.endpoints![i % 2]!;
    const replica = victim.containerName!.slice(victim.containerName!.lastIndexOf('-')); // "-0" / "-1"
    const info = await docker.getContainer(victim.containerName!).inspect();
    const t = now();
    await docker.getContainer(info.Id).kill();
    await waitFor(`replica ${victim.containerName} serving again`, async () => {
      const cur = await this.p.client.get<Service>(nsPath(NS, 'services', 'upd'));
      const e = cur.status?.endpoints?.find((e) => e.containerName?.endsWith(replica));
      if (!e?.ready || cur.status?.readyReplicas !== 2) return undefined;
      // The process answering must be a new one: a restarted or replaced container.
      const c = await docker.getContainer(e.containerName!).inspect();
      if (!c.State.Running || (c.Id === info.Id && c.State.StartedAt === info.State.StartedAt)) return undefined;
      if ((await body(e.port, e.host)) !== `version=${this.version}`) return undefined;
      if (c.Id === info.Id) this.restartedInPlace++;
      return true;
    }, 30_000, POLL_MS);
    return now() - t;
  }
}

// ---- Docker Swarm ----------------------------------------------------------------------------

function swarmSpec(name: string, version: string): Record<string, unknown> {
  return {
    Name: name,
    Labels: { 'slwbench.owner': 'bench/deploy' },
    TaskTemplate: {
      ContainerSpec: {
        Image: TEST_IMAGE,
        Env: [`APP_VERSION=${version}`],
        Init: true, // as Slipway's replicas: a stop does not wait out the grace period
        // The same check as Slipway's: GET the health path every second, 2 s timeout, 3 retries.
        HealthCheck: { Test: ['CMD-SHELL', 'wget -q -O- http://127.0.0.1:3000/cgi-bin/health'], Interval: 1e9, Timeout: 2e9, Retries: 3 },
      },
    },
    Mode: { Replicated: { Replicas: 2 } },
    EndpointSpec: { Ports: [{ Protocol: 'tcp', TargetPort: 3000, PublishMode: 'host' }] },
  };
}

interface SwarmTask {
  containerId?: string;
  port?: number;
  env: string[];
}

/** The service's tasks that are running (past their health check) with their published ports. */
async function runningTasks(name: string): Promise<SwarmTask[]> {
  const tasks = await docker.listTasks({ filters: { service: [name], 'desired-state': ['running'] } });
  return tasks
    .filter((t: any) => t.Status?.State === 'running')
    .map((t: any) => ({ containerId: t.Status?.ContainerStatus?.ContainerID, port: t.Status?.PortStatus?.Ports?.[0]?.PublishedPort, env: t.Spec?.ContainerSpec?.Env ?? [] }));
}

/** Waits until exactly 2 running tasks, none of them `exclude`, answer `version=<version>`. */
async function swarmServing(name: string, version: string, exclude?: string, timeoutMs = 60_000): Promise<SwarmTask[]> {
  return waitFor(`${name} serving ${version}`, async () => {
    const tasks = await runningTasks(name);
    if (tasks.length !== 2 || tasks.some((t) => !t.port || t.containerId === exclude || !t.env.includes(`APP_VERSION=${version}`))) return undefined;
    const bodies = await Promise.all(tasks.map((t) => body(t.port!)));
    return bodies.every((b) => b === `version=${version}`) ? tasks : undefined;
  }, timeoutMs, POLL_MS);
}

const swarmContainers = (name: string) => docker.listContainers({ all: true, filters: { label: [`com.docker.swarm.service.name=${name}`] } });

async function swarmRemoveAndWait(name: string): Promise<void> {
  await docker.getService(name).remove().catch(() => {});
  await waitFor(`${name} containers removed`, async () => (await swarmContainers(name)).length === 0, 60_000, 100);
}

async function removeSwarmLeftovers(): Promise<void> {
  const services = await docker.listServices({ filters: { name: [SWARM_PREFIX] } }).catch(() => []);
  for (const s of services) if (s.Spec?.Name?.startsWith(SWARM_PREFIX)) await swarmRemoveAndWait(s.Spec.Name);
}

/** Changes the service's spec (not timed here) and, with `settle`, waits until the rolling update is done. */
async function updateSwarm(name: string, mutate: (spec: any) => void, settle = false): Promise<void> {
  const service = docker.getService(name);
  const info: any = await service.inspect();
  const spec = structuredClone(info.Spec);
  mutate(spec);
  await service.update({ _query: { version: info.Version.Index }, _body: spec });
  if (!settle) return;
  await sleep(300);
  await waitFor(`${name} update settled`, async () => {
    const now: any = await service.inspect();
    return !now.UpdateStatus || now.UpdateStatus.State === 'completed';
  }, 60_000, 100);
}

/** The same runs on Docker Swarm. */
class SwarmSide {
  version = 'v0';
  readonly upd = `${SWARM_PREFIX}upd`;

  async setup(): Promise<void> {
    await removeSwarmLeftovers();
    await docker.createService(swarmSpec(this.upd, this.version));
    await swarmServing(this.upd, this.version);
  }

  async create(i: number): Promise<number> {
    const name = `${SWARM_PREFIX}new-${i}`;
    const t = now();
    await docker.createService(swarmSpec(name, 'v1'));
    await swarmServing(name, 'v1');
    const ms = now() - t;
    await swarmRemoveAndWait(name);
    return ms;
  }

  /** Sets the rolling update order: 'stop-first' (Swarm's default) or 'start-first'. */
  async order(order: 'stop-first' | 'start-first'): Promise<void> {
    await updateSwarm(this.upd, (spec) => (spec.UpdateConfig = { ...(spec.UpdateConfig ?? {}), Parallelism: 1, Order: order }), true);
  }

  async update(): Promise<number> {
    const version = `v${Number(this.version.slice(1)) + 1}`;
    const t = now();
    await updateSwarm(this.upd, (spec) => (spec.TaskTemplate.ContainerSpec.Env = [`APP_VERSION=${version}`]));
    await swarmServing(this.upd, version);
    this.version = version;
    return now() - t;
  }

  /**
   * Swarm waits 5 s (its default restart delay) before replacing a failed task; set it to 0 so
   * the kill figure measures the replacement itself, as Slipway's does.
   */
  async noRestartDelay(): Promise<void> {
    await updateSwarm(this.upd, (spec) => (spec.TaskTemplate.RestartPolicy = { Condition: 'any', Delay: 0, MaxAttempts: 0 }), true);
    await swarmServing(this.upd, this.version);
  }

  async kill(): Promise<number> {
    const tasks = await swarmServing(this.upd, this.version);
    const victim = tasks[0]!.containerId!;
    const t = now();
    await docker.getContainer(victim).kill();
    await swarmServing(this.upd, this.version, victim, 30_000);
    return now() - t;
  }
}

/** Joins a single-node swarm if the engine is in none; says whether this bench initialised it. */
async function ensureSwarm(): Promise<{ ok: boolean; initialised: boolean; gwbridgeCreated?: boolean; why?: string }> {
  const info: any = await docker.info();
  const state = info.Swarm?.LocalNodeState;
  if (state === 'active') return info.Swarm?.ControlAvailable ? { ok: true, initialised: false } : { ok: false, initialised: false, why: 'this engine is a swarm worker, not a manager' };
  if (state !== 'inactive') return { ok: false, initialised: false, why: `swarm state is "${state}"` };
  // `swarm init` creates the docker_gwbridge network and `swarm leave` keeps it: remove it after.
  const gwbridgeExisted = await docker.getNetwork('docker_gwbridge').inspect().then(() => true, () => false);
  try {
    await run('docker', ['swarm', 'init', '--advertise-addr', '127.0.0.1']);
    return { ok: true, initialised: true, gwbridgeCreated: !gwbridgeExisted };
  } catch (err) {
    return { ok: false, initialised: false, why: `docker swarm init failed: ${((err as { stderr?: string }).stderr || (err as Error).message).trim()}` };
  }
}

// ---- main -------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = now();
  console.log(`bench/deploy: Slipway (in-process API server + controller manager, local Docker as node "local") vs Docker Swarm, image ${TEST_IMAGE}, 2 replicas, ${RUNS} alternating runs per figure`);
  const create = figure('create → 2 replicas healthy');
  const update = figure('update → both serve new version');
  const updateStartFirst = figure('  same, Swarm start-first');
  const kill = figure('killed replica serving again');

  let p: Platform | null = null;
  let manager: ControllerManager | null = null;
  let swarm: SwarmSide | null = null;
  let swarmProblem: string | undefined;
  let swarmInitialised = false;
  let gwbridgeCreated = false;
  try {
    p = await startPlatform();
    await buildTestImage(docker);
    manager = await startManager(p.api, { resyncMs: 15_000 });
    await registerNode(p.client, 'local');
    await createNamespace(p.client, NS);
    const slipway = new SlipwaySide(p);
    await slipway.setup();

    try {
      const joined = await ensureSwarm();
      swarmInitialised = joined.initialised;
      gwbridgeCreated = !!joined.gwbridgeCreated;
      if (!joined.ok) throw new Error(joined.why);
      swarm = new SwarmSide();
      await swarm.setup();
    } catch (err) {
      swarmProblem = (err as Error).message;
      swarm = null;
    }
    /** Swarm's half of a run; if Swarm breaks, the bench goes on with Slipway alone. */
    const onSwarm = async (f: Figure, task: (s: SwarmSide) => Promise<number>) => {
      if (!swarm) return;
      try {
        f.swarm.push(await task(swarm));
      } catch (err) {
        swarmProblem = `Swarm broke during "${f.name.trim()}": ${(err as Error).message}`;
        swarm = null;
      }
    };
    /** An untimed Swarm step (a configuration change between phases). */
    const swarmStep = async (what: string, step: (s: SwarmSide) => Promise<void>) => {
      if (!swarm) return;
      try {
        await step(swarm);
      } catch (err) {
        swarmProblem = `Swarm broke during ${what}: ${(err as Error).message}`;
        swarm = null;
      }
    };
    const phase = async (f: Figure, label: string, slipwayRun: (i: number) => Promise<number>, swarmRun: (s: SwarmSide, i: number) => Promise<number>) => {
      for (let i = 0; i < RUNS; i++) {
        f.slipway.push(await slipwayRun(i));
        await onSwarm(f, (s) => swarmRun(s, i));
      }
      console.log(`${label}`);
      console.log(`  Slipway  ${spread(f.slipway)}${f.slipwayNote ? `   (${f.slipwayNote})` : ''}`);
      console.log(`  Swarm    ${spread(f.swarm)}${f.swarmNote ? `   (${f.swarmNote})` : ''}`);
    };

    await phase(create, 'create (API create / service create) → 2 replicas healthy and serving:', (i) => slipway.create(i), (s, i) => s.create(i));
    update.swarmNote = 'default update config: parallelism 1, stop-first';
    await phase(update, 'update APP_VERSION → both replicas serve it (Slipway BlueGreen):', () => slipway.update(), (s) => s.update());
    await swarmStep('the switch to start-first', (s) => s.order('start-first'));
    updateStartFirst.swarmNote = 'parallelism 1, start-first';
    await phase(updateStartFirst, 'the same, Swarm with start-first:', () => slipway.update(), (s) => s.update());
    await swarmStep('the restart-delay change', (s) => s.noRestartDelay());
    kill.swarmNote = 'restart delay 0 s (default 5 s)';
    const killRun = async (i: number) => {
      const ms = await slipway.kill(i);
      kill.slipwayNote = `${slipway.restartedInPlace}/${i + 1} restarted in place by Docker, the rest replaced`;
      return ms;
    };
    await phase(kill, 'docker kill of one replica → it (or its replacement) serves again:', killRun, (s) => s.kill());
  } finally {
    if (p) {
      for (const s of (await p.client.list(nsPath(NS, 'services')).catch(() => ({ items: [] as any[] }))).items) await p.client.delete(nsPath(NS, 'services', s.metadata.name!)).catch(() => {});
      await waitFor('bench containers removed', async () => (await slipwayContainers()).length === 0, 60_000, 200).catch((err) => console.error(`bench/deploy: ${(err as Error).message}`));
    }
    await manager?.stop().catch(() => {});
    await p?.stop().catch(() => {});
    // Anything the controller had no time to remove (never leave containers behind).
    for (const c of await slipwayContainers().catch(() => [])) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
    await removeSwarmLeftovers().catch((err) => console.error(`bench/deploy: removing swarm services: ${(err as Error).message}`));
    if (swarmInitialised) await run('docker', ['swarm', 'leave', '--force']).catch((err) => console.error(`bench/deploy: docker swarm leave: ${(err as Error).message}`));
    if (gwbridgeCreated) await docker.getNetwork('docker_gwbridge').remove().catch(() => {});
  }
  if (swarmProblem) console.log(`Swarm: ${figures.some((f) => f.swarm.length) ? 'incomplete' : 'no figures'} (${swarmProblem})`);

  console.log('');
  const ratioOf = (f: Figure) => (f.swarm.length ? percentile(f.slipway, 50) / percentile(f.swarm, 50) : NaN);
  console.log(`${'figure'.padEnd(32)} ${'Slipway p50/p95'.padStart(16)} ${'Swarm p50/p95'.padStart(16)}  ${'ratio p50'.padStart(9)}`);
  for (const f of figures) {
    const sw = f.swarm.length ? `${secs(percentile(f.swarm, 50))}/${secs(percentile(f.swarm, 95))} s` : 'n/a';
    console.log(`${f.name.padEnd(32)} ${`${secs(percentile(f.slipway, 50))}/${secs(percentile(f.slipway, 95))} s`.padStart(16)} ${sw.padStart(16)}  ${`${fmt(ratioOf(f), 2)}×`.padStart(9)}`);
  }
  for (const f of [create, update]) {
    const ratio = ratioOf(f);
    target(`${f.name}: p50 <= 0.5× Swarm`, ratio <= 0.5, f.swarm.length ? `${fmt(ratio, 2)}× (${secs(percentile(f.slipway, 50))} s vs ${secs(percentile(f.swarm, 50))} s)` : 'no Swarm figure');
  }
  const killP50 = percentile(kill.slipway, 50);
  target('killed replica serving again p50 <= 2 s', killP50 <= 2000, `${secs(killP50)} s`);
  console.log('targets:');
  for (const t of targets) console.log(`  ${t.ok ? 'PASS' : 'MISS'}  ${t.name}: ${t.detail}`);
  console.log(`bench/deploy: done in ${fmt((now() - started) / 1000)} s`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`bench/deploy broke: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
