// The alerts controller: one key per AlertRule. Each reconcile evaluates the rule over the cached
// objects and moves its Alerts (one per subject) Pending → Firing → Resolved, with `since` kept in
// the Alert so a restart neither resets the `for` timer nor fires twice; records AlertFiring /
// AlertResolved Events, deletes Resolved Alerts after a day, keeps the built-in rules present, and
// exports `slipway_alerts_firing{rule}`. Reconciles again on an interval (rates and expiry move
// with time) and when the next Pending Alert is due.

import { Gauge } from 'prom-client';
import type { Alert, AlertRule } from '../api/generated/crd-types.js';
import { ApiRequestError, type ApiClient } from '../client/api-client.js';
import type { EventRecorder } from '../client/event-recorder.js';
import { alertName, BUILTIN_RULE_NAMES, builtinRule, evaluate, resolveRule, type AlertSources, type Finding, type ResolvedRule } from './alerts/rules.js';
import type { Controller, ReconcileContext } from './runtime/controller.js';
import type { DeepReadonly, Informer } from './runtime/informer.js';
import type { ControllerMetrics } from './runtime/metrics.js';
import type { ReconcileOutcome } from './runtime/work-queue.js';

const API = '/apis/slipway.dev/v1alpha1';
const DAY_MS = 86_400_000;
/** Alert times keep milliseconds, so a short `for` is measured from the real start. */
const nowIso = (ms: number) => new Date(ms).toISOString();

export interface AlertsControllerOptions {
  client: ApiClient;
  rules: Informer<AlertRule>;
  alerts: Informer<Alert>;
  sources: AlertSources;
  events: EventRecorder;
  metrics: ControllerMetrics;
  /** How often every rule is evaluated even when nothing it reads changed. */
  intervalMs: number;
  /** How long Resolved Alerts are kept. Defaults to 24 h. */
  resolvedRetentionMs?: number;
}

type RO<T> = DeepReadonly<T>;
type AlertStatus = NonNullable<Alert['status']>;

export class AlertsController implements Controller {
  readonly name = 'alerts';
  readonly concurrency = 4;
  private readonly firing: Gauge<'rule'>;
  /**
   * The Alerts this controller wrote last, so a reconcile that runs before the informer has seen
   * its own previous write does not act on the older version (read-your-writes). Entries older
   * than the informer's copy are ignored; `null` marks an Alert this controller deleted.
   */
  private readonly written = new Map<string, RO<Alert> | null>();

  constructor(private readonly o: AlertsControllerOptions) {
    this.firing = new Gauge({ name: 'slipway_alerts_firing', help: 'Alerts in state Firing, by rule.', labelNames: ['rule'] as const, registers: [o.metrics.registry] });
  }

  async reconcile(ctx: ReconcileContext, name: string): Promise<ReconcileOutcome | void> {
    const rule = this.o.rules.get(name);
    const mine = this.alertsOf(name);
    if (!rule || rule.metadata.deletionTimestamp) {
      const builtin = BUILTIN_RULE_NAMES.get(name);
      if (!rule && builtin) {
        await this.o.client.create(`${API}/alertrules`, builtinRule(builtin)).catch((err) => {
          if (!(err instanceof ApiRequestError && err.code === 409)) throw err;
        });
        ctx.log.info({ rule: name }, 'created built-in alert rule');
        return;
      }
      // Owner references remove them too; this covers Alerts whose rule was recreated meanwhile.
      for (const a of mine) await this.deleteAlert(a);
      this.firing.remove({ rule: name });
      return;
    }

    let resolved: ResolvedRule;
    try {
      resolved = resolveRule(rule);
    } catch (err) {
      await this.writeRuleStatus(ctx, rule, { firing: 0, pending: 0, message: (err as Error).message });
      return;
    }
    const now = Date.now();
    const evaluation = rule.spec?.disabled ? { findings: [] as Finding[] } : evaluate(resolved, this.o.sources, now);
    let nextMs = this.o.intervalMs;
    const due = (ms: number) => (nextMs = Math.max(50, Math.min(nextMs, ms)));

    const existing = new Map(mine.map((a) => [a.metadata.name!, a]));
    const seen = new Set<string>();
    for (const finding of evaluation.findings) {
      const aName = alertName(name, finding.subject);
      seen.add(aName);
      const current = existing.get(aName);
      const state = current?.status?.state;
      const labels = labelsFor(resolved, finding);
      const base = { value: finding.value, message: finding.message.slice(0, 4000), labels };
      if (!current || !state || state === 'Resolved') {
        // A new episode: Pending (or Firing at once with a zero `for`).
        const fire = resolved.forMs <= 0;
        const at = nowIso(now);
        const written = await this.writeAlert(rule, resolved, aName, finding, current, { ...base, state: fire ? 'Firing' : 'Pending', since: at, firedAt: fire ? at : null, resolvedAt: null });
        if (fire) this.recordFiring(written, resolved, finding);
        else due(resolved.forMs);
        ctx.log.info({ alert: aName, state: fire ? 'Firing' : 'Pending' }, 'alert raised');
        continue;
      }
      // A merge patch merges maps: labels no longer wanted are removed with null.
      const update = { ...base, labels: { ...Object.fromEntries(Object.keys(current.status?.labels ?? {}).map((k) => [k, null])), ...labels } };
      if (state === 'Pending') {
        const since = Date.parse(current.status?.since ?? '') || now;
        if (now - since >= resolved.forMs) {
          const written = await this.writeAlert(rule, resolved, aName, finding, current, { ...update, state: 'Firing', firedAt: nowIso(now) });
          this.recordFiring(written, resolved, finding);
          ctx.log.info({ alert: aName }, 'alert firing');
        } else {
          if (changed(current.status, base)) await this.writeAlert(rule, resolved, aName, finding, current, update);
          due(since + resolved.forMs - now);
        }
      } else if (changed(current.status, base)) {
        await this.writeAlert(rule, resolved, aName, finding, current, update);
      }
    }

    const retention = this.o.resolvedRetentionMs ?? DAY_MS;
    for (const [aName, alert] of existing) {
      if (seen.has(aName)) continue;
      const state = alert.status?.state;
      if (state === 'Firing') {
        const message = `${rule.spec?.disabled ? `rule ${name} was disabled` : 'resolved'}: ${alert.status?.message ?? ''}`.slice(0, 4000);
        const written = await this.patchStatus(aName, { state: 'Resolved', resolvedAt: nowIso(now), message });
        void this.o.events.record(written as Alert, 'Normal', 'AlertResolved', `${name} resolved for ${subjectText(alert.spec!.subject)} (${resolved.severity}), firing since ${alert.status?.firedAt ?? alert.status?.since}`);
        ctx.log.info({ alert: aName }, 'alert resolved');
        due(retention);
      } else if (state === 'Resolved') {
        const left = (Date.parse(alert.status?.resolvedAt ?? '') || now) + retention - now;
        if (left <= 0) await this.deleteAlert(alert);
        else due(left);
      } else {
        // Pending (or never got a status) and no longer holding: it never fired, so it just goes.
        await this.deleteAlert(alert);
      }
    }

    const after = this.alertsOf(name);
    const firing = after.filter((a) => a.status?.state === 'Firing').length;
    const pending = after.filter((a) => a.status?.state === 'Pending').length;
    this.firing.set({ rule: name }, firing);
    await this.writeRuleStatus(ctx, rule, { firing, pending, message: evaluation.noData ?? '' });
    return { requeueAfterMs: nextMs };
  }

  /** This rule's Alerts, newest version of each (informer or own write). */
  private alertsOf(rule: string): RO<Alert>[] {
    const byName = new Map<string, RO<Alert>>();
    for (const a of this.o.alerts.list((a) => a.spec?.rule === rule)) byName.set(a.metadata.name!, a);
    for (const [n, w] of this.written) {
      const cached = this.o.alerts.get(n);
      if (w === null) {
        if (cached) byName.delete(n);
        else this.written.delete(n);
        continue;
      }
      if (w.spec?.rule !== rule) continue;
      if (!cached || newer(w, cached)) byName.set(n, w);
      else this.written.delete(n);
    }
    return [...byName.values()];
  }

  private recordFiring(alert: RO<Alert>, rule: ResolvedRule, finding: Finding): void {
    void this.o.events.record(alert as Alert, 'Warning', 'AlertFiring', `${rule.name} firing for ${subjectText(finding.subject)} (${rule.severity}): ${finding.message}`.slice(0, 1000));
  }

  /** Creates the Alert if needed, then sets its status (merge patch; null removes a field). */
  private async writeAlert(rule: RO<AlertRule>, resolved: ResolvedRule, aName: string, finding: Finding, current: RO<Alert> | undefined, status: Record<string, unknown>): Promise<RO<Alert>> {
    if (!current) {
      try {
        const created = await this.o.client.create<Alert>(`${API}/alerts`, {
          apiVersion: 'slipway.dev/v1alpha1',
          kind: 'Alert',
          metadata: {
            name: aName,
            ownerReferences: [{ apiVersion: 'slipway.dev/v1alpha1', kind: 'AlertRule', name: rule.metadata.name!, uid: rule.metadata.uid!, controller: true, blockOwnerDeletion: false }],
          },
          spec: { rule: resolved.name, type: resolved.type, severity: resolved.severity, subject: { ...finding.subject } },
        });
        this.written.set(aName, created);
      } catch (err) {
        // Created by an earlier run the informer has not shown yet: patching its status is still right.
        if (!(err instanceof ApiRequestError && err.code === 409)) throw err;
      }
    }
    return this.patchStatus(aName, status);
  }

  private async patchStatus(aName: string, status: Record<string, unknown>): Promise<RO<Alert>> {
    try {
      const written = await this.o.client.patch<Alert>(`${API}/alerts/${encodeURIComponent(aName)}/status`, { status });
      this.written.set(aName, written);
      return written;
    } catch (err) {
      // Deleted by someone else: forget the own copy; the retry creates it again.
      if (err instanceof ApiRequestError && err.code === 404) this.written.delete(aName);
      throw err;
    }
  }

  private async deleteAlert(alert: RO<Alert>): Promise<void> {
    const aName = alert.metadata.name!;
    try {
      await this.o.client.delete(`${API}/alerts/${encodeURIComponent(aName)}`, alert.metadata.uid ? { preconditions: { uid: alert.metadata.uid } } : undefined);
    } catch (err) {
      if (!(err instanceof ApiRequestError && (err.code === 404 || err.code === 409))) throw err;
    }
    this.written.set(aName, null);
  }

  private async writeRuleStatus(ctx: ReconcileContext, rule: RO<AlertRule>, next: { firing: number; pending: number; message: string }): Promise<void> {
    const s = rule.status ?? {};
    const generation = rule.metadata.generation;
    if (s.firing === next.firing && s.pending === next.pending && (s.message ?? '') === next.message && s.observedGeneration === generation) return;
    try {
      await this.o.client.patch(`${API}/alertrules/${encodeURIComponent(rule.metadata.name!)}/status`, {
        status: { firing: next.firing, pending: next.pending, message: next.message || null, observedGeneration: generation },
      });
    } catch (err) {
      // The rule's status is informational: failing to write it must not stop the Alerts.
      if (err instanceof ApiRequestError && err.code === 404) return;
      ctx.log.warn({ err: (err as Error).message }, 'cannot write the alert rule status');
    }
  }
}

function labelsFor(rule: ResolvedRule, finding: Finding): Record<string, string> {
  return {
    ...rule.labels,
    rule: rule.name,
    type: rule.type,
    severity: rule.severity,
    kind: finding.subject.kind,
    name: finding.subject.name,
    ...(finding.subject.namespace ? { namespace: finding.subject.namespace } : {}),
  };
}

function changed(status: RO<AlertStatus> | undefined, next: { value: number; message: string; labels: Record<string, string> }): boolean {
  if (status?.value !== next.value || status?.message !== next.message) return true;
  const have = status?.labels ?? {};
  return Object.keys(next.labels).length !== Object.keys(have).length || Object.entries(next.labels).some(([k, v]) => have[k] !== v);
}

function newer(a: RO<Alert>, b: RO<Alert>): boolean {
  try {
    return BigInt(a.metadata.resourceVersion ?? '0') > BigInt(b.metadata.resourceVersion ?? '0');
  } catch {
    return false;
  }
}

const subjectText = (s: { kind: string; namespace?: string; name: string }) => `${s.kind} ${s.namespace ? `${s.namespace}/` : ''}${s.name}`;
