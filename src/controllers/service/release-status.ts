// Release rollout bookkeeping: the ordered steps of the blueprint's state machine, and pure helpers
// that update one step or the phase on a copy of the status.

import type { Release, ReleaseStatus } from '../../api/generated/crd-types.js';
import type { DeepReadonly } from '../runtime/informer.js';
import { nowIso } from '../runtime/conditions.js';

export type Step = NonNullable<ReleaseStatus['steps']>[number];
export type StepName = 'Build' | 'Artifact' | 'StartCandidate' | 'Migrate' | 'HealthCheck' | 'ShiftTraffic';
export type Phase = NonNullable<ReleaseStatus['phase']>;

export const STEP_ORDER: StepName[] = ['Build', 'Artifact', 'StartCandidate', 'Migrate', 'HealthCheck', 'ShiftTraffic'];
export const TERMINAL_PHASES: ReadonlySet<Phase> = new Set(['Completed', 'Failed', 'RolledBack']);

export function stepOf(release: DeepReadonly<Release> | Release, name: StepName): Step | undefined {
  return release.status?.steps?.find((s) => s.name === name) as Step | undefined;
}

export function isDone(step: Step | undefined): boolean {
  return step?.result === 'Succeeded' || step?.result === 'Skipped';
}

/** Returns steps with `name` updated; a step that starts gets its startTime, a finished one its endTime. */
export function withStep(steps: readonly Step[] | undefined, name: StepName, change: Partial<Step>): Step[] {
  const list = (steps ?? []).map((s) => ({ ...s }));
  let step = list.find((s) => s.name === name);
  if (!step) {
    step = { name, startTime: nowIso(), result: 'Running', attempts: 1 };
    list.push(step);
  }
  Object.assign(step, change);
  if (step.result && step.result !== 'Running' && !step.endTime) step.endTime = nowIso();
  if (step.result === 'Running') delete step.endTime;
  if (step.message === undefined) delete step.message;
  list.sort((a, b) => STEP_ORDER.indexOf(a.name as StepName) - STEP_ORDER.indexOf(b.name as StepName));
  return list;
}

/** Steps kept when a release that already ran is rolled out again: its build and artifact, and its migration, which runs once per release. */
export function stepsForReactivation(steps: readonly Step[] | undefined): Step[] {
  return (steps ?? []).filter((s) => (s.name === 'Build' || s.name === 'Artifact' || s.name === 'Migrate') && isDone(s)).map((s) => ({ ...s }));
}
