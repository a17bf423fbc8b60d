// Wiring of the alerts and webhook controllers into the controller manager: their informers (the
// kinds alert rules read, Alerts, Webhooks, Events), their runners, and the handlers that map
// changes to rule and webhook keys. Kept apart so manager.ts only adds, runs and stops them.

import type { Logger } from 'pino';
import type { Alert, AlertRule, Backup, BackupPolicy, Domain, Event as SlipwayEvent, Node, Release, Webhook } from '../api/generated/crd-types.js';
import type { ApiClient } from '../client/api-client.js';
import type { EventRecorder } from '../client/event-recorder.js';
import { AlertsController } from './alerts-controller.js';
import { BUILTIN_RULE_NAMES, RULE_INPUTS } from './alerts/rules.js';
import { ControllerRunner } from './runtime/controller.js';
import { Informer, objectKey } from './runtime/informer.js';
import type { ControllerMetrics } from './runtime/metrics.js';
import { WebhookController } from './webhook-controller.js';
import { webhookAgent } from './webhooks/delivery.js';

const API = '/apis/slipway.dev/v1alpha1';

export interface NotificationOptions {
  client: ApiClient;
  log: Logger;
  metrics: ControllerMetrics;
  events: EventRecorder;
  nodes: Informer<Node>;
  releases: Informer<Release>;
  /** Shared with the edge and backup controllers (the manager runs them). */
  domains: Informer<Domain>;
  backups: Informer<Backup>;
  backupPolicies: Informer<BackupPolicy>;
  /** How often every alert rule is evaluated. Defaults to 30 s. */
  alertIntervalMs?: number;
  /** First webhook retry delay (doubling per attempt). Defaults to 1 s. */
  webhookRetryBaseMs?: number;
}

export interface NotificationControllers {
  /** Informers the manager must run (and wait for) besides its own. */
  informers: Array<Informer<any>>;
  start(): void;
  shutdown(): Promise<void>;
}

export function createNotificationControllers(o: NotificationOptions): NotificationControllers {
  const { client, log } = o;
  const rules = new Informer<AlertRule>(client, `${API}/alertrules`, log);
  const alerts = new Informer<Alert>(client, `${API}/alerts`, log);
  const webhooks = new Informer<Webhook>(client, `${API}/webhooks`, log);
  const kubeEvents = new Informer<SlipwayEvent>(client, `${API}/events`, log);
  const { domains, backups, backupPolicies } = o;
  const agent = webhookAgent();

  const alertsRunner = new ControllerRunner(
    new AlertsController({
      client,
      rules,
      alerts,
      events: o.events,
      metrics: o.metrics,
      intervalMs: o.alertIntervalMs ?? 30_000,
      sources: { nodes: () => o.nodes.list(), releases: () => o.releases.list(), domains: () => domains.list(), backups: () => backups.list(), backupPolicies: () => backupPolicies.list() },
    }),
    o.metrics,
    log,
  );
  const webhookController = new WebhookController({ client, webhooks, events: kubeEvents, alerts, metrics: o.metrics, agent, ...(o.webhookRetryBaseMs ? { retryBaseMs: o.webhookRetryBaseMs } : {}) });
  const webhookRunner = new ControllerRunner(webhookController, o.metrics, log);

  // A spec change, a new or a deleted rule: evaluate it (status writes do not count).
  rules.onChange((current, previous) => {
    if (!current || !previous || current.metadata.generation !== previous.metadata.generation) alertsRunner.enqueue(objectKey((current ?? previous)!));
  });
  // An Alert deleted by someone else is raised again at the next evaluation of its rule.
  alerts.onChange((current, previous) => {
    if (!current && previous?.spec?.rule) alertsRunner.enqueue(previous.spec.rule);
  });
  const evaluateRulesReading = (kind: string) => () => {
    for (const r of rules.list((r) => RULE_INPUTS[r.spec.type]?.includes(kind) && !r.spec.disabled)) alertsRunner.enqueue(r.metadata.name);
  };
  o.nodes.onChange(evaluateRulesReading('Node'));
  o.releases.onChange(evaluateRulesReading('Release'));
  domains.onChange(evaluateRulesReading('Domain'));
  backups.onChange(evaluateRulesReading('Backup'));
  backupPolicies.onChange(evaluateRulesReading('BackupPolicy'));

  webhooks.onChange((current, previous) => {
    if (!current || !previous || current.metadata.generation !== previous.metadata.generation) webhookRunner.enqueue(objectKey((current ?? previous)!));
  });
  kubeEvents.onChange((current) => {
    if (current) for (const key of webhookController.webhooksFor(current)) webhookRunner.enqueue(key);
  });

  return {
    informers: [rules, alerts, webhooks, kubeEvents],
    start() {
      alertsRunner.start();
      webhookRunner.start();
      // Built-in rules that are missing are created by their first reconcile.
      for (const name of BUILTIN_RULE_NAMES.keys()) alertsRunner.enqueue(name);
      for (const r of rules.list()) alertsRunner.enqueue(r.metadata.name);
    },
    async shutdown() {
      webhookController.stop();
      await Promise.allSettled([alertsRunner.shutdown(), webhookRunner.shutdown()]);
      await agent.close().catch(() => {});
    },
  };
}
