// Who may have a certificate, and when: the API server's on-demand TLS answer (it agrees with the
// edge's routing rule: DNS-verified and not being deleted) and the issuance budget that protects
// the CA's rate limits (exponential backoff after a failure, at most 5 failures per hostname per
// hour). Pure functions over a Domain's status, shared by the controller and the ask endpoint.

import type { Domain } from '../api/generated/crd-types.js';

/** Failed issuances allowed per hostname within FAILURE_WINDOW_MS. */
export const MAX_FAILURES_PER_WINDOW = 5;
export const FAILURE_WINDOW_MS = 3_600_000;

type DomainLike = { metadata: { deletionTimestamp?: string | null }; status?: Pick<NonNullable<Domain['status']>, 'conditions' | 'issuance'> | null };
export type Issuance = NonNullable<NonNullable<Domain['status']>['issuance']>;

const isTrue = (d: DomainLike, type: string) => (d.status?.conditions ?? []).some((c) => c.type === type && c.status === 'True');

/** Whether issuance must wait (backoff after a failure, or the hourly budget spent), and until when. */
export function issuanceBlockedUntil(issuance: Issuance | undefined | null, now: number): number | undefined {
  const at = Date.parse(issuance?.nextAttemptTime ?? '');
  return Number.isFinite(at) && at > now ? at : undefined;
}

/** The on-demand TLS answer for one Domain: may Caddy obtain or use a certificate for it now? */
export function askDecision(d: DomainLike | undefined, now: number): { allowed: boolean; reason: string } {
  if (!d) return { allowed: false, reason: 'no Domain has this hostname' };
  if (d.metadata.deletionTimestamp) return { allowed: false, reason: 'the Domain is being deleted' };
  if (!isTrue(d, 'DNSVerified')) return { allowed: false, reason: 'DNS ownership is not verified' };
  const until = issuanceBlockedUntil(d.status?.issuance, now);
  if (until !== undefined) return { allowed: false, reason: `issuance is backing off until ${new Date(until).toISOString()}` };
  return { allowed: true, reason: 'verified' };
}

export interface BudgetOptions {
  /** Delay after the first failure within the window; doubles per further failure. */
  baseBackoffMs: number;
  maxBackoffMs: number;
}

/** The failures still inside the window ending now, oldest first. */
export function recentFailures(issuance: Issuance | undefined | null, now: number): string[] {
  return (issuance?.failureTimes ?? []).filter((t) => now - Date.parse(t) < FAILURE_WINDOW_MS).sort();
}

/**
 * The issuance record after an attempt failed at `now`: the failure is counted, the attempt
 * closed, and the next attempt pushed out: base·2^(n-1) after the n-th failure in the window, and
 * never before the oldest of 5 failures leaves the window.
 */
export function recordFailure(issuance: Issuance | undefined | null, now: number, o: BudgetOptions): Issuance {
  const failureTimes = [...recentFailures(issuance, now), new Date(now).toISOString()].slice(-MAX_FAILURES_PER_WINDOW);
  let next = now + Math.min(o.maxBackoffMs, o.baseBackoffMs * 2 ** (failureTimes.length - 1));
  if (failureTimes.length >= MAX_FAILURES_PER_WINDOW) next = Math.max(next, Date.parse(failureTimes[0]!) + FAILURE_WINDOW_MS);
  const { startedTime: _closed, ...rest } = issuance ?? {};
  return { ...rest, failureTimes, nextAttemptTime: new Date(next).toISOString() };
}
