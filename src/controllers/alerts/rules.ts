// Alert rule types: their defaults, the built-in rules, Alert naming, and the pure evaluation of
// one rule over the objects the controller manager caches (Nodes, Releases, Domains, Backups,
// BackupPolicies). HttpErrorRate and HttpLatencyP95 need the edge's HTTP metrics, which are not
// collected yet: they evaluate to "no data" and never raise an Alert.

import { createHash } from 'node:crypto';
import type { AlertRule, AlertRuleSpec, Backup, BackupPolicy, Domain, Node, Release } from '../../api/generated/crd-types.js';
import type { Condition } from '../../api/types.js';
import type { DeepReadonly } from '../runtime/informer.js';
import { parseDuration } from '../service-controller.js';

export type RuleType = AlertRuleSpec['type'];
export type Severity = NonNullable<AlertRuleSpec['severity']>;

interface TypeDefaults {
  threshold?: number;
  for: string;
  window?: string;
  severity: Severity;
}

/** Per-type defaults (documented in crds/alertrules.slipway.dev.yaml). */
export const RULE_DEFAULTS: Record<RuleType, TypeDefaults> = {
  NodeNotReady: { for: '0s', severity: 'critical' },
  NodeDiskPressure: { threshold: 0.85, for: '5m', severity: 'warning' },
  NodeMemoryPressure: { threshold: 0.9, for: '5m', severity: 'warning' },
  DeployFailureRate: { threshold: 0.5, for: '0s', window: '1h', severity: 'warning' },
  CertificateExpiring: { threshold: 14, for: '0s', severity: 'warning' },
  BackupFailed: { threshold: 1, for: '0s', severity: 'critical' },
  BackupStale: { for: '0s', severity: 'critical' },
  HttpErrorRate: { threshold: 0.05, for: '5m', window: '5m', severity: 'critical' },
  HttpLatencyP95: { threshold: 1, for: '10m', window: '5m', severity: 'warning' },
};

export const RULE_TYPES = Object.keys(RULE_DEFAULTS) as RuleType[];

/** `builtin-node-not-ready` for `NodeNotReady`. */
export const builtinRuleName = (type: RuleType) => `builtin-${type.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase()}`;

export const BUILTIN_RULE_NAMES = new Map(RULE_TYPES.map((t) => [builtinRuleName(t), t]));

/** The AlertRule object the controller creates for a missing built-in rule. */
export function builtinRule(type: RuleType): AlertRule {
  const d = RULE_DEFAULTS[type];
  return {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'AlertRule',
    metadata: { name: builtinRuleName(type), labels: { 'slipway.dev/builtin': 'true' } },
    spec: {
      type,
      ...(d.threshold !== undefined ? { threshold: d.threshold } : {}),
      for: d.for,
      ...(d.window ? { window: d.window } : {}),
      severity: d.severity,
      disabled: false,
    },
  };
}

/** A rule with every default applied. */
export interface ResolvedRule {
  name: string;
  type: RuleType;
  threshold: number;
  forMs: number;
  windowMs: number;
  window: string;
  severity: Severity;
  labels: Record<string, string>;
}

/** Throws on an unparsable duration (the schema's pattern normally prevents it). */
export function resolveRule(rule: DeepReadonly<AlertRule>): ResolvedRule {
  const spec = rule.spec!;
  const d = RULE_DEFAULTS[spec.type];
  const window = spec.window ?? d.window ?? '1h';
  return {
    name: rule.metadata.name!,
    type: spec.type,
    threshold: spec.threshold ?? d.threshold ?? 0,
    forMs: parseDuration(spec.for ?? d.for),
    windowMs: parseDuration(window),
    window,
    severity: spec.severity ?? d.severity,
    labels: { ...(spec.labels ?? {}) },
  };
}

export interface Subject {
  kind: string;
  namespace?: string;
  name: string;
}

export interface Finding {
  subject: Subject;
  value: number;
  message: string;
}

export interface Evaluation {
  findings: Finding[];
  /** Set when the rule cannot be evaluated (no data): no Alert is raised. */
  noData?: string;
}

/** Read access to the cached objects a rule may need. */
export interface AlertSources {
  nodes(): ReadonlyArray<DeepReadonly<Node>>;
  releases(): ReadonlyArray<DeepReadonly<Release>>;
  domains(): ReadonlyArray<DeepReadonly<Domain>>;
  backups(): ReadonlyArray<DeepReadonly<Backup>>;
  backupPolicies(): ReadonlyArray<DeepReadonly<BackupPolicy>>;
}

/** Kinds whose changes can change the outcome of a rule of each type. */
export const RULE_INPUTS: Record<RuleType, string[]> = {
  NodeNotReady: ['Node'],
  NodeDiskPressure: ['Node'],
  NodeMemoryPressure: ['Node'],
  DeployFailureRate: ['Release'],
  CertificateExpiring: ['Domain'],
  BackupFailed: ['Backup'],
  BackupStale: ['BackupPolicy'],
  HttpErrorRate: [],
  HttpLatencyP95: [],
};

/** Deterministic Alert name for (rule, subject): `<rule>.<kind>.[<namespace>.]<name>`, hashed when too long. */
export function alertName(rule: string, subject: Subject): string {
  const name = [rule, subject.kind.toLowerCase(), ...(subject.namespace ? [subject.namespace] : []), subject.name].join('.');
  if (name.length <= 253) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 16);
  return `${rule.slice(0, 200).replace(/[.-]+$/, '')}.${hash}`;
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;
const condition = (conditions: ReadonlyArray<DeepReadonly<Condition>> | undefined, type: string) => conditions?.find((c) => c.type === type);
const pct = (fraction: number) => `${Math.round(fraction * 100)}%`;

export function evaluate(rule: ResolvedRule, src: AlertSources, now: number): Evaluation {
  switch (rule.type) {
    case 'NodeNotReady':
      return {
        findings: src.nodes().flatMap((node) => {
          const ready = condition(node.status?.conditions, 'Ready');
          if (ready?.status !== 'False') return [];
          return [{ subject: { kind: 'Node', name: node.metadata.name! }, value: 1, message: `Node ${node.metadata.name} is NotReady${ready.reason ? ` (${ready.reason})` : ''} since ${ready.lastTransitionTime ?? 'unknown'}` }];
        }),
      };
    case 'NodeDiskPressure':
      return {
        findings: src.nodes().flatMap((node) => {
          const total = node.status?.capacity?.diskTotalBytes ?? 0;
          const free = node.status?.capacity?.diskFreeBytes;
          if (!(total > 0) || free === undefined) return [];
          const used = 1 - free / total;
          if (!(used > rule.threshold)) return [];
          return [{ subject: { kind: 'Node', name: node.metadata.name! }, value: round(used, 2), message: `Docker's data disk on node ${node.metadata.name} is ${pct(used)} full (threshold ${pct(rule.threshold)})` }];
        }),
      };
    case 'NodeMemoryPressure':
      return {
        findings: src.nodes().flatMap((node) => {
          const c = condition(node.status?.conditions, 'MemoryPressure');
          if (!c) return [];
          const measured = /(\d+(?:\.\d+)?)% of memory in use/.exec(c.message ?? '');
          const use = measured ? Number(measured[1]) / 100 : undefined;
          const over = use !== undefined ? use > rule.threshold : c.status === 'True';
          if (!over) return [];
          return [{ subject: { kind: 'Node', name: node.metadata.name! }, value: use !== undefined ? round(use, 2) : 1, message: `Node ${node.metadata.name} uses ${use !== undefined ? pct(use) : 'more than 90%'} of its memory (threshold ${pct(rule.threshold)})` }];
        }),
      };
    case 'DeployFailureRate': {
      const since = now - rule.windowMs;
      const byNamespace = new Map<string, { finished: number; failed: string[] }>();
      for (const r of src.releases()) {
        const phase = r.status?.phase;
        if (phase !== 'Completed' && phase !== 'Failed' && phase !== 'RolledBack') continue;
        if (r.status?.reason === 'Superseded') continue;
        const done = Date.parse(r.status?.completionTime ?? '');
        if (!Number.isFinite(done) || done < since) continue;
        const ns = r.metadata.namespace!;
        const entry = byNamespace.get(ns) ?? { finished: 0, failed: [] };
        entry.finished++;
        if (phase !== 'Completed') entry.failed.push(r.metadata.name!);
        byNamespace.set(ns, entry);
      }
      const findings: Finding[] = [];
      for (const [ns, { finished, failed }] of [...byNamespace].sort(([a], [b]) => a.localeCompare(b))) {
        const rate = failed.length / finished;
        if (!(rate > rule.threshold)) continue;
        const names = failed.sort().slice(0, 10).join(', ');
        findings.push({ subject: { kind: 'Namespace', name: ns }, value: round(rate, 3), message: `${failed.length} of ${finished} releases that finished in namespace ${ns} within ${rule.window} failed (${names}${failed.length > 10 ? ', ...' : ''})` });
      }
      return { findings };
    }
    case 'CertificateExpiring':
      return {
        findings: src.domains().flatMap((d) => {
          const notAfter = d.status?.certificate?.notAfter;
          const at = Date.parse(notAfter ?? '');
          if (!Number.isFinite(at)) return [];
          const days = (at - now) / 86_400_000;
          if (!(days < rule.threshold)) return [];
          const host = (d.spec as { hostname?: string } | undefined)?.hostname ?? d.metadata.name;
          return [{ subject: { kind: 'Domain', namespace: d.metadata.namespace!, name: d.metadata.name! }, value: round(days, 1), message: days <= 0 ? `The certificate for ${host} expired at ${notAfter}` : `The certificate for ${host} expires at ${notAfter}, in ${round(days, 1)} days` }];
        }),
      };
    case 'BackupFailed': {
      const byPolicy = new Map<string, Array<DeepReadonly<Backup>>>();
      for (const b of src.backups()) {
        const phase = b.status?.phase;
        if (phase !== 'Succeeded' && phase !== 'Failed') continue;
        const key = `${b.metadata.namespace}/${b.spec?.policy}`;
        byPolicy.set(key, [...(byPolicy.get(key) ?? []), b]);
      }
      const when = (b: DeepReadonly<Backup>) => Date.parse(b.status?.completionTime ?? b.status?.startTime ?? b.metadata.creationTimestamp ?? '') || 0;
      const findings: Finding[] = [];
      for (const [key, list] of [...byPolicy].sort(([a], [b]) => a.localeCompare(b))) {
        list.sort((a, b) => when(b) - when(a) || b.metadata.name!.localeCompare(a.metadata.name!));
        let failed = 0;
        while (failed < list.length && list[failed]!.status?.phase === 'Failed') failed++;
        if (failed === 0 || failed < rule.threshold) continue;
        const newest = list[0]!;
        const [namespace, policy] = key.split('/') as [string, string];
        const error = (newest.status?.error ?? '').slice(0, 500);
        findings.push({ subject: { kind: 'BackupPolicy', namespace, name: policy }, value: failed, message: `${failed} consecutive backup${failed === 1 ? '' : 's'} of policy ${namespace}/${policy} failed; newest ${newest.metadata.name}${error ? `: ${error}` : ''}` });
      }
      return { findings };
    }
    case 'BackupStale':
      return {
        findings: src.backupPolicies().flatMap((p) => {
          const stale = condition(p.status?.conditions, 'Stale');
          if (stale?.status !== 'True') return [];
          return [{ subject: { kind: 'BackupPolicy', namespace: p.metadata.namespace!, name: p.metadata.name! }, value: 1, message: `Backups of policy ${p.metadata.namespace}/${p.metadata.name} are stale${stale.message ? `: ${stale.message}` : ''}` }];
        }),
      };
    case 'HttpErrorRate':
    case 'HttpLatencyP95':
      return { findings: [], noData: 'no data: the edge does not export HTTP metrics yet, so this rule raises no alerts' };
  }
}
