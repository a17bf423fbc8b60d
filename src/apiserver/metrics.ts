// Prometheus metrics of the API server (prom-client, one registry per server instance):
// requests by verb/resource/code with latency, open watches, etcd call latency.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ApiMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'slipway_apiserver_requests_total',
    help: 'API requests by verb, resource and HTTP status code.',
    labelNames: ['verb', 'resource', 'code'] as const,
    registers: [this.registry],
  });
  readonly requestDuration = new Histogram({
    name: 'slipway_apiserver_request_duration_seconds',
    help: 'API request latency by verb and resource (watches excluded).',
    labelNames: ['verb', 'resource'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly openWatches = new Gauge({
    name: 'slipway_apiserver_open_watches',
    help: 'Watches currently open, by resource.',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });
  readonly inflight = new Gauge({
    name: 'slipway_apiserver_inflight_requests',
    help: 'Non-watch requests being served right now.',
    registers: [this.registry],
  });
  readonly etcdDuration = new Histogram({
    name: 'slipway_etcd_request_duration_seconds',
    help: 'Latency of etcd calls made by the API server, by operation.',
    labelNames: ['operation'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  constructor(defaultMetrics = true) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'slipway_apiserver_' });
  }
}
