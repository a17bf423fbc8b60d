// The backup library's entry points, used by the controllers and callable directly (bench, scripts):
// runBackup (dump → compress → store → read back and compare the checksum), runRestore (verify the
// stored artifact, then restore it into an isolated target, or over the source only when asked) and
// runDrill (restore the newest backup into a throwaway target, validate it, measure RTO and RPO, tear
// it down). Targets are plain connection details: resolving them from Kubernetes-style objects and
// Secrets is the controllers' job.

import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';
import { compressor, decompressor, type Compression } from './compression.js';
import type { ConnectionTarget, EngineOptions } from './engines/engine.js';
import { EtcdEngine, type EtcdTarget } from './engines/etcd.js';
import { MysqlEngine, mysqlIdent } from './engines/mysql.js';
import { PostgresEngine, pgIdent } from './engines/postgres.js';
import { RedisEngine, type RedisTarget } from './engines/redis.js';
import { VolumeEngine } from './engines/volume.js';
import { runTool } from './engines/engine.js';
import type { BackupStore } from './location.js';
import { verifyArtifact } from './verify.js';

export type { Compression } from './compression.js';

/** What to back up or restore from: connection details with credentials already resolved. */
export type BackupTarget =
  | { type: 'mysql'; connection: ConnectionTarget & { database: string } }
  | { type: 'postgres'; connection: ConnectionTarget & { database: string } }
  | { type: 'redis'; connection: RedisTarget }
  | { type: 'etcd'; connection: EtcdTarget }
  | {
      type: 'volume';
      docker: Docker;
      volume: string;
      /** The node's name, for messages. */
      node?: string;
      /** A helper image present on the node; unset: Slipway's own, built on the node when missing. */
      image?: string;
    };

/** A stored artifact as a Backup recorded it. */
export interface ArtifactRef {
  path: string;
  sizeBytes: number;
  sha256: string;
  compression: Compression;
}

export interface BackupResult extends ArtifactRef {
  toolVersion: string;
  durationSeconds: number;
}

/** Where a restore goes; what applies depends on the target type. */
export interface RestoreInto {
  /** mysql, postgres: the database to create (must not exist unless overwriteSource and it is the source). */
  database?: string;
  /** volume: the Docker volume to create. */
  volume?: string;
  /** etcd, redis: a new directory that keeps the restored data; unset means a temporary one. */
  dataDir?: string;
  /** Allow restoring over the source database or volume. */
  overwriteSource?: boolean;
}

/** Checks run against a restored copy (BackupPolicy spec.restoreDrill.validation). */
export interface Validation {
  tables?: ReadonlyArray<{ name: string; minRows?: number }>;
  query?: string;
  expected?: string;
}

export interface RestoredTarget {
  /** Where the data went, for status and events. */
  description: string;
  /** Runs the validation against the restored copy: undefined when it passes, else why not. */
  validate(validation?: Validation, signal?: AbortSignal): Promise<string | undefined>;
  /** Stops servers started for the restore; `drop` also deletes the restored data (drills). */
  close(drop: boolean): Promise<void>;
}

export interface LibraryOptions {
  /** Observes every tool spawned (tests read /proc/<pid>/cmdline through it). */
  engine?: EngineOptions;
  signal?: AbortSignal;
}

/** Passwords in a target, for scrubbing error messages. */
export function targetSecrets(target: BackupTarget): string[] {
  return target.type === 'volume' ? [] : [target.connection.password].filter((s): s is string => !!s);
}

/** File name ending of an artifact of this target type (before the compression's). */
export const DUMP_EXTENSION: Record<BackupTarget['type'], string> = { mysql: '.sql', postgres: '.pgdump', redis: '.rdb', etcd: '.db', volume: '.tar' };

/**
 * Dumps the target, compresses it and streams it into the store at `path`, then reads the artifact
 * back and compares size and SHA-256. Rejects (leaving no artifact) when the dump fails or is
 * empty, the upload fails, or verification fails.
 */
export async function runBackup(o: LibraryOptions & { target: BackupTarget; store: BackupStore; path: string; compression: Compression }): Promise<BackupResult> {
  const started = performance.now();
  const raw = new PassThrough({ highWaterMark: 1 << 20 });
  const packed = compressor(o.compression);
  const packing = pipeline(raw, packed);
  const putting = o.store.put(o.path, packed);
  let dumped: { toolVersion: string };
  try {
    dumped = await dump(o.target, raw, o);
    raw.end();
  } catch (err) {
    raw.destroy(err as Error);
    await Promise.allSettled([packing, putting]);
    await o.store.remove(o.path).catch(() => undefined);
    throw err;
  }
  const [packResult, putResult] = await Promise.allSettled([packing, putting]);
  if (putResult.status === 'rejected') throw putResult.reason;
  if (packResult.status === 'rejected') {
    await o.store.remove(o.path).catch(() => undefined);
    throw new Error(`compressing the dump (${o.compression}) failed: ${(packResult.reason as Error).message}`);
  }
  const written = putResult.value;
  const verified = await verifyArtifact(o.store, o.path, written);
  if (!verified.ok) {
    await o.store.remove(o.path).catch(() => undefined);
    throw new Error(`verification failed: ${verified.reason}`);
  }
  return { path: o.path, sizeBytes: written.size, sha256: written.sha256, compression: o.compression, toolVersion: dumped.toolVersion, durationSeconds: (performance.now() - started) / 1000 };
}

function dump(target: BackupTarget, out: NodeJS.WritableStream, o: LibraryOptions): Promise<{ toolVersion: string }> {
  switch (target.type) {
    case 'mysql':
      return new MysqlEngine(o.engine).dump(target.connection, out, o.signal);
    case 'postgres':
      return new PostgresEngine(o.engine).dump(target.connection, out, o.signal);
    case 'redis':
      return new RedisEngine(o.engine).dump(target.connection, out, o.signal);
    case 'etcd':
      return new EtcdEngine(o.engine).dump(target.connection, out, o.signal);
    case 'volume':
      return new VolumeEngine({ ...o.engine, image: target.image, node: target.node }).dump({ docker: target.docker, volume: target.volume }, out, o.signal);
  }
}

/**
 * Restores a stored artifact: first reads it back and compares size and SHA-256 with what the
 * Backup recorded (a corrupted or truncated artifact is refused before anything is written), then
 * streams it through decompression into the engine's restore.
 */
export async function runRestore(o: LibraryOptions & { target: BackupTarget; store: BackupStore; artifact: ArtifactRef; into: RestoreInto }): Promise<RestoredTarget> {
  const check = await verifyArtifact(o.store, o.artifact.path, { size: o.artifact.sizeBytes, sha256: o.artifact.sha256 });
  if (!check.ok) throw new Error(`the artifact failed verification, nothing was restored: ${check.reason}`);
  const unpacked = decompressor(o.artifact.compression);
  const feeding = pipeline(await o.store.get(o.artifact.path), unpacked).catch((err: Error) => unpacked.destroy(new Error(`reading the artifact failed: ${err.message}`)));
  try {
    return await restoreInto(o.target, unpacked, o.into, o);
  } finally {
    unpacked.destroy();
    await feeding;
  }
}

async function restoreInto(target: BackupTarget, input: NodeJS.ReadableStream, into: RestoreInto, o: LibraryOptions): Promise<RestoredTarget> {
  const { signal } = o;
  switch (target.type) {
    case 'mysql': {
      const engine = new MysqlEngine(o.engine);
      const database = required(into.database, 'database');
      await engine.restore(target.connection, input, { database, overwriteSource: into.overwriteSource }, signal);
      const server = target.connection;
      return sqlTarget(`database ${database} on ${server.host}:${server.port}`, (sql, s) => engine.sql(server, sql, s, database), mysqlIdent, '\t', async () => {
        await engine.sql(server, `DROP DATABASE IF EXISTS ${mysqlIdent(database)};\n`);
      });
    }
    case 'postgres': {
      const engine = new PostgresEngine(o.engine);
      const database = required(into.database, 'database');
      await engine.restore(target.connection, input, { database, overwriteSource: into.overwriteSource }, signal);
      const server = target.connection;
      const ident = (name: string) => name.split('.').map(pgIdent).join('.');
      return sqlTarget(`database ${database} on ${server.host}:${server.port}`, (sql, s) => engine.psql(server, sql, s, database), ident, '|', async () => {
        await engine.psql(server, `DROP DATABASE IF EXISTS ${pgIdent(database)} WITH (FORCE);\n`);
      });
    }
    case 'redis': {
      if (into.overwriteSource) throw new Error('redis: restoring over the source server is not supported; restore into a new data directory and switch the server to it');
      const restored = await new RedisEngine(o.engine).restore(target.connection, input, {}, signal);
      try {
        if (into.dataDir) {
          await mkdir(into.dataDir, { recursive: false, mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
            throw new Error(err.code === 'EEXIST' ? `redis restore: ${into.dataDir} already exists (restores go into a NEW directory)` : `redis restore: cannot create ${into.dataDir}: ${err.message}`);
          });
          await copyFile(join(restored.dir, 'dump.rdb'), join(into.dataDir, 'dump.rdb'));
        }
      } catch (err) {
        await restored.stop();
        throw err;
      }
      return {
        description: into.dataDir ? `redis data directory ${into.dataDir} (dump.rdb)` : `redis-server on 127.0.0.1:${restored.port}`,
        validate: async (v, s) => {
          if (v?.tables?.length || v?.query) return 'table and query validation applies to mysql and postgres targets only';
          const { output } = await runTool({ tool: 'redis-cli', argv: ['redis-cli', '-h', '127.0.0.1', '-p', String(restored.port), 'DBSIZE'], signal: s });
          return Number(output.trim()) > 0 ? undefined : `the restored Redis data set is empty (DBSIZE ${output.trim() || '?'})`;
        },
        close: async (drop) => {
          await restored.stop();
          if (drop && into.dataDir) await rm(into.dataDir, { recursive: true, force: true });
        },
      };
    }
    case 'etcd': {
      if (into.overwriteSource) throw new Error('etcd: restoring over the running source cluster is not supported; restore into a new data directory and start etcd from it');
      const restored = await new EtcdEngine(o.engine).restore(target.connection, input, into.dataDir ? { dataDir: into.dataDir } : {}, signal);
      return {
        description: into.dataDir ? `etcd data directory ${into.dataDir}` : `etcd on ${restored.endpoints[0]}`,
        validate: async (v, s) => {
          if (v?.tables?.length || v?.query) return 'table and query validation applies to mysql and postgres targets only';
          const { output } = await runTool({ tool: 'etcdctl', argv: ['etcdctl', 'get', '', '--prefix', '--keys-only', '--limit=1'], env: { ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: restored.endpoints[0] }, signal: s });
          return output.trim() ? undefined : 'the restored etcd holds no keys';
        },
        close: async (drop) => {
          await restored.stop();
          if (drop && into.dataDir) await rm(into.dataDir, { recursive: true, force: true });
        },
      };
    }
    case 'volume': {
      const volume = required(into.volume, 'volume');
      await new VolumeEngine({ ...o.engine, image: target.image, node: target.node }).restore({ docker: target.docker, volume: target.volume }, input, { volume, overwriteSource: into.overwriteSource }, signal);
      return {
        description: `volume ${volume}`,
        validate: async (v) => (v?.tables?.length || v?.query ? 'table and query validation applies to mysql and postgres targets only' : undefined),
        close: async (drop) => {
          if (drop && volume !== target.volume) await target.docker.getVolume(volume).remove({ force: true });
        },
      };
    }
  }
}

function required(value: string | undefined, what: string): string {
  if (!value) throw new Error(`restore needs a target ${what}`);
  return value;
}

/** A restored SQL database: row-count and query validation, and its removal. */
function sqlTarget(
  description: string,
  query: (sql: string, signal?: AbortSignal) => Promise<string>,
  ident: (name: string) => string,
  separator: string,
  drop: () => Promise<void>,
): RestoredTarget {
  return {
    description,
    async validate(v, signal) {
      const problems: string[] = [];
      for (const table of v?.tables ?? []) {
        const min = table.minRows ?? 1;
        const rows = await query(`SELECT COUNT(*) FROM ${ident(table.name)};\n`, signal).then(
          (out) => Number(out.trim()),
          (err: Error) => err,
        );
        if (rows instanceof Error) problems.push(`table ${table.name}: ${rows.message.split('\n')[0]}`);
        else if (!(rows >= min)) problems.push(`table ${table.name} has ${rows} rows, expected at least ${min}`);
      }
      if (v?.query) {
        const out = await query(v.query.trim().replace(/;?$/, ';\n'), signal).catch((err: Error) => err);
        if (out instanceof Error) problems.push(`validation query failed: ${out.message.split('\n')[0]}`);
        else {
          const first = out.split('\n')[0]?.split(separator)[0]?.trim();
          if (v.expected !== undefined && first !== v.expected.trim()) problems.push(`validation query returned ${JSON.stringify(first ?? '')}, expected ${JSON.stringify(v.expected.trim())}`);
          if (v.expected === undefined && !out.trim()) problems.push('validation query returned no rows');
        }
      }
      return problems.length ? problems.join('; ') : undefined;
    },
    close: async (dropIt) => {
      if (dropIt) await drop();
    },
  };
}

export interface DrillResult {
  result: 'Passed' | 'Failed';
  /** Seconds the restore took (verification included): the recovery time. */
  rtoSeconds: number;
  /** Age of the restored backup when the drill ran: the recovery point. */
  rpoSeconds: number;
  message: string;
}

/** A name for a drill's throwaway target. */
export const drillName = (prefix: string) => `${prefix}${randomBytes(5).toString('hex')}`;

/**
 * A restore drill: restores `artifact` into a new throwaway target (a fresh database, volume or
 * etcd/Redis instance, never the source), validates it, and always tears it down.
 */
export async function runDrill(
  o: LibraryOptions & { target: BackupTarget; store: BackupStore; artifact: ArtifactRef; backupTime: Date; now: Date; validation?: Validation },
): Promise<DrillResult> {
  const rpoSeconds = Math.max(0, (o.now.getTime() - o.backupTime.getTime()) / 1000);
  const into: RestoreInto = o.target.type === 'mysql' || o.target.type === 'postgres' ? { database: drillName('slipway_drill_') } : o.target.type === 'volume' ? { volume: drillName('slipway-drill-') } : {};
  const started = performance.now();
  let restored: RestoredTarget;
  try {
    restored = await runRestore({ ...o, into });
  } catch (err) {
    return { result: 'Failed', rtoSeconds: (performance.now() - started) / 1000, rpoSeconds, message: `restore failed: ${(err as Error).message}` };
  }
  const rtoSeconds = (performance.now() - started) / 1000;
  try {
    const problem = await restored.validate(o.validation, o.signal);
    return problem
      ? { result: 'Failed', rtoSeconds, rpoSeconds, message: `validation failed on ${restored.description}: ${problem}` }
      : { result: 'Passed', rtoSeconds, rpoSeconds, message: `restored into ${restored.description} and validated` };
  } catch (err) {
    return { result: 'Failed', rtoSeconds, rpoSeconds, message: `validation failed: ${(err as Error).message}` };
  } finally {
    await restored.close(true).catch(() => undefined);
  }
}
