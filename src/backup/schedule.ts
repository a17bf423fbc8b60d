// When backups and drills are due, and when a policy counts as stale. Pure functions of a cron
// schedule, the last slot acted on (persisted in the policy's status, so schedules survive
// restarts) and the time now: after downtime only the latest missed slot is due, once.

import { nextSlot, previousSlot, type Schedule } from '../api/cron.js';

export const STALE_FALLBACK_MS = 48 * 3600_000;

export interface SlotDecision {
  /** The slot to act on now, if one is due. */
  due?: Date;
  /** The next slot after now. */
  next: Date;
}

/** The latest slot after `last` (or after `createdAt` when nothing ran yet) that is not in the future. */
export function dueSlot(schedule: Schedule, last: string | undefined, createdAt: string | undefined, now: Date): SlotDecision {
  const since = new Date(last ?? createdAt ?? now.toISOString());
  const latest = previousSlot(schedule, now);
  return { ...(latest > since ? { due: latest } : {}), next: nextSlot(schedule, now) };
}

/** How long without a successful backup makes a policy stale: twice the schedule's interval, else 48 h. */
export function staleAfterMs(schedule: Schedule, now: Date): number {
  try {
    const a = nextSlot(schedule, now);
    const interval = nextSlot(schedule, a).getTime() - a.getTime();
    return interval > 0 ? 2 * interval : STALE_FALLBACK_MS;
  } catch {
    return STALE_FALLBACK_MS;
  }
}
