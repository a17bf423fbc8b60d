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
}

export class HealthCounts {
  private readonly counts = new Map<string, HealthCount>();

  record(containerId: string, result: ProbeResult): HealthCount {
    const previous = this.counts.get(containerId) ?? { successes: 0, failures: 0, lastDetail: '' };
    const next = result.ok
      ? { successes: previous.successes + 1, failures: 0, lastDetail: result.detail }
      : { successes: 0, failures: previous.failures + 1, lastDetail: result.detail };
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
