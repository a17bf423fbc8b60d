// The garbage collector and the deletion lifecycle that Kubernetes runs in its controller
// manager, run here inside the API server: ownerReferences (Background, Foreground, Orphan),
// the content of a terminating Namespace, and the objects of a deleted CRD.
// Level-triggered: it rebuilds its graph from etcd on start and re-checks everything periodically,
// so a restart at any point converges.

import type { Logger } from 'pino';
import { FINALIZER_FOREGROUND, FINALIZER_NAMESPACE, FINALIZER_ORPHAN, GROUP, type KubeObject } from '../api/types.js';
import type { EtcdStore } from '../store/etcd-store.js';
import { CRD_CLEANUP_FINALIZER } from './crd.js';
import { ApiError } from './errors.js';
import type { ObjectCache } from './object-cache.js';
import type { ObjectService, Scope } from './objects.js';
import { resourceKey, resourcePrefix, type Registry, type Resource } from './resources.js';

interface Item {
  resource: Resource;
  obj: KubeObject;
}

const RESYNC_MS = 30_000;
const RETRY_MS = 500;

export class GarbageCollector {
  /** uid → object (the newest version seen). */
  private readonly byUid = new Map<string, Item>();
  /** owner uid → dependent uids. */
  private readonly dependents = new Map<string, Set<string>>();
  private readonly queue = new Set<string>();
  private readonly delayed = new Map<string, NodeJS.Timeout>();
  private running = false;
  private stopped = false;
  private resyncTimer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly registry: Registry,
    private readonly store: EtcdStore,
    private readonly cache: ObjectCache,
    private readonly objects: ObjectService,
    private readonly log: Logger,
  ) {}

  /** Call before the cache starts, so the initial listing builds the graph. */
  start(): void {
    this.unsubscribe = this.cache.onChange((resource, obj, previous) => this.observe(resource, obj, previous));
    this.resyncTimer = setInterval(() => this.resync(), RESYNC_MS);
    this.resyncTimer.unref();
  }

  /** Looks at everything once the cache has listed every kind. */
  synced(): void {
    this.resync();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    for (const t of this.delayed.values()) clearTimeout(t);
  }

  private observe(resource: Resource, obj: KubeObject | null, previous: KubeObject | null): void {
    const old = previous?.metadata.uid ? this.byUid.get(previous.metadata.uid) : undefined;
    if (old) for (const ref of old.obj.metadata.ownerReferences ?? []) this.dependents.get(ref.uid)?.delete(old.obj.metadata.uid!);
    if (obj) {
      const uid = obj.metadata.uid!;
      this.byUid.set(uid, { resource, obj });
      for (const ref of obj.metadata.ownerReferences ?? []) {
        let set = this.dependents.get(ref.uid);
        if (!set) this.dependents.set(ref.uid, (set = new Set()));
        set.add(uid);
      }
      if (this.needsAttention(obj)) this.enqueue(uid);
      // A dependent changed: its owner may be waiting for it (Foreground) or orphaning it.
      for (const ref of obj.metadata.ownerReferences ?? []) if (this.byUid.has(ref.uid)) this.enqueue(ref.uid);
    } else if (previous?.metadata.uid) {
      const uid = previous.metadata.uid;
      this.byUid.delete(uid);
      for (const dep of this.dependents.get(uid) ?? []) this.enqueue(dep);
      for (const ref of previous.metadata.ownerReferences ?? []) if (this.byUid.has(ref.uid)) this.enqueue(ref.uid);
      if (resource.namespaced && previous.metadata.namespace) this.enqueueNamespace(previous.metadata.namespace);
      if (this.dependents.get(uid)?.size === 0) this.dependents.delete(uid);
    }
  }

  private needsAttention(obj: KubeObject): boolean {
    return (obj.metadata.ownerReferences?.length ?? 0) > 0 || obj.metadata.deletionTimestamp !== undefined;
  }

  /** A namespaced object went away: if its Namespace is terminating, look whether it is empty now. */
  private enqueueNamespace(name: string): void {
    const resource = this.registry.get(GROUP, 'namespaces');
    const ns = resource && this.cache.get(resource, resourceKey(resource, undefined, name));
    if (ns?.metadata.deletionTimestamp) this.enqueue(ns.metadata.uid!);
  }

  private resync(): void {
    for (const [uid, item] of this.byUid) if (this.needsAttention(item.obj)) this.enqueue(uid);
  }

  private enqueue(uid: string, delayMs = 0): void {
    if (this.stopped) return;
    if (delayMs > 0) {
      if (this.delayed.has(uid)) return;
      const t = setTimeout(() => {
        this.delayed.delete(uid);
        this.enqueue(uid);
      }, delayMs);
      t.unref();
      this.delayed.set(uid, t);
      return;
    }
    this.queue.add(uid);
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.size && !this.stopped) {
        const uid = this.queue.values().next().value as string;
        this.queue.delete(uid);
        try {
          const again = await this.process(uid);
          if (again) this.enqueue(uid, RETRY_MS);
        } catch (err) {
          this.log.warn({ uid, err: err instanceof Error ? err.message : String(err) }, 'gc: will retry');
          this.enqueue(uid, RETRY_MS);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private scopeOf(item: Item): Scope {
    const { resource } = item;
    return {
      resource,
      version: resource.versions.get(resource.storageVersion)!,
      ...(resource.namespaced ? { namespace: item.obj.metadata.namespace! } : {}),
    };
  }

  /** Handles one object; returns true to look at it again shortly. */
  private async process(uid: string): Promise<boolean> {
    const item = this.byUid.get(uid);
    if (!item) return false;
    const { obj } = item;
    const finalizers = obj.metadata.finalizers ?? [];
    let again = false;
    if (obj.metadata.deletionTimestamp) {
      if (finalizers.includes(FINALIZER_ORPHAN)) again = (await this.orphanDependents(item)) || again;
      if (finalizers.includes(FINALIZER_FOREGROUND)) again = (await this.deleteDependentsFirst(item)) || again;
      if (finalizers.includes(FINALIZER_NAMESPACE) && item.resource.group === GROUP && item.resource.kind === 'Namespace') {
        again = (await this.emptyNamespace(item)) || again;
      }
      if (finalizers.includes(CRD_CLEANUP_FINALIZER) && item.resource.builtin) again = (await this.emptyCrd(item)) || again;
    }
    if ((obj.metadata.ownerReferences?.length ?? 0) > 0) again = (await this.collectIfOrphaned(item)) || again;
    return again;
  }

  /** Whether the owner a reference names exists, checked against etcd (the graph may lag). */
  private async ownerState(item: Item, ref: { apiVersion: string; kind: string; name: string; uid: string }): Promise<'present' | 'absent' | 'deleting-foreground' | 'unknown'> {
    const resource = this.registry.byKind(ref.apiVersion, ref.kind);
    if (!resource) return 'unknown';
    const namespace = resource.namespaced ? item.obj.metadata.namespace : undefined;
    if (resource.namespaced && !namespace) return 'unknown';
    const owner = await this.store.get(resourceKey(resource, namespace, ref.name));
    if (!owner || owner.metadata.uid !== ref.uid) return 'absent';
    if (owner.metadata.deletionTimestamp && owner.metadata.finalizers?.includes(FINALIZER_FOREGROUND)) return 'deleting-foreground';
    return 'present';
  }

  /** Deletes a dependent whose owners are all gone; drops references to owners that are gone. */
  private async collectIfOrphaned(item: Item): Promise<boolean> {
    const refs = item.obj.metadata.ownerReferences ?? [];
    const states = await Promise.all(refs.map((ref) => this.ownerState(item, ref)));
    if (states.includes('unknown')) return false;
    const alive = refs.filter((_, i) => states[i] === 'present');
    if (alive.length === refs.length) return false;
    if (alive.length > 0) {
      // Still owned by someone alive: only drop the references to owners that are going away.
      await this.patchMeta(item, { ownerReferences: alive });
      return false;
    }
    if (item.obj.metadata.deletionTimestamp) return false;
    const foreground = states.includes('deleting-foreground');
    return this.deleteObject(item, foreground ? 'Foreground' : 'Background');
  }

  private dependentsOf(uid: string): Item[] {
    return [...(this.dependents.get(uid) ?? [])].map((d) => this.byUid.get(d)).filter((d): d is Item => d !== undefined);
  }

  /** Foreground: the owner stays until every dependent is gone. */
  private async deleteDependentsFirst(item: Item): Promise<boolean> {
    const deps = this.dependentsOf(item.obj.metadata.uid!);
    for (const dep of deps) if (!dep.obj.metadata.deletionTimestamp) await this.deleteObject(dep, 'Foreground');
    if (deps.length > 0) return true;
    await this.removeFinalizer(item, FINALIZER_FOREGROUND);
    return false;
  }

  /** Orphan: dependents lose their reference to the owner, then the owner goes. */
  private async orphanDependents(item: Item): Promise<boolean> {
    const uid = item.obj.metadata.uid!;
    for (const dep of this.dependentsOf(uid)) {
      await this.patchMeta(dep, { ownerReferences: (dep.obj.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid) });
    }
    await this.removeFinalizer(item, FINALIZER_ORPHAN);
    return false;
  }

  /** A terminating Namespace: delete everything in it, then let it go. */
  private async emptyNamespace(item: Item): Promise<boolean> {
    const ns = item.obj.metadata.name!;
    let remaining = 0;
    for (const resource of this.registry.all()) {
      if (!resource.namespaced) continue;
      const list = await this.store.list(resourcePrefix(resource, ns));
      for (const obj of list.items) {
        remaining++;
        if (!obj.metadata.deletionTimestamp) await this.deleteObject({ resource, obj }, 'Background');
      }
    }
    if (remaining > 0) return true;
    await this.removeFinalizer(item, FINALIZER_NAMESPACE);
    return false;
  }

  /** A deleted CRD: delete every object of its kind, then let the CRD go. */
  private async emptyCrd(item: Item): Promise<boolean> {
    const [plural, ...groupParts] = item.obj.metadata.name!.split('.');
    const resource = this.registry.get(groupParts.join('.'), plural!);
    if (resource) {
      const list = await this.store.list(resourcePrefix(resource));
      for (const obj of list.items) if (!obj.metadata.deletionTimestamp) await this.deleteObject({ resource, obj }, 'Background');
      if (list.items.length > 0) return true;
    }
    await this.removeFinalizer(item, CRD_CLEANUP_FINALIZER);
    return false;
  }

  private async deleteObject(item: Item, propagationPolicy: 'Background' | 'Foreground'): Promise<boolean> {
    try {
      await this.objects.delete(this.scopeOf(item), item.obj.metadata.name!, { propagationPolicy, preconditions: { uid: item.obj.metadata.uid! } });
      this.log.info({ kind: item.resource.kind, namespace: item.obj.metadata.namespace, name: item.obj.metadata.name, propagationPolicy }, 'gc: deleted');
    } catch (err) {
      if (err instanceof ApiError && (err.code === 404 || err.code === 409)) return false;
      throw err;
    }
    return false;
  }

  private async patchMeta(item: Item, metadata: Record<string, unknown>): Promise<void> {
    try {
      await this.objects.patch(this.scopeOf(item), item.obj.metadata.name!, 'merge', { metadata: { ...metadata, uid: item.obj.metadata.uid } }, undefined);
    } catch (err) {
      if (err instanceof ApiError && err.code === 404) return;
      throw err;
    }
  }

  private async removeFinalizer(item: Item, finalizer: string): Promise<void> {
    const current = await this.store.get(resourceKey(item.resource, item.obj.metadata.namespace, item.obj.metadata.name!));
    if (!current || current.metadata.uid !== item.obj.metadata.uid) return;
    const finalizers = (current.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    if (finalizers.length === (current.metadata.finalizers ?? []).length) return;
    await this.objects.patch(
      this.scopeOf(item),
      item.obj.metadata.name!,
      'merge',
      { metadata: { finalizers, resourceVersion: current.metadata.resourceVersion } },
      undefined,
    );
  }
}
