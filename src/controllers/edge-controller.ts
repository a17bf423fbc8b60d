// The edge controller: keeps the Caddy of every Node labelled `slipway.dev/edge=true` serving the
// whole rendered config. Key: the node name. Each reconcile renders the config from the cached
// Services and Domains, reads what Caddy runs, and replaces it only when the two differ, so an
// unchanged desired state never reloads Caddy (a reload closes every WebSocket) and a restarted
// Caddy gets its config back at the next resync.

import type { Counter, Histogram } from 'prom-client';
import type { Domain, Node, Service } from '../api/generated/crd-types.js';
import { ApiRequestError, type ApiClient } from '../client/api-client.js';
import type { EventRecorder } from '../client/event-recorder.js';
import { ConfigChangedError, ensureConfig, type CaddyAdminApi } from '../edge/caddy-admin.js';
import { configHash, renderCaddyConfig, type EdgeRenderOptions } from '../edge/caddy-config.js';
import { EDGE_LABEL, edgeSites, type EdgeSite } from '../edge/sites.js';
import type { Controller, ReconcileContext } from './runtime/controller.js';
import { nowIso } from './runtime/conditions.js';
import { objectKey, type DeepReadonly, type Informer, type Stored } from './runtime/informer.js';
import type { ReconcileOutcome } from './runtime/work-queue.js';

type RO<T> = DeepReadonly<T>;

/** The `status.edge` the controller writes on edge Nodes. */
export interface NodeEdgeStatus {
  configHash?: string;
  configLoads?: number;
  lastConfigLoadTime?: string;
  routes?: number;
  lastError?: string | null;
}

export interface EdgeMetrics {
  loads: Counter<'node' | 'result'>;
  loadSeconds: Histogram<'node'>;
}

export interface EdgeControllerOptions {
  client: ApiClient;
  nodes: Informer<Node>;
  services: Informer<Service>;
  domains: Informer<Domain>;
  events: EventRecorder;
  metrics: EdgeMetrics;
  render: EdgeRenderOptions;
  /** The admin API of a node's Caddy (throws when it cannot be reached at all). */
  admin: (node: RO<Stored<Node>>) => Promise<CaddyAdminApi>;
  /** How often Caddy's running config is compared with the rendered one. */
  resyncMs: number;
}

export const isEdgeNode = (node: RO<Node> | undefined): boolean => node?.metadata.labels?.[EDGE_LABEL] === 'true';

export class EdgeController implements Controller {
  readonly name = 'edge';
  readonly concurrency = 2;
  /** Loads counted by this process, ahead of the cache (a second load may come before our status write is seen). */
  private readonly loadsWritten = new Map<string, number>();

  constructor(private readonly o: EdgeControllerOptions) {}

  /** Hostnames already reported as taken by another claimant, per Service uid. */
  private readonly reportedConflicts = new Set<string>();

  /** The config every edge node should run now. */
  desiredConfig(): { config: Record<string, unknown>; routes: number } {
    const services = this.o.services.list();
    const sites = edgeSites(services, this.o.domains.list(), { onDemand: !!this.o.render.askUrl });
    this.reportConflicts(services, sites);
    return { config: renderCaddyConfig(sites, this.o.render), routes: sites.length };
  }

  /** A Service host that another (older) claimant keeps is not routed to it: say so once, as a Warning Event on the Service. */
  private reportConflicts(services: ReadonlyArray<RO<Stored<Service>>>, sites: readonly EdgeSite[]): void {
    const owner = new Map(sites.flatMap((s) => s.hosts.map((h) => [h, s.id] as const)));
    for (const svc of services) {
      if (!svc.status?.activeRelease) continue;
      for (const host of svc.spec.edge?.hosts ?? []) {
        const by = owner.get(host.toLowerCase());
        const key = `${svc.metadata.uid}/${host}`;
        if (!by || by === `service:${objectKey(svc)}` || this.reportedConflicts.has(key)) continue;
        this.reportedConflicts.add(key);
        void this.o.events.record(svc as Service, 'Warning', 'HostConflict', `host ${host} is not routed to this Service: ${by.replace(':', ' ')} claimed it first`);
      }
    }
  }

  async reconcile(ctx: ReconcileContext, name: string): Promise<ReconcileOutcome | void> {
    const node = this.o.nodes.get(name);
    if (!node || node.metadata.deletionTimestamp || !isEdgeNode(node)) return;
    const { config, routes } = this.desiredConfig();
    const hash = configHash(config);
    try {
      const admin = await this.o.admin(node);
      const end = this.o.metrics.loadSeconds.startTimer({ node: name });
      const { loaded, wasEmpty } = await ensureConfig(admin, config);
      if (!loaded) {
        // A load whose status write failed is recorded now.
        const loads = this.loadsWritten.get(name);
        const unrecorded = loads !== undefined && loads > (node.status?.edge?.configLoads ?? 0) ? { configLoads: loads } : {};
        await this.writeStatus(node, { configHash: hash, routes, lastError: null, ...unrecorded });
        return { requeueAfterMs: this.o.resyncMs };
      }
      end();
      this.o.metrics.loads.inc({ node: name, result: 'success' });
      const loads = Math.max(node.status?.edge?.configLoads ?? 0, this.loadsWritten.get(name) ?? 0) + 1;
      this.loadsWritten.set(name, loads);
      ctx.log.info({ node: name, configHash: hash, routes, loads, reason: wasEmpty ? 'Caddy had no config' : 'desired state changed' }, 'edge config loaded');
      await this.writeStatus(node, { configHash: hash, routes, configLoads: loads, lastConfigLoadTime: nowIso(), lastError: null });
    } catch (err) {
      if (err instanceof ConfigChangedError) throw err; // read again at once (with backoff)
      const message = (err as Error).message;
      this.o.metrics.loads.inc({ node: name, result: 'error' });
      ctx.log.warn({ node: name, err: message }, 'edge config not applied');
      if (node.status?.edge?.lastError !== message) void this.o.events.record(node as Node, 'Warning', 'EdgeConfigFailed', message.slice(0, 1000));
      await this.writeStatus(node, { lastError: message.slice(0, 4000) });
    }
    return { requeueAfterMs: this.o.resyncMs };
  }

  /** Merges `fields` into the Node's status.edge, writing only when something differs. */
  private async writeStatus(node: RO<Stored<Node>>, fields: NodeEdgeStatus): Promise<void> {
    const current = (node.status?.edge ?? {}) as Record<string, unknown>;
    const changed = Object.entries(fields).some(([k, v]) => (v === null ? current[k] !== undefined && current[k] !== null : current[k] !== v));
    if (!changed) return;
    try {
      await this.o.client.patch(`/apis/slipway.dev/v1alpha1/nodes/${encodeURIComponent(node.metadata.name)}/status`, { status: { edge: fields } });
    } catch (err) {
      if (!(err instanceof ApiRequestError && err.code === 404)) throw err;
    }
  }

  forget(name: string): void {
    this.loadsWritten.delete(name);
  }
}
