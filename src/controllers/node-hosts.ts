// Access to each Node's Docker Engine by node name, for the controllers: looks the Node up in the
// informer, reads its SSH key from the Secret it names, and keeps one connection per node in the
// DockerHosts pool (reconnecting when the Node's spec or key changes). Also runs one Docker event
// stream per connected node so that a container dying becomes a reconcile at once.

import type Docker from 'dockerode';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Node, NodeSpec, Secret } from '../api/generated/crd-types.js';
import type { ApiClient } from '../client/api-client.js';
import type { DockerHost } from '../docker/docker-host.js';
import { DockerHosts } from '../docker/docker-hosts.js';
import { watchContainerEvents } from '../docker/docker-events.js';
import type { DeepReadonly, Informer, Stored } from './runtime/informer.js';

export interface ContainerEvent {
  node: string;
  action: string;
  id: string;
  labels: Record<string, string>;
}

export interface NodeHostAccess {
  /** This installation's id, carried by every container it owns (label slipway.dev/cluster). */
  readonly cluster: string;
  /** The node's Docker client; throws when the node is unknown or cannot be reached. */
  docker(nodeName: string): Promise<Docker>;
}

export class NodeHosts implements NodeHostAccess {
  private readonly pool = new DockerHosts();
  private readonly eventStreams = new Map<string, { docker: Docker; abort: AbortController }>();
  private readonly listeners: Array<(event: ContainerEvent) => void> = [];

  constructor(
    readonly cluster: string,
    private readonly client: ApiClient,
    private readonly nodes: Informer<Node>,
    private readonly log: Logger,
  ) {}

  onContainerEvent(listener: (event: ContainerEvent) => void): void {
    this.listeners.push(listener);
  }

  async docker(nodeName: string): Promise<Docker> {
    return (await this.connection(nodeName)).docker;
  }

  /** A TCP connection made by the (ssh) node to `host:port` on its side, over its SSH connection. */
  async openTcp(nodeName: string, host: string, port: number): Promise<Duplex> {
    const connection = await this.connection(nodeName);
    if (!connection.openTcp) throw new Error(`node ${nodeName} has no SSH connection to open ${host}:${port} through`);
    return connection.openTcp(host, port);
  }

  private async connection(nodeName: string): Promise<DockerHost> {
    const node = this.nodes.get(nodeName);
    if (!node) throw new Error(`node ${JSON.stringify(nodeName)} does not exist`);
    const spec = node.spec.docker;
    const privateKey = spec.ssh ? await this.privateKey(node) : undefined;
    const host = await this.pool.get(nodeName, structuredClone(spec) as NodeSpec['docker'], privateKey);
    this.ensureEventStream(nodeName, host.docker);
    return host;
  }

  /** Forgets a node that was deleted. */
  drop(nodeName: string): void {
    this.eventStreams.get(nodeName)?.abort.abort();
    this.eventStreams.delete(nodeName);
    void this.pool.drop(nodeName);
  }

  async close(): Promise<void> {
    for (const stream of this.eventStreams.values()) stream.abort.abort();
    this.eventStreams.clear();
    await this.pool.closeAll();
  }

  private async privateKey(node: DeepReadonly<Stored<Node>>): Promise<string> {
    const ref = node.spec.docker.ssh!.privateKeySecretRef;
    const key = ref.key ?? 'ssh-privatekey';
    let secret: Secret;
    try {
      secret = await this.client.get<Secret>(`/apis/slipway.dev/v1alpha1/namespaces/${ref.namespace}/secrets/${ref.name}`);
    } catch (err) {
      throw new Error(`cannot read the SSH key Secret ${ref.namespace}/${ref.name}: ${(err as Error).message}`);
    }
    const value = secret.data?.[key];
    if (!value) throw new Error(`Secret ${ref.namespace}/${ref.name} has no key ${JSON.stringify(key)} holding the SSH private key`);
    return Buffer.from(value, 'base64').toString('utf8');
  }

  private ensureEventStream(nodeName: string, docker: Docker): void {
    const current = this.eventStreams.get(nodeName);
    if (current?.docker === docker) return;
    current?.abort.abort();
    const abort = new AbortController();
    this.eventStreams.set(nodeName, { docker, abort });
    void watchContainerEvents(
      docker,
      (e) => {
        for (const listener of this.listeners) listener({ node: nodeName, ...e });
      },
      abort.signal,
      { filters: { label: [`slipway.dev/cluster=${this.cluster}`] } },
    ).catch((err: Error) => this.log.warn({ node: nodeName, err: err.message }, 'docker event stream ended'));
  }
}
