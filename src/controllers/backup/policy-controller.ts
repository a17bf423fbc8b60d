// The backup policy controller: one key per BackupPolicy. It creates the Backup of a due schedule
// slot (named after the slot, so a retried reconcile finds it; after downtime only the latest missed
// slot runs, once; never while another run of the policy is active), prunes verified artifacts that
// the grandfather-father-son retention no longer keeps (never the newest success), trims old failed
// runs, and writes lastScheduleTime, nextScheduleTime, lastSuccessfulBackup and the Healthy and
// Stale conditions (a Warning BackupStale Event when it goes stale). The next slot is computed from
// the persisted lastScheduleTime, so schedules survive restarts.

import type { Backup, BackupPolicy } from '../../api/generated/crd-types.js';
import { ApiRequestError } from '../../client/api-client.js';
import { scheduleError } from '../../api/cron.js';
import { selectRetained } from '../../backup/retention.js';
import { dueSlot, staleAfterMs } from '../../backup/schedule.js';
import type { Controller, ReconcileContext } from '../runtime/controller.js';
import { getCondition, setCondition, type Condition } from '../runtime/conditions.js';
import type { DeepReadonly } from '../runtime/informer.js';
import type { ReconcileOutcome } from '../runtime/work-queue.js';
import { openLocation } from './resolve.js';
import { API, backupTime, isFinished, objectPath, POLICY_LABEL, successfulBackups, writeStatusIfChanged, type BackupControllerContext } from './run-state.js';

/** Failed Backups kept per policy for their error messages; older ones are deleted. */
export const FAILED_HISTORY = 5;

/** Deterministic per policy and slot. */
export const scheduledBackupName = (policy: string, slot: Date) => `${policy.slice(0, 240)}-${Math.floor(slot.getTime() / 1000)}`;

type Stored<T> = DeepReadonly<T & { metadata: { name: string; namespace: string; uid: string }; spec: NonNullable<BackupPolicy['spec']> }>;

export class BackupPolicyController implements Controller {
  readonly name = 'backuppolicies';
  readonly concurrency = 4;

  constructor(private readonly ctx: BackupControllerContext) {}

  async reconcile(rc: ReconcileContext, key: string): Promise<ReconcileOutcome | void> {
    const policy = this.ctx.policies.get(key);
    if (!policy) return;
    const { namespace, name } = policy.metadata as { namespace: string; name: string };
    const spec = policy.spec;
    const now = this.ctx.clock();
    const schedule = { cron: spec.schedule, timeZone: spec.timeZone ?? 'UTC' };
    const status = policy.status ?? {};
    let conditions = status.conditions as Condition[] | undefined;

    const invalid = scheduleError(schedule);
    if (invalid) {
      conditions = setCondition(conditions, { type: 'Healthy', status: 'False', reason: 'InvalidSchedule', message: `spec.${invalid.field === 'cron' ? 'schedule' : 'timeZone'}: ${invalid.message}`, observedGeneration: policy.metadata.generation });
      await writeStatusIfChanged(this.ctx.client, policy, { conditions, observedGeneration: policy.metadata.generation });
      return;
    }

    const mine = this.ctx.backups.list((b) => b.metadata.namespace === namespace && b.spec.policy === name);
    let active = mine.find((b) => !isFinished(b.status));
    let lastScheduleTime = status.lastScheduleTime;
    const decision = dueSlot(schedule, lastScheduleTime, policy.metadata.creationTimestamp, new Date(now));
    if (decision.due && !spec.suspend && !active) {
      const backupName = scheduledBackupName(name, decision.due);
      await this.createBackup(policy as Stored<BackupPolicy>, backupName, decision.due);
      rc.log.info({ backup: backupName, slot: decision.due.toISOString() }, 'scheduled backup created');
      lastScheduleTime = decision.due.toISOString();
      active = { metadata: { name: backupName } } as DeepReadonly<Backup & { metadata: { name: string } }> as never;
    }

    const succeeded = successfulBackups(this.ctx, namespace, name);
    // A location that is down must not keep the status (Stale above all) from being written: pruning waits for the next reconcile.
    const pruneError = await this.prune(rc, policy as Stored<BackupPolicy>, mine, now).then(() => undefined, (err: Error) => err);
    if (pruneError) rc.log.warn({ err: pruneError.message }, 'pruning old backups failed; will retry');

    const newestSuccess = succeeded[0];
    const finished = mine.filter((b) => isFinished(b.status)).sort((a, b) => completion(b) - completion(a));
    const newestFinished = finished[0];
    if (!newestFinished) conditions = setCondition(conditions, { type: 'Healthy', status: 'Unknown', reason: 'NoBackupYet', message: 'no backup has finished yet' });
    else if (newestFinished.status?.phase === 'Succeeded') conditions = setCondition(conditions, { type: 'Healthy', status: 'True', reason: 'BackupSucceeded', message: `the last backup ${newestFinished.metadata.name} succeeded and was verified` });
    else conditions = setCondition(conditions, { type: 'Healthy', status: 'False', reason: 'BackupFailed', message: `the last backup ${newestFinished.metadata.name} failed: ${newestFinished.status?.error ?? 'unknown error'}`.slice(0, 4096) });

    const limit = staleAfterMs(schedule, new Date(now));
    const since = newestSuccess ? completion(newestSuccess) : Date.parse(policy.metadata.creationTimestamp ?? '') || now;
    const staleAt = since + limit;
    const wasStale = getCondition(conditions, 'Stale')?.status === 'True';
    const stale = now > staleAt;
    const hours = Math.round((limit / 3600_000) * 10) / 10;
    const staleMessage = newestSuccess
      ? `no successful backup since ${newestSuccess.status?.completionTime} (${newestSuccess.metadata.name}); the limit is ${hours} h, twice the schedule's interval`
      : `no successful backup since the policy was created at ${policy.metadata.creationTimestamp}; the limit is ${hours} h, twice the schedule's interval`;
    conditions = setCondition(conditions, stale ? { type: 'Stale', status: 'True', reason: 'NoRecentBackup', message: staleMessage } : { type: 'Stale', status: 'False', reason: 'RecentBackup', message: newestSuccess ? `last success ${newestSuccess.status?.completionTime}` : 'waiting for the first backup' });

    const fields: Record<string, unknown> = {
      observedGeneration: policy.metadata.generation,
      conditions,
      nextScheduleTime: decision.next.toISOString(),
      activeBackup: active?.metadata.name ?? null,
      lastSuccessfulBackup: newestSuccess ? { name: newestSuccess.metadata.name, completionTime: newestSuccess.status?.completionTime, sizeBytes: newestSuccess.status?.sizeBytes } : null,
      ...(lastScheduleTime ? { lastScheduleTime } : {}),
    };
    const wrote = await writeStatusIfChanged(this.ctx.client, policy, fields);
    if (wrote && stale && !wasStale) await this.ctx.events.record(policy as never, 'Warning', 'BackupStale', `Backups of policy ${namespace}/${name} are stale: ${staleMessage}`);

    if (pruneError) throw pruneError;
    const wake = Math.min(decision.next.getTime() - now, stale ? Infinity : staleAt - now, this.ctx.resyncMs);
    return { requeueAfterMs: Math.max(500, wake + 50) };
  }

  private async createBackup(policy: Stored<BackupPolicy>, backupName: string, slot: Date): Promise<void> {
    try {
      await this.ctx.client.create(`${API}/namespaces/${encodeURIComponent(policy.metadata.namespace)}/backups`, {
        apiVersion: 'slipway.dev/v1alpha1',
        kind: 'Backup',
        metadata: {
          name: backupName,
          namespace: policy.metadata.namespace,
          // No ownerReference: deleting a policy must not garbage-collect the Backups its artifacts are restored from.
          labels: { [POLICY_LABEL]: policy.metadata.name },
        },
        spec: { policy: policy.metadata.name, trigger: 'Schedule', scheduledTime: slot.toISOString().replace(/\.\d{3}Z$/, 'Z') },
      });
    } catch (err) {
      // Created by an earlier attempt of this reconcile: the slot is taken care of.
      if (!(err instanceof ApiRequestError && err.code === 409)) throw err;
    }
  }

  /** Deletes artifacts (and their Backups) retention no longer keeps, and failed runs beyond the history. */
  private async prune(rc: ReconcileContext, policy: Stored<BackupPolicy>, mine: ReadonlyArray<DeepReadonly<Backup & { metadata: { name: string } }>>, now: number): Promise<void> {
    const verified = mine.filter((b) => b.status?.phase === 'Succeeded' && b.status.verified === true);
    const { prune } = selectRetained(
      verified.map((b) => ({ name: b.metadata.name, time: new Date(backupTime(b)), verified: true })),
      policy.spec.retention ?? {},
      new Date(now),
      policy.spec.timeZone ?? 'UTC',
    );
    const failed = mine.filter((b) => b.status?.phase === 'Failed').sort((a, b) => completion(b) - completion(a)).slice(FAILED_HISTORY);
    if (prune.length) {
      const byName = new Map(verified.map((b) => [b.metadata.name, b]));
      const { store } = await openLocation(this.ctx.client, policy.metadata.namespace, policy.spec.location);
      try {
        for (const backupName of prune) {
          const b = byName.get(backupName)!;
          // The artifact first: a Backup object is never gone while its artifact still exists.
          if (b.status?.artifact) await store.remove(b.status.artifact);
          await this.deleteBackup(policy.metadata.namespace, backupName);
          rc.log.info({ backup: backupName, artifact: b.status?.artifact }, 'pruned by retention');
        }
      } finally {
        await store.close().catch(() => undefined);
      }
    }
    for (const b of failed) await this.deleteBackup(policy.metadata.namespace, b.metadata.name);
  }

  private async deleteBackup(namespace: string, name: string): Promise<void> {
    await this.ctx.client.delete(objectPath('backups', namespace, name)).catch((err) => {
      if (!(err instanceof ApiRequestError && err.code === 404)) throw err;
    });
  }
}

const completion = (b: DeepReadonly<Backup>) => Date.parse(b.status?.completionTime ?? b.status?.startTime ?? b.metadata.creationTimestamp ?? '') || 0;
