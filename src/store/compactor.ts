// Compacts etcd history older than one interval (5 minutes by default), the way kube-apiserver
// does: each tick compacts to the revision seen at the previous tick. Watches and continue
// tokens older than that get 410 Gone, and etcd's database stays small.

import type { EtcdStore } from './etcd-store.js';

export class Compactor {
  private timer: NodeJS.Timeout | null = null;
  private previousRevision = 0;

  constructor(
    private readonly store: EtcdStore,
    private readonly intervalMs = 5 * 60_000,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  start(): void {
    if (this.timer) return;
    const tick = () => void this.tick().catch(this.onError);
    tick();
    this.timer = setInterval(tick, this.intervalMs);
    this.timer.unref();
  }

  async tick(): Promise<void> {
    const current = await this.store.revision();
    if (this.previousRevision > 0) {
      await this.store.compact(this.previousRevision).catch((err) => {
        // Another API server (or etcd's own auto-compaction) got there first.
        if (!/compacted/i.test(String(err?.message ?? err))) throw err;
      });
    }
    this.previousRevision = current;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
