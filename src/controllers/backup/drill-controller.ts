// The restore drill controller: one key per BackupPolicy with a restoreDrill. On each drill slot it
// restores the policy's newest verified Backup into a throwaway target (never the source), runs the
// validation, tears the target down and records the outcome in the policy's status: lastDrill
// {time, backup, result, rtoSeconds, rpoSeconds, message}, lastDrillScheduleTime, nextDrillTime and
// the DrillPassing condition, with a Warning DrillFailed Event when it fails. A drill interrupted by
// a restart is not recorded, so its slot is drilled again.

import type { BackupPolicy } from '../../api/generated/crd-types.js';
import { ApiRequestError } from '../../client/api-client.js';
import { dueSlot } from '../../backup/schedule.js';
import { runDrill, targetSecrets, type Compression, type DrillResult } from '../../backup/run.js';
import type { Controller, ReconcileContext } from '../runtime/controller.js';
import { setCondition, type Condition } from '../runtime/conditions.js';
import type { DeepReadonly } from '../runtime/informer.js';
import type { ReconcileOutcome } from '../runtime/work-queue.js';
import { openLocation, resolveTarget } from './resolve.js';
import { iso, objectPath, patchStatus, roundSeconds as round, runSignal, safeMessage, successfulBackups, writeStatusIfChanged, type BackupControllerContext } from './run-state.js';

export const DEFAULT_DRILL_SCHEDULE = '0 4 * * 0';

export class RestoreDrillController implements Controller {
  readonly name = 'restoredrills';
  readonly concurrency = 2;

  constructor(private readonly ctx: BackupControllerContext) {}

  async reconcile(rc: ReconcileContext, key: string): Promise<ReconcileOutcome | void> {
    const policy = this.ctx.policies.get(key);
    if (!policy) return;
    const { namespace, name } = policy.metadata as { namespace: string; name: string };
    const path = objectPath('backuppolicies', namespace, name);
    const drill = policy.spec.restoreDrill;
    const conditions = policy.status?.conditions as Condition[] | undefined;
    if (!drill) {
      const current = conditions?.find((c) => c.type === 'DrillPassing');
      if (current?.reason !== 'NoDrill') await patchStatus(this.ctx.client, path, policy.metadata.resourceVersion, { conditions: setCondition(conditions, { type: 'DrillPassing', status: 'Unknown', reason: 'NoDrill', message: 'spec.restoreDrill is not set' }), nextDrillTime: null });
      return;
    }
    const now = this.ctx.clock();
    const schedule = { cron: drill.schedule ?? DEFAULT_DRILL_SCHEDULE, timeZone: policy.spec.timeZone ?? 'UTC' };
    let decision;
    try {
      decision = dueSlot(schedule, policy.status?.lastDrillScheduleTime, policy.metadata.creationTimestamp, new Date(now));
    } catch (err) {
      await writeStatusIfChanged(this.ctx.client, policy, { conditions: setCondition(conditions, { type: 'DrillPassing', status: 'False', reason: 'InvalidSchedule', message: `spec.restoreDrill.schedule: ${(err as Error).message}` }) });
      return;
    }
    const wake = { requeueAfterMs: Math.max(500, Math.min(decision.next.getTime() - now, this.ctx.resyncMs) + 50) };
    const newest = successfulBackups(this.ctx, namespace, name)[0];
    if (!decision.due || policy.spec.suspend || !newest) {
      const fields: Record<string, unknown> = { nextDrillTime: decision.next.toISOString() };
      if (!conditions?.some((c) => c.type === 'DrillPassing' && c.reason !== 'NoDrill')) fields.conditions = setCondition(conditions, { type: 'DrillPassing', status: 'Unknown', reason: newest ? 'NotDrilledYet' : 'NoBackup', message: newest ? 'no drill has run yet' : 'no verified backup to drill yet' });
      await writeStatusIfChanged(this.ctx.client, policy, fields);
      return wake;
    }

    // The cache may not show a drill this controller just recorded: never drill one slot twice.
    const latest = (await this.ctx.client.get(path)) as BackupPolicy;
    if (latest.status?.lastDrillScheduleTime && Date.parse(latest.status.lastDrillScheduleTime) >= decision.due.getTime()) return wake;
    rc.log.info({ backup: newest.metadata.name, slot: decision.due.toISOString() }, 'restore drill starting');
    const result = await this.drill(policy, newest.metadata.name!);
    // A drill cut short by the manager stopping is not a result: its slot is drilled again after the restart.
    if (this.ctx.stopping.aborted) throw new Error('the controller manager is stopping; the drill is not recorded');
    const passed = result.result === 'Passed';
    const lastDrill = { time: iso(this.ctx.clock()), backup: newest.metadata.name, result: result.result, rtoSeconds: round(result.rtoSeconds), rpoSeconds: round(result.rpoSeconds), message: result.message.slice(0, 4096) };
    const drillCondition = passed
      ? { type: 'DrillPassing', status: 'True' as const, reason: 'DrillPassed', message: `${result.message}; RTO ${lastDrill.rtoSeconds} s, RPO ${lastDrill.rpoSeconds} s` }
      : { type: 'DrillPassing', status: 'False' as const, reason: 'DrillFailed', message: result.message.slice(0, 4096) };
    // Recorded against the latest status (the policy controller writes it too); a conflict re-reads rather than drilling again.
    for (let attempt = 1; ; attempt++) {
      const fresh = (await this.ctx.client.get(path)) as BackupPolicy;
      try {
        await patchStatus(this.ctx.client, path, fresh.metadata.resourceVersion, {
          lastDrill,
          lastDrillScheduleTime: decision.due.toISOString(),
          nextDrillTime: decision.next.toISOString(),
          conditions: setCondition(fresh.status?.conditions as Condition[] | undefined, drillCondition),
        });
        break;
      } catch (err) {
        if (!(err instanceof ApiRequestError && err.code === 409) || attempt >= 5) throw err;
      }
    }
    const text = `Restore drill of ${newest.metadata.name}: ${result.message} (RTO ${lastDrill.rtoSeconds} s, RPO ${lastDrill.rpoSeconds} s)`;
    await this.ctx.events.record(policy as never, passed ? 'Normal' : 'Warning', passed ? 'DrillPassed' : 'DrillFailed', text);
    rc.log.info({ result: result.result, rto: result.rtoSeconds, rpo: result.rpoSeconds }, 'restore drill finished');
    return wake;
  }

  private async drill(policy: DeepReadonly<BackupPolicy>, backupName: string): Promise<DrillResult> {
    const namespace = policy.metadata!.namespace!;
    const b = this.ctx.backups.get(`${namespace}/${backupName}`)!;
    const secrets: string[] = [];
    const started = performance.now();
    try {
      const { store, secrets: storeSecrets } = await openLocation(this.ctx.client, namespace, policy.spec!.location);
      secrets.push(...storeSecrets);
      try {
        const target = await resolveTarget(this.ctx.client, this.ctx.hosts, namespace, policy.spec as BackupPolicy['spec'] & object, 'restore');
        secrets.push(...targetSecrets(target));
        const result = await runDrill({
          target,
          store,
          artifact: { path: b.status!.artifact!, sizeBytes: b.status!.sizeBytes!, sha256: b.status!.sha256!, compression: (b.status!.compression ?? 'gzip') as Compression },
          backupTime: new Date(b.status?.startTime ?? b.status?.completionTime ?? 0),
          now: new Date(this.ctx.clock()),
          validation: policy.spec!.restoreDrill?.validation as never,
          signal: runSignal(this.ctx, policy.spec!.restoreDrill?.timeoutSeconds ?? 3600),
          ...(this.ctx.engine ? { engine: this.ctx.engine } : {}),
        });
        return { ...result, message: safeMessage(result.message, secrets) };
      } finally {
        await store.close().catch(() => undefined);
      }
    } catch (err) {
      return { result: 'Failed', rtoSeconds: (performance.now() - started) / 1000, rpoSeconds: 0, message: `drill could not start: ${safeMessage(err, secrets)}` };
    }
  }
}
