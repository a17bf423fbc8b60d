// When a served certificate counts as expiring soon, and when to look at it again: at the
// recheck interval, but no later than the moment it enters the warning window. Pure.

export interface ExpiryView {
  /** True when the certificate expires within the warning window (or has expired). */
  expiringSoon: boolean;
  /** Whole days left (negative once expired). */
  daysLeft: number;
  /** Delay until the next probe. */
  recheckInMs: number;
}

export function expiryView(notAfter: string, now: number, warningDays: number, recheckMs: number): ExpiryView {
  const left = Date.parse(notAfter) - now;
  const warnMs = warningDays * 86_400_000;
  const untilWarning = left - warnMs;
  return {
    expiringSoon: left < warnMs,
    daysLeft: Math.floor(left / 86_400_000),
    recheckInMs: Math.max(1_000, untilWarning > 0 ? Math.min(recheckMs, untilWarning) : recheckMs),
  };
}
