// The node controller: heartbeats each Node's Docker Engine, records what the node has (Docker
// version, CPUs, memory, disk, running Slipway replicas, allocated resources) in its status, sets
// Ready=False after three missed heartbeats and True again on recovery, and reports containers
// whose owning Service no longer exists so the service controller removes them. Every few minutes
// it also removes the node's built images that no Release refers to any more.

import { statfs } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import type Docker from 'dockerode';
import type { Node, Release, Service } from '../api/generated/crd-types.js';
import { collectBuiltImages, releaseReferences } from '../build/image-gc.js';
import type { ApiClient } from '../client/api-client.js';
import type { EventRecorder } from '../client/event-recorder.js';
import type { NodeHosts } from './node-hosts.js';
import type { Controller, ReconcileContext } from './runtime/controller.js';
import { getCondition, nowIso, setCondition, type Condition } from './runtime/conditions.js';
import type { Informer } from './runtime/informer.js';
import type { ControllerMetrics } from './runtime/metrics.js';
import type { ReconcileOutcome } from './runtime/work-queue.js';
import { LABEL_CLUSTER, LABEL_CPUS, LABEL_MANAGED_BY, LABEL_MEMORY, LABEL_NAMESPACE, LABEL_ROLE, LABEL_SERVICE, MANAGED_BY } from './service/container-spec.js';
import { nodeAddress } from './service-controller.js';

export interface NodeControllerOptions {
  client: ApiClient;
  nodes: Informer<Node>;
  services: Informer<Service>;
  /** Every Release: the built images they refer to are kept. */
  releases: Informer<Release>;
  hosts: NodeHosts;
  events: EventRecorder;
  metrics: ControllerMetrics;
  heartbeatIntervalMs: number;
  /** How often a node's unused built images are removed. Defaults to 5 minutes. */
  imageGcIntervalMs?: number;
  /** Built images younger than this are kept (their Release may not record them yet). Defaults to 10 minutes. */
  imageGcMinAgeMs?: number;
  /** Called with `namespace/service` for containers whose Service is gone. */
  onOrphan: (serviceKey: string) => void;
}

const MISSED_HEARTBEATS = 3;
const HEARTBEAT_TIMEOUT_MS = 5_000;
const IMAGE_GC_TIMEOUT_MS = 60_000;

export class NodeController implements Controller {
  readonly name = 'node';
  readonly concurrency = 8;

  /** When each node's images were last collected: only a rate limit, so it may live in memory. */
  private readonly lastImageGc = new Map<string, number>();

  constructor(private readonly o: NodeControllerOptions) {}

  async reconcile(ctx: ReconcileContext, name: string): Promise<ReconcileOutcome | void> {
    const node = this.o.nodes.get(name);
    if (!node) {
      this.o.hosts.drop(name);
      this.o.metrics.heartbeatAge.remove({ node: name });
      return;
    }
    let conditions = node.status?.conditions as Condition[] | undefined;
    const wasReady = getCondition(conditions, 'Ready')?.status === 'True';
    let status: Record<string, unknown>;
    let healthy = false;
    try {
      status = await withTimeout(this.heartbeat(node.spec.docker.socket, name), HEARTBEAT_TIMEOUT_MS, 'the Docker Engine did not answer within 5s');
      conditions = setCondition(conditions, { type: 'Ready', status: 'True', reason: 'HeartbeatSucceeded', message: `Docker ${status.dockerVersion} answered` });
      const disk = status.capacity as { diskTotalBytes?: number; diskFreeBytes?: number };
      conditions = setCondition(conditions, disk.diskTotalBytes
        ? { type: 'DiskPressure', status: disk.diskFreeBytes! / disk.diskTotalBytes < 0.15 ? 'True' : 'False', reason: 'DiskUsage', message: `${Math.round((100 * disk.diskFreeBytes!) / disk.diskTotalBytes)}% of Docker's disk is free` }
        : { type: 'DiskPressure', status: 'Unknown', reason: 'NotMeasured', message: 'disk usage is measured only on nodes with a local socket' });
      const memoryUse = status.memoryUse as number | undefined;
      delete status.memoryUse;
      conditions = setCondition(conditions, memoryUse !== undefined
        ? { type: 'MemoryPressure', status: memoryUse > 0.9 ? 'True' : 'False', reason: 'MemoryUsage', message: `${Math.round(memoryUse * 100)}% of memory in use` }
        : { type: 'MemoryPressure', status: 'Unknown', reason: 'NotMeasured', message: 'memory use is measured only on nodes with a local socket' });
      if (!wasReady) void this.o.events.record(node as Node, 'Normal', 'NodeReady', `Node ${name} is Ready`);
      this.o.metrics.heartbeatAge.set({ node: name }, 0);
      status = { ...status, lastHeartbeatTime: nowIso() };
      healthy = true;
    } catch (err) {
      const message = (err as Error).message;
      const last = Date.parse(node.status?.lastHeartbeatTime ?? '');
      const missedFor = Number.isFinite(last) ? Date.now() - last : Infinity;
      if (Number.isFinite(last)) this.o.metrics.heartbeatAge.set({ node: name }, missedFor / 1000);
      ctx.log.warn({ err: message }, 'heartbeat failed');
      const reason = /host key/i.test(message) ? 'HostKeyMismatch' : 'ConnectionFailed';
      if (missedFor >= MISSED_HEARTBEATS * this.o.heartbeatIntervalMs || reason === 'HostKeyMismatch') {
        conditions = setCondition(conditions, { type: 'Ready', status: 'False', reason, message: `heartbeat failed: ${message}` });
        if (wasReady) void this.o.events.record(node as Node, 'Warning', 'NodeNotReady', `Node ${name} is NotReady: ${message}`.slice(0, 1000));
      }
      status = {};
    }
    await this.o.client.patch(`/apis/slipway.dev/v1alpha1/nodes/${encodeURIComponent(name)}/status`, {
      status: { ...status, conditions, observedGeneration: node.metadata.generation },
    });
    // After the heartbeat is written, and bounded: a slow Docker must not hold up the next heartbeat for long.
    if (healthy) {
      await withTimeout(this.collectImages(ctx, node as Node), IMAGE_GC_TIMEOUT_MS, 'built image collection did not finish within 60s').catch((err: Error) => ctx.log.warn({ err: err.message }, 'built image collection failed; retried at the next interval'));
    }
    return { requeueAfterMs: this.o.heartbeatIntervalMs };
  }

  /** Removes the node's built images no Release refers to, at most once per imageGcIntervalMs (errors: the caller logs them). */
  private async collectImages(ctx: ReconcileContext, node: Node): Promise<void> {
    const name = node.metadata.name!;
    const now = Date.now();
    if (now - (this.lastImageGc.get(name) ?? 0) < (this.o.imageGcIntervalMs ?? 300_000)) return;
    this.lastImageGc.set(name, now);
    const docker = await this.o.hosts.docker(name);
    const used = releaseReferences(this.o.releases.list());
    const { removed, inUse } = await collectBuiltImages(docker, this.o.hosts.cluster, used, now, this.o.imageGcMinAgeMs ?? 600_000);
    if (!removed.length) return;
    const bytes = removed.reduce((sum, image) => sum + image.size, 0);
    const names = removed.flatMap((image) => image.names);
    ctx.log.info({ removed: names, bytes, inUse }, 'removed built images no Release refers to');
    void this.o.events.record(node, 'Normal', 'BuiltImagesRemoved', `removed ${removed.length} built image(s) no Release refers to (${(bytes / 1e6).toFixed(1)} MB): ${names.join(', ')}`.slice(0, 1000));
  }

  private async heartbeat(localSocket: string | undefined, name: string): Promise<Record<string, unknown>> {
    const docker: Docker = await this.o.hosts.docker(name);
    const info = await docker.info();
    const all = await docker.listContainers({ all: true, filters: { label: [`${LABEL_MANAGED_BY}=${MANAGED_BY}`, `${LABEL_CLUSTER}=${this.o.hosts.cluster}`] } });
    let cpus = 0;
    let memoryBytes = 0;
    let running = 0;
    for (const c of all) {
      const labels = c.Labels ?? {};
      const ns = labels[LABEL_NAMESPACE];
      const svc = labels[LABEL_SERVICE];
      if (ns && svc && !this.o.services.get(`${ns}/${svc}`)) this.o.onOrphan(`${ns}/${svc}`);
      if (c.State !== 'running' || labels[LABEL_ROLE] !== 'replica') continue;
      running++;
      cpus += Number(labels[LABEL_CPUS] ?? 0) || 0;
      memoryBytes += Number(labels[LABEL_MEMORY] ?? 0) || 0;
    }
    const capacity: Record<string, number> = { cpus: info.NCPU, memoryBytes: info.MemTotal };
    let memoryUse: number | undefined;
    if (localSocket) {
      try {
        const fs = await statfs(info.DockerRootDir);
        capacity.diskTotalBytes = fs.blocks * fs.bsize;
        capacity.diskFreeBytes = fs.bavail * fs.bsize;
      } catch {
        /* the data root is not visible from here (e.g. Docker in a VM) */
      }
      memoryUse = await localMemoryUse();
    }
    const node = this.o.nodes.get(name);
    return {
      dockerVersion: info.ServerVersion,
      operatingSystem: info.OperatingSystem,
      kernelVersion: info.KernelVersion,
      architecture: info.Architecture,
      capacity,
      allocated: { cpus, memoryBytes },
      runningContainers: running,
      addresses: [{ type: 'InternalIP', address: nodeAddress(node) }],
      ...(memoryUse !== undefined ? { memoryUse } : {}),
    };
  }
}

async function localMemoryUse(): Promise<number | undefined> {
  try {
    const text = await readFile('/proc/meminfo', 'utf8');
    const total = Number(/MemTotal:\s+(\d+)/.exec(text)?.[1]);
    const available = Number(/MemAvailable:\s+(\d+)/.exec(text)?.[1]);
    return total > 0 ? 1 - available / total : undefined;
  } catch {
    return undefined;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]);
}
