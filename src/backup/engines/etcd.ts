// etcd backup engine: `etcdctl snapshot save` (API v3) of one member into a private temp dir,
// streamed out and deleted; endpoints and credentials go through ETCDCTL_* environment
// variables, never the command line. Restore never touches the source: `etcdctl snapshot
// restore` (etcd 3.4 has no etcdutl) into a NEW data directory, then a fresh single-member etcd
// on free 127.0.0.1 ports serves it; its endpoints and stop() are returned for validation.

import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import {
  streamDumpFile,
  nonEmpty,
  privateTempDir,
  runTool,
  toolEnv,
  type BackupEngine,
  type DumpResult,
  type EngineOptions,
} from './engine.js';
import { freeLoopbackPort } from '../../util/free-port.js';

export interface EtcdTarget {
  /** Client URLs, e.g. http://127.0.0.1:2379. The snapshot is taken from the first that answers. */
  endpoints: string[];
  user?: string;
  password?: string;
  /** TLS files for https endpoints. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface EtcdRestoreTarget {
  /** A NEW data directory to restore into (must not exist; default: a private temp dir, removed by stop()). */
  dataDir?: string;
  /** Milliseconds to wait for the restored etcd to become healthy (default 30 s). */
  startTimeoutMs?: number;
}

export interface RestoredEtcd {
  /** Client URL(s) of the restored single-member etcd on 127.0.0.1. */
  endpoints: string[];
  pid: number;
  dataDir: string;
  /** Stops the etcd and removes the data dir when the engine created it. */
  stop(): Promise<void>;
}

export interface EtcdEngineOptions extends EngineOptions {
  etcdctlBin?: string;
  etcdBin?: string;
  /** Time limit for one snapshot download (default 10 min). */
  snapshotTimeoutMs?: number;
}

/** etcdctl's stderr without its info-level JSON log lines; names a failed integrity check. */
function etcdctlError(e: Error): string {
  const msg = e.message.replace(/\{"level":"(debug|info)"[^\n]*(\n|$)/g, '').trim();
  if (/expected sha256|missing hash|checksum|invalid database|file size too small|not a valid|unexpected EOF/i.test(msg)) {
    return `the snapshot is corrupt or not an etcd snapshot (integrity check failed): ${msg}`;
  }
  return msg;
}


async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { health?: string | boolean };
    return body.health === 'true' || body.health === true;
  } catch {
    return false;
  }
}

export class EtcdEngine implements BackupEngine<EtcdTarget, EtcdRestoreTarget, RestoredEtcd> {
  private readonly ctl: string;
  private readonly etcd: string;

  constructor(private readonly options: EtcdEngineOptions = {}) {
    this.ctl = options.etcdctlBin ?? 'etcdctl';
    this.etcd = options.etcdBin ?? 'etcd';
  }

  /** etcdctl environment: API v3, one endpoint, credentials and TLS; inherited ETCDCTL_* blanked. */
  private env(t: EtcdTarget, endpoint?: string, commandTimeout = '60s'): Record<string, string | undefined> {
    return {
      ETCDCTL_API: '3',
      ETCDCTL_ENDPOINTS: endpoint ?? '',
      ETCDCTL_USER: t.user ?? '',
      ETCDCTL_PASSWORD: t.user ? (t.password ?? '') : '',
      ETCDCTL_CACERT: t.caFile ?? '',
      ETCDCTL_CERT: t.certFile ?? '',
      ETCDCTL_KEY: t.keyFile ?? '',
      ETCDCTL_DISCOVERY_SRV: '',
      ETCDCTL_DIAL_TIMEOUT: '5s',
      ETCDCTL_COMMAND_TIMEOUT: commandTimeout,
    };
  }

  private async version(): Promise<string> {
    const { output } = await runTool({ tool: 'etcdctl', argv: [this.ctl, 'version'], env: { ETCDCTL_API: '3' } });
    return output.trim().split('\n')[0]!.trim();
  }

  async dump(target: EtcdTarget, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<DumpResult> {
    if (!target.endpoints?.length) throw new Error('etcd: the target has no endpoints');
    const version = await this.version();
    const { dir, cleanup } = await privateTempDir('etcd-dump');
    try {
      const file = join(dir, 'snapshot.db');
      // A snapshot comes from exactly one member: try the endpoints in turn.
      const failures: string[] = [];
      let saved = false;
      for (const endpoint of target.endpoints) {
        signal?.throwIfAborted();
        try {
          // A quick health probe first: the snapshot's own timeout must be long (big databases).
          await runTool({
            tool: 'etcdctl',
            argv: [this.ctl, 'endpoint', 'health'],
            env: { ...this.env(target, endpoint, '5s'), ETCDCTL_DIAL_TIMEOUT: '3s' },
            secrets: [target.password],
            signal,
            onSpawn: this.options.onSpawn,
          });
          await runTool({
            tool: 'etcdctl',
            argv: [this.ctl, 'snapshot', 'save', file],
            env: this.env(target, endpoint, `${Math.ceil((this.options.snapshotTimeoutMs ?? 600_000) / 1000)}s`),
            secrets: [target.password],
            signal,
            onSpawn: this.options.onSpawn,
          });
          saved = true;
          break;
        } catch (e) {
          if (signal?.aborted) throw e;
          failures.push(`${endpoint}: ${etcdctlError(e as Error)}`);
          await Promise.all([file, `${file}.part`].map((f) => rm(f, { force: true })));
        }
      }
      if (!saved) throw new Error(`etcd snapshot failed on every endpoint:\n${failures.join('\n')}`);
      const bytes = await streamDumpFile(file, out, 'etcdctl snapshot save produced an empty file', signal);
      return { toolVersion: version, bytes };
    } finally {
      await cleanup();
    }
  }

  async restore(_source: EtcdTarget, artifact: NodeJS.ReadableStream, into: EtcdRestoreTarget = {}, signal?: AbortSignal): Promise<RestoredEtcd> {
    if (into.dataDir && existsSync(into.dataDir)) {
      throw new Error(`etcd restore: data directory ${into.dataDir} already exists (restores go into a NEW data directory)`);
    }
    const { dir, cleanup } = await privateTempDir('etcd-restore');
    try {
      const snapshot = join(dir, 'snapshot.db');
      await pipeline(nonEmpty(artifact, 'etcd restore'), createWriteStream(snapshot, { mode: 0o600 }), { signal });
      let lastError: Error | undefined;
      for (let attempt = 0; attempt < 3; attempt++) {
        const dataDir = into.dataDir ?? join(dir, `data-${attempt}`);
        try {
          const restored = await this.restoreAndStart(snapshot, dataDir, into, signal);
          await rm(snapshot, { force: true });
          const stop = async () => {
            await restored.stop();
            await cleanup(); // the temp dir (and the data dir, unless the caller chose it)
          };
          return { endpoints: restored.endpoints, pid: restored.pid, dataDir, stop };
        } catch (e) {
          lastError = e as Error;
          await rm(dataDir, { recursive: true, force: true });
          if (!/address already in use/i.test(lastError.message)) break;
        }
      }
      throw lastError!;
    } catch (e) {
      await cleanup();
      throw e;
    }
  }

  private async restoreAndStart(
    snapshot: string,
    dataDir: string,
    into: EtcdRestoreTarget,
    signal?: AbortSignal,
  ): Promise<{ endpoints: string[]; pid: number; stop(): Promise<void> }> {
    const [clientPort, peerPort] = [await freeLoopbackPort(), await freeLoopbackPort()];
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const name = 'restored';
    const token = `slipway-restore-${randomBytes(6).toString('hex')}`;
    await runTool({
      tool: 'etcdctl',
      argv: [
        this.ctl, 'snapshot', 'restore', snapshot,
        '--data-dir', dataDir,
        '--name', name,
        '--initial-cluster', `${name}=${peerUrl}`,
        '--initial-cluster-token', token,
        '--initial-advertise-peer-urls', peerUrl,
      ],
      env: { ETCDCTL_API: '3' },
      signal,
      onSpawn: this.options.onSpawn,
    }).catch((e: Error) => {
      throw new Error(`etcd restore: the snapshot could not be restored: ${etcdctlError(e)}`);
    });

    const argv = [
      '--name', name,
      '--data-dir', dataDir,
      '--listen-client-urls', clientUrl,
      '--advertise-client-urls', clientUrl,
      '--listen-peer-urls', peerUrl,
      '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', `${name}=${peerUrl}`,
      '--initial-cluster-token', token,
      '--initial-cluster-state', 'new',
      '--log-level', 'warn',
      '--logger', 'zap',
    ];
    const child = spawn(this.etcd, argv, { env: toolEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const keep = (d: Buffer) => {
      log = (log + d.toString()).slice(-8000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let dead: string | undefined;
    child.once('error', (e) => (dead = `etcd could not be started: ${e.message}`));
    child.once('exit', (code, sig) => (dead = `etcd exited ${sig ? `by ${sig}` : `with code ${code}`} while starting from the restored snapshot`));
    if (child.pid !== undefined) this.options.onSpawn?.({ tool: 'etcd', pid: child.pid, argv: [this.etcd, ...argv] });
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = once(child, 'exit');
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(t);
      }
    };
    const deadline = Date.now() + (into.startTimeoutMs ?? 30_000);
    try {
      for (;;) {
        signal?.throwIfAborted();
        if (dead) throw new Error(`${dead}: ${log.trim().split('\n').slice(-6).join('\n')}`);
        if (await healthy(clientUrl)) break;
        if (Date.now() > deadline) throw new Error(`restored etcd on ${clientUrl} did not become healthy in time: ${log.trim().split('\n').slice(-4).join('\n')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } catch (e) {
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
      throw e;
    }
    return { endpoints: [clientUrl], pid: child.pid!, stop };
  }
}
