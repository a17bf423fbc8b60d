// The restore controller: one key per Restore. It restores a Succeeded Backup, after checking the
// artifact's SHA-256 against the one recorded, into a NEW target by default: a fresh database on
// the policy's server, a new volume, a new etcd or Redis data directory. Restoring over the
// policy's own source needs spec.overwriteSource; without it such a Restore fails before touching
// anything. Claimed, heartbeated and interrupted like Backups; RestoreSucceeded / RestoreFailed Events.

import { isAbsolute, join } from 'node:path';
import type { Backup, BackupPolicy, Restore } from '../../api/generated/crd-types.js';
import { runRestore, targetSecrets, type BackupTarget, type Compression, type RestoreInto } from '../../backup/run.js';
import type { Controller, ReconcileContext } from '../runtime/controller.js';
import { splitKey, type DeepReadonly } from '../runtime/informer.js';
import type { ReconcileOutcome } from '../runtime/work-queue.js';
import { openLocation, resolveTarget } from './resolve.js';
import { interruptedMessage, isFinished, isInterrupted, iso, objectPath, patchStatus, runSignal, safeMessage, withHeartbeat, type BackupControllerContext } from './run-state.js';

/** Where a Restore goes, from its spec and the policy's target; refuses the source without overwriteSource. */
export function restoreTargetOf(restore: DeepReadonly<Restore>, target: BackupTarget, cwd = process.cwd()): RestoreInto {
  const spec = restore.spec!;
  const suffix = restore.metadata.name!;
  const overwriteSource = spec.overwriteSource === true;
  const refuse = (what: string) => {
    throw new Error(`spec: restoring over the source ${what} needs spec.overwriteSource: true (the default is a new, isolated target)`);
  };
  switch (target.type) {
    case 'mysql':
    case 'postgres': {
      const source = target.connection.database;
      const database = spec.database ?? (overwriteSource ? source : `${source}_restore_${suffix.replace(/[-.]/g, '_')}`.slice(0, 63));
      if (database === source && !overwriteSource) refuse(`database "${source}"`);
      return { database, overwriteSource };
    }
    case 'volume': {
      const volume = spec.volume ?? (overwriteSource ? target.volume : `${target.volume}-restore-${suffix}`.slice(0, 255));
      if (volume === target.volume && !overwriteSource) refuse(`volume "${target.volume}"`);
      return { volume, overwriteSource };
    }
    case 'etcd':
    case 'redis': {
      if (overwriteSource) throw new Error(`spec.overwriteSource: ${target.type} restores always go into a new data directory; start the server from it to switch over`);
      const dir = spec.dataDir ?? join('.slipway', 'restores', `${restore.metadata.namespace}-${suffix}`);
      return { dataDir: isAbsolute(dir) ? dir : join(cwd, dir) };
    }
  }
}

export class RestoreController implements Controller {
  readonly name = 'restores';
  readonly concurrency = 2;
  private readonly running = new Set<string>();

  constructor(private readonly ctx: BackupControllerContext) {}

  async reconcile(rc: ReconcileContext, key: string): Promise<ReconcileOutcome | void> {
    const r = this.ctx.restores.get(key);
    if (!r || isFinished(r.status) || this.running.has(key)) return;
    const { namespace } = splitKey(key) as { namespace: string };
    const path = objectPath('restores', namespace, r.metadata.name);
    if (r.status?.phase === 'Running') {
      if (!isInterrupted(r.status, this.ctx.identity, false, this.ctx.heartbeatMs)) return { requeueAfterMs: this.ctx.heartbeatMs * 3 };
      await this.finish(r, path, { phase: 'Failed', error: interruptedMessage(r.status) });
      return;
    }
    const backup = this.ctx.backups.get(`${namespace}/${r.spec.backup}`);
    if (!backup) return this.finish(r, path, { phase: 'Failed', error: `spec.backup: Backup ${namespace}/${r.spec.backup} does not exist` });
    if (backup.status?.phase !== 'Succeeded' || backup.status.verified !== true || !backup.status.artifact || !backup.status.sha256) {
      return this.finish(r, path, { phase: 'Failed', error: `spec.backup: Backup ${r.spec.backup} has not succeeded with a verified artifact (phase ${backup.status?.phase ?? 'none'})` });
    }
    const policy = this.ctx.policies.get(`${namespace}/${backup.spec.policy}`);
    if (!policy) return this.finish(r, path, { phase: 'Failed', error: `BackupPolicy ${namespace}/${backup.spec.policy} of Backup ${backup.metadata.name} does not exist` });

    const claimed = await patchStatus(this.ctx.client, path, r.metadata.resourceVersion, {
      phase: 'Running',
      policy: policy.metadata.name,
      startTime: iso(this.ctx.clock()),
      holder: this.ctx.identity,
      heartbeatTime: new Date().toISOString(),
      observedGeneration: r.metadata.generation,
    });
    this.running.add(key);
    const secrets: string[] = [];
    const started = performance.now();
    try {
      const description = await withHeartbeat(this.ctx.client, path, this.ctx.heartbeatMs, () => this.restore(r, backup, policy, secrets));
      const seconds = (performance.now() - started) / 1000;
      await this.finish(claimed as never, path, { phase: 'Succeeded', target: description, durationSeconds: Math.round(seconds * 1000) / 1000 });
      rc.log.info({ backup: backup.metadata.name, target: description, seconds }, 'restore succeeded');
    } catch (err) {
      const message = this.ctx.stopping.aborted ? `interrupted: the controller manager ${this.ctx.identity} stopped during the restore` : safeMessage(err, secrets);
      rc.log.warn({ err: message }, 'restore failed');
      await this.finish(claimed as never, path, { phase: 'Failed', error: message });
    } finally {
      this.running.delete(key);
    }
  }

  private async restore(r: DeepReadonly<Restore>, backup: DeepReadonly<Backup>, policy: DeepReadonly<BackupPolicy>, secrets: string[]): Promise<string> {
    const namespace = r.metadata.namespace!;
    const target = await resolveTarget(this.ctx.client, this.ctx.hosts, namespace, policy.spec as BackupPolicy['spec'] & object, 'restore');
    secrets.push(...targetSecrets(target));
    const into = restoreTargetOf(r, target);
    const { store, secrets: storeSecrets } = await openLocation(this.ctx.client, namespace, backup.status!.location ?? policy.spec!.location);
    secrets.push(...storeSecrets);
    try {
      const restored = await runRestore({
        target,
        store,
        into,
        artifact: { path: backup.status!.artifact!, sizeBytes: backup.status!.sizeBytes ?? 0, sha256: backup.status!.sha256!, compression: (backup.status!.compression ?? 'gzip') as Compression },
        signal: runSignal(this.ctx, 24 * 3600),
        ...(this.ctx.engine ? { engine: this.ctx.engine } : {}),
      });
      try {
        // etcd and Redis were started to restore: check they hold data, then stop them (the data directory stays).
        if (target.type === 'etcd' || target.type === 'redis') {
          const problem = await restored.validate();
          if (problem) throw new Error(problem);
        }
      } finally {
        await restored.close(false);
      }
      return restored.description;
    } finally {
      await store.close().catch(() => undefined);
    }
  }

  private async finish(r: DeepReadonly<Restore>, path: string, fields: { phase: 'Succeeded' | 'Failed'; error?: string; target?: string; durationSeconds?: number }): Promise<void> {
    await patchStatus(this.ctx.client, path, undefined, { ...fields, completionTime: iso(this.ctx.clock()), holder: null });
    const failed = fields.phase === 'Failed';
    await this.ctx.events.record(r as never, failed ? 'Warning' : 'Normal', failed ? 'RestoreFailed' : 'RestoreSucceeded', failed ? `Restore of ${r.spec?.backup} failed: ${fields.error}` : `Restored ${r.spec?.backup} into ${fields.target}`);
  }
}
