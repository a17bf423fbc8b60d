// A pool of Docker host connections keyed by node name: one connection per node, reused while
// the node's docker spec and private key are unchanged, replaced when either changes.

import { createHash } from 'node:crypto';
import { connectDockerHost, type DockerHost, type NodeDockerSpec } from './docker-host.js';
import { stableJson } from '../api/stable-json.js';

interface Entry {
  hash: string;
  host: Promise<DockerHost>;
}

type Connect = (spec: NodeDockerSpec, privateKey?: string) => Promise<DockerHost>;

function configHash(spec: NodeDockerSpec, privateKey?: string): string {
  return createHash('sha256')
    .update(stableJson(spec))
    .update('\0')
    .update(privateKey ?? '')
    .digest('hex');
}

async function closeQuietly(host: Promise<DockerHost>): Promise<void> {
  try {
    await (await host).close();
  } catch {
    // A connection that failed to open or fails to close has nothing left to release.
  }
}

export class DockerHosts {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly connect: Connect = connectDockerHost) {}

  /**
   * The connection for a node: the cached one while spec and key are unchanged, otherwise a new
   * one (the old one is closed first). Concurrent calls share one connection attempt; a failed
   * attempt is not cached, so the next call tries again.
   */
  get(nodeName: string, spec: NodeDockerSpec, privateKey?: string): Promise<DockerHost> {
    const hash = configHash(spec, privateKey);
    const current = this.entries.get(nodeName);
    if (current?.hash === hash) return current.host;

    const previous = current?.host;
    const host = (async () => {
      if (previous) await closeQuietly(previous);
      return this.connect(spec, privateKey);
    })();
    const entry: Entry = { hash, host };
    this.entries.set(nodeName, entry);
    host.catch(() => {
      if (this.entries.get(nodeName) === entry) this.entries.delete(nodeName);
    });
    return host;
  }

  /** Node names with a connection (or a connection attempt). */
  nodeNames(): string[] {
    return [...this.entries.keys()];
  }

  /** Closes and forgets a node's connection (for a deleted node). */
  async drop(nodeName: string): Promise<void> {
    const entry = this.entries.get(nodeName);
    if (!entry) return;
    this.entries.delete(nodeName);
    await closeQuietly(entry.host);
  }

  async closeAll(): Promise<void> {
    const hosts = [...this.entries.values()].map((e) => e.host);
    this.entries.clear();
    await Promise.all(hosts.map(closeQuietly));
  }
}
