// The one work-queue runner every controller uses: one entry per key (adds while queued are
// merged), never two workers on one key (an add during processing runs it again afterwards),
// per-key exponential backoff on failure, delayed adds, a global rate limit and a concurrency
// limit (p-queue). A failed reconcile is a retry, never a crash.

import PQueue from 'p-queue';

export interface ReconcileOutcome {
  /** Run the key again after this many milliseconds (level-triggered polling, e.g. waiting on health). */
  requeueAfterMs?: number;
}

/** A reconcile error that retrying cannot fix; the key is not retried until something changes. */
export class TerminalError extends Error {
  override name = 'TerminalError';
}

export interface WorkQueueOptions {
  concurrency: number;
  /** Most reconciles started per second across all keys. */
  ratePerSecond?: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
}

export type ProcessFn = (key: string) => Promise<ReconcileOutcome | void>;

export class WorkQueue {
  private readonly queue: PQueue;
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private stopped = false;
  private readonly baseBackoffMs: number;
  private readonly maxBackoffMs: number;

  constructor(
    private readonly process: ProcessFn,
    options: WorkQueueOptions,
    private readonly onError: (key: string, err: unknown, retryInMs: number | undefined) => void = () => {},
  ) {
    const rate = options.ratePerSecond ?? 100;
    this.queue = new PQueue({ concurrency: options.concurrency, intervalCap: Math.max(1, Math.round(rate / 10)), interval: 100 });
    this.baseBackoffMs = options.baseBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 60_000;
    this.queue.pause();
  }

  /** Workers start only once the caches are loaded. */
  start(): void {
    this.queue.start();
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    void this.queue.add(() => this.run(key));
  }

  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Keys waiting or running: the queue depth metric. */
  get depth(): number {
    return this.queued.size + this.processing.size;
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.queue.clear();
    await this.queue.onIdle();
  }

  private async run(key: string): Promise<void> {
    this.queued.delete(key);
    this.processing.add(key);
    try {
      const outcome = await this.process(key);
      this.failures.delete(key);
      if (outcome?.requeueAfterMs !== undefined) this.addAfter(key, outcome.requeueAfterMs);
    } catch (err) {
      if (err instanceof TerminalError) {
        this.failures.delete(key);
        this.onError(key, err, undefined);
      } else {
        const n = this.failures.get(key) ?? 0;
        this.failures.set(key, n + 1);
        const delay = Math.min(this.maxBackoffMs, this.baseBackoffMs * 2 ** n);
        this.onError(key, err, delay);
        this.addAfter(key, delay);
      }
    } finally {
      this.processing.delete(key);
      if (this.dirty.delete(key)) this.add(key);
    }
  }
}
