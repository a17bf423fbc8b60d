// PostgreSQL backup engine: `pg_dump -Fc` of one database, streamed; restore with
// `pg_restore --no-owner --no-acl --single-transaction` into a NEW database that it creates
// (dropped again if the restore fails). Refuses to restore over the source database unless
// overwriteSource. Connection details and the password go through libpq environment
// variables (PGHOST, PGPORT, PGUSER, PGPASSWORD), never the command line.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  restoreDestination,
  nonEmpty,
  runTool,
  toolVersion,
  type BackupEngine,
  type ConnectionTarget,
  type DumpResult,
  type EngineOptions,
  type RestoreTarget,
} from './engine.js';

export interface PostgresEngineOptions extends EngineOptions {
  /** Directory holding pg_dump/pg_restore/psql; default: newest /usr/lib/postgresql/<v>/bin, else PATH. */
  binDir?: string;
  /** Database to connect to for CREATE/DROP DATABASE (default "postgres"). */
  maintenanceDatabase?: string;
}

/** The newest Debian-style PostgreSQL bin directory, if any. */
function defaultBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+(\.\d+)?$/.test(v) && existsSync(join(root, v, 'bin', 'pg_dump')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0]!, 'bin') : undefined;
}

/** A libpq conninfo value, quoted. */
function conninfoValue(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** A quoted SQL identifier. */
export function pgIdent(name: string): string {
  if (name.includes('\0')) throw new Error('database name contains a NUL byte');
  return `"${name.replace(/"/g, '""')}"`;
}

export class PostgresEngine implements BackupEngine<ConnectionTarget, RestoreTarget, void> {
  private readonly bin: (tool: string) => string;

  constructor(private readonly options: PostgresEngineOptions = {}) {
    const dir = options.binDir ?? defaultBinDir();
    this.bin = (tool) => (dir ? join(dir, tool) : tool);
  }

  private env(t: ConnectionTarget): Record<string, string | undefined> {
    return {
      PGHOST: t.host,
      PGPORT: String(t.port),
      PGUSER: t.user,
      PGPASSWORD: t.password,
      PGCONNECT_TIMEOUT: '15',
      PGAPPNAME: 'slipway-backup',
    };
  }

  private database(t: ConnectionTarget): string {
    if (!t.database) throw new Error('postgres: the target has no database to back up');
    return t.database;
  }

  async dump(target: ConnectionTarget, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<DumpResult> {
    const db = this.database(target);
    const bin = this.bin('pg_dump');
    const version = await toolVersion('pg_dump', bin);
    const { bytes } = await runTool({
      tool: 'pg_dump',
      argv: [bin, '--format=custom', '--no-password', `--dbname=dbname=${conninfoValue(db)}`],
      env: this.env(target),
      stdout: out,
      secrets: [target.password],
      signal,
      onSpawn: this.options.onSpawn,
    });
    if (bytes === 0) throw new Error(`pg_dump of database "${db}" produced no output`);
    return { toolVersion: version, bytes };
  }

  /** Runs SQL through psql (unaligned, tuples only) in `database`, by default the maintenance database. */
  async psql(server: ConnectionTarget, sql: string, signal?: AbortSignal, database?: string): Promise<string> {
    const bin = this.bin('psql');
    const db = database ?? this.options.maintenanceDatabase ?? 'postgres';
    const { output } = await runTool({
      tool: 'psql',
      argv: [bin, '--no-psqlrc', '--no-password', '--quiet', '--tuples-only', '--no-align', '--set=ON_ERROR_STOP=1', `--dbname=dbname=${conninfoValue(db)}`],
      env: this.env(server),
      stdin: sql,
      secrets: [server.password],
      signal,
      onSpawn: this.options.onSpawn,
    });
    return output;
  }

  async restore(target: ConnectionTarget, artifact: NodeJS.ReadableStream, into: RestoreTarget, signal?: AbortSignal): Promise<void> {
    const source = this.database(target);
    const { server, overwriting } = restoreDestination('postgres', target, into, source);
    const lit = `'${into.database.replace(/'/g, "''")}'`;
    let created = false;
    if (!overwriting) {
      const exists = (await this.psql(server, `SELECT 1 FROM pg_database WHERE datname = ${lit};\n`, signal)).trim();
      if (exists) throw new Error(`postgres: restore target database "${into.database}" already exists (restores go into a NEW database)`);
      await this.psql(server, `CREATE DATABASE ${pgIdent(into.database)} TEMPLATE template0;\n`, signal);
      created = true;
    }
    const bin = this.bin('pg_restore');
    try {
      await runTool({
        tool: 'pg_restore',
        argv: [
          bin,
          '--no-password',
          '--no-owner',
          '--no-acl',
          '--single-transaction',
          '--exit-on-error',
          ...(overwriting ? ['--clean', '--if-exists'] : []),
          `--dbname=dbname=${conninfoValue(into.database)}`,
        ],
        env: this.env(server),
        stdin: nonEmpty(artifact, 'pg_restore'),
        secrets: [server.password],
        signal,
        onSpawn: this.options.onSpawn,
      });
    } catch (e) {
      if (created) {
        await this.psql(server, `DROP DATABASE IF EXISTS ${pgIdent(into.database)};\n`).catch(() => undefined);
      }
      throw e;
    }
  }
}
