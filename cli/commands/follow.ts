// Following several collections at once (a Service and its Releases, a Node and all Services)
// until a check over the latest objects holds: list each, then watch from that list's
// resourceVersion, relisting when the server says the version expired. Used by `rollout status`
// and `drain`.

import { ApiRequestError, type ApiClient, type Query } from '../../src/client/api-client.js';
import type { KubeObject } from '../../src/api/types.js';

/** The latest objects of one collection, keyed by namespace/name. */
export class Followed {
  readonly objects = new Map<string, KubeObject>();

  constructor(
    readonly path: string,
    readonly query: Query = {},
  ) {}

  get items(): KubeObject[] {
    return [...this.objects.values()];
  }

  reset(items: readonly KubeObject[]): void {
    this.objects.clear();
    for (const o of items) this.objects.set(keyOf(o), o);
  }

  apply(type: string, obj: KubeObject): void {
    if (type === 'DELETED') this.objects.delete(keyOf(obj));
    else this.objects.set(keyOf(obj), obj);
  }
}

const keyOf = (o: KubeObject): string => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/**
 * Lists and watches `collections`, calling `check` after the first lists and after every change.
 * Resolves true once `check` returns true, false when `signal` aborts first.
 */
export async function followUntil(client: ApiClient, collections: readonly Followed[], check: () => boolean, signal: AbortSignal): Promise<boolean> {
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  let done = false;
  const evaluate = () => {
    if (!done && !stop.signal.aborted && check()) {
      done = true;
      stop.abort();
    }
  };
  const relist = async (c: Followed): Promise<string> => {
    const list = await client.list(c.path, c.query);
    c.reset(list.items);
    return list.metadata.resourceVersion ?? '';
  };
  const follow = async (c: Followed, from: string): Promise<void> => {
    let resourceVersion = from;
    while (!stop.signal.aborted) {
      let expired = false;
      try {
        await client.watch(
          c.path,
          { ...c.query, resourceVersion, allowWatchBookmarks: true },
          (event) => {
            if (event.type === 'ERROR') {
              expired = true;
              return false;
            }
            resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion;
            if (event.type === 'BOOKMARK') return true;
            c.apply(event.type, event.object);
            evaluate();
            return !stop.signal.aborted;
          },
          stop.signal,
        );
      } catch (err) {
        if (!(err instanceof ApiRequestError && err.code === 410)) throw err;
        expired = true;
      }
      if (stop.signal.aborted) break;
      if (expired) {
        resourceVersion = await relist(c);
        evaluate();
      } else await new Promise((r) => setTimeout(r, 100)); // the stream ended: watch again, without spinning
    }
  };
  try {
    if (signal.aborted) return false;
    const versions = await Promise.all(collections.map(relist));
    evaluate();
    await Promise.all(
      collections.map((c, i) =>
        follow(c, versions[i]!).catch((err) => {
          stop.abort();
          throw err;
        }),
      ),
    );
    return done;
  } finally {
    signal.removeEventListener('abort', onAbort);
    stop.abort();
  }
}
