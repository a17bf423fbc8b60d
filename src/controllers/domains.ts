// Wiring of the domain controller into the controller manager: its resolver, its runner, and the
// handlers that map Domain and Service changes to Domain keys. It shares the manager's Service
// informer and the edge's Domain informer rather than watching them twice.

import type { Logger } from 'pino';
import type { Domain, Service } from '../api/generated/crd-types.js';
import type { ApiClient } from '../client/api-client.js';
import type { EventRecorder } from '../client/event-recorder.js';
import { DnsChecker } from '../domains/dns-check.js';
import { domainSettings, type DomainOptions } from '../domains/settings.js';
import { DomainController } from './domain-controller.js';
import { ControllerRunner } from './runtime/controller.js';
import { objectKey, type Informer } from './runtime/informer.js';
import type { ControllerMetrics } from './runtime/metrics.js';

export interface DomainWiringOptions {
  client: ApiClient;
  log: Logger;
  metrics: ControllerMetrics;
  events: EventRecorder;
  domains: Informer<Domain>;
  services: Informer<Service>;
  clusterId: string;
  options?: DomainOptions;
  clock?: () => number;
}

export interface DomainControllers {
  start(): void;
  shutdown(): Promise<void>;
}

export function createDomainControllers(o: DomainWiringOptions): DomainControllers {
  const settings = domainSettings(o.options);
  const dns = new DnsChecker({ ...(settings.resolvers ? { servers: settings.resolvers } : {}), negativeCacheMs: settings.negativeCacheMs, ...(o.clock ? { clock: o.clock } : {}) });
  const controller = new DomainController({ client: o.client, domains: o.domains, services: o.services, events: o.events, dns, clusterId: o.clusterId, settings, ...(o.clock ? { clock: o.clock } : {}) });
  const runner = new ControllerRunner(controller, o.metrics, o.log);

  o.domains.onChange((current, previous) => {
    const d = (current ?? previous)!;
    runner.enqueue(objectKey(d));
    // A Domain that goes away or changes hostname may free the hostname for another claimant.
    for (const host of new Set([current?.spec.hostname, previous?.spec.hostname])) {
      if (host && (!current || current.spec.hostname !== previous?.spec.hostname || current.metadata.deletionTimestamp)) for (const key of controller.domainsClaiming(host)) runner.enqueue(key);
    }
  });
  o.services.onChange((current, previous) => {
    const svc = (current ?? previous)!;
    const activeChanged = current?.status?.activeRelease !== previous?.status?.activeRelease || JSON.stringify(current?.spec.edge?.hosts ?? []) !== JSON.stringify(previous?.spec.edge?.hosts ?? []);
    if (activeChanged) for (const key of controller.domainsOf(svc.metadata.namespace!, svc.metadata.name)) runner.enqueue(key);
  });

  return {
    start() {
      runner.start();
      for (const d of o.domains.list()) runner.enqueue(objectKey(d));
    },
    shutdown: () => runner.shutdown(),
  };
}
