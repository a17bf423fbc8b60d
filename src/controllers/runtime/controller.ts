// What a controller is (a name and an idempotent, level-triggered `reconcile(ctx, key)`), and the
// runner that feeds it keys from the shared work queue with logging and metrics around each run.

import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ControllerMetrics } from './metrics.js';
import { TerminalError, WorkQueue, type ReconcileOutcome } from './work-queue.js';

export interface ReconcileContext {
  /** Logger carrying `{controller, key, reconcileId}`. */
  log: Logger;
  reconcileId: string;
}

export interface Controller {
  readonly name: string;
  /** Keys reconciled at once (never two workers on one key). Defaults to 4. */
  readonly concurrency?: number;
  /** Reads the whole current state for `key` and moves the world one safe step toward it. */
  reconcile(ctx: ReconcileContext, key: string): Promise<ReconcileOutcome | void>;
}

export class ControllerRunner {
  readonly queue: WorkQueue;
  private readonly log: Logger;

  constructor(
    readonly controller: Controller,
    private readonly metrics: ControllerMetrics,
    log: Logger,
  ) {
    this.log = log.child({ controller: controller.name });
    this.queue = new WorkQueue((key) => this.runOnce(key), { concurrency: controller.concurrency ?? 4 }, (key, err, retryInMs) => {
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof TerminalError) this.log.error({ key, err: message }, 'reconcile failed permanently');
      else this.log.warn({ key, err: message, retryInMs }, 'reconcile failed; will retry');
    });
  }

  enqueue = (key: string): void => {
    this.queue.add(key);
    this.metrics.depth.set({ controller: this.controller.name }, this.queue.depth);
  };

  enqueueAfter = (key: string, delayMs: number): void => this.queue.addAfter(key, delayMs);

  start(): void {
    this.queue.start();
  }

  shutdown(): Promise<void> {
    return this.queue.shutdown();
  }

  private async runOnce(key: string): Promise<ReconcileOutcome | void> {
    const name = this.controller.name;
    const reconcileId = randomUUID();
    const log = this.log.child({ key, reconcileId });
    const end = this.metrics.duration.startTimer({ controller: name });
    try {
      const outcome = await this.controller.reconcile({ log, reconcileId }, key);
      this.metrics.reconciles.inc({ controller: name, result: outcome?.requeueAfterMs !== undefined ? 'requeue' : 'success' });
      return outcome;
    } catch (err) {
      this.metrics.reconciles.inc({ controller: name, result: 'error' });
      this.metrics.errors.inc({ controller: name });
      throw err;
    } finally {
      end();
      this.metrics.depth.set({ controller: name }, Math.max(0, this.queue.depth - 1));
    }
  }
}
