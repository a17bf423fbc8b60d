// Webhook notifications: which Slipway Events become which webhook event types, the JSON body and
// its HMAC-SHA256 signature, the retry backoff, and one HTTP delivery attempt with a timeout.

import { createHmac } from 'node:crypto';
import { Agent, request } from 'undici';
import type { Alert, Event as SlipwayEvent } from '../../api/generated/crd-types.js';
import type { DeepReadonly } from '../runtime/informer.js';

export type WebhookEventType =
  | 'release.started'
  | 'release.migration_succeeded'
  | 'release.failed'
  | 'release.rolled_back'
  | 'release.completed'
  | 'domain.dns_verified'
  | 'domain.cert_active'
  | 'domain.failed'
  | 'backup.failed'
  | 'backup.stale'
  | 'backup.drill_failed'
  | 'alert.firing'
  | 'alert.resolved';

/**
 * Event reason (and the kinds of object it may be about) → webhook event type. Reasons recorded by
 * the service controller: RolloutStarted (Release), MigrationSucceeded (Release), RolloutFailed
 * (Service), TrafficShifted (Service), ReleaseCreated (Service; a rollback when its message says
 * "rollback to revision N", the change cause `slipctl rollout undo` sets; only seen when the undo
 * makes a new Release: an undo to an unchanged template rolls the old Release out again and
 * records RolloutStarted, so the service controller should record `RolledBack` for that).
 * AlertFiring/AlertResolved come from the alerts controller. Domain and backup reasons are the
 * names their controllers are to use.
 */
export const EVENT_MAPPING: ReadonlyArray<{ reason: string; kinds: readonly string[]; type: WebhookEventType; messageMatches?: RegExp }> = [
  { reason: 'RolloutStarted', kinds: ['Release'], type: 'release.started' },
  { reason: 'MigrationSucceeded', kinds: ['Release'], type: 'release.migration_succeeded' },
  { reason: 'RolloutFailed', kinds: ['Service'], type: 'release.failed' },
  { reason: 'TrafficShifted', kinds: ['Service'], type: 'release.completed' },
  { reason: 'RolledBack', kinds: ['Service', 'Release'], type: 'release.rolled_back' },
  { reason: 'ReleaseCreated', kinds: ['Service'], type: 'release.rolled_back', messageMatches: /\brollback to revision \d+/ },
  { reason: 'DNSVerified', kinds: ['Domain'], type: 'domain.dns_verified' },
  // The domain controller records CertificateIssued, CertificateFailed and DomainFailed (hostname conflicts).
  { reason: 'CertificateIssued', kinds: ['Domain'], type: 'domain.cert_active' },
  { reason: 'CertificateReady', kinds: ['Domain'], type: 'domain.cert_active' },
  { reason: 'CertificateFailed', kinds: ['Domain'], type: 'domain.failed' },
  { reason: 'DomainFailed', kinds: ['Domain'], type: 'domain.failed' },
  { reason: 'BackupFailed', kinds: ['Backup', 'BackupPolicy'], type: 'backup.failed' },
  { reason: 'BackupStale', kinds: ['BackupPolicy'], type: 'backup.stale' },
  { reason: 'DrillFailed', kinds: ['BackupPolicy'], type: 'backup.drill_failed' },
  { reason: 'AlertFiring', kinds: ['Alert'], type: 'alert.firing' },
  { reason: 'AlertResolved', kinds: ['Alert'], type: 'alert.resolved' },
];

export type KubeEvent = DeepReadonly<SlipwayEvent>;

/** The webhook event type of a Slipway Event, if it has one. */
export function webhookEventType(e: KubeEvent): WebhookEventType | undefined {
  for (const m of EVENT_MAPPING) {
    if (m.reason !== e.reason || !m.kinds.includes(e.involvedObject.kind ?? '')) continue;
    if (m.messageMatches && !m.messageMatches.test(e.message ?? '')) continue;
    return m.type;
  }
  return undefined;
}

/** The idempotency key of one occurrence of an Event: its uid and its count. */
export const deliveryId = (e: KubeEvent) => `${e.metadata.uid}:${e.count ?? 1}`;

/** The JSON body, serialized once so every retry sends (and signs) the same bytes. */
export function payload(e: KubeEvent, type: WebhookEventType, alert?: DeepReadonly<Alert>): string {
  const body: Record<string, unknown> = {
    id: deliveryId(e),
    type,
    time: e.lastTimestamp ?? e.firstTimestamp ?? e.metadata.creationTimestamp,
    object: { kind: e.involvedObject.kind, namespace: e.involvedObject.namespace || null, name: e.involvedObject.name },
    reason: e.reason,
    message: e.message ?? '',
  };
  if (alert) {
    body.alert = {
      rule: alert.spec?.rule,
      severity: alert.spec?.severity,
      subject: alert.spec?.subject,
      state: type === 'alert.firing' ? 'Firing' : 'Resolved',
      value: alert.status?.value,
      labels: alert.status?.labels ?? {},
    };
  }
  return JSON.stringify(body);
}

export const sign = (body: string, secret: Buffer) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

/** Delay before attempt `attempts + 1`: 1 s, 2 s, 4 s, ... capped. */
export function retryDelayMs(attempts: number, baseMs = 1000, maxMs = 300_000): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempts - 1));
}

export interface AttemptResult {
  ok: boolean;
  /** HTTP status; 0 when no response arrived. */
  code: number;
  error?: string;
}

/** Connections to webhook endpoints, apart from the API client's. */
export function webhookAgent(): Agent {
  return new Agent({ keepAliveTimeout: 10_000, connections: 8, connect: { timeout: 10_000 } });
}

/** One POST; never throws. 2xx is success; redirects are not followed. */
export async function attempt(
  agent: Agent,
  url: string,
  body: string,
  headers: { event: string; delivery: string; signature: string; attempt: number },
  timeoutMs: number,
  /** Aborts the attempt at once (controller manager shutting down). */
  stop?: AbortSignal,
): Promise<AttemptResult> {
  try {
    const res = await request(url, {
      method: 'POST',
      dispatcher: agent,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'Slipway-Webhook/1',
        'x-slipway-event': headers.event,
        'x-slipway-delivery': headers.delivery,
        'x-slipway-signature': headers.signature,
        'x-slipway-attempt': String(headers.attempt),
      },
      body,
      signal: stop ? AbortSignal.any([AbortSignal.timeout(timeoutMs), stop]) : AbortSignal.timeout(timeoutMs),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    if (res.statusCode >= 200 && res.statusCode < 300) {
      await res.body.dump().catch(() => {});
      return { ok: true, code: res.statusCode };
    }
    const text = await head(res.body, 2048);
    return { ok: false, code: res.statusCode, error: `POST ${url} answered ${res.statusCode}${text ? `: ${text.slice(0, 200).trim()}` : ''}` };
  } catch (err) {
    const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
    const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError' || /^UND_ERR_(HEADERS|BODY|CONNECT)_TIMEOUT$/.test(e.code ?? '');
    const detail = timedOut ? `no answer within ${timeoutMs / 1000}s` : `${e.code ?? e.cause?.code ?? e.name}: ${e.cause?.message ?? e.message}`;
    return { ok: false, code: 0, error: `POST ${url} failed: ${detail}` };
  }
}

/** The first `limit` bytes of a response body as text; the rest is discarded. */
async function head(body: AsyncIterable<Buffer> & { destroy(): unknown }, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= limit) break;
    }
  } catch {
    /* a broken body still leaves the status code */
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}
