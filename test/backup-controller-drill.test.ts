// Backup controller: restore drills (a passing one with RTO/RPO recorded, a failing validation with
// DrillFailed), Slipway's own etcd restored into a fresh etcd that an API server then serves from,
// Redis backed up to a real SFTP server and restored into a new data directory, and the CLI
// (`slipctl backup list|run|restore`, `slipctl describe backuppolicy`).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApi } from './helpers/apiserver.js';
import { startBackupPlatform, V1, type BackupPlatform } from './helpers/backup.js';
import { createCli, type Cli } from './helpers/cli.js';
import { redisCli, startMariaDb, startRedisOnDir, startPostgres, startRedis, type MariaDbServer, type PostgresServer, type RedisServer } from './helpers/databases.js';
import { nsPath, waitFor } from './helpers/platform.js';
import { freePort } from './helpers/ports.js';
import { startSftpServer, type SftpServer } from './helpers/sftp.js';

const NS = 'bk-drill';
const DAY = 86_400_000;
let p: BackupPlatform;
let pg: PostgresServer;
let maria: MariaDbServer;
let redis: RedisServer;
let sftp: SftpServer;
let cli: Cli;
const scratch: string[] = [];

before(async () => {
  [p, pg, maria, redis, sftp] = await Promise.all([startBackupPlatform(NS), startPostgres(), startMariaDb(), startRedis(), startSftpServer()]);
  await p.secret('pg', { password: pg.password });
  await p.secret('maria', { password: maria.password });
  await p.secret('redis', { password: redis.password });
  cli = createCli(p.api.url, { token: p.api.adminToken, namespace: NS });
});
after(async () => {
  cli?.cleanup();
  await p?.stop();
  await Promise.allSettled([ pg?.stop(), maria?.stop(), redis?.stop(), sftp?.stop(), ...scratch.map((d) => rm(d, { recursive: true, force: true }))]);
});

const condition = (obj: { status?: { conditions?: ReadonlyArray<{ type: string; status: string; reason?: string; message?: string }> } }, type: string) => obj.status?.conditions?.find((c) => c.type === type);

async function drillOnce(policy: string) {
  const next = await waitFor('nextDrillTime', async () => (await p.getPolicy(policy)).status?.nextDrillTime);
  const before = (await p.getPolicy(policy)).status?.lastDrill?.time;
  p.advance(Date.parse(next) - p.now() + 1000);
  return waitFor('drill result', async () => {
    const pol = await p.getPolicy(policy);
    return pol.status?.lastDrill?.time && pol.status.lastDrill.time !== before ? pol : undefined;
  }, 60_000);
}

describe('restore drills', () => {
  test('a drill restores the newest backup into a throwaway database, validates it and records RTO and RPO', async () => {
    await pg.query('CREATE DATABASE shop;');
    await pg.query("CREATE TABLE orders (id INT PRIMARY KEY, amount NUMERIC(10,2)); INSERT INTO orders VALUES (1,1),(2,2),(3,3);", 'shop');
    await p.policy('pg-drill', {
      target: { type: 'postgres', postgres: { host: '127.0.0.1', port: pg.port, database: 'shop', user: pg.user, passwordSecretRef: { name: 'pg' } } },
      schedule: '0 3 * * *',
      restoreDrill: { schedule: '0 4 * * *', validation: { tables: [{ name: 'orders', minRows: 3 }, { name: 'public.orders' }], query: 'SELECT SUM(amount) FROM orders', expected: '6.00' } },
    });
    const backup = await p.runBackup('pg-drill', 'pg-drill-1');
    assert.equal(backup.status?.phase, 'Succeeded', backup.status?.error);
    const policy = await drillOnce('pg-drill');
    const drill = policy.status!.lastDrill!;
    assert.equal(drill.result, 'Passed', drill.message);
    // The newest backup: pg-drill-1, or the scheduled run of the 03:00 slot the clock just passed
    // (whose success lets daily retention prune pg-drill-1, so its status is the one read above).
    const drilled = drill.backup === 'pg-drill-1' ? backup : await p.backup(drill.backup!);
    assert.equal(drilled.spec?.policy, 'pg-drill');
    assert.ok(drill.rtoSeconds! > 0, 'RTO is the restore duration');
    const age = (Date.parse(drill.time!) - Date.parse(drilled.status!.startTime!)) / 1000;
    assert.ok(Math.abs(drill.rpoSeconds! - age) < 5, `RPO ${drill.rpoSeconds} s is the backup's age (${age} s)`);
    assert.equal(condition(policy, 'DrillPassing')?.status, 'True');
    // (A later slot's drill may be running already: wait for it too.)
    await waitFor('the throwaway database to be gone', async () => (await pg.query("SELECT COUNT(*) FROM pg_database WHERE datname LIKE 'slipway_drill_%';")).trim() === '0');
    await waitFor('a DrillPassed Event', async () => (await p.events('DrillPassed')).some((e) => e.involvedObject.name === 'pg-drill'), 10_000);
  });

  test('a drill whose validation fails records DrillFailed, a Warning Event and DrillPassing False', async () => {
    await maria.query("CREATE DATABASE shop; CREATE TABLE shop.orders (id INT); INSERT INTO shop.orders VALUES (1),(2);");
    await p.policy('maria-drill', {
      target: { type: 'mysql', mysql: { host: '127.0.0.1', port: maria.port, database: 'shop', user: maria.user, passwordSecretRef: { name: 'maria' } } },
      schedule: '0 3 * * *',
      restoreDrill: { schedule: '0 4 * * *', validation: { tables: [{ name: 'orders', minRows: 1000 }] } },
    });
    assert.equal((await p.runBackup('maria-drill', 'maria-drill-1')).status?.phase, 'Succeeded');
    const policy = await drillOnce('maria-drill');
    assert.equal(policy.status?.lastDrill?.result, 'Failed');
    assert.match(policy.status?.lastDrill?.message ?? '', /table orders has 2 rows, expected at least 1000/);
    assert.equal(condition(policy, 'DrillPassing')?.status, 'False');
    assert.equal(condition(policy, 'DrillPassing')?.reason, 'DrillFailed');
    // The Event is recorded after the status write.
    const events = await waitFor('a DrillFailed Event', async () => {
      const found = (await p.events('DrillFailed')).filter((e) => e.involvedObject.name === 'maria-drill');
      return found.length ? found : undefined;
    }, 10_000);
    assert.equal(events[0]?.type, 'Warning');
    await waitFor('the throwaway database to be gone', async () => (await maria.query("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'slipway\\_drill\\_%';")).trim() === '0');
  });
});

describe('etcd and redis', () => {
  test("Slipway's own etcd restores into a fresh etcd that serves the same objects", async () => {
    await p.api.client.create('/apis/slipway.dev/v1alpha1/namespaces', { apiVersion: V1, kind: 'Namespace', metadata: { name: 'before-backup', labels: { marker: 'yes' } } });
    await p.policy('self', { target: { type: 'etcd', etcd: { endpoints: p.api.etcd.endpoints } }, schedule: '0 3 * * *' });
    const backup = await p.runBackup('self', 'self-1');
    assert.equal(backup.status?.phase, 'Succeeded', backup.status?.error);
    await p.api.client.create('/apis/slipway.dev/v1alpha1/namespaces', { apiVersion: V1, kind: 'Namespace', metadata: { name: 'after-backup' } });
    const dir = await mkdtemp(join(tmpdir(), 'slipway-etcd-restore-test-'));
    scratch.push(dir);
    const dataDir = join(dir, 'data');
    const r = await p.restore('self-r1', { backup: 'self-1', dataDir });
    assert.equal(r.status?.phase, 'Succeeded', r.status?.error);
    assert.match(r.status?.target ?? '', /etcd data directory/);

    // Start etcd from the restored directory and an API server on it.
    const client = `http://127.0.0.1:${await freePort()}`;
    const peer = `http://127.0.0.1:${await freePort()}`;
    const etcd = spawn('etcd', ['--name', 'restored', '--data-dir', dataDir, '--listen-client-urls', client, '--advertise-client-urls', client, '--listen-peer-urls', peer, '--log-level', 'error'], { stdio: 'ignore' });
    try {
      await waitFor('restored etcd', async () => ((await (await fetch(`${client}/health`)).json()) as { health: string }).health === 'true', 20_000);
      const api = await startApi({ etcd: { endpoints: [client], members: [], stop: async () => {} } });
      try {
        const ns = await api.client.get('/apis/slipway.dev/v1alpha1/namespaces/before-backup');
        assert.equal(ns.metadata.labels?.marker, 'yes');
        assert.ok((await api.client.get(nsPath(NS, 'backuppolicies', 'self'))).spec, 'the policy itself is in the snapshot');
        await assert.rejects(api.client.get('/apis/slipway.dev/v1alpha1/namespaces/after-backup'), /not found/i);
      } finally {
        await api.stop();
      }
    } finally {
      etcd.kill('SIGTERM');
      await once(etcd, 'exit');
    }
  });

  test('redis backed up to an SFTP location restores into a new data directory with the same keys', async () => {
    await p.secret('sftp-key', { privateKey: sftp.privateKey });
    await p.api.client.create(nsPath(NS, 'backuplocations'), { apiVersion: V1, kind: 'BackupLocation', metadata: { name: 'remote' }, spec: { sftp: { host: sftp.host, port: sftp.port, user: sftp.user, path: sftp.root, privateKeySecretRef: { name: 'sftp-key' }, hostKey: sftp.hostKey } } });
    await redis.cli(['SET', 'greeting', 'hello']);
    await redis.cli(['RPUSH', 'list', 'a', 'b', 'c']);
    await p.policy('cache', { target: { type: 'redis', redis: { host: '127.0.0.1', port: redis.port, passwordSecretRef: { name: 'redis' } } }, schedule: '0 3 * * *', location: 'remote' });
    const backup = await p.runBackup('cache', 'cache-1');
    assert.equal(backup.status?.phase, 'Succeeded', backup.status?.error);
    const remote = await readFile(join(sftp.root, backup.status!.artifact!));
    assert.equal(createHash('sha256').update(remote).digest('hex'), backup.status?.sha256, 'the artifact on the SFTP server has the recorded sha256');
    await redis.cli(['SET', 'greeting', 'changed']);

    const dir = await mkdtemp(join(tmpdir(), 'slipway-redis-restore-test-'));
    scratch.push(dir);
    const r = await p.restore('cache-r1', { backup: 'cache-1', dataDir: join(dir, 'data') });
    assert.equal(r.status?.phase, 'Succeeded', r.status?.error);
    const { port, stop } = await startRedisOnDir(join(dir, 'data'));
    try {
      assert.equal((await redisCli(port, undefined, ['GET', 'greeting'])).trim(), 'hello');
      assert.equal((await redisCli(port, undefined, ['LRANGE', 'list', '0', '-1'])).trim(), 'a\nb\nc');
      assert.equal((await redis.cli(['GET', 'greeting'])).trim(), 'changed', 'the source is untouched');
    } finally {
      await stop();
    }
  });
});

describe('slipctl', () => {
  test('backup run, list and restore, and describe backuppolicy', async () => {
    const run = await cli.run(['backup', 'run', 'pg-drill', '--name', 'pg-cli-1'], { timeoutMs: 60_000 });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /backup\/pg-cli-1 created\nbackup\/pg-cli-1 succeeded: .* sha256 [0-9a-f]{64}, verified/);

    const list = await cli.run(['backup', 'list', 'pg-drill']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^NAME\s+POLICY\s+PHASE\s+SIZE\s+VERIFIED/);
    assert.match(list.stdout, /pg-cli-1\s+pg-drill\s+Succeeded\s+\S+ \S+\s+yes\s+Manual/);

    const refused = await cli.run(['backup', 'restore', 'pg-cli-1', '--into', 'shop', '--name', 'cli-over'], { timeoutMs: 60_000 });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /restore\/cli-over failed: .*overwriteSource/);

    const restore = await cli.run(['backup', 'restore', 'pg-cli-1', '--into', 'shop_copy'], { timeoutMs: 60_000 });
    assert.equal(restore.code, 0, restore.stderr);
    assert.match(restore.stdout, /succeeded: database shop_copy on 127\.0\.0\.1/);
    assert.equal((await pg.query('SELECT SUM(amount) FROM orders;', 'shop_copy')).trim(), '6.00');

    const missing = await cli.run(['backup', 'run', 'no-such-policy']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /backuppolicy "no-such-policy" not found/);

    const describe = await cli.run(['describe', 'backuppolicy', 'pg-drill']);
    assert.equal(describe.code, 0, describe.stderr);
    assert.match(describe.stdout, /Last Success: +pg-cli-1 at /);
    assert.match(describe.stdout, /Next Run: +\d{4}-\d\d-\d\dT03:00:00/);
    assert.match(describe.stdout, /Last Drill: +Passed at .*RTO [\d.]+ s, RPO [\d.]+ s \(backup pg-drill-[\w-]+\)/);
    assert.doesNotMatch(describe.stdout, /STALE/);
    assert.match(describe.stdout, /BackupSucceeded/);
  });

  test('describe warns about a stale policy', async () => {
    await p.policy('never', { target: { type: 'etcd', etcd: { endpoints: [`http://127.0.0.1:${await freePort()}`] } }, schedule: '0 * * * *', suspend: true });
    p.advance(3 * 3_600_000 + DAY);
    await waitFor('Stale', async () => condition(await p.getPolicy('never'), 'Stale')?.status === 'True');
    const describe = await cli.run(['describe', 'backuppolicy', 'never']);
    assert.match(describe.stdout, /WARNING: +backups are STALE: no successful backup since the policy was created/);
    assert.match(describe.stdout, /Next Run: +suspended/);
  });
});
