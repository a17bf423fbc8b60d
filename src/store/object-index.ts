// An in-process, read-only view of every object under one prefix (an informer for the API
// server's own needs: namespaces, CRDs, the garbage collector's graph). Lists once, follows the
// watch cache, relists if the cache fails.

import type { KubeObject } from '../api/types.js';
import type { EtcdStore } from './etcd-store.js';
import type { CachedEvent, Subscription, WatchCache } from './watch-cache.js';

export type IndexListener = (key: string, obj: KubeObject | null, previous: KubeObject | null) => void;

export class ObjectIndex {
  private readonly objects = new Map<string, KubeObject>();
  private readonly listeners = new Set<IndexListener>();
  private subscription: Subscription | null = null;
  private stopped = false;
  private syncedPromise: Promise<void> | null = null;

  constructor(
    private readonly store: EtcdStore,
    private readonly cache: WatchCache,
  ) {}

  /** Lists and starts following; resolves once the view is complete. */
  start(): Promise<void> {
    this.syncedPromise ??= this.sync();
    return this.syncedPromise;
  }

  private async sync(): Promise<void> {
    await this.cache.start();
    const list = await this.store.list(this.cache.prefix);
    const seen = new Set<string>();
    list.items.forEach((obj, i) => {
      const key = list.keys[i]!;
      seen.add(key);
      const previous = this.objects.get(key) ?? null;
      this.objects.set(key, obj);
      if (previous?.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit(key, obj, previous);
    });
    for (const [key, obj] of [...this.objects]) {
      if (!seen.has(key)) {
        this.objects.delete(key);
        this.emit(key, null, obj);
      }
    }
    const sub = this.cache.subscribe(list.revision, {
      keyPrefix: this.cache.prefix,
      deliver: (e: CachedEvent) => this.apply(e),
      fail: () => this.resync(),
    });
    if (!sub) {
      // The cache restarted after our list; list again at its newer window.
      return this.sync();
    }
    this.subscription = sub;
  }

  private resync(): void {
    this.subscription = null;
    if (this.stopped) return;
    const retry = () => {
      if (this.stopped) return;
      this.sync().catch(() => setTimeout(retry, 1_000).unref());
    };
    setTimeout(retry, 100).unref();
  }

  private apply(e: CachedEvent): void {
    const { key, object } = e.raw;
    const previous = this.objects.get(key) ?? null;
    if (object) this.objects.set(key, object);
    else this.objects.delete(key);
    this.emit(key, object, previous ?? e.raw.previous);
  }

  private emit(key: string, obj: KubeObject | null, previous: KubeObject | null): void {
    for (const l of this.listeners) l(key, obj, previous);
  }

  get(key: string): KubeObject | undefined {
    return this.objects.get(key);
  }

  onChange(listener: IndexListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stop(): void {
    this.stopped = true;
    this.subscription?.close();
  }
}
