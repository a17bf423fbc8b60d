// Leader election through a Lease object in the API, as client-go's leaderelection does: create or
// take over the Lease with a resourceVersion precondition, renew it every retry period, and give up
// leadership when a renewal has not succeeded within the renew deadline. Expiry is measured on this
// process's own clock from when it last saw the Lease change, so clock skew cannot steal a lease.

import type { Logger } from 'pino';
import type { Lease } from '../../api/generated/crd-types.js';
import { ApiRequestError, type ApiClient } from '../../client/api-client.js';
import { sleep } from './backoff.js';
import { nowIso } from './conditions.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  /** Written into the Lease so the API server can forward logs/exec requests to the leader. */
  holderAddress?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

export const LEASE_NAMESPACE = 'slipway-system';
export const LEASE_NAME = 'slipway-controller-manager';

export class LeaderElector {
  private observedRecord = '';
  private observedAt = 0;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly path: string;

  constructor(
    private readonly client: ApiClient,
    private readonly options: LeaderElectionOptions,
    private readonly log: Logger,
  ) {
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.path = `/apis/slipway.dev/v1alpha1/namespaces/${options.namespace}/leases`;
  }

  /**
   * Campaigns until this process leads, then calls `onLeading` and keeps renewing. Resolves when
   * leadership is lost (renewal failed for longer than the renew deadline) or the signal aborts;
   * on abort the Lease is released so a successor need not wait for it to expire.
   */
  async run(signal: AbortSignal, onLeading: () => void): Promise<'lost' | 'stopped'> {
    while (!signal.aborted && !(await this.tryAcquireOrRenew())) await sleep(this.retryPeriodMs, signal);
    if (signal.aborted) return 'stopped';
    this.log.info({ identity: this.options.identity }, 'became leader');
    onLeading();
    let lastRenew = Date.now();
    while (!signal.aborted) {
      await sleep(this.retryPeriodMs, signal);
      if (signal.aborted) break;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > this.renewDeadlineMs) {
        this.log.error({ identity: this.options.identity }, 'lost leadership: lease not renewed within the renew deadline');
        return 'lost';
      }
    }
    await this.release();
    return 'stopped';
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = nowIso();
    let lease: Lease;
    try {
      lease = await this.client.get<Lease>(`${this.path}/${this.options.name}`);
    } catch (err) {
      if (err instanceof ApiRequestError && err.code === 404) return this.create(now);
      this.log.warn({ err: (err as Error).message }, 'reading the leader lease failed');
      return false;
    }
    const spec = lease.spec ?? {};
    const record = `${spec.holderIdentity ?? ''}|${spec.renewTime ?? ''}|${lease.metadata.resourceVersion}`;
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = Date.now();
    }
    const held = !!spec.holderIdentity && spec.holderIdentity !== this.options.identity;
    const duration = (spec.leaseDurationSeconds ?? this.leaseDurationMs / 1000) * 1000;
    if (held && this.observedAt + duration > Date.now()) return false;
    const takingOver = spec.holderIdentity !== this.options.identity;
    const next: Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: this.options.identity,
        leaseDurationSeconds: Math.round(this.leaseDurationMs / 1000),
        acquireTime: takingOver ? now : (spec.acquireTime ?? now),
        renewTime: now,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver && spec.holderIdentity ? 1 : 0),
        ...(this.options.holderAddress ? { holderAddress: this.options.holderAddress } : {}),
      },
    };
    try {
      const written = await this.client.replace<Lease>(`${this.path}/${this.options.name}`, next);
      this.observedRecord = `${this.options.identity}|${now}|${written.metadata.resourceVersion}`;
      this.observedAt = Date.now();
      return true;
    } catch (err) {
      if (!(err instanceof ApiRequestError && err.code === 409)) this.log.warn({ err: (err as Error).message }, 'writing the leader lease failed');
      return false;
    }
  }

  private async create(now: string): Promise<boolean> {
    try {
      await this.client.create(this.path, {
        apiVersion: 'slipway.dev/v1alpha1',
        kind: 'Lease',
        metadata: { name: this.options.name, namespace: this.options.namespace },
        spec: {
          holderIdentity: this.options.identity,
          leaseDurationSeconds: Math.round(this.leaseDurationMs / 1000),
          acquireTime: now,
          renewTime: now,
          leaseTransitions: 0,
          ...(this.options.holderAddress ? { holderAddress: this.options.holderAddress } : {}),
        },
      });
      return true;
    } catch (err) {
      if (!(err instanceof ApiRequestError && err.code === 409)) this.log.warn({ err: (err as Error).message }, 'creating the leader lease failed');
      return false;
    }
  }

  /** Gives the lease up at shutdown (only if still ours). */
  private async release(): Promise<void> {
    try {
      const lease = await this.client.get<Lease>(`${this.path}/${this.options.name}`);
      if (lease.spec?.holderIdentity !== this.options.identity) return;
      await this.client.replace(`${this.path}/${this.options.name}`, { ...lease, spec: { ...lease.spec, holderIdentity: '', holderAddress: '' } });
    } catch {
      /* the lease expires on its own */
    }
  }
}
