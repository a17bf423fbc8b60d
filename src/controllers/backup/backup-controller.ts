// The backup controller: one key per Backup. A Pending Backup is claimed (phase Running, this
// manager as holder, a heartbeat) unless another run of the same policy is active, then dumped,
// compressed, stored and read back; only a verified artifact makes it Succeeded. Any failure is
// Failed with a clear, credential-free error and a Warning Event on the Backup and its policy. A
// Running Backup whose manager died (stale heartbeat) is failed as interrupted, so it never blocks
// the policy's schedule.

import type { Backup, BackupPolicy } from '../../api/generated/crd-types.js';
import { COMPRESSION_EXTENSION } from '../../backup/compression.js';
import { DUMP_EXTENSION, runBackup, targetSecrets, type Compression } from '../../backup/run.js';
import type { Controller, ReconcileContext } from '../runtime/controller.js';
import { setCondition, type Condition } from '../runtime/conditions.js';
import { splitKey, type DeepReadonly } from '../runtime/informer.js';
import type { ReconcileOutcome } from '../runtime/work-queue.js';
import { openLocation, resolveTarget } from './resolve.js';
import { interruptedMessage, isFinished, isInterrupted, iso, objectPath, patchStatus, roundSeconds as round, runSignal, safeMessage, withHeartbeat, type BackupControllerContext } from './run-state.js';

/** Where a Backup's artifact goes inside its location. */
export function artifactPath(namespace: string, policy: string, backup: string, type: keyof typeof DUMP_EXTENSION, compression: Compression): string {
  return `${namespace}/${policy}/${backup}${DUMP_EXTENSION[type]}${COMPRESSION_EXTENSION[compression]}`;
}

/** How long a Backup waits for its BackupPolicy to appear before it fails. */
const POLICY_GRACE_MS = 10_000;

export class BackupController implements Controller {
  readonly name = 'backups';
  readonly concurrency = 4;
  /** Backups running in this process, and the policies they belong to (runs of one policy never overlap). */
  private readonly running = new Set<string>();
  private readonly busyPolicies = new Set<string>();

  constructor(private readonly ctx: BackupControllerContext) {}

  async reconcile(rc: ReconcileContext, key: string): Promise<ReconcileOutcome | void> {
    const b = this.ctx.backups.get(key);
    if (!b || isFinished(b.status) || this.running.has(key)) return;
    const { namespace } = splitKey(key) as { namespace: string };
    const path = objectPath('backups', namespace, b.metadata.name);
    const policyKey = `${namespace}/${b.spec.policy}`;
    if (b.status?.phase === 'Running') {
      if (!isInterrupted(b.status, this.ctx.identity, false, this.ctx.heartbeatMs)) return { requeueAfterMs: this.ctx.heartbeatMs * 3 };
      const message = interruptedMessage(b.status);
      await this.fail(b, undefined, path, message, 'Interrupted', b.metadata.resourceVersion);
      return;
    }
    const policy = this.ctx.policies.get(policyKey);
    if (!policy) {
      // Created together with its policy (apply, then `slipctl backup run`), the policy may still be on its way to the cache.
      if (Date.now() - (Date.parse(b.metadata.creationTimestamp ?? '') || 0) < POLICY_GRACE_MS) return { requeueAfterMs: 1000 };
      await this.fail(b, undefined, path, `BackupPolicy ${policyKey} does not exist`, 'PolicyNotFound', b.metadata.resourceVersion);
      return;
    }
    // Never two runs of one policy: one here, or one another manager left Running (until it is failed as interrupted).
    const otherRunning = this.ctx.backups.list((o) => o.metadata.namespace === namespace && o.spec.policy === b.spec.policy && o.metadata.name !== b.metadata.name && o.status?.phase === 'Running');
    if (this.busyPolicies.has(policyKey) || otherRunning.length) {
      if (!b.status?.phase) await patchStatus(this.ctx.client, path, b.metadata.resourceVersion, { phase: 'Pending' });
      return { requeueAfterMs: 1000 };
    }

    const compression = (policy.spec.compression ?? 'gzip') as Compression;
    // Taken before the claim is awaited, so a second Backup of the policy reconciled meanwhile waits.
    this.busyPolicies.add(policyKey);
    let claimed;
    try {
      claimed = await patchStatus(this.ctx.client, path, b.metadata.resourceVersion, {
        phase: 'Running',
        startTime: iso(this.ctx.clock()),
        holder: this.ctx.identity,
        heartbeatTime: new Date().toISOString(),
        location: policy.spec.location,
        compression,
        observedGeneration: b.metadata.generation,
      });
    } catch (err) {
      this.busyPolicies.delete(policyKey);
      throw err;
    }
    this.running.add(key);
    const started = this.ctx.clock();
    const secrets: string[] = [];
    try {
      await withHeartbeat(this.ctx.client, path, this.ctx.heartbeatMs, async () => {
        const { store, secrets: storeSecrets } = await openLocation(this.ctx.client, namespace, policy.spec.location);
        secrets.push(...storeSecrets);
        try {
          const target = await resolveTarget(this.ctx.client, this.ctx.hosts, namespace, policy.spec as BackupPolicy['spec'] & object);
          secrets.push(...targetSecrets(target));
          const signal = runSignal(this.ctx, policy.spec.timeoutSeconds ?? 3600);
          const result = await runBackup({ target, store, path: artifactPath(namespace, policy.metadata.name, b.metadata.name, target.type, compression), compression, signal, ...(this.ctx.engine ? { engine: this.ctx.engine } : {}) });
          let conditions = setCondition(b.status?.conditions as Condition[] | undefined, { type: 'Verified', status: 'True', reason: 'ChecksumMatched', message: `read back ${result.sizeBytes} bytes from ${store.describe()}; sha256 matched` });
          conditions = setCondition(conditions, { type: 'Complete', status: 'True', reason: 'BackupSucceeded' });
          await patchStatus(this.ctx.client, path, undefined, {
            phase: 'Succeeded',
            completionTime: iso(this.ctx.clock()),
            durationSeconds: round(result.durationSeconds),
            artifact: result.path,
            sizeBytes: result.sizeBytes,
            sha256: result.sha256,
            toolVersion: result.toolVersion.slice(0, 1024),
            verified: true,
            error: null,
            holder: null,
            conditions,
          });
          rc.log.info({ artifact: result.path, bytes: result.sizeBytes, seconds: round(result.durationSeconds) }, 'backup succeeded');
          const message = `Backup ${b.metadata.name} of ${target.type} succeeded: ${result.sizeBytes} bytes, verified, at ${store.describe()}/${result.path}`;
          await this.ctx.events.record(policy as never, 'Normal', 'BackupSucceeded', message);
        } finally {
          await store.close().catch(() => undefined);
        }
      });
    } catch (err) {
      const message = this.ctx.stopping.aborted ? `interrupted: the controller manager ${this.ctx.identity} stopped during the run` : safeMessage(err, secrets);
      rc.log.warn({ err: message, seconds: (this.ctx.clock() - started) / 1000 }, 'backup failed');
      await this.fail(claimed as DeepReadonly<Backup>, policy, path, message, 'BackupFailed');
    } finally {
      this.running.delete(key);
      this.busyPolicies.delete(policyKey);
    }
  }

  /**
   * Marks the Backup Failed and records the Warning Event, once (webhooks forward each Event): on its
   * policy, where `slipctl describe backuppolicy` shows it, or on the Backup when the policy is gone.
   */
  private async fail(b: DeepReadonly<Backup>, policy: DeepReadonly<BackupPolicy> | undefined, path: string, message: string, reason: string, resourceVersion?: string): Promise<void> {
    let conditions = setCondition(b.status?.conditions as Condition[] | undefined, { type: 'Verified', status: 'False', reason, message });
    conditions = setCondition(conditions, { type: 'Complete', status: 'False', reason, message });
    // With the version the decision was made on, so a status someone else wrote meanwhile is not overwritten.
    await patchStatus(this.ctx.client, path, resourceVersion, { phase: 'Failed', completionTime: iso(this.ctx.clock()), verified: false, error: message, holder: null, conditions });
    const text = `Backup ${b.metadata.name} failed: ${message}`;
    const p = policy ?? this.ctx.policies.get(`${b.metadata.namespace}/${b.spec?.policy}`);
    await this.ctx.events.record((p ?? b) as never, 'Warning', 'BackupFailed', text);
  }
}
