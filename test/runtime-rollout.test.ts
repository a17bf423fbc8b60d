// Services and Releases on a real Docker Engine, driven by a real controller manager: deploy,
// scale, BlueGreen updates that never leave the Service without healthy endpoints, health checks
// and migrations that fail a release and roll it back, migrations that run once, a killed container
// replaced at once, deleted Services cleaned up, and bad specs refused with the field named.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import type { Release, Service } from '../src/api/generated/crd-types.js';
import { ApiRequestError } from '../src/client/api-client.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { createNamespace } from './helpers/apiserver.js';
import { buildTestImage, DOCKER_SOCKET, TEST_IMAGE } from './helpers/docker.js';
import { httpGet, nsPath, registerNode, startManager, startPlatform, waitFor, waitForEvent, type Platform } from './helpers/platform.js';

const NS = 'rollout';
let p: Platform;
let manager: ControllerManager;
/** How far the manager's clock for scheduled runs is ahead of real time. */
let clockOffsetMs = 0;
const docker = new Docker({ socketPath: DOCKER_SOCKET });

const HEALTH = { path: '/cgi-bin/health', intervalSeconds: 1, timeoutSeconds: 1, failureThreshold: 2 };

function svc(name: string, spec: Record<string, unknown>) {
  return { apiVersion: 'slipway.dev/v1alpha1', kind: 'Service', metadata: { name }, spec: { image: TEST_IMAGE, healthCheck: HEALTH, ...spec } };
}
const getSvc = (name: string) => p.client.get<Service>(nsPath(NS, 'services', name));
const getRelease = (name: string) => p.client.get<Release>(nsPath(NS, 'releases', name));
const version = (v: string) => [{ name: 'APP_VERSION', value: v }];

/** Waits until the Service's active release is `release` with `replicas` ready replicas. */
function waitActive(name: string, release: string, replicas: number, timeoutMs = 60_000) {
  return waitFor(`${name} active=${release} ready=${replicas}`, async () => {
    const s = await getSvc(name);
    return s.status?.activeRelease === release && s.status?.readyReplicas === replicas && !s.status?.candidateRelease && s.status.endpoints?.length === replicas ? s : undefined;
  }, timeoutMs, 50);
}

async function bodies(s: Service): Promise<string[]> {
  return Promise.all((s.status?.endpoints ?? []).map(async (e) => (await httpGet(`http://${e.host}:${e.port}/`)).body.trim()));
}

const containersOf = (service: string) => docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`, `slipway.dev/service=${service}`] } });

before(async () => {
  p = await startPlatform();
  await buildTestImage(docker);
  manager = await startManager(p.api, { clock: () => Date.now() + clockOffsetMs });
  await registerNode(p.client, 'local');
  await createNamespace(p.client, NS);
  // Volumes outlive their Service (data is never deleted with it): start from an empty one.
  await docker.getVolume(`${NS}-db-app-data`).remove().catch(() => {});
});

after(async () => {
  for (const s of (await p.client.list(nsPath(NS, 'services'))).items) await p.client.delete(nsPath(NS, 'services', s.metadata.name!));
  await waitFor('all test containers removed', async () => (await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })).length === 0, 30_000).catch(() => {});
  await manager?.stop();
  await p?.stop();
});

describe('deploy and scale', () => {
  test('a new Service runs its replicas, each answering on its endpoint', async () => {
    await p.client.create(nsPath(NS, 'services'), svc('web', { replicas: 2, env: version('v1') }));
    const s = await waitActive('web', 'web-1', 2);
    assert.deepEqual(await bodies(s), ['version=v1', 'version=v1']);
    const release = await getRelease('web-1');
    assert.equal(release.status?.phase, 'Completed');
    assert.match(release.spec?.imageDigest ?? '', /^sha256:[a-f0-9]{64}$/);
    assert.deepEqual(release.status?.steps?.map((st) => `${st.name}:${st.result}`), ['Artifact:Succeeded', 'StartCandidate:Succeeded', 'Migrate:Skipped', 'HealthCheck:Succeeded', 'ShiftTraffic:Succeeded']);
    const containers = await containersOf('web');
    assert.deepEqual(containers.map((c) => c.Names[0]).sort(), [`/${NS}.web-1-0`, `/${NS}.web-1-1`]);
    const info = await docker.getContainer(containers[0]!.Id).inspect();
    assert.equal(info.HostConfig.Init, true);
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.deepEqual(info.HostConfig.SecurityOpt, ['no-new-privileges:true']);
    assert.equal(info.HostConfig.RestartPolicy?.Name, 'unless-stopped');
    assert.equal(info.Config.Labels['slipway.dev/release'], 'web-1');
    const conditions = Object.fromEntries((s.status?.conditions ?? []).map((c) => [c.type, `${c.status}/${c.reason}`]));
    assert.deepEqual(conditions, { Progressing: 'True/RolloutComplete', Available: 'True/MinimumReplicasAvailable', Degraded: 'False/AsExpected' });
  });

  test('scaling changes the replica count without a new release', async () => {
    await p.client.patch(nsPath(NS, 'services', 'web'), { spec: { replicas: 3 } });
    await waitActive('web', 'web-1', 3);
    await p.client.patch(nsPath(NS, 'services', 'web'), { spec: { replicas: 1 } });
    await waitActive('web', 'web-1', 1);
    await waitFor('extra containers removed', async () => (await containersOf('web')).length === 1);
    assert.equal((await p.client.list(nsPath(NS, 'releases'), { labelSelector: 'slipway.dev/service=web' })).items.length, 1);
  });

  test('a killed container is replaced at once', async () => {
    const before = await getSvc('web');
    const [c] = await containersOf('web');
    await docker.getContainer(c!.Id).kill();
    const started = Date.now();
    const s = await waitFor('replica serving again', async () => {
      const now = await getSvc('web');
      const e = now.status?.endpoints?.[0];
      if (!e?.ready || now.status?.readyReplicas !== 1) return undefined;
      return (await httpGet(`http://${e.host}:${e.port}/`)).status === 200 ? now : undefined;
    }, 20_000, 50);
    assert.ok(Date.now() - started < 20_000);
    assert.equal(s.status?.activeRelease, before.status?.activeRelease);
  });
});

describe('BlueGreen updates', () => {
  test('an update starts the new release beside the old one and switches only when it is healthy', async () => {
    await p.client.patch(nsPath(NS, 'services', 'web'), { spec: { replicas: 2 } });
    await waitActive('web', 'web-1', 2);
    const failed: string[] = [];
    let samples = 0;
    let done = false;
    const sampler = (async () => {
      while (!done) {
        const s = await getSvc('web');
        for (const e of (s.status?.endpoints ?? []).filter((e) => e.ready)) {
          samples++;
          const res = await httpGet(`http://${e.host}:${e.port}/`);
          if (res.status !== 200) {
            failed.push(`${e.containerName} ${e.port}: ${res.status}`);
          }
        }
      }
    })();
    await p.client.patch(nsPath(NS, 'services', 'web'), { spec: { env: version('v2') } });
    const s = await waitActive('web', 'web-2', 2);
    done = true;
    await sampler;
    assert.deepEqual(await bodies(s), ['version=v2', 'version=v2']);
    assert.ok(samples > 5, `sampled ${samples} times`);
    assert.deepEqual(failed, [], 'every ready endpoint the Service listed answered during the rollout');
    assert.equal(s.status?.previousRelease, 'web-1');
    const old = await getRelease('web-1');
    assert.ok(Date.parse(old.status!.keepWarmUntil!) > Date.now(), 'the old release is kept warm');
    const names = (await containersOf('web')).map((c) => c.Names[0]!.slice(1)).sort();
    assert.deepEqual(names, [`${NS}.web-1-0`, `${NS}.web-1-1`, `${NS}.web-2-0`, `${NS}.web-2-1`]);
  });

  test('a failing health check fails the release and leaves the old one serving', async () => {
    await p.client.patch(nsPath(NS, 'services', 'web'), { spec: { env: [...version('v3'), { name: 'HEALTH', value: 'fail' }] } });
    const release = await waitFor('web-3 failed', async () => {
      const r = await getRelease('web-3').catch(() => undefined);
      return r?.status?.phase === 'Failed' ? r : undefined;
    }, 60_000);
    assert.equal(release.status?.reason, 'HealthCheckFailed');
    assert.match(release.status?.message ?? '', /answered 500/);
    const s = await waitFor('service degraded', async () => {
      const now = await getSvc('web');
      return now.status?.conditions?.find((c) => c.type === 'Degraded' && c.status === 'True' && c.reason === 'RolloutFailed') ? now : undefined;
    });
    assert.equal(s.status?.activeRelease, 'web-2');
    assert.equal(s.status?.candidateRelease, undefined);
    assert.equal(s.status?.conditions?.find((c) => c.type === 'Progressing')?.reason, 'RolloutFailed');
    assert.deepEqual(await bodies(s), ['version=v2', 'version=v2']);
    await waitFor('candidate containers removed', async () => !(await containersOf('web')).some((c) => c.Labels['slipway.dev/release'] === 'web-3'));
    await waitForEvent(p.client, NS, 'a Warning RolloutFailed on the Service', (e) => e.reason === 'RolloutFailed' && e.type === 'Warning' && e.involvedObject?.name === 'web');
  });

  test('a corrected spec rolls out after a failure', async () => {
    await p.client.patch(nsPath(NS, 'services', 'web'), { spec: { env: version('v4') } });
    const s = await waitActive('web', 'web-4', 2);
    assert.equal(s.status?.conditions?.find((c) => c.type === 'Degraded')?.status, 'False');
    assert.deepEqual(await bodies(s), ['version=v4', 'version=v4']);
  });
});

describe('migrations', () => {
  const migrating = (v: string, command: string[], extra: Record<string, unknown> = {}) =>
    svc('db-app', { replicas: 1, env: version(v), volumes: [{ name: 'data', mountPath: '/data' }], migrate: { command, timeoutSeconds: 30 }, ...extra });
  const marker = async () => {
    const [c] = (await containersOf('db-app')).filter((c) => c.State === 'running');
    const exec = await docker.getContainer(c!.Id).exec({ Cmd: ['cat', '/data/migrations'], AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    docker.modem.demuxStream(stream, out, out);
    await new Promise((resolve) => stream.on('end', resolve));
    return text.trim();
  };

  test('a migration runs once per release from the new image before traffic moves', async () => {
    await p.client.create(nsPath(NS, 'services'), migrating('v1', ['sh', '-c', 'echo "migrated $SLIPWAY_RELEASE" >> /data/migrations']));
    await waitActive('db-app', 'db-app-1', 1);
    const release = await getRelease('db-app-1');
    assert.equal(release.status?.steps?.find((s) => s.name === 'Migrate')?.result, 'Succeeded');
    assert.match(await marker(), /^migrated db-app-1$/);
    await p.client.patch(nsPath(NS, 'services', 'db-app'), { spec: { replicas: 2 } });
    await waitActive('db-app', 'db-app-1', 2);
    assert.match(await marker(), /^migrated db-app-1$/, 'scaling does not migrate again');
    assert.equal((await containersOf('db-app')).filter((c) => c.Labels['slipway.dev/role'] === 'migrate').length, 0, 'the one-shot container is removed');
  });

  test('a failing migration blocks the release: nothing switches, the reason is recorded', async () => {
    await p.client.patch(nsPath(NS, 'services', 'db-app'), { spec: { env: version('v2'), migrate: { command: ['sh', '-c', 'echo "relation users already exists" >&2; exit 3'], retries: 1 } } });
    const release = await waitFor('db-app-2 failed', async () => {
      const r = await getRelease('db-app-2').catch(() => undefined);
      return r?.status?.phase === 'Failed' ? r : undefined;
    }, 60_000);
    assert.equal(release.status?.reason, 'MigrationFailed');
    assert.match(release.status?.message ?? '', /exited with code 3/);
    assert.match(release.status?.message ?? '', /relation users already exists/);
    assert.equal(release.status?.steps?.find((s) => s.name === 'Migrate')?.attempts, 2, 'retried once');
    assert.equal(release.status?.steps?.find((s) => s.name === 'HealthCheck'), undefined, 'never reached the health check');
    const s = await getSvc('db-app');
    assert.equal(s.status?.activeRelease, 'db-app-1');
    await waitFor('only the old release runs', async () => (await containersOf('db-app')).every((c) => c.Labels['slipway.dev/release'] === 'db-app-1'));
  });
});

describe('lifecycle', () => {
  test('Recreate replaces in place', async () => {
    await p.client.create(nsPath(NS, 'services'), svc('worker', { replicas: 1, env: version('v1'), strategy: { type: 'Recreate' } }));
    await waitActive('worker', 'worker-1', 1);
    await p.client.patch(nsPath(NS, 'services', 'worker'), { spec: { env: version('v2') } });
    const s = await waitActive('worker', 'worker-2', 1);
    assert.deepEqual(await bodies(s), ['version=v2']);
  });

  test('deleting a Service removes its containers and releases', async () => {
    await p.client.delete(nsPath(NS, 'services', 'worker'));
    await waitFor('worker containers removed', async () => (await containersOf('worker')).length === 0, 30_000);
    await waitFor('worker releases collected', async () => (await p.client.list(nsPath(NS, 'releases'), { labelSelector: 'slipway.dev/service=worker' })).items.length === 0, 30_000);
  });

  test('containers Slipway does not own are never touched', async () => {
    const foreign = await docker.createContainer({ name: `${NS}.web-9-0`, Image: TEST_IMAGE, Labels: { 'slipway.test': '1' } });
    try {
      await p.client.patch(nsPath(NS, 'services', 'web'), { spec: { env: version('v5') } });
      await waitActive('web', 'web-5', 2);
      await foreign.inspect();
    } finally {
      await foreign.remove({ force: true });
    }
  });
});

describe('rollout rules', () => {
  test('a newer spec supersedes an unfinished rollout cleanly', async () => {
    const slow = { command: ['sh', '-c', 'sleep 20'], timeoutSeconds: 60 };
    await p.client.create(nsPath(NS, 'services'), svc('hasty', { replicas: 1, env: version('v1') }));
    await waitActive('hasty', 'hasty-1', 1);
    await p.client.patch(nsPath(NS, 'services', 'hasty'), { spec: { env: version('v2'), migrate: slow } });
    await waitFor('hasty-2 migrating', async () => (await getRelease('hasty-2').catch(() => undefined))?.status?.phase === 'Migrating', 30_000, 50);
    await p.client.patch(nsPath(NS, 'services', 'hasty'), { spec: { env: version('v3'), migrate: null } });
    const s = await waitActive('hasty', 'hasty-3', 1);
    assert.deepEqual(await bodies(s), ['version=v3']);
    const superseded = await getRelease('hasty-2');
    assert.equal(superseded.status?.phase, 'Failed');
    assert.equal(superseded.status?.reason, 'Superseded');
    await waitFor('hasty-2 containers gone', async () => !(await containersOf('hasty')).some((c) => c.Labels['slipway.dev/release'] === 'hasty-2'));
  });

  test('the old release is stopped when keepOldFor has passed, and old releases are pruned to the history limit', async () => {
    await p.client.patch(nsPath(NS, 'services', 'hasty'), { spec: { env: version('v4'), strategy: { blueGreen: { keepOldFor: '2s' } }, revisionHistoryLimit: 2 } });
    await waitActive('hasty', 'hasty-4', 1);
    assert.ok((await containersOf('hasty')).some((c) => c.Labels['slipway.dev/release'] === 'hasty-3'), 'hasty-3 is kept warm first');
    await waitFor('hasty-3 stopped after 2s', async () => (await containersOf('hasty')).every((c) => c.Labels['slipway.dev/release'] === 'hasty-4'), 15_000);
    const names = await waitFor('history pruned', async () => {
      const list = (await p.client.list(nsPath(NS, 'releases'), { labelSelector: 'slipway.dev/service=hasty' })).items.map((r) => r.metadata.name).sort();
      return list.length === 2 ? list : undefined;
    }, 15_000);
    assert.deepEqual(names, ['hasty-3', 'hasty-4']);
  });

  test('environment from Secrets (envFrom and secretKeyRef) reaches the containers', async () => {
    await p.client.create(nsPath(NS, 'secrets'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'app-env' }, stringData: { API_KEY: 'k-123', MODE: 'live' } });
    await p.client.patch(nsPath(NS, 'services', 'hasty'), { spec: { envFrom: [{ secretRef: { name: 'app-env' }, prefix: 'APP_' }], env: [...version('v5'), { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'app-env', key: 'API_KEY' } } }] } });
    await waitActive('hasty', 'hasty-5', 1);
    const [c] = (await containersOf('hasty')).filter((x) => x.Labels['slipway.dev/release'] === 'hasty-5');
    const env = (await docker.getContainer(c!.Id).inspect()).Config.Env;
    assert.ok(env.includes('APP_API_KEY=k-123') && env.includes('APP_MODE=live') && env.includes('TOKEN=k-123'), env.join(' '));
    const release = await getRelease('hasty-5');
    assert.doesNotMatch(JSON.stringify(release), /k-123/, 'the Release records references, not values');
  });
});

describe('scheduled services', () => {
  const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const runsOf = async () => (await getSvc('nightly')).status?.schedule?.runs ?? [];

  test('an invalid cron expression or time zone is refused with the field named', async () => {
    for (const [schedule, field] of [[{ cron: '61 * * * *' }, /spec\.schedule\.cron/], [{ cron: '@daily', timeZone: 'Mars/Olympus' }, /spec\.schedule\.timeZone/]] as const) {
      await assert.rejects(p.client.create(nsPath(NS, 'services'), svc('badcron', { schedule })), (err: unknown) => err instanceof ApiRequestError && err.code === 422 && field.test(err.message));
    }
  });

  test('runs one-shot containers on schedule, once for all slots missed while down, with a history', async () => {
    await p.client.create(nsPath(NS, 'services'), svc('nightly', { command: ['sh', '-c', 'echo "job $SLIPWAY_RELEASE"; exit 0'], schedule: { cron: '0 * * * *', timeZone: 'Europe/Berlin' } }));
    const s = await waitFor('nightly active', async () => {
      const now = await getSvc('nightly');
      return now.status?.activeRelease === 'nightly-1' && now.status.schedule?.nextScheduleTime ? now : undefined;
    });
    assert.equal(Date.parse(s.status!.schedule!.nextScheduleTime!) % 3_600_000, 0, 'the next slot is on the hour');
    assert.deepEqual(s.status?.schedule?.runs ?? [], [], 'no slot has passed since creation');
    assert.equal((await containersOf('nightly')).length, 0, 'no long-running replicas');
    // As if the manager had been down for three hours: one catch-up run, not three.
    await p.client.patch(nsPath(NS, 'services', 'nightly') + '/status', { status: { schedule: { lastScheduleTime: hoursAgo(3) } } });
    const runs = await waitFor('one run succeeded', async () => {
      const r = await runsOf();
      return r.length === 1 && r[0]!.result === 'Succeeded' ? r : undefined;
    }, 30_000);
    assert.equal(runs[0]!.exitCode, 0);
    assert.equal(runs[0]!.release, 'nightly-1');
    const after = await getSvc('nightly');
    assert.ok(Date.parse(after.status!.schedule!.lastScheduleTime!) > Date.now() - 3_600_000, 'the latest missed slot ran');
    assert.ok(after.status?.schedule?.lastSuccessfulTime);
    const [c] = await containersOf('nightly');
    assert.equal(c?.Labels['slipway.dev/role'], 'run');
    const logs = await docker.getContainer(c!.Id).logs({ stdout: true, stderr: true });
    assert.match(logs.toString(), /job nightly-1/);
  });

  test('a run still running when the next slot comes is skipped under Forbid', async () => {
    await p.client.patch(nsPath(NS, 'services', 'nightly'), { spec: { command: ['sh', '-c', 'sleep 30'] } });
    await waitFor('nightly-2 active', async () => (await getSvc('nightly')).status?.activeRelease === 'nightly-2');
    clockOffsetMs += 3_600_000; // the next hourly slot comes
    await waitFor('a running run', async () => (await runsOf()).some((r) => r.result === 'Running' && r.release === 'nightly-2'), 30_000);
    clockOffsetMs += 3_600_000; // and the one after, while that run still runs
    const runs = await waitFor('a skipped run', async () => {
      const r = await runsOf();
      return r.some((x) => x.result === 'Skipped') ? r : undefined;
    }, 30_000);
    assert.equal(runs.filter((r) => r.result === 'Running').length, 1);
    assert.deepEqual(runs.map((r) => r.result), ['Succeeded', 'Running', 'Skipped']);
    // The Event is recorded after the status write that shows the skipped run.
    await waitFor('a RunSkipped Event', async () => (await p.client.list(nsPath(NS, 'events'))).items.some((e) => e.reason === 'RunSkipped' && e.involvedObject?.name === 'nightly'), 10_000);
    await p.client.delete(nsPath(NS, 'services', 'nightly'));
  });
});

describe('security', () => {
  test('runAsNonRoot fails a release whose image would run as root, and runAsUser satisfies it', async () => {
    await p.client.create(nsPath(NS, 'services'), svc('rootless', { replicas: 1, env: version('v1'), security: { runAsNonRoot: true } }));
    const release = await waitFor('rootless-1 failed', async () => {
      const r = await getRelease('rootless-1').catch(() => undefined);
      return r?.status?.phase === 'Failed' ? r : undefined;
    });
    assert.equal(release.status?.reason, 'RunAsRoot');
    assert.equal((await containersOf('rootless')).length, 0);
    await p.client.patch(nsPath(NS, 'services', 'rootless'), { spec: { security: { runAsNonRoot: true, runAsUser: 65534 } } });
    await waitActive('rootless', 'rootless-2', 1);
    const [c] = await containersOf('rootless');
    assert.equal((await docker.getContainer(c!.Id).inspect()).Config.User, '65534');
  });
});

describe('bad specs are refused with the field named', () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['negative replicas', { replicas: -1 }, /spec\.replicas/],
    ['unknown strategy', { strategy: { type: 'Rolling' } }, /spec\.strategy\.type/],
    ['port out of range', { port: 70000 }, /spec\.port/],
    ['failure threshold zero', { healthCheck: { failureThreshold: 0 } }, /spec\.healthCheck\.failureThreshold/],
    ['migrate without a command', { migrate: { timeoutSeconds: 5 } }, /spec\.migrate\.command/],
    ['memory that is not a quantity', { resources: { memory: '12 apples' } }, /spec\.resources\.memory/],
  ];
  for (const [what, spec, field] of cases) {
    test(what, async () => {
      await assert.rejects(p.client.create(nsPath(NS, 'services'), svc('bad', spec)), (err: unknown) => {
        assert.ok(err instanceof ApiRequestError);
        assert.equal(err.code, 422);
        assert.match(err.message, field);
        return true;
      });
    });
  }
});
