// Backup targets given as a `serviceRef`: a real Redis container (built from the host's
// redis-server) runs as a Slipway Service with its password from a Secret and its data on a named
// volume; a BackupPolicy names the Service instead of a host. A Redis backup reaches the Service's
// published endpoint and restores into a new data directory with exactly the backed-up keys while
// the Service keeps its changed data; a volume backup finds the Service's volume on its replica's
// node and restores into a new volume with identical files; a Service with no ready replica fails
// the Backup with a clear message, but does not block restoring its Redis backup.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Docker from 'dockerode';
import type { Service } from '../src/api/generated/crd-types.js';
import { startBackupPlatform, V1, type BackupPlatform } from './helpers/backup.js';
import { redisCli, startRedisOnDir } from './helpers/databases.js';
import { buildTestImage, DOCKER_SOCKET, ensureDockerd, TEST_IMAGE } from './helpers/docker.js';
import { nsPath, registerNode, waitFor } from './helpers/platform.js';
import { buildRedisImage, REDIS_IMAGE, REDIS_PORT } from './helpers/redis-image.js';

const NS = `bksr-${randomBytes(3).toString('hex')}`;
const PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
const ORIGINAL = { greeting: 'hello', counter: '42', 'user:1': 'ada' };
let p: BackupPlatform;
let docker: Docker;
let endpoint: { host: string; port: number; containerName?: string };
const scratch: string[] = [];

const cli = (...args: string[]) => redisCli(endpoint.port, PASSWORD, args);

/** Every key of the Redis server on 127.0.0.1:`port` with its string value. */
async function contents(port: number, password?: string): Promise<Record<string, string>> {
  const keys = (await redisCli(port, password, ['--scan'])).split('\n').filter(Boolean).sort();
  const out: Record<string, string> = {};
  for (const key of keys) out[key] = (await redisCli(port, password, ['GET', key])).replace(/\n$/, '');
  return out;
}

/** name → sha256 of every file in a Docker volume on the local dockerd (read from its mount point). */
async function volumeFiles(name: string): Promise<Record<string, string>> {
  const { Mountpoint } = (await docker.getVolume(name).inspect()) as { Mountpoint: string };
  const out: Record<string, string> = {};
  for (const file of (await readdir(Mountpoint, { recursive: true, withFileTypes: true })).filter((f) => f.isFile())) {
    const path = join(file.parentPath ?? (file as unknown as { path: string }).path, file.name);
    out[path.slice(Mountpoint.length + 1)] = createHash('sha256').update(await readFile(path)).digest('hex');
  }
  return out;
}

function service(name: string, spec: Record<string, unknown> = {}) {
  return p.api.client.create<Service>(nsPath(NS, 'services'), {
    apiVersion: V1,
    kind: 'Service',
    metadata: { name },
    spec: {
      image: REDIS_IMAGE,
      replicas: 1,
      port: REDIS_PORT,
      env: [{ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'redis-auth', key: 'password' } } }],
      volumes: [{ name: 'data', mountPath: '/data' }],
      security: { runAsNonRoot: true, readOnlyRootFilesystem: true },
      ...spec,
    },
  });
}

async function removeOurs(): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`slipway.dev/namespace=${NS}`] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  for (const v of ((await docker.listVolumes()).Volumes ?? []).filter((v) => v.Name.startsWith(`${NS}-`))) await docker.getVolume(v.Name).remove({ force: true }).catch(() => undefined);
}

before(async () => {
  docker = new Docker({ socketPath: await ensureDockerd() });
  await Promise.all([buildRedisImage(docker), buildTestImage(docker)]);
  p = await startBackupPlatform(NS);
  await registerNode(p.api.client, 'rnode', { socket: DOCKER_SOCKET });
  await p.secret('redis-auth', { password: PASSWORD });
  await service('cache');
  endpoint = await waitFor('a ready endpoint of Service cache', async () => (await p.api.client.get<Service>(nsPath(NS, 'services', 'cache'))).status?.endpoints?.find((e) => e.ready), 60_000);
  assert.equal(endpoint.host, '127.0.0.1');
  await waitFor('redis in the Service to answer', async () => (await cli('PING').catch(() => '')).trim() === 'PONG', 20_000);
});

after(async () => {
  await p?.stop();
  if (docker) await removeOurs();
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});

test('a redis serviceRef backs up the Service and restores into a new data directory with exactly the original keys', async () => {
  for (const [k, v] of Object.entries(ORIGINAL)) await cli('SET', k, v);
  assert.equal((await cli('PING')).trim(), 'PONG');
  assert.match(await redisCli(endpoint.port, undefined, ['GET', 'greeting']), /NOAUTH/, 'the Service requires the Secret password');
  const container = docker.getContainer(endpoint.containerName!);
  const { HostConfig, Config } = await container.inspect();
  assert.deepEqual([HostConfig.ReadonlyRootfs, HostConfig.CapDrop, Config.User], [true, ['ALL'], '65534:65534'], 'Redis runs in a hardened container');
  assert.ok(!JSON.stringify((await container.top()).Processes).includes(PASSWORD), 'the password is on no command line in the container');

  await p.policy('cache', { target: { type: 'redis', redis: { serviceRef: { name: 'cache' }, passwordSecretRef: { name: 'redis-auth' } } }, schedule: '0 3 * * *' });
  const backup = await p.runBackup('cache', 'cache-1');
  assert.equal(backup.status?.phase, 'Succeeded', backup.status?.error);
  assert.equal(backup.status?.verified, true);
  assert.match(backup.status?.artifact ?? '', /cache-1\.rdb\.gz$/);
  assert.ok(!p.logs().includes(PASSWORD), 'the password never reaches the logs');

  await cli('SET', 'greeting', 'changed');
  await cli('DEL', 'counter');
  await cli('SET', 'extra', 'new');
  const changed = { greeting: 'changed', 'user:1': 'ada', extra: 'new' };

  const dir = await mkdtemp(join(tmpdir(), 'slipway-svcref-restore-'));
  scratch.push(dir);
  const restore = await p.restore('cache-r1', { backup: 'cache-1', dataDir: join(dir, 'data') });
  assert.equal(restore.status?.phase, 'Succeeded', restore.status?.error);

  const { port, stop } = await startRedisOnDir(join(dir, 'data'));
  try {
    assert.deepEqual(await contents(port), ORIGINAL, 'the restored copy holds exactly the backed-up keys');
  } finally {
    await stop();
  }
  assert.deepEqual(await contents(endpoint.port, PASSWORD), changed, "the Service's data is untouched");
});

test("a volume serviceRef backs up the Service's volume on its replica's node and restores it into a new volume", async () => {
  await cli('SET', 'snap', 'one');
  await cli('SAVE');
  const source = `${NS}-cache-data`;
  const original = await volumeFiles(source);
  assert.ok(original['dump.rdb'], `the Service's volume holds dump.rdb: ${JSON.stringify(original)}`);

  await p.policy('cache-files', { target: { type: 'volume', volume: { name: 'data', serviceRef: { name: 'cache' }, helperImage: TEST_IMAGE } }, schedule: '0 3 * * *' });
  const backup = await p.runBackup('cache-files', 'cache-files-1');
  assert.equal(backup.status?.phase, 'Succeeded', backup.status?.error);

  await cli('SET', 'snap', 'two');
  await cli('SAVE');
  const copy = `${NS}-copy`;
  const restore = await p.restore('cache-files-r1', { backup: 'cache-files-1', volume: copy });
  assert.equal(restore.status?.phase, 'Succeeded', restore.status?.error);
  assert.deepEqual(await volumeFiles(copy), original, 'the new volume holds exactly the backed-up files');
  assert.notDeepEqual(await volumeFiles(source), original, "the Service's volume is untouched (it has the newer save)");

  await p.policy('cache-nope', { target: { type: 'volume', volume: { name: 'nope', serviceRef: { name: 'cache' }, helperImage: TEST_IMAGE } }, schedule: '0 3 * * *' });
  const wrong = await p.runBackup('cache-nope', 'cache-nope-1');
  assert.equal(wrong.status?.phase, 'Failed');
  assert.match(wrong.status?.error ?? '', /spec\.target\.volume\.name: Service .*\/cache has no volume "nope" \(its volumes: data\)/);
});

test('a serviceRef to a Service with no ready replica fails the Backup with a clear message', async () => {
  await service('idle', { replicas: 0 });
  await p.policy('idle', { target: { type: 'redis', redis: { serviceRef: { name: 'idle' }, passwordSecretRef: { name: 'redis-auth' } } }, schedule: '0 3 * * *' });
  const backup = await p.runBackup('idle', 'idle-1');
  assert.equal(backup.status?.phase, 'Failed');
  assert.notEqual(backup.status?.verified, true);
  assert.match(backup.status?.error ?? '', /spec\.target\.redis\.serviceRef: Service .*\/idle has no ready replica/);
  // The Event is recorded after the status write that shows the failure.
  await waitFor('a BackupFailed Warning Event', async () => (await p.events('BackupFailed')).some((e) => e.type === 'Warning' && (e.involvedObject?.name === 'idle-1' || e.message?.includes('idle-1'))), 10_000);
});

test('a redis backup of a Service restores while the Service has no running replica (disaster recovery)', async () => {
  await p.api.client.patch(nsPath(NS, 'services', 'cache'), { spec: { replicas: 0 } });
  await waitFor('Service cache to have no endpoint', async () => !(await p.api.client.get<Service>(nsPath(NS, 'services', 'cache'))).status?.endpoints?.length, 60_000);
  const dir = await mkdtemp(join(tmpdir(), 'slipway-svcref-restore-'));
  scratch.push(dir);
  const restore = await p.restore('cache-r2', { backup: 'cache-1', dataDir: join(dir, 'data') });
  assert.equal(restore.status?.phase, 'Succeeded', restore.status?.error);
  assert.ok((await readFile(join(dir, 'data', 'dump.rdb'))).subarray(0, 5).equals(Buffer.from('REDIS')), 'the new data directory holds an RDB file');
});
