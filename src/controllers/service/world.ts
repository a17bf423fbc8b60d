// What actually runs for one Service: its containers on every node, read from Docker by owner
// labels (never from memory), grouped by release.

import type Docker from 'dockerode';
import { LABEL_CLUSTER, LABEL_NAMESPACE, LABEL_RELEASE, LABEL_REPLICA, LABEL_ROLE, LABEL_SERVICE, LABEL_MANAGED_BY, MANAGED_BY, type ContainerRole } from './container-spec.js';
import type { NodeHostAccess } from '../node-hosts.js';

export interface ObservedContainer {
  node: string;
  id: string;
  name: string;
  release: string;
  role: ContainerRole | string;
  replica: number;
  state: string;
  running: boolean;
  /** Unix seconds. */
  created: number;
  /** Host port the service port is published on, when running. */
  hostPort?: number;
  labels: Record<string, string>;
  /** On a node that could not be asked: known only from the last status, state unknown. */
  unknown?: boolean;
}

export interface ServiceWorld {
  containers: ObservedContainer[];
  /** Nodes whose Docker could not be asked; their containers are unknown, not absent. */
  unreachable: Map<string, string>;
}

export function serviceFilters(cluster: string, namespace: string, service: string): { label: string[] } {
  return { label: [`${LABEL_MANAGED_BY}=${MANAGED_BY}`, `${LABEL_CLUSTER}=${cluster}`, `${LABEL_NAMESPACE}=${namespace}`, `${LABEL_SERVICE}=${service}`] };
}

export function toObserved(node: string, c: Docker.ContainerInfo, port: number | undefined): ObservedContainer {
  const labels = c.Labels ?? {};
  const published = c.Ports?.find((p) => (port === undefined || p.PrivatePort === port) && p.PublicPort);
  return {
    node,
    id: c.Id,
    name: (c.Names?.[0] ?? '').replace(/^\//, ''),
    release: labels[LABEL_RELEASE] ?? '',
    role: labels[LABEL_ROLE] ?? '',
    replica: Number(labels[LABEL_REPLICA] ?? -1),
    state: c.State,
    running: c.State === 'running',
    created: c.Created,
    ...(published?.PublicPort ? { hostPort: published.PublicPort } : {}),
    labels,
  };
}

/** Lists the service's containers on each of `nodes` in parallel. */
export async function observeService(hosts: NodeHostAccess, nodes: readonly string[], namespace: string, service: string, portOf: (release: string) => number | undefined): Promise<ServiceWorld> {
  const world: ServiceWorld = { containers: [], unreachable: new Map() };
  await Promise.all(
    nodes.map(async (node) => {
      try {
        const docker = await hosts.docker(node);
        const list = await docker.listContainers({ all: true, filters: serviceFilters(hosts.cluster, namespace, service) });
        for (const c of list) world.containers.push(toObserved(node, c, portOf(c.Labels?.[LABEL_RELEASE] ?? '')));
      } catch (err) {
        world.unreachable.set(node, (err as Error).message);
      }
    }),
  );
  world.containers.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.node < b.node ? -1 : 1));
  return world;
}
