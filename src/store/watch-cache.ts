// The watch cache: one etcd watch per resource prefix, fanned out in-process to any number
// of API watches, with a window of recent events so a client can resume from a revision
// without another etcd watch. A revision older than the window falls back to a direct etcd
// watch (which reports 410 if etcd compacted it).

import type { EtcdStore, StoreWatch, WatchEventRaw } from './etcd-store.js';
import { StoreError } from './errors.js';

/** One change, shared by every subscriber; JSON is rendered at most once per event type. */
export class CachedEvent {
  private rendered = new Map<string, string>();
  constructor(readonly raw: WatchEventRaw) {}

  get revision(): number {
    return this.raw.revision;
  }

  /**
   * The newline-terminated watch line `{"type":T,"object":O}` for this event, where O is the
   * object after the change (`useNew`) or before it.
   */
  line(type: 'ADDED' | 'MODIFIED' | 'DELETED', useNew: boolean): string {
    const id = useNew ? type : `${type}-previous`;
    let line = this.rendered.get(id);
    if (line === undefined) {
      line = `{"type":"${type}","object":${JSON.stringify(useNew ? this.raw.object : this.raw.previous)}}\n`;
      this.rendered.set(id, line);
    }
    return line;
  }
}

export interface Subscriber {
  /** Only keys under this prefix are delivered (a namespace, or the whole resource). */
  keyPrefix: string;
  deliver(event: CachedEvent): void;
  /** The source failed; the subscriber must end its watch (clients relist on 410). */
  fail(err: StoreError): void;
}

export interface Subscription {
  close(): void;
}

export interface WatchCacheOptions {
  /** Keep events of at least this age for resuming watches. Defaults to 5 minutes, matching compaction. */
  windowMs?: number;
  /** Upper bound on buffered events. Defaults to 20,000. */
  maxEvents?: number;
}

export class WatchCache {
  private events: CachedEvent[] = [];
  private eventTimes: number[] = [];
  /** Every event with a revision above this is in `events`. */
  private windowStart = 0;
  private latest = 0;
  private readonly subscribers = new Set<Subscriber>();
  private watch: StoreWatch | null = null;
  private starting: Promise<void> | null = null;
  private stopped = false;
  private readonly windowMs: number;
  private readonly maxEvents: number;

  constructor(
    private readonly store: EtcdStore,
    readonly prefix: string,
    options: WatchCacheOptions = {},
  ) {
    this.windowMs = options.windowMs ?? 5 * 60_000;
    this.maxEvents = options.maxEvents ?? 20_000;
  }

  /** Starts following etcd (idempotent). Resolves once the etcd watch is established. */
  start(): Promise<void> {
    if (!this.starting) {
      this.starting = this.begin().catch((err) => {
        this.starting = null;
        throw err;
      });
    }
    return this.starting;
  }

  private async begin(fromRevision?: number): Promise<void> {
    const revision = fromRevision ?? (await this.store.revision());
    this.windowStart = revision;
    this.latest = Math.max(this.latest, revision);
    this.events = [];
    this.eventTimes = [];
    this.watch = await this.store.watch(this.prefix, revision, {
      event: (raw) => this.onEvent(raw),
      error: (err) => this.onError(err),
    });
  }

  /** The newest revision this cache knows to be complete; a valid bookmark. */
  get latestRevision(): number {
    return this.latest;
  }

  /** Number of subscribers (open watches) on this prefix. */
  get size(): number {
    return this.subscribers.size;
  }

  private onEvent(raw: WatchEventRaw): void {
    const event = new CachedEvent(raw);
    this.events.push(event);
    this.eventTimes.push(Date.now());
    this.latest = Math.max(this.latest, raw.revision);
    this.trim();
    for (const sub of this.subscribers) {
      if (raw.key.startsWith(sub.keyPrefix)) sub.deliver(event);
    }
  }

  private trim(): void {
    const cutoff = Date.now() - this.windowMs;
    let drop = 0;
    while (
      drop < this.events.length &&
      (this.events.length - drop > this.maxEvents || this.eventTimes[drop]! < cutoff)
    ) {
      drop++;
    }
    if (drop > 0) {
      this.windowStart = this.events[drop - 1]!.revision;
      this.events.splice(0, drop);
      this.eventTimes.splice(0, drop);
    }
  }

  private onError(err: StoreError): void {
    // The cache's own etcd watch died: every subscriber must relist; then follow etcd again
    // from its newest revision.
    for (const sub of [...this.subscribers]) sub.fail(err);
    this.subscribers.clear();
    this.watch = null;
    if (this.stopped) return;
    const restart = () => {
      if (this.stopped) return;
      this.begin().catch(() => setTimeout(restart, 1_000).unref());
    };
    restart();
  }

  /**
   * Delivers every event under `sub.keyPrefix` after `afterRevision`, then live events.
   * Returns null when `afterRevision` is older than the window: the caller must watch etcd directly.
   */
  subscribe(afterRevision: number, sub: Subscriber): Subscription | null {
    if (afterRevision < this.windowStart || !this.watch) return null;
    for (const event of this.events) {
      if (event.revision > afterRevision && event.raw.key.startsWith(sub.keyPrefix)) sub.deliver(event);
    }
    this.subscribers.add(sub);
    return { close: () => this.subscribers.delete(sub) };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const sub of this.subscribers) sub.fail(new StoreError('Unavailable', 'the API server is shutting down'));
    this.subscribers.clear();
    await this.watch?.cancel();
  }
}

/** A direct etcd watch for one subscriber whose revision is older than the cache window. */
export async function watchDirect(
  store: EtcdStore,
  afterRevision: number,
  sub: Subscriber,
): Promise<Subscription> {
  const watch = await store.watch(sub.keyPrefix, afterRevision, {
    event: (raw) => sub.deliver(new CachedEvent(raw)),
    error: (err) => sub.fail(err),
  });
  return { close: () => void watch.cancel() };
}

