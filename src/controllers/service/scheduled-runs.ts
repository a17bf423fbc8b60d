// Scheduled Services (spec.schedule): on each cron slot one one-shot container runs from the active
// release. Progress lives in Docker (one container per slot, named after it, so a slot never runs
// twice) and in Service.status.schedule; after downtime a missed slot runs once, not once per slot.

import type Docker from 'dockerode';
import type { ServiceStatus } from '../../api/generated/crd-types.js';
import { nextSlot, previousSlot, type Schedule } from '../../api/cron.js';
import { nowIso } from '../runtime/conditions.js';
import { LABEL_SCHEDULED_TIME } from './container-spec.js';
import type { ObservedContainer } from './world.js';

export type Run = NonNullable<NonNullable<ServiceStatus['schedule']>['runs']>[number];

export interface ScheduleDecision {
  /** The slot to start now, if one is due. */
  due?: Date;
  next: Date;
}

/** The slot due now (the latest one after the last scheduled one), and the next one. */
export function decide(schedule: Schedule, lastScheduleTime: string | undefined, createdAt: string, now: Date): ScheduleDecision {
  const since = new Date(lastScheduleTime ?? createdAt);
  const latest = previousSlot(schedule, now);
  return { ...(latest > since ? { due: latest } : {}), next: nextSlot(schedule, now) };
}

/** Deterministic per service and slot, so a retried reconcile finds the run it started. */
export const runContainerName = (namespace: string, service: string, slot: Date) => `${namespace}.${service}-run-${Math.floor(slot.getTime() / 1000)}`;

/** What one run container says about its run. */
export async function observeRun(docker: Docker, c: ObservedContainer): Promise<Run> {
  const info = await docker.getContainer(c.id).inspect();
  const state = info.State;
  const run: Run = {
    containerName: c.name,
    node: c.node,
    release: c.release,
    startTime: state.StartedAt && !state.StartedAt.startsWith('0001') ? state.StartedAt.replace(/\.\d+Z$/, 'Z') : c.labels[LABEL_SCHEDULED_TIME] ?? nowIso(),
    result: state.Running || state.Status === 'created' ? 'Running' : state.ExitCode === 0 ? 'Succeeded' : 'Failed',
  };
  if (!state.Running && state.Status !== 'created') {
    run.exitCode = state.ExitCode;
    if (state.FinishedAt && !state.FinishedAt.startsWith('0001')) run.completionTime = state.FinishedAt.replace(/\.\d+Z$/, 'Z');
  }
  return run;
}

/** Runs from containers win over earlier records of the same run; newest last, `limit` kept. */
export function mergeRuns(previous: readonly Run[], observed: readonly Run[], limit: number): Run[] {
  const byName = new Map<string, Run>();
  for (const run of previous) byName.set(run.containerName ?? `${run.startTime}`, run);
  for (const run of observed) byName.set(run.containerName!, run);
  return [...byName.values()].sort((a, b) => (a.startTime ?? '').localeCompare(b.startTime ?? '')).slice(-Math.max(limit, 1));
}
