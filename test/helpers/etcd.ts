// Starts real etcd servers for tests: a single member, or a cluster of several on loopback,
// each on free ports with a temporary data directory, stopped (and cleaned up) afterwards.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  process: ChildProcess;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface EtcdCluster {
  endpoints: string[];
  members: EtcdMember[];
  stop(): Promise<void>;
}

async function waitHealthy(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/health`);
      const body = (await res.json()) as { health?: string };
      if (body.health === 'true') return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`etcd at ${url} did not become healthy in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts an etcd cluster of `size` members (1 by default). */
export async function startEtcd(size = 1): Promise<EtcdCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'slipway-etcd-'));
  const specs = await Promise.all(
    Array.from({ length: size }, async (_, i) => ({
      name: `m${i}`,
      clientUrl: `http://127.0.0.1:${await freePort()}`,
      peerUrl: `http://127.0.0.1:${await freePort()}`,
    })),
  );
  const initialCluster = specs.map((s) => `${s.name}=${s.peerUrl}`).join(',');
  const members: EtcdMember[] = specs.map((s) => {
    const child = spawn(
      'etcd',
      [
        '--name', s.name,
        '--data-dir', join(dir, s.name),
        '--listen-client-urls', s.clientUrl,
        '--advertise-client-urls', s.clientUrl,
        '--listen-peer-urls', s.peerUrl,
        '--initial-advertise-peer-urls', s.peerUrl,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', `slipway-test-${process.pid}`,
        '--heartbeat-interval', '50',
        '--election-timeout', '500',
        '--log-level', 'error',
        '--logger', 'zap',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child.on('exit', (code, signal) => {
      if (code && code !== 0 && !signal) process.stderr.write(`etcd ${s.name} exited with ${code}: ${stderr}\n`);
    });
    return {
      ...s,
      process: child,
      kill: (signal: NodeJS.Signals = 'SIGKILL') =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill(signal);
        }),
    };
  });
  await Promise.all(members.map((m) => waitHealthy(m.clientUrl, 20_000)));
  return {
    endpoints: members.map((m) => m.clientUrl),
    members,
    async stop() {
      await Promise.all(members.map((m) => m.kill('SIGKILL')));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
