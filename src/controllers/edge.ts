// Wiring of the edge controller into the controller manager: its Domain informer, the Caddy admin
// clients of the edge nodes, its metrics, and the handlers that map changes to edge-node keys.
// Only changes the rendered config can depend on enqueue anything. The first change reconciles at
// once; further changes within a short window are coalesced into one reconcile at its end, so a
// burst costs at most two Caddy loads and a lone change (a rollout's traffic shift) none of the delay.

import { Counter, Histogram } from 'prom-client';
import type { Logger } from 'pino';
import type { Domain, Node, Service } from '../api/generated/crd-types.js';
import type { ApiClient } from '../client/api-client.js';
import type { EventRecorder } from '../client/event-recorder.js';
import { CaddyAdmin, type CaddyAdminApi } from '../edge/caddy-admin.js';
import { forwardTcp, type TcpForward } from '../edge/tcp-forward.js';
import { DEFAULT_ADMIN_ADDRESS, LETS_ENCRYPT, type EdgeRenderOptions } from '../edge/caddy-config.js';
import { edgeProjection, isDomainRoutable } from '../edge/sites.js';
import { EdgeController, isEdgeNode } from './edge-controller.js';
import type { NodeHosts } from './node-hosts.js';
import { ControllerRunner } from './runtime/controller.js';
import { Informer, type DeepReadonly, type Stored } from './runtime/informer.js';
import type { ControllerMetrics } from './runtime/metrics.js';
import { option } from '../util/flags.js';

const API = '/apis/slipway.dev/v1alpha1';

/** Manager option `edge`: how Caddy is configured and how often it is checked. */
export interface EdgeOptions extends EdgeRenderOptions {
  /** How often each edge node's running config is compared with the rendered one (Caddy restarted, config lost). Defaults to 10 s. */
  resyncMs?: number;
  /** Window after a reconcile in which further changes are coalesced into one. Defaults to 200 ms. */
  debounceMs?: number;
}

export interface EdgeWiringOptions {
  client: ApiClient;
  log: Logger;
  metrics: ControllerMetrics;
  events: EventRecorder;
  nodes: Informer<Node>;
  services: Informer<Service>;
  hosts: NodeHosts;
  edge?: EdgeOptions;
}

export interface EdgeControllers {
  /** Informers the manager must run (and wait for) besides its own. */
  informers: Array<Informer<any>>;
  /** The Domain informer, for other controllers that need Domains. */
  domains: Informer<Domain>;
  controller: EdgeController;
  start(): void;
  shutdown(): Promise<void>;
}

/**
 * The edge controller and its informers. Without `o.edge` the controller does not run (its Domain
 * informer still does): a manager that was not told about an edge, e.g. in tests of other parts,
 * never touches a Caddy it happens to find on the default admin address.
 */
export function createEdgeControllers(o: EdgeWiringOptions): EdgeControllers {
  const enabled = !!o.edge;
  const options = o.edge ?? {};
  const domains = new Informer<Domain>(o.client, `${API}/domains`, o.log);
  const admins = new Map<string, { client: CaddyAdmin; forward?: TcpForward }>();
  const adminAddress = options.adminAddress ?? DEFAULT_ADMIN_ADDRESS;

  // A local node's Caddy is reached directly; a remote node's through its SSH connection, as TCP
  // connections the node itself makes to its loopback admin listener.
  const admin = async (node: DeepReadonly<Stored<Node>>): Promise<CaddyAdminApi> => {
    const name = node.metadata.name;
    let entry = admins.get(name);
    if (!entry) {
      const { host, port } = splitHostPort(adminAddress);
      const forward = node.spec.docker.ssh ? await forwardTcp(() => o.hosts.openTcp(name, host, port)) : undefined;
      entry = { client: new CaddyAdmin(adminAddress, forward?.address), ...(forward ? { forward } : {}) };
      admins.set(name, entry);
    }
    return entry.client;
  };
  const dropAdmin = (name: string) => {
    const entry = admins.get(name);
    admins.delete(name);
    void entry?.client.close().catch(() => {});
    void entry?.forward?.close();
  };

  const controller = new EdgeController({
    client: o.client,
    nodes: o.nodes,
    services: o.services,
    domains,
    events: o.events,
    render: options,
    admin,
    resyncMs: options.resyncMs ?? 10_000,
    metrics: {
      loads: new Counter({ name: 'slipway_edge_config_loads_total', help: 'Caddy config loads sent to edge nodes, by node and result (success, error). Every load closes open WebSockets.', labelNames: ['node', 'result'] as const, registers: [o.metrics.registry] }),
      loadSeconds: new Histogram({ name: 'slipway_edge_config_load_duration_seconds', help: 'Time to read an edge node\'s running config and load a new one, by node.', labelNames: ['node'] as const, buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [o.metrics.registry] }),
    },
  });
  const runner = new ControllerRunner(controller, o.metrics, o.log);
  const debounceMs = options.debounceMs ?? 200;
  const edgeNodes = () => o.nodes.list((n) => isEdgeNode(n)).map((n) => n.metadata.name);
  let windowEnd = 0;
  let trailing: NodeJS.Timeout | undefined;
  const reconcileEdges = () => {
    windowEnd = Date.now() + debounceMs;
    for (const name of edgeNodes()) runner.enqueue(name);
  };
  const changed = () => {
    if (!enabled || trailing) return;
    const wait = windowEnd - Date.now();
    if (wait <= 0) return reconcileEdges();
    trailing = setTimeout(() => {
      trailing = undefined;
      reconcileEdges();
    }, wait);
  };

  // A Service matters when it has hosts or a Domain points at it; status writes that leave its
  // routes as they were (conditions, candidate releases, steps) do not.
  const routedByDomain = (svc: DeepReadonly<Service>) => domains.list((d) => d.metadata.namespace === svc.metadata.namespace && d.spec.service === svc.metadata.name).length > 0;
  o.services.onChange((current, previous) => {
    const svc = (current ?? previous)!;
    if (!current?.spec.edge?.hosts?.length && !previous?.spec.edge?.hosts?.length && !routedByDomain(svc)) return;
    if (edgeProjection(current) !== edgeProjection(previous)) changed();
  });
  const domainProjection = (d: DeepReadonly<Stored<Domain>> | undefined) => (d && isDomainRoutable(d) ? `${d.metadata.namespace}/${d.spec.service}/${d.spec.hostname}` : '');
  domains.onChange((current, previous) => {
    if (domainProjection(current) !== domainProjection(previous)) changed();
  });
  o.nodes.onChange((current, previous) => {
    if (!current) {
      controller.forget(previous!.metadata.name);
      dropAdmin(previous!.metadata.name);
      return;
    }
    if (!enabled || !isEdgeNode(current)) return;
    if (previous && isEdgeNode(previous) && JSON.stringify(current.spec) === JSON.stringify(previous.spec)) return;
    if (previous && JSON.stringify(current.spec.docker) !== JSON.stringify(previous.spec.docker)) dropAdmin(current.metadata.name);
    runner.enqueue(current.metadata.name);
  });

  return {
    informers: [domains],
    domains,
    controller,
    start() {
      if (!enabled) return;
      runner.start();
      for (const name of edgeNodes()) runner.enqueue(name);
    },
    async shutdown() {
      clearTimeout(trailing);
      await runner.shutdown();
      for (const name of [...admins.keys()]) dropAdmin(name);
    },
  };
}

export const EDGE_USAGE = `  --edge-http-port PORT         Caddy's plain-HTTP port on edge nodes (SLIPWAY_EDGE_HTTP_PORT, default 80)
  --edge-https-port PORT        Caddy's HTTPS port on edge nodes (SLIPWAY_EDGE_HTTPS_PORT, default 443)
  --edge-admin-address ADDR     Caddy's loopback admin listener on edge nodes (SLIPWAY_EDGE_ADMIN_ADDRESS, default 127.0.0.1:2019)
  --edge-resync SECONDS         how often Caddy's running config is checked (SLIPWAY_EDGE_RESYNC, default 10)
  --edge-ask-url URL            on-demand TLS ask endpoint for Domains (SLIPWAY_EDGE_ASK_URL; unset: Domains get managed certificates)
  --acme-directory URL          ACME CA directory (SLIPWAY_ACME_DIRECTORY, default Let's Encrypt production)
  --acme-email EMAIL            ACME account email (SLIPWAY_ACME_EMAIL)
  --acme-trusted-roots FILES    comma-separated PEM roots trusted for the ACME CA's HTTPS (SLIPWAY_ACME_TRUSTED_ROOTS)`;

/** The `edge` manager option from `--edge-*`/`--acme-*` flags or their environment variables. */
export function edgeOptionsFromFlags(flags: Map<string, string>): EdgeOptions {
  const port = (name: string, env: string, fallback: string) => {
    const n = Number(option(flags, name, env, fallback));
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`invalid --${name}: expected a port number`);
    return n;
  };
  const resync = Number(option(flags, 'edge-resync', 'SLIPWAY_EDGE_RESYNC', '10'));
  if (!Number.isFinite(resync) || resync <= 0) throw new Error('invalid --edge-resync: expected a positive number of seconds');
  const askUrl = option(flags, 'edge-ask-url', 'SLIPWAY_EDGE_ASK_URL', '');
  const email = option(flags, 'acme-email', 'SLIPWAY_ACME_EMAIL', '');
  const roots = option(flags, 'acme-trusted-roots', 'SLIPWAY_ACME_TRUSTED_ROOTS', '').split(',').filter(Boolean);
  return {
    httpPort: port('edge-http-port', 'SLIPWAY_EDGE_HTTP_PORT', '80'),
    httpsPort: port('edge-https-port', 'SLIPWAY_EDGE_HTTPS_PORT', '443'),
    adminAddress: loopbackAddress(option(flags, 'edge-admin-address', 'SLIPWAY_EDGE_ADMIN_ADDRESS', DEFAULT_ADMIN_ADDRESS)),
    resyncMs: resync * 1000,
    ...(askUrl ? { askUrl } : {}),
    acme: { directoryUrl: option(flags, 'acme-directory', 'SLIPWAY_ACME_DIRECTORY', LETS_ENCRYPT), ...(email ? { email } : {}), ...(roots.length ? { trustedRootsPemFiles: roots } : {}) },
  };
}

function splitHostPort(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`invalid Caddy admin address ${JSON.stringify(address)}: expected host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** Caddy's admin API must never listen beyond loopback: it can rewrite every route. */
function loopbackAddress(address: string): string {
  const { host } = splitHostPort(address);
  if (!/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(host)) throw new Error(`invalid --edge-admin-address ${address}: Caddy's admin API must listen on loopback (127.0.0.1, ::1 or localhost)`);
  return address;
}
