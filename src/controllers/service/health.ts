// HTTP health probes of replicas, as a kubelet's readiness probe: GET the health path on the
// published port, count consecutive successes and failures per container. The counts are a cache:
// after a restart they start again from zero, which only delays a verdict.

import { request } from 'undici';

export interface HealthSettings {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  successThreshold: number;
  failureThreshold: number;
  startPeriodMs: number;
}

export function healthSettings(check: { path?: string; intervalSeconds?: number; timeoutSeconds?: number; successThreshold?: number; failureThreshold?: number; startPeriodSeconds?: number } | undefined): HealthSettings | undefined {
  if (!check) return undefined;
  return {
    path: check.path ?? '/health',
    intervalMs: (check.intervalSeconds ?? 2) * 1000,
    timeoutMs: (check.timeoutSeconds ?? 2) * 1000,
    successThreshold: check.successThreshold ?? 1,
    failureThreshold: check.failureThreshold ?? 3,
    startPeriodMs: (check.startPeriodSeconds ?? 0) * 1000,
  };
}

export interface ProbeResult {
  ok: boolean;
  detail: string;
}

/** One HTTP probe; any 2xx/3xx answer is healthy. */
export async function probe(host: string, port: number, path: string, timeoutMs: number): Promise<ProbeResult> {
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
  try {
    const res = await request(url, { method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) });
    await res.body.dump();
    const ok = res.statusCode >= 200 && res.statusCode < 400;
    return { ok, detail: `GET ${path} answered ${res.statusCode}` };
  } catch (err) {
    return { ok: false, detail: `GET ${path} failed: ${(err as Error).message}` };
  }
}

export interface HealthCount {
  successes: number;
  failures: number;
  lastDetail: string;
  /** The container has passed at least once. */
  passed?: boolean;
  /** When the last failure was counted (start-up probes in between are not counted). */
  failureCountedAt?: number;
}

/**
 * How often a replica that has never passed its check is probed (its interval when shorter): an
 * app listening 50 ms after its start is ready then, not an interval later. Its failures are still
 * counted once per interval, so failureThreshold keeps its meaning in time.
 */
export const STARTUP_PROBE_MS = 250;

/** The next probe of a replica that is not ready: soon while it has never passed, else at its interval. */
export function nextProbeMs(count: HealthCount | undefined, intervalMs: number): number {
  return count?.passed ? intervalMs : Math.min(STARTUP_PROBE_MS, intervalMs);
}

export class HealthCounts {
  private readonly counts = new Map<string, HealthCount>();

  /** Records a probe result; a failure of a never-passed replica within `intervalMs` of the last counted one only updates the detail. */
  record(containerId: string, result: ProbeResult, intervalMs = 0, now = Date.now()): HealthCount {
    const previous = this.counts.get(containerId) ?? { successes: 0, failures: 0, lastDetail: '' };
    let next: HealthCount;
    if (result.ok) next = { successes: previous.successes + 1, failures: 0, lastDetail: result.detail, passed: true };
    else if (!previous.passed && previous.failureCountedAt !== undefined && now - previous.failureCountedAt < intervalMs) next = { ...previous, lastDetail: result.detail };
    else next = { successes: 0, failures: previous.failures + 1, lastDetail: result.detail, ...(previous.passed ? { passed: true } : {}), failureCountedAt: now };
    this.counts.set(containerId, next);
    return next;
  }

  get(containerId: string): HealthCount | undefined {
    return this.counts.get(containerId);
  }

  /** Drops the counts of a container that was removed. */
  forget(containerId: string): void {
    this.counts.delete(containerId);
  }
}
