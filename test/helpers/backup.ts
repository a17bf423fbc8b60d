// A Slipway for backup controller tests: a real API server on a real etcd and an in-process
// controller manager whose schedule clock the test moves, plus a namespace, a local
// BackupLocation in a temp folder, and helpers to create policies and wait for runs.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Backup, BackupPolicy, Event as SlipwayEvent, Restore } from '../../src/api/generated/crd-types.js';
import type { ControllerManager } from '../../src/controllers/manager.js';
import { createNamespace, startApi, type TestApi } from './apiserver.js';
import { nsPath, startManager, waitFor } from './platform.js';

export const V1 = 'slipway.dev/v1alpha1';

export interface BackupPlatform {
  api: TestApi;
  manager: ControllerManager;
  ns: string;
  /** Folder of the local BackupLocation `local`. */
  dir: string;
  /** Moves the manager's schedule clock forward. */
  advance(ms: number): void;
  /** The manager's schedule clock now. */
  now(): number;
  secret(name: string, data: Record<string, string>): Promise<void>;
  policy(name: string, spec: Record<string, unknown>): Promise<BackupPolicy>;
  getPolicy(name: string): Promise<BackupPolicy>;
  backup(name: string): Promise<Backup>;
  backupsOf(policy: string): Promise<Backup[]>;
  /** Creates a manual Backup of `policy` and waits until it finished. */
  runBackup(policy: string, name: string): Promise<Backup>;
  waitBackup(name: string, timeoutMs?: number): Promise<Backup>;
  restore(name: string, spec: Record<string, unknown>): Promise<Restore>;
  events(reason: string): Promise<SlipwayEvent[]>;
  /** Stops the manager, runs `during` (the downtime), starts a new one. */
  restartManager(during?: () => Promise<void> | void): Promise<void>;
  /** Everything the manager logged (info and up). */
  logs(): string;
  stop(): Promise<void>;
}

/**
 * Where a test's schedule clock starts by default: now, or 25 min earlier in an hour's last 20 min.
 * Test policies use real schedules (`0 * * * *`, `0 3 * * *`) and the clock runs with real time,
 * so a file running across a whole hour would otherwise get a scheduled Backup it did not ask for.
 * This way the next whole hour is at least 20 min of run time away.
 */
export function scheduleClockStart(now = Date.now()): number {
  return now % 3_600_000 >= 40 * 60_000 ? now - 25 * 60_000 : now;
}

export async function startBackupPlatform(ns: string, clockStart = scheduleClockStart()): Promise<BackupPlatform> {
  const api = await startApi();
  const { client } = api;
  let offset = clockStart - Date.now();
  const clock = () => Date.now() + offset;
  let logText = '';
  const logDestination = new Writable({
    write(chunk: Buffer, _e, done) {
      logText = (logText + chunk.toString()).slice(-4_000_000);
      done();
    },
  });
  const options = { clock, heartbeatIntervalMs: 500, resyncMs: 1000, logLevel: 'info', logDestination };
  let manager = await startManager(api, options);
  await createNamespace(client, ns);
  const dir = await mkdtemp(join(tmpdir(), 'slipway-backup-loc-'));
  await client.create(nsPath(ns, 'backuplocations'), { apiVersion: V1, kind: 'BackupLocation', metadata: { name: 'local' }, spec: { local: { node: 'local', path: dir } } });
  const backup = (name: string) => client.get<Backup>(nsPath(ns, 'backups', name));
  const waitBackup = (name: string, timeoutMs = 60_000) =>
    waitFor(`backup ${name} to finish`, async () => {
      const b = await backup(name);
      return b.status?.phase === 'Succeeded' || b.status?.phase === 'Failed' ? b : undefined;
    }, timeoutMs);
  return {
    api,
    get manager() {
      return manager;
    },
    ns,
    dir,
    advance: (ms) => (offset += ms),
    now: clock,
    async secret(name, data) {
      await client.create(nsPath(ns, 'secrets'), { apiVersion: V1, kind: 'Secret', metadata: { name }, stringData: data });
    },
    policy: (name, spec) => client.create<BackupPolicy>(nsPath(ns, 'backuppolicies'), { apiVersion: V1, kind: 'BackupPolicy', metadata: { name }, spec: { location: 'local', ...spec } }),
    getPolicy: (name) => client.get<BackupPolicy>(nsPath(ns, 'backuppolicies', name)),
    backup,
    backupsOf: async (policy) => (await client.list<Backup>(nsPath(ns, 'backups'))).items.filter((b) => b.spec?.policy === policy),
    async runBackup(policy, name) {
      await client.create(nsPath(ns, 'backups'), { apiVersion: V1, kind: 'Backup', metadata: { name }, spec: { policy } });
      return waitBackup(name);
    },
    waitBackup,
    async restore(name, spec) {
      await client.create(nsPath(ns, 'restores'), { apiVersion: V1, kind: 'Restore', metadata: { name }, spec });
      return waitFor(`restore ${name} to finish`, async () => {
        const r = await client.get<Restore>(nsPath(ns, 'restores', name));
        return r.status?.phase === 'Succeeded' || r.status?.phase === 'Failed' ? r : undefined;
      }, 60_000);
    },
    events: async (reason) => (await client.list<SlipwayEvent>(nsPath(ns, 'events'))).items.filter((e) => e.reason === reason),
    async restartManager(during) {
      await manager.stop();
      await during?.();
      manager = await startManager(api, options);
    },
    logs: () => logText,
    async stop() {
      await manager.stop().catch(() => undefined);
      await api.stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
