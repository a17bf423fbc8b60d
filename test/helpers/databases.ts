// Starts real MariaDB, PostgreSQL and Redis servers for tests: each on a free 127.0.0.1 port
// with a temporary data directory and password authentication, with query helpers for tests,
// stopped and cleaned up by stop(). Servers that refuse to run as root are run as their
// Debian system users (via setpriv) when the tests run as root.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface DatabaseServer {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Milliseconds from start() to ready. */
  startMs: number;
  stop(): Promise<void>;
}

function run(argv: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { input: opts.input, env: opts.env ?? process.env, cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${argv[0]} exited with ${r.status}: ${r.stderr.trim().slice(-2000)}`);
  return r.stdout;
}

async function runAsync(argv: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const child = spawn(argv[0]!, argv.slice(1), { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  child.stdin.on('error', () => undefined);
  child.stdin.end(opts.input ?? '');
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`${argv[0]} exited with ${code}: ${err.trim().slice(-2000)}`);
  return out;
}

function userIds(name: string): { uid: number; gid: number } {
  return { uid: Number(run(['id', '-u', name])), gid: Number(run(['id', '-g', name])) };
}

const isRoot = process.getuid?.() === 0;

/** Argv prefix that runs a command as `user` when we are root (exec, no intermediate process). */
function asUser(user: string): string[] {
  return isRoot ? ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--'] : [];
}

async function waitFor(what: string, child: ChildProcess, log: () => string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited during startup: ${log().trim().slice(-2000)}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} did not become ready in ${timeoutMs} ms: ${log().trim().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function killer(child: ChildProcess, graceful: NodeJS.Signals): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = once(child, 'exit');
    child.kill(graceful);
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(t);
  };
}

function capture(child: ChildProcess): () => string {
  let log = '';
  const keep = (d: Buffer) => (log = (log + d.toString()).slice(-8000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => log;
}

// ---------------------------------------------------------------- MariaDB

export interface MariaDbServer extends DatabaseServer {
  socket: string;
  /** Runs SQL as root over the socket; batch output (tab-separated, raw, no column names). */
  query(sql: string, database?: string): Promise<string>;
}

export async function startMariaDb(options: { bufferPool?: string } = {}): Promise<MariaDbServer> {
  const t0 = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'slipway-mariadb-'));
  const data = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const port = await freePort();
  const user = 'slip';
  const password = `pw-${Math.random().toString(36).slice(2)}-secret`;
  const userOpt = isRoot ? ['--user=root'] : [];
  try {
    await runAsync(['mariadb-install-db', '--no-defaults', `--datadir=${data}`, '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve', ...userOpt]);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const child = spawn(
    '/usr/sbin/mariadbd',
    [
      '--no-defaults',
      ...userOpt,
      `--datadir=${data}`,
      `--socket=${socket}`,
      `--pid-file=${join(dir, 'mariadbd.pid')}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      '--skip-name-resolve',
      `--innodb-buffer-pool-size=${options.bufferPool ?? '32M'}`,
      '--innodb-log-file-size=16M',
      '--innodb-flush-log-at-trx-commit=0',
      '--skip-log-bin',
      '--character-set-server=utf8mb4',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log = capture(child);
  const stopProc = killer(child, 'SIGTERM');
  const query = (sql: string, database?: string) =>
    runAsync(['mariadb', '--no-defaults', '-uroot', `--socket=${socket}`, '--batch', '--raw', '--skip-column-names', '--default-character-set=utf8mb4', ...(database ? [`--database=${database}`] : [])], { input: sql });
  const stop = async () => {
    await stopProc();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('mariadbd', child, log, async () => (await query('SELECT 1;')).trim() === '1');
    await query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'; GRANT ALL ON *.* TO '${user}'@'%';`);
  } catch (e) {
    await stop();
    throw e;
  }
  return { host: '127.0.0.1', port, user, password, socket, startMs: Date.now() - t0, query, stop };
}

// ---------------------------------------------------------------- PostgreSQL

export interface PostgresServer extends DatabaseServer {
  /** Runs SQL via psql over TCP with the password; unaligned, tuples only, NULL shown as <NULL>. */
  query(sql: string, database?: string): Promise<string>;
}

export async function startPostgres(): Promise<PostgresServer> {
  const t0 = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'slipway-pg-'));
  const data = join(dir, 'data');
  const port = await freePort();
  const user = 'slip';
  const password = `pw-${Math.random().toString(36).slice(2)}-secret`;
  await mkdir(data, { mode: 0o700 });
  const pwfile = join(dir, 'pw');
  await writeFile(pwfile, password + '\n', { mode: 0o600 });
  if (isRoot) {
    const { uid, gid } = userIds('postgres');
    for (const p of [dir, data, pwfile]) await chown(p, uid, gid);
  }
  try {
    await runAsync([...asUser('postgres'), join(PG_BIN, 'initdb'), '-D', data, '-U', user, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  await rm(pwfile);
  const child = spawn(
    asUser('postgres')[0] ?? join(PG_BIN, 'postgres'),
    [
      ...asUser('postgres').slice(1),
      ...(isRoot ? [join(PG_BIN, 'postgres')] : []),
      '-D', data,
      '-p', String(port),
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `unix_socket_directories=${dir}`,
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log = capture(child);
  const stopProc = killer(child, 'SIGINT');
  const env = { ...process.env, PGPASSWORD: password, PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: user };
  const query = (sql: string, database = 'postgres') =>
    runAsync([join(PG_BIN, 'psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-P', 'null=<NULL>', '-d', database], { input: sql, env });
  const stop = async () => {
    await stopProc();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor('postgres', child, log, async () => (await query('SELECT 1;')).trim() === '1');
  } catch (e) {
    await stop();
    throw e;
  }
  return { host: '127.0.0.1', port, user, password, startMs: Date.now() - t0, query, stop };
}

// ---------------------------------------------------------------- Redis

export interface RedisServer extends DatabaseServer {
  /** Runs one redis-cli command (argv) against a server (this one by default); raw output. */
  cli(args: string[], at?: { port: number; password?: string }): Promise<string>;
}

export function redisCli(port: number, password: string | undefined, args: string[]): Promise<string> {
  const env = { ...process.env };
  delete env.REDISCLI_AUTH;
  if (password) env.REDISCLI_AUTH = password;
  return runAsync(['redis-cli', '-h', '127.0.0.1', '-p', String(port), '--no-auth-warning', ...args], { env });
}

export async function startRedis(): Promise<RedisServer> {
  const t0 = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'slipway-redis-'));
  const port = await freePort();
  const password = `pw-${Math.random().toString(36).slice(2)}-secret`;
  const child = spawn('redis-server', ['-'], { stdio: ['pipe', 'pipe', 'pipe'], cwd: dir });
  child.stdin!.end([`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'save ""', 'appendonly no', 'repl-diskless-sync-delay 0', `requirepass ${password}`, 'logfile ""'].join('\n') + '\n');
  const log = capture(child);
  const stopProc = killer(child, 'SIGTERM');
  const stop = async () => {
    await stopProc();
    await rm(dir, { recursive: true, force: true });
  };
  const cli = (args: string[], at?: { port: number; password?: string }) => redisCli(at?.port ?? port, at ? at.password : password, args);
  try {
    await waitFor('redis-server', child, log, async () => (await cli(['PING'])).trim() === 'PONG');
  } catch (e) {
    await stop();
    throw e;
  }
  return { host: '127.0.0.1', port, user: 'default', password, startMs: Date.now() - t0, cli, stop };
}

/** A passwordless redis-server on a restored data directory (left in place); resolves once it answers PING. */
export async function startRedisOnDir(dataDir: string): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dataDir, '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = capture(child);
  const stop = killer(child, 'SIGTERM');
  try {
    await waitFor('redis-server on the restored data', child, log, async () => (await redisCli(port, undefined, ['PING'])).trim() === 'PONG', 10_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, stop };
}
