// Prometheus metrics of the controller manager: reconciles, errors, durations and queue depth
// per controller, and whether this process leads.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: 'slipway_controller_reconcile_total',
    help: 'Reconciles run, by controller and result (success, requeue, error).',
    labelNames: ['controller', 'result'] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'slipway_controller_reconcile_errors_total',
    help: 'Reconciles that failed, by controller.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'slipway_controller_reconcile_duration_seconds',
    help: 'Time spent in one reconcile, by controller.',
    labelNames: ['controller'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly depth = new Gauge({
    name: 'slipway_workqueue_depth',
    help: 'Keys waiting or being reconciled, by controller.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'slipway_controller_manager_leader',
    help: '1 while this controller manager holds the leader lease.',
    registers: [this.registry],
  });
  readonly releaseOutcomes = new Counter({
    name: 'slipway_release_outcomes_total',
    help: 'Finished rollouts, by result (succeeded, failed, superseded; rolled_back counts successful rollouts to an older revision).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly releaseDuration = new Histogram({
    name: 'slipway_release_duration_seconds',
    help: 'Time from a release being queued to traffic shifted or failure.',
    labelNames: ['result'] as const,
    buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });
  readonly heartbeatAge = new Gauge({
    name: 'slipway_node_heartbeat_age_seconds',
    help: 'Seconds since each node last answered a heartbeat.',
    labelNames: ['node'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'slipway_controller_manager_' });
  }
}
