// `make bench`: backup and restore throughput of a ~1 GB MariaDB database through Slipway (a
// BackupPolicy run by the real controller manager: mariadb-dump --single-transaction, gzip, upload
// to a local BackupLocation, read-back verification) beside the raw `mariadb-dump | gzip > file`
// and `gunzip < file | mariadb` of the same data in the same run; then a restore drill's RTO.
// Prints each figure, the Slipway/raw throughput ratio and PASS/MISS against the ≥ 80 % target;
// exits non-zero only if the bench itself broke. `--rows N` scales the data (default 4,000,000
// rows of ~250 bytes ≈ 1 GB in the table).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNamespace } from '../test/helpers/apiserver.js';
import { startMariaDb, type MariaDbServer } from '../test/helpers/databases.js';
import { nsPath, startManager, startPlatform, waitFor, type Platform } from '../test/helpers/platform.js';
import type { Backup, Restore } from '../src/api/generated/crd-types.js';
import type { ControllerManager } from '../src/controllers/manager.js';
import { LocalStore } from '../src/backup/local-store.js';
import { runDrill, type Compression } from '../src/backup/run.js';

const argv = process.argv.slice(2);
const ROWS = argv.includes('--rows') ? Math.max(1000, Number(argv[argv.indexOf('--rows') + 1]) || 4_000_000) : 4_000_000;
const NS = 'bench-backup';
const DB = 'shop';
const TARGET_RATIO = 0.8;
const now = () => performance.now();
const mb = (bytes: number) => bytes / (1 << 20);

/** Runs a shell pipeline with the client credentials in MYSQL_PWD (never on a command line). */
async function sh(script: string, env: Record<string, string>): Promise<void> {
  const child = spawn('bash', ['-o', 'pipefail', '-c', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`bench pipeline failed (${code}): ${err.trim().slice(-1000)}`);
}

/** Fills `shop.orders` with ROWS generated rows in batches (recursive CTE, one statement each). */
async function generate(db: MariaDbServer): Promise<number> {
  await db.query(`CREATE DATABASE ${DB}; CREATE TABLE ${DB}.orders (id BIGINT PRIMARY KEY, customer VARCHAR(64), note VARCHAR(160), amount DECIMAL(12,2), created DATETIME) ENGINE=InnoDB;`);
  const batch = 250_000;
  for (let start = 0; start < ROWS; start += batch) {
    const n = Math.min(batch, ROWS - start);
    await db.query(
      `SET SESSION max_recursive_iterations = ${n + 1};
       INSERT INTO ${DB}.orders
       WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ${n})
       SELECT ${start} + i, CONCAT('customer-', MD5(${start} + i)), CONCAT(SHA2(${start} + i, 256), MD5(RAND()), MD5(RAND())),
              ROUND(RAND() * 10000, 2), NOW() - INTERVAL (${start} + i) SECOND FROM seq;`,
    );
  }
  await db.query(`ANALYZE TABLE ${DB}.orders;`);
  const size = await db.query(`SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA='${DB}' AND TABLE_NAME='orders';`);
  return Number(size.trim());
}

interface SlipwayRun {
  backupS: number;
  restoreS: number;
  artifactBytes: number;
  compression: string;
  drillRto: string;
  drillRpo: string;
}

/** A manual Backup of a mysql BackupPolicy, a Restore into a new database, then a drill. */
async function runThroughSlipway(platform: Platform, db: MariaDbServer, dir: string): Promise<SlipwayRun> {
  const { client } = platform.api;
  const V1 = 'slipway.dev/v1alpha1';
  const compression: Compression = 'gzip';
  await client.create(nsPath(NS, 'backuplocations'), { apiVersion: V1, kind: 'BackupLocation', metadata: { name: 'local' }, spec: { local: { node: 'local', path: dir } } });
  await client.create(nsPath(NS, 'backuppolicies'), {
    apiVersion: V1,
    kind: 'BackupPolicy',
    metadata: { name: 'shop-db' },
    // A yearly schedule: the bench's runs are the manual ones below.
    spec: { target: { type: 'mysql', mysql: { host: '127.0.0.1', port: db.port, database: DB, user: db.user, passwordSecretRef: { name: 'db' } } }, schedule: '0 3 1 1 *', location: 'local', compression },
  });
  const finished = <T extends Backup | Restore>(path: string, what: string) =>
    waitFor(what, async () => {
      const o = await client.get<T>(path);
      return o.status?.phase === 'Succeeded' || o.status?.phase === 'Failed' ? o : undefined;
    }, 30 * 60_000, 50);

  let t = now();
  await client.create(nsPath(NS, 'backups'), { apiVersion: V1, kind: 'Backup', metadata: { name: 'bench-1' }, spec: { policy: 'shop-db' } });
  const backup = await finished<Backup>(nsPath(NS, 'backups', 'bench-1'), 'the Backup to finish');
  const backupS = (now() - t) / 1000;
  if (backup.status?.phase !== 'Succeeded') throw new Error(`Backup failed: ${backup.status?.error ?? JSON.stringify(backup.status)}`);

  t = now();
  await client.create(nsPath(NS, 'restores'), { apiVersion: V1, kind: 'Restore', metadata: { name: 'bench-r1' }, spec: { backup: 'bench-1', database: 'slip_restore' } });
  const restore = await finished<Restore>(nsPath(NS, 'restores', 'bench-r1'), 'the Restore to finish');
  const restoreS = (now() - t) / 1000;
  if (restore.status?.phase !== 'Succeeded') throw new Error(`Restore failed: ${JSON.stringify(restore.status)}`);
  const [src, copy] = [await db.query(`SELECT COUNT(*), SUM(amount) FROM ${DB}.orders;`), await db.query('SELECT COUNT(*), SUM(amount) FROM slip_restore.orders;')];
  if (src !== copy) throw new Error(`restored copy differs: source ${src.trim()}, restored ${copy.trim()}`);
  await db.query('DROP DATABASE slip_restore;');

  // The drill the controller runs on its schedule, called directly so the bench does not wait for a slot.
  const s = backup.status!;
  const drill = await runDrill({
    target: { type: 'mysql', connection: { host: '127.0.0.1', port: db.port, user: db.user, password: db.password, database: DB } },
    store: new LocalStore(dir),
    artifact: { path: s.artifact!, sizeBytes: s.sizeBytes!, sha256: s.sha256!, compression },
    backupTime: new Date(s.completionTime ?? Date.now()),
    now: new Date(),
    validation: { tables: [{ name: 'orders', minRows: ROWS }] },
  });
  if (drill.result !== 'Passed') throw new Error(`drill failed: ${drill.message}`);
  return { backupS, restoreS, artifactBytes: s.sizeBytes!, compression, drillRto: `${drill.rtoSeconds.toFixed(1)} s`, drillRpo: `${drill.rpoSeconds.toFixed(0)} s` };
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'slipway-bench-backup-'));
  const db = await startMariaDb({ bufferPool: '512M' });
  let platform: Platform | undefined;
  let manager: ControllerManager | undefined;
  try {
    const t0 = now();
    const tableBytes = await generate(db);
    console.log(`data: ${ROWS.toLocaleString()} rows, ${mb(tableBytes).toFixed(0)} MiB in InnoDB, generated in ${((now() - t0) / 1000).toFixed(1)} s`);
    const creds = { MYSQL_PWD: db.password };
    const conn = `--host=127.0.0.1 --port=${db.port} --user=${db.user}`;

    // Raw baseline: exactly what an operator's cron line would do.
    const rawFile = join(work, 'raw.sql.gz');
    let t = now();
    await sh(`mariadb-dump --no-defaults ${conn} --single-transaction --quick ${DB} | gzip > ${rawFile}`, creds);
    const rawBackupS = (now() - t) / 1000;
    const rawSize = (await stat(rawFile)).size;
    t = now();
    await db.query(`CREATE DATABASE raw_restore;`);
    await sh(`gunzip < ${rawFile} | mariadb --no-defaults ${conn} raw_restore`, creds);
    const rawRestoreS = (now() - t) / 1000;
    await db.query(`DROP DATABASE raw_restore;`);

    // Slipway: the same database through a BackupPolicy, run by the controller manager.
    platform = await startPlatform();
    manager = await startManager(platform.api);
    const { client } = platform.api;
    await createNamespace(client, NS);
    await client.create(nsPath(NS, 'secrets'), { apiVersion: 'slipway.dev/v1alpha1', kind: 'Secret', metadata: { name: 'db' }, stringData: { password: db.password } });
    const slip = await runThroughSlipway(platform, db, join(work, 'location'));

    const report = (what: string, rawS: number, slipS: number) => {
      const ratio = rawS / slipS;
      console.log(
        `${what}: raw ${rawS.toFixed(1)} s (${(mb(tableBytes) / rawS).toFixed(1)} MiB/s)  slipway ${slipS.toFixed(1)} s (${(mb(tableBytes) / slipS).toFixed(1)} MiB/s)  throughput ratio ${(ratio * 100).toFixed(0)} % of raw  ${ratio >= TARGET_RATIO ? 'PASS' : 'MISS'} (target ≥ ${TARGET_RATIO * 100} %)`,
      );
    };
    console.log(`artifact: raw ${mb(rawSize).toFixed(0)} MiB gzip, slipway ${mb(slip.artifactBytes).toFixed(0)} MiB (${slip.compression})`);
    report('backup', rawBackupS, slip.backupS);
    report('restore', rawRestoreS, slip.restoreS);
    console.log(`drill: RTO ${slip.drillRto}, RPO ${slip.drillRpo}`);
  } finally {
    await manager?.stop().catch(() => undefined);
    await platform?.stop().catch(() => undefined);
    await db.stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
