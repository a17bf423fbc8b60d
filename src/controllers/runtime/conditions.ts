// Kubernetes-style conditions: set one by type, keeping lastTransitionTime when the status did not
// change, so writing the same observation twice is a no-op.

import type { Condition } from '../../api/types.js';

export type { Condition };

export const nowIso = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Returns a new list with `next` set (replacing the entry of the same type). */
export function setCondition(conditions: readonly Condition[] | undefined, next: Omit<Condition, 'lastTransitionTime'>): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === next.type);
  const previous = index >= 0 ? list[index] : undefined;
  const lastTransitionTime = previous && previous.status === next.status && previous.lastTransitionTime ? previous.lastTransitionTime : nowIso();
  const condition: Condition = { ...next, lastTransitionTime };
  for (const k of ['reason', 'message', 'observedGeneration'] as const) if (condition[k] === undefined) delete condition[k];
  if (index >= 0) list[index] = condition;
  else list.push(condition);
  return list;
}

export function getCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
