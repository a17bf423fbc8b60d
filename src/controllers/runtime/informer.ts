// A shared informer: lists one resource across all namespaces, then watches it from the list's
// resourceVersion, keeping a read-only in-memory copy. A 410 (history compacted) relists; any
// other failure reconnects with backoff. Handlers only learn which object changed.

import type { Logger } from 'pino';
import type { KubeObject, WatchEvent } from '../../api/types.js';
import { ApiRequestError, type ApiClient } from '../../client/api-client.js';
import { Backoff, sleep } from './backoff.js';

export type DeepReadonly<T> = T extends (infer E)[]
  ? ReadonlyArray<DeepReadonly<E>>
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/** An object as the server returns it: named, with a uid, and with its spec (defaulted by the schema). */
export type Stored<T extends KubeObject> = T & { metadata: { name: string; uid: string }; spec: NonNullable<T['spec']> };

export type ChangeHandler<T> = (current: DeepReadonly<T> | undefined, previous: DeepReadonly<T> | undefined) => void;

/** `namespace/name` for namespaced objects, `name` for cluster-scoped ones (the work-queue key). */
export function objectKey(obj: { metadata: { namespace?: string; name?: string } }): string {
  const name = obj.metadata.name ?? '';
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${name}` : name;
}

export function splitKey(key: string): { namespace?: string; name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export class Informer<T extends KubeObject, S extends Stored<T> = Stored<T>> {
  private readonly items = new Map<string, S>();
  private readonly handlers: ChangeHandler<S>[] = [];
  private resourceVersion = '';
  private syncedResolve!: () => void;
  /** Resolves once the first list has been loaded. */
  readonly synced: Promise<void> = new Promise((resolve) => (this.syncedResolve = resolve));
  private hasSyncedOnce = false;

  constructor(
    private readonly client: ApiClient,
    /** Collection path across namespaces, e.g. `/apis/slipway.dev/v1alpha1/services`. */
    readonly path: string,
    private readonly log: Logger,
  ) {}

  onChange(handler: ChangeHandler<S>): void {
    this.handlers.push(handler);
  }

  get(key: string): DeepReadonly<S> | undefined {
    return this.items.get(key) as DeepReadonly<S> | undefined;
  }

  list(filter?: (obj: DeepReadonly<S>) => boolean): DeepReadonly<S>[] {
    const all = [...this.items.values()] as DeepReadonly<S>[];
    return filter ? all.filter(filter) : all;
  }

  /** Runs until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(200, 5_000);
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
        }
        await this.watch(signal);
        backoff.reset();
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof ApiRequestError && err.code === 410) {
          this.log.info({ path: this.path }, 'watch history compacted; relisting');
          needList = true;
          continue;
        }
        this.log.warn({ path: this.path, err: (err as Error).message }, 'list/watch failed; retrying');
        await sleep(backoff.next(), signal);
      }
    }
  }

  private async relist(): Promise<void> {
    const list = await this.client.list<S>(this.path);
    const seen = new Set<string>();
    for (const obj of list.items) {
      const key = objectKey(obj);
      seen.add(key);
      this.apply(key, obj);
    }
    for (const key of [...this.items.keys()]) if (!seen.has(key)) this.apply(key, undefined);
    this.resourceVersion = list.metadata.resourceVersion ?? '';
    if (!this.hasSyncedOnce) {
      this.hasSyncedOnce = true;
      this.syncedResolve();
    }
  }

  private async watch(signal: AbortSignal): Promise<void> {
    await this.client.watch<S>(
      this.path,
      {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: 300 + Math.floor(Math.random() * 300),
      },
      (event: WatchEvent<S>) => {
        if (event.type === 'ERROR') {
          const status = event.object as unknown as { code?: number; message?: string };
          throw new ApiRequestError(status.code ?? 500, null, status.message ?? 'watch error');
        }
        const rv = event.object?.metadata?.resourceVersion;
        if (rv) this.resourceVersion = rv;
        if (event.type === 'BOOKMARK') return;
        const key = objectKey(event.object);
        this.apply(key, event.type === 'DELETED' ? undefined : event.object);
      },
      signal,
    );
  }

  private apply(key: string, obj: S | undefined): void {
    const previous = this.items.get(key);
    if (obj) {
      if (previous?.metadata.resourceVersion === obj.metadata.resourceVersion) return;
      this.items.set(key, deepFreeze(obj));
    } else {
      if (!previous) return;
      this.items.delete(key);
    }
    for (const handler of this.handlers) {
      try {
        handler(obj as DeepReadonly<S> | undefined, previous as DeepReadonly<S> | undefined);
      } catch (err) {
        this.log.error({ path: this.path, key, err: (err as Error).message }, 'informer handler failed');
      }
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
