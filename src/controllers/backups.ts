// Wiring of the backup controllers into the controller manager: informers for BackupPolicies,
// Backups and Restores, one runner each for policies (schedule, retention, staleness), backups
// (runs), restores and restore drills, and the handlers that map changes to their keys.

import type { Logger } from 'pino';
import type { Backup, BackupPolicy, Restore } from '../api/generated/crd-types.js';
import type { ApiClient } from '../client/api-client.js';
import type { EventRecorder } from '../client/event-recorder.js';
import type { EngineOptions } from '../backup/engines/engine.js';
import { BackupController } from './backup/backup-controller.js';
import { RestoreDrillController } from './backup/drill-controller.js';
import { BackupPolicyController } from './backup/policy-controller.js';
import type { DockerHosts } from './backup/resolve.js';
import { RestoreController } from './backup/restore-controller.js';
import { API, type BackupControllerContext } from './backup/run-state.js';
import { ControllerRunner } from './runtime/controller.js';
import { Informer, objectKey } from './runtime/informer.js';
import type { ControllerMetrics } from './runtime/metrics.js';

export interface BackupOptions {
  client: ApiClient;
  log: Logger;
  metrics: ControllerMetrics;
  events: EventRecorder;
  hosts: DockerHosts;
  identity: string;
  clock?: () => number;
  /** Heartbeat period of running Backups and Restores. Defaults to 10 s. */
  heartbeatMs?: number;
  /** Longest time before a policy is looked at again. Defaults to 15 s. */
  resyncMs?: number;
  engine?: EngineOptions;
}

export interface BackupControllers {
  informers: Array<Informer<any>>;
  policies: Informer<BackupPolicy>;
  backups: Informer<Backup>;
  start(): void;
  shutdown(): Promise<void>;
}

export function createBackupControllers(o: BackupOptions): BackupControllers {
  const { client, log } = o;
  const policies = new Informer<BackupPolicy>(client, `${API}/backuppolicies`, log);
  const backups = new Informer<Backup>(client, `${API}/backups`, log);
  const restores = new Informer<Restore>(client, `${API}/restores`, log);
  const stopping = new AbortController();
  const ctx: BackupControllerContext = {
    client,
    events: o.events,
    hosts: o.hosts,
    policies,
    backups,
    restores,
    identity: o.identity,
    clock: o.clock ?? Date.now,
    heartbeatMs: o.heartbeatMs ?? 10_000,
    resyncMs: o.resyncMs ?? 15_000,
    stopping: stopping.signal,
    ...(o.engine ? { engine: o.engine } : {}),
  };
  const policyRunner = new ControllerRunner(new BackupPolicyController(ctx), o.metrics, log);
  const drillRunner = new ControllerRunner(new RestoreDrillController(ctx), o.metrics, log);
  const backupRunner = new ControllerRunner(new BackupController(ctx), o.metrics, log);
  const restoreRunner = new ControllerRunner(new RestoreController(ctx), o.metrics, log);

  policies.onChange((current, previous) => {
    const key = objectKey((current ?? previous)!);
    policyRunner.enqueue(key);
    drillRunner.enqueue(key);
  });
  backups.onChange((current, previous) => {
    const b = (current ?? previous)!;
    backupRunner.enqueue(objectKey(b));
    if (b.spec?.policy) {
      const policyKey = `${b.metadata.namespace}/${b.spec.policy}`;
      policyRunner.enqueue(policyKey);
      // A run that finished may free the policy for a waiting one, and may be the first to drill.
      if (current?.status?.phase !== previous?.status?.phase) {
        drillRunner.enqueue(policyKey);
        for (const other of backups.list((x) => x.metadata.namespace === b.metadata.namespace && x.spec.policy === b.spec?.policy && !x.status?.phase?.match(/Succeeded|Failed/))) backupRunner.enqueue(objectKey(other));
      }
    }
  });
  restores.onChange((current, previous) => restoreRunner.enqueue(objectKey((current ?? previous)!)));

  const runners = [policyRunner, drillRunner, backupRunner, restoreRunner];
  return {
    informers: [policies, backups, restores],
    policies,
    backups,
    start() {
      for (const r of runners) r.start();
      for (const p of policies.list()) {
        policyRunner.enqueue(objectKey(p));
        drillRunner.enqueue(objectKey(p));
      }
      for (const b of backups.list()) backupRunner.enqueue(objectKey(b));
      for (const r of restores.list()) restoreRunner.enqueue(objectKey(r));
    },
    async shutdown() {
      stopping.abort();
      await Promise.allSettled(runners.map((r) => r.shutdown()));
    },
  };
}
