// The API server's in-memory view of every stored object, one ObjectIndex per served kind (fed
// by the watch caches, so it costs no extra etcd watch). The garbage collector walks it; the
// object service uses it to skip an etcd read when a write names the version it has.

import type { KubeObject } from '../api/types.js';
import type { EtcdStore } from '../store/etcd-store.js';
import { ObjectIndex } from '../store/object-index.js';
import { resourcePrefix, type Registry, type Resource } from './resources.js';
import type { WatchHub } from './watch.js';

export type CacheListener = (resource: Resource, obj: KubeObject | null, previous: KubeObject | null) => void;

export class ObjectCache {
  private readonly indexes = new Map<string, { resource: Resource; index: ObjectIndex }>();
  private readonly listeners = new Set<CacheListener>();
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly registry: Registry,
    private readonly store: EtcdStore,
    private readonly hub: WatchHub,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** Follows every served kind (and each kind added later); resolves when all are listed. */
  async start(): Promise<void> {
    this.unsubscribe = this.registry.onChange((r, removed) => {
      if (!removed) void this.track(r).catch(this.onError);
    });
    await Promise.all(this.registry.all().map((r) => this.track(r)));
  }

  private async track(resource: Resource): Promise<void> {
    const prefix = resourcePrefix(resource);
    const existing = this.indexes.get(prefix);
    if (existing) {
      existing.resource = resource;
      return;
    }
    const index = new ObjectIndex(this.store, this.hub.cacheFor(resource));
    const entry = { resource, index };
    this.indexes.set(prefix, entry);
    index.onChange((_key, obj, previous) => {
      for (const l of this.listeners) l(entry.resource, obj, previous);
    });
    await index.start();
  }

  /**
   * The cached object at `key`, if the cache has it. Read-only: cached objects are shared.
   * It may lag etcd by a few milliseconds; callers that need the newest version check
   * `metadata.resourceVersion` or rely on a write precondition.
   */
  get(resource: Resource, key: string): KubeObject | undefined {
    return this.indexes.get(resourcePrefix(resource))?.index.get(key);
  }

  onChange(listener: CacheListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stop(): void {
    this.unsubscribe?.();
    for (const { index } of this.indexes.values()) index.stop();
  }
}
