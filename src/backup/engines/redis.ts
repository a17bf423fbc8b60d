// Redis backup engine: dump with `redis-cli --rdb <file>` into a private temp dir, then stream
// the RDB file out (and delete it); auth via REDISCLI_AUTH. Restore never touches the source:
// it starts a NEW isolated `redis-server` on a free 127.0.0.1 port whose --dir holds the
// artifact as dump.rdb (configuration, including requirepass, fed on stdin with `redis-server -`,
// so no secret is on the command line; saving is disabled), waits until it has loaded the data
// and answers PING, and returns its address and stop().

import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  streamDumpFile,
  nonEmpty,
  privateTempDir,
  redact,
  runTool,
  toolEnv,
  toolVersion,
  type BackupEngine,
  type DumpResult,
  type EngineOptions,
} from './engine.js';
import { freeLoopbackPort } from '../../util/free-port.js';

export interface RedisTarget {
  host: string;
  port: number;
  /** ACL user (Redis 6+); omit for the default user. */
  user?: string;
  password?: string;
}

export interface RedisRestoreTarget {
  /** requirepass for the new server (default: none; it only listens on 127.0.0.1). */
  password?: string;
  /** Milliseconds to wait for the server to load the data (default 30 s). */
  startTimeoutMs?: number;
}

export interface RestoredRedis {
  host: string;
  port: number;
  password?: string;
  pid: number;
  /** Data directory (deleted by stop()). */
  dir: string;
  stop(): Promise<void>;
}

export interface RedisEngineOptions extends EngineOptions {
  cliBin?: string;
  serverBin?: string;
}


function configValue(v: string): string {
  if (/[\r\n\0]/.test(v)) throw new Error('redis: a configuration value contains a line break or NUL byte');
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function respCommand(...args: string[]): string {
  return `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
}

/** One PING (after AUTH if a password is set); resolves with the reply line of the PING. */
async function ping(port: number, password?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let buf = '';
    const expected = password ? 2 : 1;
    sock.setTimeout(2000, () => sock.destroy(new Error('timeout')));
    sock.on('error', reject);
    sock.on('connect', () => sock.write((password ? respCommand('AUTH', password) : '') + respCommand('PING')));
    sock.on('data', (d) => {
      buf += d.toString();
      const lines = buf.split('\r\n').filter(Boolean);
      if (lines.length >= expected) {
        sock.destroy();
        resolve(lines[expected - 1]!);
      }
    });
  });
}

export class RedisEngine implements BackupEngine<RedisTarget, RedisRestoreTarget, RestoredRedis> {
  private readonly cliBin: string;
  private readonly serverBin: string;

  constructor(private readonly options: RedisEngineOptions = {}) {
    this.cliBin = options.cliBin ?? 'redis-cli';
    this.serverBin = options.serverBin ?? 'redis-server';
  }

  async dump(target: RedisTarget, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<DumpResult> {
    const version = await toolVersion('redis-cli', this.cliBin);
    const { dir, cleanup } = await privateTempDir('redis-dump');
    try {
      const file = join(dir, 'dump.rdb');
      await runTool({
        tool: 'redis-cli',
        argv: [this.cliBin, '-h', target.host, '-p', String(target.port), ...(target.user ? ['--user', target.user] : []), '--no-auth-warning', '--rdb', file],
        env: { REDISCLI_AUTH: target.password },
        secrets: [target.password],
        signal,
        onSpawn: this.options.onSpawn,
      });
      const bytes = await streamDumpFile(file, out, `redis-cli --rdb from ${target.host}:${target.port} produced an empty file`, signal);
      return { toolVersion: version, bytes };
    } finally {
      await cleanup();
    }
  }

  async restore(_source: RedisTarget, artifact: NodeJS.ReadableStream, into: RedisRestoreTarget = {}, signal?: AbortSignal): Promise<RestoredRedis> {
    const { dir, cleanup } = await privateTempDir('redis-restore');
    try {
      await pipeline(nonEmpty(artifact, 'redis restore'), createWriteStream(join(dir, 'dump.rdb'), { mode: 0o600 }), { signal });
      let lastError: Error | undefined;
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          return await this.startServer(dir, cleanup, into, signal);
        } catch (e) {
          lastError = e as Error;
          if (!/Address already in use/i.test(lastError.message)) break;
        }
      }
      throw lastError!;
    } catch (e) {
      await cleanup();
      throw e;
    }
  }

  private async startServer(dir: string, cleanup: () => Promise<void>, into: RedisRestoreTarget, signal?: AbortSignal): Promise<RestoredRedis> {
    const port = await freeLoopbackPort();
    const config = [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${configValue(dir)}`,
      'dbfilename dump.rdb',
      'save ""',
      'appendonly no',
      'daemonize no',
      'protected-mode yes',
      'logfile ""',
      ...(into.password !== undefined ? [`requirepass ${configValue(into.password)}`] : []),
    ].join('\n');
    const child = spawn(this.serverBin, ['-'], { env: toolEnv(), stdio: ['pipe', 'pipe', 'pipe'], cwd: dir });
    let log = '';
    const keep = (d: Buffer) => {
      log = (log + d.toString()).slice(-8000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.stdin.on('error', () => undefined);
    const exited = new Promise<string>((resolve) => {
      child.once('error', (e) => resolve(`redis-server could not be started: ${e.message}`));
      child.once('exit', (code, sig) => resolve(`redis-server exited ${sig ? `by ${sig}` : `with code ${code}`} while loading the artifact`));
    });
    child.stdin.end(config + '\n');
    if (child.pid !== undefined) this.options.onSpawn?.({ tool: 'redis-server', pid: child.pid, argv: [this.serverBin, '-'] });
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = once(child, 'exit');
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(t);
      }
      await cleanup();
    };
    const deadline = Date.now() + (into.startTimeoutMs ?? 30_000);
    let dead: string | undefined;
    exited.then((m) => (dead = m));
    try {
      for (;;) {
        signal?.throwIfAborted();
        if (dead) {
          const tail = redact(log.trim().split('\n').slice(-6).join('\n'), [into.password]);
          throw new Error(`${dead}: ${tail}`);
        }
        const reply = await ping(port, into.password).catch(() => '');
        if (reply === '+PONG') break;
        if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not become ready in time (last reply: ${reply || 'none'})`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } catch (e) {
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
      throw e;
    }
    child.stdout.removeListener('data', keep);
    child.stdout.resume();
    return { host: '127.0.0.1', port, password: into.password, pid: child.pid!, dir, stop };
  }
}
