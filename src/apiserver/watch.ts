// WATCH over HTTP: a chunked stream of newline-delimited JSON events fed by the watch cache
// (one etcd watch per resource), with selector-aware ADDED/MODIFIED/DELETED, bookmarks,
// timeouts, 410 for compacted revisions, and slow clients cut off instead of buffered forever.

import type { ServerResponse } from 'node:http';
import type { KubeObject } from '../api/types.js';
import { matchesLabels, type Selector } from '../api/labels.js';
import type { EtcdStore } from '../store/etcd-store.js';
import type { StoreError } from '../store/errors.js';
import { CachedEvent, WatchCache, watchDirect, type Subscriber, type Subscription } from '../store/watch-cache.js';
import { ApiError, badRequest, expired } from './errors.js';
import { matchesFields, type FieldRequirement } from './field-selectors.js';
import type { ObjectService, Scope } from './objects.js';
import { apiVersionOf, resourcePrefix, type Resource } from './resources.js';

export interface WatchRequest {
  scope: Scope;
  resourceVersion?: string;
  labelSelector: Selector;
  fieldSelector: FieldRequirement[];
  bookmarks: boolean;
  timeoutSeconds?: number;
}

export interface WatchHubOptions {
  bookmarkIntervalMs?: number;
  /** A client further behind than this many buffered bytes is disconnected. */
  maxBufferedBytes?: number;
  onOpen?: (resource: Resource) => void;
  onClose?: (resource: Resource) => void;
}

const DEFAULT_TIMEOUT_SECONDS = 1800;

export class WatchHub {
  private readonly caches = new Map<string, WatchCache>();
  private readonly bookmarkIntervalMs: number;
  private readonly maxBufferedBytes: number;

  constructor(
    private readonly store: EtcdStore,
    private readonly objects: ObjectService,
    private readonly options: WatchHubOptions = {},
  ) {
    this.bookmarkIntervalMs = options.bookmarkIntervalMs ?? 10_000;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 16 * 1024 * 1024;
  }

  /** The shared cache of a resource: one etcd watch for all its watchers. */
  cacheFor(resource: Resource): WatchCache {
    const prefix = resourcePrefix(resource);
    let cache = this.caches.get(prefix);
    if (!cache) {
      cache = new WatchCache(this.store, prefix);
      this.caches.set(prefix, cache);
    }
    return cache;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.caches.values()].map((c) => c.stop()));
  }

  /**
   * Serves one watch on `res`. Errors found before streaming (bad revision, 410) are thrown as
   * ApiErrors for the normal error path; later ones end the stream with an ERROR event.
   */
  async serve(res: ServerResponse, req: WatchRequest): Promise<void> {
    const { scope } = req;
    const { resource } = scope;
    const rvText = req.resourceVersion ?? '';
    if (rvText !== '' && !/^\d{1,15}$/.test(rvText)) throw badRequest(`invalid resourceVersion ${JSON.stringify(rvText)}: must be a number`);
    const cache = this.cacheFor(resource);
    await cache.start();

    const apiVersion = apiVersionOf(resource, scope.version.name);
    const convert = apiVersion !== apiVersionOf(resource);
    const match = (o: KubeObject) => matchesLabels(req.labelSelector, o.metadata.labels) && matchesFields(req.fieldSelector, o);
    const pending: string[] = [];
    let open = false;
    let closed = false;
    let lastRevision = 0;
    let subscription: Subscription | null = null;
    const write = (line: string) => {
      if (closed) return;
      if (!open) {
        pending.push(line);
        return;
      }
      res.write(line);
      if (res.writableLength > this.maxBufferedBytes) {
        finish(expired('the watch was closed because the client could not keep up; please relist and watch again'));
      }
    };
    const lineOf = (event: CachedEvent, type: 'ADDED' | 'MODIFIED' | 'DELETED', useNew: boolean) => {
      if (!convert) return event.line(type, useNew);
      const obj = { ...(useNew ? event.raw.object : event.raw.previous)!, apiVersion };
      return `${JSON.stringify({ type, object: obj })}\n`;
    };
    const subscriber: Subscriber = {
      keyPrefix: resourcePrefix(resource, scope.namespace),
      deliver: (event) => {
        const { object, previous } = event.raw;
        lastRevision = Math.max(lastRevision, event.revision);
        if (!object) {
          if (previous && match(previous)) write(lineOf(event, 'DELETED', false));
          return;
        }
        const now = match(object);
        const before = previous !== null && match(previous);
        if (now && before) write(lineOf(event, 'MODIFIED', true));
        else if (now) write(lineOf(event, 'ADDED', true));
        else if (before) write(lineOf(event, 'DELETED', true));
      },
      fail: (err: StoreError) => finish(expired(`the watch ended and must be restarted from a new list: ${err.message}`)),
    };

    const timers: NodeJS.Timeout[] = [];
    const finish = (error?: ApiError) => {
      if (closed) return;
      if (error && open) res.write(`${JSON.stringify({ type: 'ERROR', object: error.toStatus() })}\n`);
      closed = true;
      for (const t of timers) clearTimeout(t);
      subscription?.close();
      this.options.onClose?.(resource);
      if (open) res.end();
    };

    let afterRevision: number;
    const initial: string[] = [];
    if (rvText === '' || rvText === '0') {
      const list = await this.objects.list(scope, { labelSelector: req.labelSelector, fieldSelector: req.fieldSelector });
      for (const item of list.items) initial.push(`${JSON.stringify({ type: 'ADDED', object: item })}\n`);
      afterRevision = Number(list.metadata.resourceVersion);
    } else {
      afterRevision = Number(rvText);
    }
    lastRevision = afterRevision;
    this.options.onOpen?.(resource);
    try {
      subscription = cache.subscribe(afterRevision, subscriber);
      if (!subscription) {
        await this.checkNotCompacted(subscriber.keyPrefix, afterRevision);
        subscription = await watchDirect(this.store, afterRevision, subscriber);
      }
    } catch (err) {
      finish();
      throw err;
    }
    if (closed) {
      // Failed while subscribing (e.g. the cache restarted): report as an HTTP error.
      throw expired(`too old resource version: ${afterRevision}`);
    }

    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'X-Content-Type-Options': 'nosniff' });
    // Send the headers now: a watch from a recent revision may see no event for a long time.
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    open = true;
    for (const line of initial) res.write(line);
    for (const line of pending.splice(0)) res.write(line);
    res.on('close', () => finish());

    if (req.bookmarks) {
      const bookmark = () => {
        if (closed) return;
        const rv = Math.max(lastRevision, cache.latestRevision);
        write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: resource.kind, apiVersion, metadata: { resourceVersion: String(rv) } } })}\n`);
        timers.push(setTimeout(bookmark, this.bookmarkIntervalMs));
      };
      timers.push(setTimeout(bookmark, this.bookmarkIntervalMs));
    }
    const timeout = req.timeoutSeconds && req.timeoutSeconds > 0 ? req.timeoutSeconds : DEFAULT_TIMEOUT_SECONDS * (1 + Math.random());
    timers.push(setTimeout(() => finish(), timeout * 1000));
  }

  /** A revision older than etcd's compaction point gets 410 before any streaming starts. */
  private async checkNotCompacted(prefix: string, afterRevision: number): Promise<void> {
    try {
      await this.store.list(prefix, { revision: afterRevision + 1, limit: 1 });
    } catch (err) {
      if ((err as StoreError).code === 'Compacted') {
        throw expired(`too old resource version: ${afterRevision} (the requested revision has been compacted)`);
      }
      throw err;
    }
  }
}
