// The controller manager: shared informers, one runner per controller, leader election, and the
// manager's HTTP endpoints. Only the leader runs controllers; the others wait for the Lease. Event
// handlers here only map changes to keys.

import { setMaxListeners } from 'node:events';
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import type { Node, Release, Secret, Service } from '../api/generated/crd-types.js';
import { DRAIN_ANNOTATION } from '../api/service-contract.js';
import { ApiClient } from '../client/api-client.js';
import { EventRecorder } from '../client/event-recorder.js';
import { createEndpoints } from './manager-endpoints.js';
import { NodeController } from './node-controller.js';
import { NodeHosts } from './node-hosts.js';
import { createNotificationControllers } from './notifications.js';
import { createBackupControllers } from './backups.js';
import { createEdgeControllers, type EdgeOptions } from './edge.js';
import { createDomainControllers } from './domains.js';
import type { DomainOptions } from '../domains/settings.js';
import { ControllerRunner } from './runtime/controller.js';
import { getCondition, type Condition } from './runtime/conditions.js';
import { Informer, objectKey } from './runtime/informer.js';
import { LEASE_NAME, LEASE_NAMESPACE, LeaderElector } from './runtime/leader-election.js';
import { ControllerMetrics } from './runtime/metrics.js';
import { ServiceController } from './service-controller.js';
import { referencedSecrets, templateOf } from './service/template.js';
import { REDACT } from '../util/log-redaction.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildLogs } from '../build/build-log.js';
import { Builder } from '../build/builder.js';

export interface ManagerOptions {
  server: string;
  token?: string;
  /** PEM CA bundle an https API server must be signed by (the only CAs trusted). */
  ca?: string;
  bindAddress?: string;
  port?: number;
  identity?: string;
  logLevel?: string;
  logger?: Logger;
  /** Where the built-in logger writes (default stdout). */
  logDestination?: NodeJS.WritableStream;
  heartbeatIntervalMs?: number;
  /** How often each node's unused built images are removed (default 5 min), and how old they must be (default 10 min). */
  imageGcIntervalMs?: number;
  imageGcMinAgeMs?: number;
  nodeLossGraceMs?: number;
  resyncMs?: number;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Clock for scheduled runs (tests move it forward). */
  clock?: () => number;
  /** How often every AlertRule is evaluated (also on changes). Defaults to 30 s. */
  alertIntervalMs?: number;
  /** Directory for the manager's files (build logs). Defaults to <tmpdir>/slipway-controller-manager. */
  dataDir?: string;
  /** The Caddy edge: ACME issuer, on-demand ask URL, ports, admin address, resync. Unset: no edge controller runs. */
  edge?: EdgeOptions;
  /** Customer domains: DNS resolvers, the edge's probe address and DNS targets, trusted roots, check and backoff timings. */
  domains?: DomainOptions;
  /** Called when leadership is lost; the process should exit (as Kubernetes' managers do). */
  onLostLeadership?: () => void;
}

export interface ControllerManager {
  readonly url: string;
  readonly identity: string;
  readonly log: Logger;
  isLeader(): boolean;
  stop(): Promise<void>;
}

const API = '/apis/slipway.dev/v1alpha1';

/** The uid of the `slipway-system` Namespace: stable for the life of the installation's etcd. */
async function clusterId(client: ApiClient, log: Logger, signal: AbortSignal): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      const ns = await client.get(`${API}/namespaces/${LEASE_NAMESPACE}`);
      return ns.metadata.uid!;
    } catch (err) {
      if (signal.aborted || attempt > 150) throw new Error(`cannot read Namespace ${LEASE_NAMESPACE} from the API server: ${(err as Error).message}`);
      if (attempt % 10 === 0) log.warn({ err: (err as Error).message }, 'waiting for the API server');
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export async function startControllerManager(options: ManagerOptions): Promise<ControllerManager> {
  const log = options.logger ?? pino({ level: options.logLevel ?? 'info', base: { component: 'controller-manager' }, redact: REDACT }, options.logDestination ?? process.stdout);
  const identity = options.identity ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const client = new ApiClient({ server: options.server, ...(options.token ? { token: options.token } : {}), ...(options.ca ? { ca: options.ca } : {}), userAgent: 'slipway-controller-manager' });
  const metrics = new ControllerMetrics();
  const events = new EventRecorder(client, { component: 'slipway-controller-manager', host: hostname() });
  const abort = new AbortController();
  // Every informer's watch listens on this one signal.
  setMaxListeners(100, abort.signal);
  let leading = false;

  // Secrets are followed for their versions: Services reading a changed Secret roll out again.
  const secrets = new Informer<Secret>(client, `${API}/secrets`, log);
  const services = new Informer<Service>(client, `${API}/services`, log);
  const releases = new Informer<Release>(client, `${API}/releases`, log);
  const nodes = new Informer<Node>(client, `${API}/nodes`, log);
  const cluster = await clusterId(client, log, abort.signal);
  const hosts = new NodeHosts(cluster, client, nodes, log);

  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 10_000;
  const nodeLossGraceMs = options.nodeLossGraceMs ?? 60_000;
  const buildLogs = new BuildLogs(options.dataDir ?? join(tmpdir(), 'slipway-controller-manager'));
  const builder = new Builder(buildLogs);
  const serviceRunner: ControllerRunner = new ControllerRunner(
    new ServiceController({ client, releases, nodes, secrets, hosts, events, metrics, nodeLossGraceMs, resyncMs: options.resyncMs ?? 15_000, ...(options.clock ? { clock: options.clock } : {}), builder, buildLogs, enqueue: (key) => serviceRunner.enqueue(key) }),
    metrics,
    log,
  );
  const nodeRunner = new ControllerRunner(
    new NodeController({ client, nodes, services, releases, hosts, events, metrics, heartbeatIntervalMs, ...(options.imageGcIntervalMs !== undefined ? { imageGcIntervalMs: options.imageGcIntervalMs } : {}), ...(options.imageGcMinAgeMs !== undefined ? { imageGcMinAgeMs: options.imageGcMinAgeMs } : {}), onOrphan: serviceRunner.enqueue }),
    metrics,
    log,
  );

  const edge = createEdgeControllers({ client, log, metrics, events, nodes, services, hosts, ...(options.edge ? { edge: options.edge } : {}) });
  const domainControllers = createDomainControllers({ client, log, metrics, events, domains: edge.domains, services, clusterId: cluster, options: { ...(options.edge?.httpsPort ? { edgeProbeAddress: `127.0.0.1:${options.edge.httpsPort}` } : {}), ...options.domains } });
  const backups = createBackupControllers({ client, log, metrics, events, hosts, identity, heartbeatMs: heartbeatIntervalMs, resyncMs: options.resyncMs ?? 15_000, ...(options.clock ? { clock: options.clock } : {}) });
  const notifications = createNotificationControllers({ client, log, metrics, events, nodes, releases, domains: edge.domains, backups: backups.backups, backupPolicies: backups.policies, ...(options.alertIntervalMs ? { alertIntervalMs: options.alertIntervalMs } : {}) });

  services.onChange((current, previous) => serviceRunner.enqueue(objectKey((current ?? previous)!)));
  releases.onChange((current, previous) => {
    const r = (current ?? previous)!;
    if (r.spec?.service) serviceRunner.enqueue(`${r.metadata.namespace}/${r.spec.service}`);
  });
  nodes.onChange((current, previous) => {
    const node = (current ?? previous)!;
    nodeRunner.enqueue(node.metadata.name);
    const readyNow = getCondition(current?.status?.conditions as Condition[], 'Ready')?.status;
    const readyBefore = getCondition(previous?.status?.conditions as Condition[], 'Ready')?.status;
    const placementChanged =
      !current ||
      !previous ||
      readyNow !== readyBefore ||
      current.spec.unschedulable !== previous.spec.unschedulable ||
      current.metadata.annotations?.[DRAIN_ANNOTATION] !== previous.metadata.annotations?.[DRAIN_ANNOTATION] ||
      JSON.stringify(current.metadata.labels ?? {}) !== JSON.stringify(previous.metadata.labels ?? {});
    if (!placementChanged) return;
    for (const svc of services.list()) {
      const key = objectKey(svc);
      serviceRunner.enqueue(key);
      // A node that just went NotReady is given up after the grace period: look again then.
      if (readyBefore === 'True' && readyNow !== 'True') serviceRunner.enqueueAfter(key, nodeLossGraceMs + 500);
    }
  });
  secrets.onChange((current, previous) => {
    const secret = (current ?? previous)!;
    if (current && previous && current.metadata.resourceVersion === previous.metadata.resourceVersion) return;
    for (const svc of services.list((s) => s.metadata.namespace === secret.metadata.namespace)) {
      if (referencedSecrets(templateOf(svc)).includes(secret.metadata.name)) serviceRunner.enqueue(objectKey(svc));
    }
  });
  hosts.onContainerEvent((e) => {
    const ns = e.labels['slipway.dev/namespace'];
    const svc = e.labels['slipway.dev/service'];
    if (ns && svc && ['die', 'start', 'destroy', 'oom', 'stop', 'kill', 'pause', 'unpause'].includes(e.action)) serviceRunner.enqueue(`${ns}/${svc}`);
  });

  const app = createEndpoints({ client, nodes, hosts, metrics, buildLogs, isLeader: () => leading });
  const server: Server = createServer(app.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 6441, options.bindAddress ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`;
  log.info({ url, identity }, 'controller manager listening');

  const elector = new LeaderElector(
    client,
    {
      namespace: LEASE_NAMESPACE,
      name: LEASE_NAME,
      identity,
      holderAddress: url,
      ...(options.leaseDurationMs ? { leaseDurationMs: options.leaseDurationMs } : {}),
      ...(options.renewDeadlineMs ? { renewDeadlineMs: options.renewDeadlineMs } : {}),
      ...(options.retryPeriodMs ? { retryPeriodMs: options.retryPeriodMs } : {}),
    },
    log,
  );
  const informerRuns: Promise<void>[] = [];
  const election = elector
    .run(abort.signal, () => {
      leading = true;
      metrics.leader.set(1);
      for (const informer of [services, releases, nodes, secrets, ...notifications.informers, ...edge.informers, ...backups.informers]) informerRuns.push(informer.run(abort.signal));
      void Promise.all([services.synced, releases.synced, nodes.synced, secrets.synced, ...notifications.informers.map((i) => i.synced), ...edge.informers.map((i) => i.synced), ...backups.informers.map((i) => i.synced)]).then(() => {
        if (abort.signal.aborted) return;
        log.info('caches synced; starting controllers');
        nodeRunner.start();
        serviceRunner.start();
        notifications.start();
        backups.start();
        edge.start();
        domainControllers.start();
      });
    })
    .then((outcome) => {
      leading = false;
      metrics.leader.set(0);
      if (outcome === 'lost') (options.onLostLeadership ?? (() => process.exit(1)))();
    });

  return {
    url,
    identity,
    log,
    isLeader: () => leading,
    async stop() {
      abort.abort();
      builder.cancelAll();
      await Promise.allSettled([serviceRunner.shutdown(), nodeRunner.shutdown(), notifications.shutdown(), edge.shutdown(), domainControllers.shutdown(), backups.shutdown()]);
      await election;
      await Promise.allSettled(informerRuns);
      await hosts.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections?.();
      await client.close();
    },
  };
}
