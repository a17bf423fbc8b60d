// Backup controller, SQL targets: scheduled MariaDB and PostgreSQL backups through the real API
// server and controller manager, verified artifacts, restores into isolated databases compared row by
// row, overwriteSource, corrupted artifacts, a dump that tries `USE other_db`, and failing dumps.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { startMariaDb, startPostgres, type MariaDbServer, type PostgresServer } from './helpers/databases.js';
import { startBackupPlatform, type BackupPlatform } from './helpers/backup.js';
import { nsPath, waitFor } from './helpers/platform.js';
import { freePort } from './helpers/ports.js';

const NS = 'bk-sql';
let p: BackupPlatform;
let maria: MariaDbServer;
let pg: PostgresServer;

const sha256 = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');

before(async () => {
  [p, maria, pg] = await Promise.all([startBackupPlatform(NS), startMariaDb(), startPostgres()]);
  await p.secret('maria', { password: maria.password });
  await p.secret('pg', { password: pg.password });
  await p.secret('wrong', { password: 'not-the-password-xyz' });
});
after(async () => {
  await Promise.allSettled([p?.stop(), maria?.stop(), pg?.stop()]);
});

const mysqlTarget = (database: string, secret = 'maria', port = maria.port) => ({ type: 'mysql', mysql: { host: '127.0.0.1', port, database, user: maria.user, passwordSecretRef: { name: secret } } });

describe('mysql', () => {
  const rows = () => maria.query('SELECT id, note FROM orders ORDER BY id;', 'shop');

  test('a scheduled backup runs at its slot, is verified at the location, and restores into a new database exactly', async () => {
    await maria.query("CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(64)); INSERT INTO shop.orders VALUES (1,'one'),(2,'tab\\there'),(3,'ünïcode');");
    const original = await rows();
    await p.policy('shop', { target: mysqlTarget('shop'), schedule: '0 * * * *' });
    const first = await waitFor('policy status', async () => (await p.getPolicy('shop')).status?.nextScheduleTime);
    assert.equal((await p.backupsOf('shop')).length, 0, 'nothing runs before the first slot');
    p.advance(Date.parse(first) - p.now() + 1000);
    const backup = await waitFor('scheduled backup', async () => (await p.backupsOf('shop')).find((b) => b.status?.phase === 'Succeeded' || b.status?.phase === 'Failed'));
    assert.equal(backup.status?.phase, 'Succeeded', backup.status?.error);
    assert.equal(backup.spec?.trigger, 'Schedule');
    assert.equal(Date.parse(backup.spec!.scheduledTime!), Date.parse(first));
    assert.equal(backup.status?.verified, true);
    assert.match(backup.status?.toolVersion ?? '', /mariadb-dump|Distrib/i);
    const file = await readFile(join(p.dir, backup.status!.artifact!));
    assert.equal(file.length, backup.status?.sizeBytes);
    assert.equal(sha256(file), backup.status?.sha256, 'the recorded sha256 is the stored artifact\'s');
    const policy = await waitFor('policy to record the success', async () => {
      const pol = await p.getPolicy('shop');
      return pol.status?.lastSuccessfulBackup?.name === backup.metadata.name ? pol : undefined;
    });
    assert.equal(Date.parse(policy.status!.lastScheduleTime!), Date.parse(first));
    assert.equal(policy.status?.conditions?.find((c) => c.type === 'Healthy')?.status, 'True');
    assert.equal(policy.status?.conditions?.find((c) => c.type === 'Stale')?.status, 'False');
    await waitFor('a BackupSucceeded Event', async () => (await p.events('BackupSucceeded')).length >= 1, 10_000);
    const visible = JSON.stringify([backup, policy, await p.events('BackupSucceeded')]);
    assert.ok(!visible.includes(maria.password), 'the password appears in no status or Event');

    await maria.query("UPDATE orders SET note='changed' WHERE id=1; DELETE FROM orders WHERE id=2; INSERT INTO orders VALUES (9,'new');", 'shop');
    const changed = await rows();
    const restore = await p.restore('r1', { backup: backup.metadata.name });
    assert.equal(restore.status?.phase, 'Succeeded', restore.status?.error);
    assert.match(restore.status?.target ?? '', /shop_restore_r1/);
    assert.equal(await maria.query('SELECT id, note FROM orders ORDER BY id;', 'shop_restore_r1'), original, 'restored rows are exactly the backed-up ones');
    assert.equal(await rows(), changed, 'the source is untouched');
  });

  test('restoring over the source needs overwriteSource', async () => {
    const [backup] = (await p.backupsOf('shop')).filter((b) => b.status?.phase === 'Succeeded');
    const changed = await rows();
    const refused = await p.restore('r-over', { backup: backup!.metadata.name, database: 'shop' });
    assert.equal(refused.status?.phase, 'Failed');
    assert.match(refused.status?.error ?? '', /overwriteSource/);
    assert.equal(await rows(), changed, 'a refused restore leaves the source alone');
    const allowed = await p.restore('r-over-ok', { backup: backup!.metadata.name, overwriteSource: true });
    assert.equal(allowed.status?.phase, 'Succeeded', allowed.status?.error);
    assert.equal(await rows(), await maria.query('SELECT id, note FROM orders ORDER BY id;', 'shop_restore_r1'));
  });

  test('a dump containing USE other_db cannot touch other_db', async () => {
    await maria.query("CREATE DATABASE other_db; CREATE TABLE other_db.precious (x INT); INSERT INTO other_db.precious VALUES (42);");
    const dump = gzipSync(Buffer.from('CREATE TABLE t (x INT);\nINSERT INTO t VALUES (1);\nUSE other_db;\nDROP TABLE precious;\n'));
    const artifact = `${NS}/shop/evil-handmade.sql.gz`;
    await mkdir(join(p.dir, NS, 'shop'), { recursive: true });
    await writeFile(join(p.dir, artifact), dump);
    await p.api.client.create(nsPath(NS, 'backups'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Backup', metadata: { name: 'evil' }, spec: { policy: 'shop' } });
    // Written as if a run had produced it, so only the restore's own defences stand in the way.
    await waitFor('evil backup claimed or finished', async () => (await p.backup('evil')).status?.phase !== undefined);
    await p.waitBackup('evil');
    const evil = await p.backup('evil');
    await p.api.client.patch(nsPath(NS, 'backups', 'evil') + '/status', { metadata: { resourceVersion: evil.metadata.resourceVersion }, status: { phase: 'Succeeded', verified: true, artifact, sizeBytes: dump.length, sha256: sha256(dump), compression: 'gzip', error: null } });
    const r = await p.restore('r-evil', { backup: 'evil', database: 'evil_target' });
    assert.equal(r.status?.phase, 'Failed');
    assert.match(r.status?.error ?? '', /USE/);
    assert.equal((await maria.query('SELECT x FROM precious;', 'other_db')).trim(), '42', 'other_db is untouched');
    assert.equal((await maria.query("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='evil_target';")).trim(), '0', 'the half-restored target is dropped');
  });

  test('a wrong password or a server that is down fails the Backup with a clear message and a Warning Event', async () => {
    await p.policy('wrong-pw', { target: mysqlTarget('shop', 'wrong'), schedule: '0 3 * * *' });
    const wrong = await p.runBackup('wrong-pw', 'wrong-pw-1');
    assert.equal(wrong.status?.phase, 'Failed');
    assert.equal(wrong.status?.verified, false);
    assert.match(wrong.status?.error ?? '', /Access denied/);
    assert.doesNotMatch(JSON.stringify(wrong), /not-the-password-xyz/);
    const events = await waitFor('BackupFailed events', async () => {
      const list = (await p.events('BackupFailed')).filter((e) => e.message?.includes('wrong-pw-1'));
      return list.length ? list : undefined;
    });
    assert.equal(events.length, 1, `one Event per failure (webhooks forward each); got: ${JSON.stringify(events.map((e) => [e.involvedObject.kind, e.message, e.count]))}`);
    assert.equal(events[0]!.type, 'Warning');
    assert.equal(events[0]!.involvedObject.kind, 'BackupPolicy');
    assert.ok(events.every((e) => !e.message?.includes('not-the-password-xyz')));
    const policy = await waitFor('Healthy False', async () => {
      const pol = await p.getPolicy('wrong-pw');
      return pol.status?.conditions?.find((c) => c.type === 'Healthy')?.status === 'False' ? pol : undefined;
    });
    assert.match(policy.status?.conditions?.find((c) => c.type === 'Healthy')?.message ?? '', /Access denied/);

    await p.policy('down', { target: mysqlTarget('shop', 'maria', await freePort()), schedule: '0 3 * * *' });
    const down = await p.runBackup('down', 'down-1');
    assert.equal(down.status?.phase, 'Failed');
    assert.match(down.status?.error ?? '', /Can't connect|Connection refused/i);
    const files = (await readdir(join(p.dir, NS), { recursive: true, withFileTypes: true })).filter((f) => f.isFile() && /wrong-pw|down/.test(f.name));
    assert.deepEqual(files, [], 'no artifact is left behind');
  });
});

describe('postgres', () => {
  test('the password appears in no process command line, log line, Event or status', async () => {
    await pg.query('CREATE DATABASE big;');
    await pg.query("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 300000) g;", 'big');
    await p.policy('pg-big', { target: { type: 'postgres', postgres: { host: '127.0.0.1', port: pg.port, database: 'big', user: pg.user, passwordSecretRef: { name: 'pg' } } }, schedule: '0 3 * * *' });
    // Every process whose command line names a PostgreSQL tool, sampled while the backup and a restore run.
    const seen = new Map<string, string>();
    let sampling = true;
    const sample = (async () => {
      while (sampling) {
        for (const pid of await readdir('/proc').catch(() => [] as string[])) {
          if (!/^\d+$/.test(pid) || seen.has(pid)) continue;
          const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
          if (/pg_dump|pg_restore|psql/.test(cmdline)) seen.set(pid, cmdline.replace(/\0/g, ' '));
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    try {
      assert.equal((await p.runBackup('pg-big', 'pg-big-1')).status?.phase, 'Succeeded');
      assert.equal((await p.restore('pg-big-r', { backup: 'pg-big-1' })).status?.phase, 'Succeeded');
    } finally {
      sampling = false;
      await sample;
    }
    const lines = [...seen.values()];
    assert.ok(lines.some((l) => l.includes('pg_dump')), `pg_dump was seen running (${lines.length} tool processes sampled)`);
    assert.ok(lines.every((l) => !l.includes(pg.password)), 'no command line holds the password');
    assert.equal((await pg.query('SELECT count(*) FROM t;', 'big_restore_pg_big_r')).trim(), '300000');
    assert.match(p.logs(), /backup succeeded/);
    const everything = p.logs() + JSON.stringify([await p.backup('pg-big-1'), await p.getPolicy('pg-big'), await p.events('BackupSucceeded')]);
    assert.ok(!everything.includes(pg.password), 'no log line, status or Event holds the password');
  });

  const rows = (db: string) => pg.query('SELECT id, note, amount FROM orders ORDER BY id;', db);

  test('a manual backup restores into an isolated database exactly; a corrupted or truncated artifact is refused', async () => {
    await pg.query('CREATE DATABASE shop;');
    await pg.query("CREATE TABLE orders (id INT PRIMARY KEY, note TEXT, amount NUMERIC(10,2)); INSERT INTO orders VALUES (1,'a',1.5),(2,'quote''s',2.25),(3,NULL,0);", 'shop');
    const original = await rows('shop');
    await p.policy('pg-shop', { target: { type: 'postgres', postgres: { host: '127.0.0.1', port: pg.port, database: 'shop', user: pg.user, passwordSecretRef: { name: 'pg' } } }, schedule: '0 3 * * *', compression: 'zstd' });
    const backup = await p.runBackup('pg-shop', 'pg-1');
    assert.equal(backup.status?.phase, 'Succeeded', backup.status?.error);
    assert.equal(backup.status?.compression, 'zstd');
    assert.match(backup.status?.artifact ?? '', /\.pgdump\.zst$/);
    assert.equal(sha256(await readFile(join(p.dir, backup.status!.artifact!))), backup.status?.sha256);

    await pg.query("UPDATE orders SET note='changed'; INSERT INTO orders VALUES (7,'x',7);", 'shop');
    const r = await p.restore('pg-r1', { backup: 'pg-1' });
    assert.equal(r.status?.phase, 'Succeeded', r.status?.error);
    assert.equal(await rows('shop_restore_pg_r1'), original);
    assert.notEqual(await rows('shop'), original);

    const path = join(p.dir, backup.status!.artifact!);
    const good = await readFile(path);
    const flipped = Buffer.from(good);
    flipped[Math.floor(flipped.length / 2)]! ^= 0xff;
    await writeFile(path, flipped);
    const corrupt = await p.restore('pg-corrupt', { backup: 'pg-1' });
    assert.equal(corrupt.status?.phase, 'Failed');
    assert.match(corrupt.status?.error ?? '', /checksum mismatch/);
    await writeFile(path, good.subarray(0, good.length - 10));
    const truncated = await p.restore('pg-truncated', { backup: 'pg-1' });
    assert.equal(truncated.status?.phase, 'Failed');
    assert.match(truncated.status?.error ?? '', /size/);
    assert.equal((await pg.query("SELECT COUNT(*) FROM pg_database WHERE datname LIKE 'shop_restore_pg_corrupt%' OR datname LIKE 'shop_restore_pg_truncated%';")).trim(), '0', 'nothing was restored from a bad artifact');
    await waitFor('a RestoreFailed Warning Event', async () => (await p.events('RestoreFailed')).some((e) => e.type === 'Warning' && e.involvedObject.name === 'pg-corrupt'), 10_000);
  });
});
