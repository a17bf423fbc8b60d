// The domain controller: one key per Domain. It proves DNS ownership (TXT token, or CNAME/A to the
// edge) with backoff, which lets the edge route the hostname (the edge routes Domains whose
// DNSVerified condition is True); then it watches the certificate appear by probing the edge with
// SNI = hostname (with on-demand TLS that handshake is what makes Caddy obtain it), counts issuance
// attempts against an hourly budget, and holds a finalizer until the edge no longer serves a
// deleted Domain. Every decision reads the Domain's status, so a restart resumes where it was.

import type { Domain, DomainSpec, Service } from '../api/generated/crd-types.js';
import { VERIFY_REQUESTED_AT_ANNOTATION } from '../api/service-contract.js';
import { ApiRequestError, type ApiClient } from '../client/api-client.js';
import type { EventRecorder } from '../client/event-recorder.js';
import type { DnsChecker } from '../domains/dns-check.js';
import { issuanceBlockedUntil, recentFailures, recordFailure, type Issuance } from '../domains/issuance.js';
import { expiryView } from '../domains/expiry.js';
import { expectedRecords, verificationToken } from '../domains/records.js';
import type { DomainSettings } from '../domains/settings.js';
import { probeCertificate, probeRoute, type ProbeOutcome, type ServedCertificate } from '../domains/tls-probe.js';
import type { Controller, ReconcileContext } from './runtime/controller.js';
import { getCondition, setCondition, type Condition } from './runtime/conditions.js';
import { objectKey, splitKey, type DeepReadonly, type Informer, type Stored } from './runtime/informer.js';
import type { ReconcileOutcome } from './runtime/work-queue.js';

/** Held on every Domain until the edge no longer serves its hostname. */
export const DOMAIN_FINALIZER = 'slipway.dev/domain-route';

const API = '/apis/slipway.dev/v1alpha1';
type DomainStatus = NonNullable<Domain['status']>;
type RO<T> = DeepReadonly<T>;
type StoredDomain = RO<Stored<Domain>>;

export interface DomainControllerOptions {
  client: ApiClient;
  domains: Informer<Domain>;
  services: Informer<Service>;
  events: EventRecorder;
  dns: DnsChecker;
  /** Keys the verification tokens (the uid of the installation's slipway-system Namespace). */
  clusterId: string;
  settings: DomainSettings;
  clock?: () => number;
}

const iso = (ms: number) => new Date(ms).toISOString();
const copy = <T>(v: T): T => (v === undefined ? v : JSON.parse(JSON.stringify(v)));

export class DomainController implements Controller {
  readonly name = 'domains';
  readonly concurrency = 8;
  private readonly now: () => number;

  constructor(private readonly o: DomainControllerOptions) {
    this.now = o.clock ?? Date.now;
  }

  /** Keys of the Domains routed to a Service (the wiring enqueues them when the Service changes). */
  domainsOf(namespace: string, service: string): string[] {
    return this.o.domains.list((d) => d.metadata.namespace === namespace && d.spec.service === service).map(objectKey);
  }

  /** Keys of the Domains claiming a hostname (a conflict resolves when one goes). */
  domainsClaiming(hostname: string): string[] {
    return this.o.domains.list((d) => d.spec.hostname === hostname).map(objectKey);
  }

  async reconcile(ctx: ReconcileContext, key: string): Promise<ReconcileOutcome | void> {
    const domain = this.o.domains.get(key);
    if (!domain) return;
    const { namespace, name } = splitKey(key);
    const path = `${API}/namespaces/${encodeURIComponent(namespace!)}/domains/${encodeURIComponent(name)}`;
    if (domain.metadata.deletionTimestamp) return this.finalize(ctx, domain, path);
    if (!(domain.metadata.finalizers ?? []).includes(DOMAIN_FINALIZER)) {
      // The next reconcile comes with the write's watch event.
      await this.o.client.patch(path, [domain.metadata.finalizers ? { op: 'add', path: '/metadata/finalizers/-', value: DOMAIN_FINALIZER } : { op: 'add', path: '/metadata/finalizers', value: [DOMAIN_FINALIZER] }], 'json');
      return;
    }
    const status = this.statusForSpec(domain);
    const outcome = await this.step(ctx, domain, status);
    if (JSON.stringify(status) !== JSON.stringify(domain.status ?? {})) {
      try {
        // Pinned to the version read: a status computed from a stale cache is not written.
        await this.o.client.patch(`${path}/status`, [{ op: 'replace', path: '/metadata/resourceVersion', value: domain.metadata.resourceVersion }, { op: 'add', path: '/status', value: status }], 'json');
      } catch (err) {
        if (err instanceof ApiRequestError && err.code === 404) return;
        if (err instanceof ApiRequestError && err.code === 409) return { requeueAfterMs: 100 };
        throw err;
      }
    }
    return outcome;
  }

  /** The current status, reset to PendingDNS when the spec changed since it was written. */
  private statusForSpec(domain: StoredDomain): DomainStatus {
    const generation = domain.metadata.generation ?? 0;
    const current = copy(domain.status ?? {}) as DomainStatus;
    if (current.observedGeneration === generation) return current;
    // A new hostname or method must be proven again; the issuance budget is per hostname, so it is kept when the hostname is.
    const sameHost = current.expectedRecords?.some((r) => r.name === domain.spec.hostname || r.name.endsWith(`.${domain.spec.hostname}`));
    return {
      observedGeneration: generation,
      phase: 'PendingDNS',
      attempts: 0,
      ...(current.verificationToken ? { verificationToken: current.verificationToken } : {}),
      ...(sameHost && current.issuance?.failureTimes?.length ? { issuance: { failureTimes: current.issuance.failureTimes, ...(current.issuance.nextAttemptTime ? { nextAttemptTime: current.issuance.nextAttemptTime } : {}) } } : {}),
      conditions: setCondition(setCondition(current.conditions as Condition[] | undefined, { type: 'DNSVerified', status: 'False', reason: 'Pending', message: 'waiting for the DNS records in expectedRecords', observedGeneration: generation }), { type: 'Ready', status: 'False', reason: 'PendingDNS', observedGeneration: generation }),
    };
  }

  /** Moves the Domain one step along PendingDNS → DNSVerified → Issuing → Ready, editing `s` in place. */
  private async step(ctx: ReconcileContext, domain: StoredDomain, s: DomainStatus): Promise<ReconcileOutcome | void> {
    const now = this.now();
    const spec = domain.spec as RO<DomainSpec>;
    const generation = domain.metadata.generation ?? 0;
    const cfg = this.o.settings;
    s.verificationToken = verificationToken(this.o.clusterId, domain.metadata.uid!);

    const conflict = this.conflict(domain);
    if (conflict) {
      this.setFailed(s, generation, 'HostnameConflict', conflict);
      s.conditions = setCondition(s.conditions as Condition[], { type: 'DNSVerified', status: 'False', reason: 'HostnameConflict', message: conflict, observedGeneration: generation });
      if (domain.status?.lastError !== conflict) void this.o.events.record(domain as Domain, 'Warning', 'DomainFailed', conflict);
      return;
    }
    const plan = expectedRecords(spec, s.verificationToken, cfg);
    if (plan.error) {
      s.expectedRecords = [];
      this.setFailed(s, generation, 'NoVerificationTarget', plan.error);
      return;
    }

    // An operator's request to check now (a new annotation value) skips the wait and the negative cache.
    const verifyRequest = domain.metadata.annotations?.[VERIFY_REQUESTED_AT_ANNOTATION];
    const verifyNow = verifyRequest !== undefined && verifyRequest !== s.observedVerifyRequest;
    if (verifyNow) s.observedVerifyRequest = verifyRequest.slice(0, 64);

    // 1. DNS ownership, checked on a backoff schedule until proven.
    if (getCondition(s.conditions as Condition[], 'DNSVerified')?.status !== 'True') {
      s.expectedRecords = mergeObserved(plan.records, s.expectedRecords);
      const due = Date.parse(s.nextCheckTime ?? '') || 0;
      if (due > now && !verifyNow) return { requeueAfterMs: due - now };
      const check = await this.o.dns.check(plan.records, plan.required, verifyNow);
      s.expectedRecords = check.records;
      s.attempts = (s.attempts ?? 0) + 1;
      s.lastCheckTime = iso(now);
      if (!check.verified) {
        const delay = Math.min(cfg.dnsCheckMaxMs, cfg.dnsCheckBaseMs * 2 ** Math.min(30, s.attempts - 1));
        s.phase = 'PendingDNS';
        s.lastError = check.problem!;
        s.nextCheckTime = iso(now + delay);
        s.conditions = setCondition(s.conditions as Condition[], { type: 'DNSVerified', status: 'False', reason: 'RecordsMissing', message: check.problem!.slice(0, 1024), observedGeneration: generation });
        return { requeueAfterMs: delay };
      }
      delete s.lastError;
      delete s.nextCheckTime;
      s.verifiedTime = iso(now);
      s.phase = 'DNSVerified';
      s.conditions = setCondition(s.conditions as Condition[], { type: 'DNSVerified', status: 'True', reason: 'RecordsFound', message: `found ${plan.records.slice(0, plan.required).map((r) => `${r.type} ${r.name}`).join(', ')}`, observedGeneration: generation });
      ctx.log.info({ hostname: spec.hostname, checks: s.attempts }, 'domain DNS verified');
      void this.o.events.record(domain as Domain, 'Normal', 'DNSVerified', `DNS ownership of ${spec.hostname} verified; the edge routes it now`);
      // The certificate is looked at in the reconcile that the watch event of this status write brings.
      return;
    }

    // On a verified Domain a request re-checks the records: a warning when they are gone, but the
    // route stays (ownership was proven; a DNS hiccup must not take a customer's site down).
    if (verifyNow) {
      const check = await this.o.dns.check(plan.records, plan.required, true);
      s.expectedRecords = check.records;
      s.lastCheckTime = iso(now);
      if (!check.verified) {
        void this.o.events.record(domain as Domain, 'Warning', 'DNSRecordsMissing', `${check.problem}; ${spec.hostname} stays routed (ownership was verified at ${s.verifiedTime ?? 'an earlier check'})`.slice(0, 1000));
      }
    }

    // 2. The route needs a Service with an active release before the edge serves anything.
    const service = this.o.services.get(`${domain.metadata.namespace}/${spec.service}`);
    if (!service?.status?.activeRelease) {
      const message = service ? `Service ${spec.service} has no active release yet` : `Service ${spec.service} not found in namespace ${domain.metadata.namespace}`;
      s.phase = 'DNSVerified';
      s.lastError = message;
      s.conditions = setCondition(s.conditions as Condition[], { type: 'CertificateReady', status: 'False', reason: 'WaitingForService', message, observedGeneration: generation });
      s.conditions = setCondition(s.conditions as Condition[], { type: 'Ready', status: 'False', reason: 'WaitingForService', message, observedGeneration: generation });
      return;
    }

    // 3. The certificate: within the budget, probe until the edge serves a valid one or the attempt times out.
    const issuance: Issuance = { ...(s.issuance ?? {}) };
    const failures = recentFailures(issuance, now);
    issuance.failureTimes = failures;
    if (!failures.length) delete issuance.failureTimes;
    s.issuanceFailures = failures.length;
    const blockedUntil = issuanceBlockedUntil(issuance, now);
    if (blockedUntil !== undefined && s.phase !== 'Ready') {
      s.issuance = issuance;
      s.phase = 'Failed';
      s.nextCheckTime = iso(blockedUntil);
      return { requeueAfterMs: blockedUntil - now };
    }
    const started = Date.parse(issuance.startedTime ?? '');
    if (!Number.isFinite(started) && s.phase !== 'Ready') {
      // The attempt is recorded before the probe that starts it, so a crash mid-attempt still counts it.
      issuance.startedTime = iso(now);
      issuance.attempts = (issuance.attempts ?? 0) + 1;
      s.issuance = issuance;
      s.phase = 'Issuing';
      delete s.nextCheckTime;
      return; // the watch event of this status write brings the probe
    }
    const windowEnd = Number.isFinite(started) ? started + cfg.issuanceTimeoutMs : now + cfg.issuanceTimeoutMs;
    const outcome = await probeCertificate({ address: cfg.edgeProbeAddress, hostname: spec.hostname, ...(cfg.trustedRootsPem ? { trustedRootsPem: cfg.trustedRootsPem } : {}), timeoutMs: Math.max(1_000, windowEnd - now) });
    const after = this.now();
    s.lastCheckTime = iso(after);
    if (outcome.kind === 'valid') return this.certificateServed(domain, s, issuance, outcome.certificate, after);

    // No valid certificate: an attempt is in progress (or, for a Ready Domain, starts now) until its window closes.
    if (!Number.isFinite(started)) {
      issuance.startedTime = iso(now);
      issuance.attempts = (issuance.attempts ?? 0) + 1;
    }
    s.lastError = outcome.error;
    s.conditions = setCondition(s.conditions as Condition[], { type: 'CertificateReady', status: 'False', reason: reasonOf(outcome), message: outcome.error.slice(0, 1024), observedGeneration: generation });
    s.conditions = setCondition(s.conditions as Condition[], { type: 'Ready', status: 'False', reason: 'CertificateNotReady', message: outcome.error.slice(0, 1024), observedGeneration: generation });
    if (after < windowEnd) {
      s.issuance = issuance;
      s.phase = 'Issuing';
      delete s.nextCheckTime;
      return { requeueAfterMs: Math.min(cfg.probeIntervalMs, windowEnd - after) };
    }
    const failed = recordFailure(issuance, after, { baseBackoffMs: cfg.issuanceBackoffBaseMs, maxBackoffMs: cfg.issuanceBackoffMaxMs });
    s.issuance = failed;
    s.issuanceFailures = failed.failureTimes!.length;
    s.phase = 'Failed';
    s.nextCheckTime = failed.nextAttemptTime!;
    s.conditions = setCondition(s.conditions as Condition[], { type: 'CertificateReady', status: 'False', reason: 'IssuanceFailed', message: outcome.error.slice(0, 1024), observedGeneration: generation });
    const message = `no valid certificate for ${spec.hostname} within ${Math.round(cfg.issuanceTimeoutMs / 1000)} s (failure ${failed.failureTimes!.length} of at most 5 per hour; next attempt at ${failed.nextAttemptTime}): ${outcome.error}`;
    s.lastError = message;
    ctx.log.warn({ hostname: spec.hostname, failures: failed.failureTimes!.length, nextAttemptTime: failed.nextAttemptTime }, 'certificate issuance failed');
    void this.o.events.record(domain as Domain, 'Warning', 'CertificateFailed', message.slice(0, 1024));
    return { requeueAfterMs: Math.max(0, Date.parse(failed.nextAttemptTime!) - after) };
  }

  private certificateServed(domain: StoredDomain, s: DomainStatus, issuance: Issuance, cert: ServedCertificate, now: number): ReconcileOutcome {
    const generation = domain.metadata.generation ?? 0;
    const cfg = this.o.settings;
    const hostname = domain.spec.hostname;
    const isNew = domain.status?.certificate?.serialNumber !== cert.serialNumber || domain.status?.phase !== 'Ready';
    delete issuance.startedTime;
    s.issuance = issuance;
    s.certificate = cert;
    s.phase = 'Ready';
    delete s.lastError;
    const expiry = expiryView(cert.notAfter, now, cfg.expiryWarningDays, cfg.certificateRecheckMs);
    s.nextCheckTime = iso(now + expiry.recheckInMs);
    s.conditions = setCondition(s.conditions as Condition[], { type: 'CertificateReady', status: 'True', reason: 'CertificateServed', message: `issued by ${cert.issuer}, valid until ${cert.notAfter}`, observedGeneration: generation });
    s.conditions = setCondition(s.conditions as Condition[], { type: 'Ready', status: 'True', reason: 'Ready', message: `https://${hostname} is served with a valid certificate`, observedGeneration: generation });
    const wasExpiring = getCondition(domain.status?.conditions as Condition[] | undefined, 'CertificateExpiringSoon')?.status === 'True';
    const days = expiry.daysLeft;
    s.conditions = setCondition(s.conditions as Condition[], expiry.expiringSoon
      ? { type: 'CertificateExpiringSoon', status: 'True', reason: 'ExpiresSoon', message: `the certificate expires at ${cert.notAfter}, in ${days} days`, observedGeneration: generation }
      : { type: 'CertificateExpiringSoon', status: 'False', reason: 'NotExpiring', observedGeneration: generation });
    if (isNew) void this.o.events.record(domain as Domain, 'Normal', 'CertificateIssued', `the edge serves a certificate for ${hostname} issued by ${cert.issuer}, serial ${cert.serialNumber}, valid until ${cert.notAfter}`);
    if (expiry.expiringSoon && !wasExpiring) void this.o.events.record(domain as Domain, 'Warning', 'CertificateExpiring', `the certificate for ${hostname} expires at ${cert.notAfter}, in ${days} days`);
    return { requeueAfterMs: expiry.recheckInMs };
  }

  private setFailed(s: DomainStatus, generation: number, reason: string, message: string): void {
    s.phase = 'Failed';
    s.lastError = message;
    s.conditions = setCondition(s.conditions as Condition[], { type: 'Ready', status: 'False', reason, message, observedGeneration: generation });
  }

  /** Why this Domain may not have its hostname: a Service's edge host, or an older Domain, already claims it. */
  private conflict(domain: StoredDomain): string | undefined {
    const host = domain.spec.hostname;
    const svc = this.o.services.list((s) => (s.spec.edge?.hosts ?? []).some((h) => h.toLowerCase() === host))[0];
    if (svc) return `hostname ${host} is already served by Service ${objectKey(svc)} (spec.edge.hosts)`;
    const rank = (d: StoredDomain) => `${d.metadata.creationTimestamp ?? ''} ${objectKey(d)}`;
    const older = this.o.domains.list((d) => d !== domain && d.spec.hostname === host && !d.metadata.deletionTimestamp && rank(d) < rank(domain))[0];
    return older ? `hostname ${host} is already claimed by Domain ${objectKey(older)}` : undefined;
  }

  /** A deleted Domain keeps its finalizer until the edge answers 404 for it (or no longer serves TLS for it). */
  private async finalize(ctx: ReconcileContext, domain: StoredDomain, path: string): Promise<ReconcileOutcome | void> {
    const index = (domain.metadata.finalizers ?? []).indexOf(DOMAIN_FINALIZER);
    if (index < 0) return;
    const cfg = this.o.settings;
    const hostname = domain.spec.hostname;
    const result = await probeRoute({ address: cfg.edgeProbeAddress, hostname, timeoutMs: 3_000 });
    const gone = 'status' in result ? result.status === 404 : result.gone;
    const waitedMs = this.now() - (Date.parse(domain.metadata.deletionTimestamp ?? '') || this.now());
    if (!gone && waitedMs < cfg.finalizerTimeoutMs) return { requeueAfterMs: cfg.probeIntervalMs };
    if (!gone) {
      const seen = 'status' in result ? `HTTP ${result.status}` : result.error;
      void this.o.events.record(domain as Domain, 'Warning', 'RouteRemovalTimeout', `the edge still answered for ${hostname} (${seen}) ${Math.round(waitedMs / 1000)} s after deletion; removing the finalizer anyway`);
    }
    ctx.log.info({ hostname, gone }, 'domain route removed; releasing finalizer');
    try {
      await this.o.client.patch(path, [{ op: 'test', path: `/metadata/finalizers/${index}`, value: DOMAIN_FINALIZER }, { op: 'remove', path: `/metadata/finalizers/${index}` }], 'json');
    } catch (err) {
      if (err instanceof ApiRequestError && err.code === 404) return;
      throw err;
    }
  }
}

/** The new expected records, keeping what the last check observed for records that did not change. */
function mergeObserved(records: DomainStatus['expectedRecords'] & object, previous: DomainStatus['expectedRecords']): NonNullable<DomainStatus['expectedRecords']> {
  return records.map((r) => {
    const seen = previous?.find((p) => p.type === r.type && p.name === r.name && p.value === r.value);
    return seen?.observed !== undefined ? { ...r, observed: seen.observed } : r;
  });
}

function reasonOf(outcome: Exclude<ProbeOutcome, { kind: 'valid' }>): string {
  return outcome.kind === 'invalid' ? 'InvalidCertificate' : outcome.kind === 'unreachable' ? 'EdgeUnreachable' : 'Issuing';
}
