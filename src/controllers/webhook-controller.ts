// The webhook controller: one key per Webhook. Each reconcile turns the Slipway Events newer than
// the Webhook's persisted cursor into deliveries (kept in its status with their retry state, so a
// restart redelivers rather than loses), attempts the ones that are due (signed, with a timeout),
// retries failures with exponential backoff through requeueAfter (never by sleeping), and records
// counts, the last delivery and the last error in the status. Each Webhook is its own key, so a
// slow or dead endpoint only ever delays its own deliveries.

import { Counter } from 'prom-client';
import type { Agent } from 'undici';
import type { Alert, Event as SlipwayEvent, Webhook } from '../api/generated/crd-types.js';
import { ApiRequestError, type ApiClient } from '../client/api-client.js';
import type { Controller, ReconcileContext } from './runtime/controller.js';
import { setCondition, type Condition } from './runtime/conditions.js';
import { splitKey, type DeepReadonly, type Informer } from './runtime/informer.js';
import type { ControllerMetrics } from './runtime/metrics.js';
import type { ReconcileOutcome } from './runtime/work-queue.js';
import { attempt, deliveryId, payload, retryDelayMs, sign, webhookEventType, type AttemptResult, type KubeEvent } from './webhooks/delivery.js';

const API = '/apis/slipway.dev/v1alpha1';
/** Webhooks in this namespace receive the events of every namespace and of cluster-scoped objects. */
export const ALL_EVENTS_NAMESPACE = 'slipway-system';
/** Most deliveries kept pending per Webhook; beyond this the oldest is given up. */
export const MAX_PENDING = 100;
/** Attempts made at once for one Webhook. */
const PARALLEL_ATTEMPTS = 4;

export interface WebhookControllerOptions {
  client: ApiClient;
  webhooks: Informer<Webhook>;
  events: Informer<SlipwayEvent>;
  alerts: Informer<Alert>;
  metrics: ControllerMetrics;
  agent: Agent;
  /** First retry delay; doubles per attempt. Defaults to 1 s. */
  retryBaseMs?: number;
  /** Longest retry delay. Defaults to 5 min. */
  retryMaxMs?: number;
}

type WebhookStatus = NonNullable<Webhook['status']>;
type Pending = NonNullable<WebhookStatus['pending']>[number];
type LastDelivery = NonNullable<WebhookStatus['lastDelivery']>;

const iso = (ms = Date.now()) => new Date(ms).toISOString();

export class WebhookController implements Controller {
  readonly name = 'webhooks';
  readonly concurrency = 16;
  private readonly deliveries: Counter<'result'>;
  private readonly stopping = new AbortController();

  constructor(private readonly o: WebhookControllerOptions) {
    this.deliveries = new Counter({ name: 'slipway_webhook_deliveries_total', help: 'Webhook delivery attempts, by result (delivered, retry, failed).', labelNames: ['result'] as const, registers: [o.metrics.registry] });
  }

  /** Aborts attempts in flight; their outcome is not recorded, so they are made again after a restart. */
  stop(): void {
    this.stopping.abort();
  }

  /** Keys of the Webhooks that may want this Event (the informer handler calls this). */
  webhooksFor(e: DeepReadonly<SlipwayEvent>): string[] {
    const type = webhookEventType(e);
    if (!type) return [];
    return this.o.webhooks.list((w) => (w.spec.events as readonly string[]).includes(type)).map((w) => `${w.metadata.namespace}/${w.metadata.name}`);
  }

  async reconcile(ctx: ReconcileContext, key: string): Promise<ReconcileOutcome | void> {
    const { namespace, name } = splitKey(key);
    const path = `${API}/namespaces/${encodeURIComponent(namespace!)}/webhooks/${encodeURIComponent(name)}`;
    let hook: Webhook;
    try {
      // Read from the API, not the cache: the cursor and retry state must be the latest written.
      hook = await this.o.client.get<Webhook>(path);
    } catch (err) {
      if (err instanceof ApiRequestError && err.code === 404) return;
      throw err;
    }
    if (hook.metadata.deletionTimestamp || !hook.spec) return;
    const spec = hook.spec;
    const status: WebhookStatus = hook.status ?? {};
    const now = Date.now();
    const pending: Pending[] = (status.pending ?? []).map((p) => ({ ...p }));
    let { delivered = 0, failed = 0, lastDelivery, lastError, lastErrorTime } = status;
    let conditions = status.conditions as Condition[] | undefined;

    // 1. New Events (and repeats, which raise an Event's count and resourceVersion) become deliveries.
    // Only what happened since the Webhook exists: before the first status write, the Webhook's own
    // resourceVersion is the revision that created it (unless its metadata was edited in between),
    // and every Event written after it has a higher one. Timestamps (second precision) cannot tell.
    const cursor = status.cursor !== undefined ? rv(status.cursor) : rv(hook.metadata.resourceVersion);
    let newest = cursor;
    const wanted = new Set<string>(spec.events);
    const known = new Set(pending.map((p) => p.id));
    const fresh = this.o.events.list((e) => rv(e.metadata.resourceVersion) > cursor).sort((a, b) => cmp(rv(a.metadata.resourceVersion), rv(b.metadata.resourceVersion)));
    for (const e of fresh) {
      const version = rv(e.metadata.resourceVersion);
      if (version > newest) newest = version;
      const type = webhookEventType(e);
      if (!type || !wanted.has(type)) continue;
      const alert = e.involvedObject.kind === 'Alert' ? this.o.alerts.get(e.involvedObject.name) : undefined;
      if (!inScope(namespace!, e, alert)) continue;
      const id = deliveryId(e);
      if (known.has(id)) continue;
      known.add(id);
      pending.push({ id, event: type, body: payload(e, type, alert), attempts: 0, nextAttemptTime: iso(now) });
    }
    while (pending.length > MAX_PENDING) {
      const dropped = pending.shift()!;
      failed++;
      lastError = `gave up delivery ${dropped.id} (${dropped.event}): more than ${MAX_PENDING} deliveries were pending`;
      lastErrorTime = iso();
      lastDelivery = { id: dropped.id, event: dropped.event, time: iso(), code: 0, attempts: dropped.attempts ?? 0, result: 'Failed' };
      this.deliveries.inc({ result: 'failed' });
    }

    // 2. Attempt the due deliveries, a few at a time, each with its own timeout.
    const due = pending.filter((p) => (Date.parse(p.nextAttemptTime ?? '') || 0) <= now);
    if (due.length) {
      const secret = await this.secret(namespace!, spec.secretRef);
      const timeoutMs = (spec.timeoutSeconds ?? 10) * 1000;
      const results = await mapLimit(due, PARALLEL_ATTEMPTS, (p): Promise<AttemptResult> => {
        if (typeof secret === 'string') return Promise.resolve({ ok: false, code: 0, error: secret });
        return attempt(this.o.agent, spec.url, p.body, { event: p.event, delivery: p.id, signature: sign(p.body, secret), attempt: (p.attempts ?? 0) + 1 }, timeoutMs, this.stopping.signal);
      });
      if (this.stopping.signal.aborted) throw new Error('the controller manager is stopping; deliveries in flight are left pending');
      const maxAttempts = spec.maxAttempts ?? 8;
      let firstError: string | undefined;
      due.forEach((p, i) => {
        const result = results[i]!;
        const finished = Date.now();
        p.attempts = (p.attempts ?? 0) + 1;
        const summary = (outcome: LastDelivery['result']): LastDelivery => ({ id: p.id, event: p.event, time: iso(finished), code: result.code, attempts: p.attempts!, result: outcome });
        if (result.ok) {
          pending.splice(pending.indexOf(p), 1);
          delivered++;
          lastDelivery = summary('Delivered');
          this.deliveries.inc({ result: 'delivered' });
          return;
        }
        firstError ??= result.error;
        lastError = `${result.error} (delivery ${p.id}, attempt ${p.attempts} of ${maxAttempts})`.slice(0, 1024);
        lastErrorTime = iso(finished);
        p.lastError = (result.error ?? '').slice(0, 1024);
        if (p.attempts >= maxAttempts) {
          pending.splice(pending.indexOf(p), 1);
          failed++;
          lastDelivery = summary('Failed');
          this.deliveries.inc({ result: 'failed' });
          ctx.log.warn({ delivery: p.id, event: p.event, err: result.error }, 'webhook delivery given up');
        } else {
          p.nextAttemptTime = iso(finished + retryDelayMs(p.attempts, this.o.retryBaseMs, this.o.retryMaxMs));
          this.deliveries.inc({ result: 'retry' });
        }
      });
      conditions = setCondition(conditions, firstError
        ? { type: 'Healthy', status: 'False', reason: typeof secret === 'string' ? 'SecretNotFound' : 'DeliveryFailed', message: firstError.slice(0, 1024) }
        : { type: 'Healthy', status: 'True', reason: 'Delivered', message: `the last ${due.length === 1 ? 'delivery' : `${due.length} deliveries`} succeeded` });
    }

    // 3. Persist the cursor and the retry state together (one write).
    const next: WebhookStatus = {
      ...(conditions ? { conditions } : {}),
      cursor: String(newest),
      pending,
      pendingDeliveries: pending.length,
      delivered,
      failed,
      ...(lastDelivery ? { lastDelivery } : {}),
      ...(lastError ? { lastError, ...(lastErrorTime ? { lastErrorTime } : {}) } : {}),
      observedGeneration: hook.metadata.generation ?? 0,
    };
    if (JSON.stringify(pick(status, next)) !== JSON.stringify(next)) {
      await this.o.client.patch(`${path}/status`, { status: next });
    }
    if (!pending.length) return;
    const soonest = Math.min(...pending.map((p) => Date.parse(p.nextAttemptTime ?? '') || 0));
    return { requeueAfterMs: Math.max(0, soonest - Date.now()) };
  }

  /** The HMAC key, or why there is none (a missing Secret is a delivery failure, not a crash). */
  private async secret(namespace: string, ref: { name: string; key?: string }): Promise<Buffer | string> {
    const key = ref.key ?? 'secret';
    try {
      const s = await this.o.client.get(`${API}/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(ref.name)}`);
      const value = (s.data as Record<string, string> | undefined)?.[key];
      if (value === undefined) return `secret ${namespace}/${ref.name} has no key "${key}"`;
      return Buffer.from(value, 'base64');
    } catch (err) {
      if (err instanceof ApiRequestError && err.code === 404) return `secret ${namespace}/${ref.name} not found`;
      throw err;
    }
  }
}

/** Whether a Webhook in `namespace` receives this Event. */
export function inScope(namespace: string, e: KubeEvent, alert: DeepReadonly<Alert> | undefined): boolean {
  if (namespace === ALL_EVENTS_NAMESPACE) return true;
  if (e.involvedObject.namespace === namespace) return true;
  const subject = alert?.spec?.subject;
  if (!subject) return false;
  return (subject.kind === 'Namespace' ? subject.name : subject.namespace) === namespace;
}

function rv(value: string | undefined): bigint {
  try {
    return BigInt(value || '0');
  } catch {
    return 0n;
  }
}

const cmp = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);

/** The fields of `status` that `next` sets, in `next`'s key order, to compare the two. */
function pick(status: WebhookStatus, next: WebhookStatus): Record<string, unknown> {
  return Object.fromEntries(Object.keys(next).map((k) => [k, (status as Record<string, unknown>)[k]]));
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
