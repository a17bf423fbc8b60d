// What the backup, restore and drill controllers share: the context they are built with, one-shot
// runs (Backup, Restore) claimed by writing phase Running with this manager's identity and kept
// alive by a heartbeat in their status, the test for a run whose manager died (a stale heartbeat),
// and status writes that carry a resourceVersion precondition.

import type { Backup, BackupPolicy, Restore } from '../../api/generated/crd-types.js';
import type { ApiClient } from '../../client/api-client.js';
import type { EventRecorder } from '../../client/event-recorder.js';
import type { KubeObject } from '../../api/types.js';
import type { EngineOptions } from '../../backup/engines/engine.js';
import { redact } from '../../backup/engines/engine.js';
import { nowIso } from '../runtime/conditions.js';
import type { DeepReadonly, Informer } from '../runtime/informer.js';
import type { DockerHosts } from './resolve.js';

export const API = '/apis/slipway.dev/v1alpha1';
/** Label on Backups naming their BackupPolicy. */
export const POLICY_LABEL = 'slipway.dev/backup-policy';

export interface BackupControllerContext {
  client: ApiClient;
  events: EventRecorder;
  hosts: DockerHosts;
  policies: Informer<BackupPolicy>;
  backups: Informer<Backup>;
  restores: Informer<Restore>;
  /** This manager's identity, written into the runs it claims. */
  identity: string;
  /** Schedule clock (tests move it); heartbeats use the real time. */
  clock: () => number;
  /** Heartbeat period of running Backups and Restores; 3 missed beats mark a run interrupted. */
  heartbeatMs: number;
  /** Longest wait before a policy is looked at again. */
  resyncMs: number;
  engine?: EngineOptions;
  /** Aborted when the manager stops: runs in flight end at once (recorded as interrupted). */
  stopping: AbortSignal;
}

/** A run's signal: its own time limit, or the manager stopping. */
export const runSignal = (ctx: BackupControllerContext, timeoutSeconds: number) => AbortSignal.any([AbortSignal.timeout(timeoutSeconds * 1000), ctx.stopping]);

export const objectPath = (plural: string, namespace: string, name: string) => `${API}/namespaces/${encodeURIComponent(namespace)}/${plural}/${encodeURIComponent(name)}`;

export interface RunStatus {
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
  startTime?: string;
  holder?: string;
  heartbeatTime?: string;
}

export const isFinished = (s: RunStatus | undefined) => s?.phase === 'Succeeded' || s?.phase === 'Failed';

/**
 * True when a Running run has no live manager: it claims to be held by this manager but is not
 * running here (we restarted with the same identity), or its heartbeat is older than 3 periods.
 */
export function isInterrupted(s: RunStatus | undefined, identity: string, runningHere: boolean, heartbeatMs: number, nowMs = Date.now()): boolean {
  if (s?.phase !== 'Running' || runningHere) return false;
  if (s.holder === identity) return true;
  const beat = Date.parse(s.heartbeatTime ?? s.startTime ?? '') || 0;
  return nowMs - beat > 3 * heartbeatMs;
}

export function interruptedMessage(s: RunStatus): string {
  return `interrupted: the controller manager running it (${s.holder ?? 'unknown'}) stopped; no heartbeat since ${s.heartbeatTime ?? s.startTime ?? 'the start'}`;
}

/** Runs `fn` while renewing `status.heartbeatTime` of the object at `path` every `intervalMs`. */
export async function withHeartbeat<T>(client: ApiClient, path: string, intervalMs: number, fn: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => {
    void client.patch(`${path}/status`, { status: { heartbeatTime: new Date().toISOString() } }).catch(() => undefined);
  }, intervalMs);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** Writes status fields with the object's resourceVersion as a precondition (a 409 means: reconcile again). */
export async function patchStatus(client: ApiClient, path: string, resourceVersion: string | undefined, status: Record<string, unknown>): Promise<KubeObject> {
  return client.patch(`${path}/status`, { metadata: resourceVersion ? { resourceVersion } : {}, status });
}

/** An error message safe for status and Events: secrets scrubbed, at most 4 KiB. */
export function safeMessage(err: unknown, secrets: string[]): string {
  const text = err instanceof Error ? err.message : String(err);
  return redact(text, secrets).slice(0, 4096);
}

export const iso = (ms: number) => nowIso(ms);

/** Seconds rounded to milliseconds, for status. */
export const roundSeconds = (n: number) => Math.round(n * 1000) / 1000;

/** Writes status `fields` of a policy when they differ from its cached status; true when it wrote. */
export async function writeStatusIfChanged(client: ApiClient, policy: DeepReadonly<BackupPolicy>, fields: Record<string, unknown>): Promise<boolean> {
  const current = (policy.status ?? {}) as Record<string, unknown>;
  if (!Object.entries(fields).some(([k, v]) => JSON.stringify(current[k] ?? null) !== JSON.stringify(v ?? null))) return false;
  await patchStatus(client, objectPath('backuppolicies', policy.metadata!.namespace!, policy.metadata!.name!), policy.metadata!.resourceVersion, fields);
  return true;
}

/** Time a Backup counts as made at: its schedule slot, else when it completed. */
export function backupTime(b: DeepReadonly<Backup>): number {
  return Date.parse(b.spec?.scheduledTime ?? b.status?.completionTime ?? b.metadata.creationTimestamp ?? '') || 0;
}

export const isVerifiedSuccess = (b: DeepReadonly<Backup>) => b.status?.phase === 'Succeeded' && b.status.verified === true;

/** The policy's verified successful Backups, newest first. */
export function successfulBackups(ctx: BackupControllerContext, namespace: string, policy: string): DeepReadonly<Backup>[] {
  return ctx.backups
    .list((b) => b.metadata.namespace === namespace && b.spec.policy === policy && isVerifiedSuccess(b))
    .sort((a, b) => backupTime(b) - backupTime(a) || b.metadata.name.localeCompare(a.metadata.name));
}
