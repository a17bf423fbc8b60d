// `slipctl describe`: a human-readable page per object: identity and metadata, the rest of the
// object as indented key: value lines, a Conditions table and the object's recent Events
// (found with `fieldSelector=involvedObject.uid=<uid>`). Rendering is a pure function.

import { resourcePath, type ApiResource } from '../../src/client/discovery.js';
import { LAST_APPLIED_ANNOTATION, type KubeObject } from '../../src/api/types.js';
import { SELECTOR, type Command, type CommandContext } from '../command.js';
import { CliError, formatError } from '../errors.js';
import { parseResourceArgs } from '../object-args.js';
import { age, formatRows } from '../printers.js';
import { renderDomainSummary } from '../domain-summary.js';
import type { Session } from '../session.js';

const LABEL_WIDTH = 14;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function scalar(v: unknown): string {
  if (v === null || v === undefined) return '<none>';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** A value as indented `key: value` lines (nested objects indented, list items with `- `). */
export function renderValue(key: string, value: unknown, indent: number): string[] {
  const pad = ' '.repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return [`${pad}${key}: []`];
    const lines = [`${pad}${key}:`];
    for (const item of value) {
      if (isObject(item) && Object.keys(item).length) {
        const inner = Object.entries(item).flatMap(([k, v]) => renderValue(k, v, indent + 4));
        inner[0] = `${pad}  - ${inner[0]!.slice(indent + 4)}`;
        lines.push(...inner);
      } else lines.push(...scalarLines(`${pad}  - `, item, indent + 4));
    }
    return lines;
  }
  if (isObject(value)) {
    const entries = Object.entries(value);
    if (entries.length === 0) return [`${pad}${key}: {}`];
    return [`${pad}${key}:`, ...entries.flatMap(([k, v]) => renderValue(k, v, indent + 2))];
  }
  return scalarLines(`${pad}${key}: `, value, indent + 2);
}

function scalarLines(prefix: string, value: unknown, indent: number): string[] {
  const [first = '', ...rest] = scalar(value).split('\n');
  return [`${prefix}${first}`, ...rest.map((l) => `${' '.repeat(indent)}${l}`)];
}

const label = (name: string) => `${name}:`.padEnd(LABEL_WIDTH);

function mapLines(name: string, map: Record<string, string> | undefined, sep: string): string[] {
  const entries = Object.entries(map ?? {});
  if (entries.length === 0) return [`${label(name)}<none>`];
  return entries.map(([k, v], i) => `${i === 0 ? label(name) : ' '.repeat(LABEL_WIDTH)}${k}${sep}${v}`);
}

const title = (key: string) => key.charAt(0).toUpperCase() + key.slice(1);

function table(rows: string[][], indent: number): string[] {
  const dashes = rows[0]!.map((h) => '-'.repeat(h.length));
  return formatRows([rows[0]!, dashes, ...rows.slice(1)])
    .trimEnd()
    .split('\n')
    .map((l) => ' '.repeat(indent) + l.trimEnd());
}

export function renderEventsTable(events: readonly KubeObject[] | string, now: number): string[] {
  if (typeof events === 'string') return [`Events:       ${events}`];
  if (events.length === 0) return ['Events:       <none>'];
  const sorted = [...events].sort((a, b) => String(a.lastTimestamp ?? a.metadata.creationTimestamp).localeCompare(String(b.lastTimestamp ?? b.metadata.creationTimestamp)));
  const rows = sorted.map((e) => {
    const last = e.lastTimestamp ?? e.metadata.creationTimestamp;
    const count = typeof e.count === 'number' ? e.count : 1;
    const when = count > 1 ? `${age(last, now)} (x${count} over ${age(e.firstTimestamp ?? last, now)})` : age(last, now);
    return [String(e.type ?? ''), String(e.reason ?? ''), when, String(e.source?.component || e.reportingComponent || ''), String(e.message ?? '').replace(/\s*\n\s*/g, ' ')];
  });
  return ['Events:', ...table([['Type', 'Reason', 'Age', 'From', 'Message'], ...rows], 2)];
}

/** The lines a BackupPolicy page starts with: last success, next run, a stale warning, the last drill. */
export function backupPolicySummary(obj: KubeObject, now: number): string[] {
  const st = (obj.status ?? {}) as Record<string, any>;
  const when = (t: unknown) => (typeof t === 'string' ? `${t} (${Date.parse(t) > now ? `in ${age(new Date(now).toISOString(), Date.parse(t))}` : `${age(t, now)} ago`})` : '<none>');
  const success = st.lastSuccessfulBackup;
  const lines = [
    `${label('Last Success')}${success?.name ? `${success.name} at ${when(success.completionTime)}` : '<none>'}`,
    `${label('Next Run')}${obj.spec?.suspend ? 'suspended' : when(st.nextScheduleTime)}`,
  ];
  const stale = (st.conditions ?? []).find((c: { type?: string }) => c.type === 'Stale');
  if (stale?.status === 'True') lines.push(`${label('WARNING')}backups are STALE: ${stale.message ?? ''}`);
  const drill = st.lastDrill;
  lines.push(`${label('Last Drill')}${drill?.result ? `${drill.result} at ${when(drill.time)}, RTO ${drill.rtoSeconds ?? '?'} s, RPO ${drill.rpoSeconds ?? '?'} s (backup ${drill.backup})` : obj.spec?.restoreDrill ? 'none yet' : 'no restoreDrill configured'}`);
  return lines;
}

/** The describe page of one object; `events` is the list, or a note when it could not be read. */
export function renderDescribe(obj: KubeObject, events: readonly KubeObject[] | string, now: number): string {
  const m = obj.metadata;
  const annotations = { ...(m.annotations ?? {}) };
  delete annotations[LAST_APPLIED_ANNOTATION];
  const lines = [`${label('Name')}${m.name}`];
  if (m.namespace) lines.push(`${label('Namespace')}${m.namespace}`);
  lines.push(...mapLines('Labels', m.labels, '='), ...mapLines('Annotations', annotations, ': '));
  lines.push(`${label('API Version')}${obj.apiVersion}`, `${label('Kind')}${obj.kind}`);
  lines.push(`${label('Created')}${m.creationTimestamp ?? '<unknown>'}${m.creationTimestamp ? ` (${age(m.creationTimestamp, now)} ago)` : ''}`);
  if (m.deletionTimestamp) lines.push(`${label('Deleting')}since ${m.deletionTimestamp} (${age(m.deletionTimestamp, now)} ago)`);
  if (m.finalizers?.length) lines.push(`${label('Finalizers')}${m.finalizers.join(', ')}`);
  if (m.ownerReferences?.length) lines.push(`${label('Owners')}${m.ownerReferences.map((o) => `${o.kind}/${o.name}${o.controller ? ' (controller)' : ''}`).join(', ')}`);
  if (m.generation !== undefined) lines.push(`${label('Generation')}${m.generation}`);
  if (obj.kind === 'Domain') lines.push(...renderDomainSummary(obj, now));
  if (obj.kind === 'BackupPolicy') lines.push(...backupPolicySummary(obj, now));
  let conditions: Record<string, unknown>[] = [];
  for (const [key, value] of Object.entries(obj)) {
    if (key === 'apiVersion' || key === 'kind' || key === 'metadata') continue;
    let shown = value;
    if (key === 'status' && isObject(value) && Array.isArray(value.conditions)) {
      conditions = value.conditions.filter(isObject);
      const { conditions: _c, ...rest } = value;
      shown = rest;
      if (Object.keys(rest).length === 0) continue;
    }
    if (key === 'data' && obj.kind === 'Secret' && isObject(value)) {
      // Never print secret values: sizes only, as kubectl does.
      shown = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, `${Buffer.from(String(v), 'base64').length} bytes`]));
    }
    const block = renderValue(title(key), shown, 0);
    if (block.length === 1 && !isObject(shown) && !Array.isArray(shown)) lines.push(`${label(title(key))}${scalar(shown)}`);
    else lines.push(...block);
  }
  if (conditions.length) {
    const rows = conditions.map((c) => [String(c.type ?? ''), String(c.status ?? ''), String(c.reason ?? ''), String(c.message ?? '').replace(/\s*\n\s*/g, ' '), String(c.lastTransitionTime ?? '')]);
    lines.push('Conditions:', ...table([['Type', 'Status', 'Reason', 'Message', 'Last Transition'], ...rows], 2));
  }
  lines.push(...renderEventsTable(events, now));
  return `${lines.join('\n')}\n`;
}

/** The Events about an object (cluster-scoped objects have theirs in `default`). */
async function eventsFor(session: Session, obj: KubeObject): Promise<KubeObject[] | string> {
  try {
    const events = await session.resolveKind('slipway.dev/v1alpha1', 'Event');
    const list = await session.client.list(resourcePath(events, obj.metadata.namespace || 'default'), { fieldSelector: `involvedObject.uid=${obj.metadata.uid}` });
    return list.items;
  } catch (err) {
    return `<unavailable: ${formatError(err).split('\n')[0]}>`;
  }
}

async function objectsToDescribe(ctx: CommandContext, positional: string[], selector: string | undefined): Promise<{ resource: ApiResource; objects: KubeObject[]; failures: number }[]> {
  const { session } = ctx;
  const { kinds, refs } = await parseResourceArgs(session, positional);
  if (kinds.length === 0) throw new CliError('describe needs a kind: describe KIND [NAME...] or KIND/NAME');
  const out: { resource: ApiResource; objects: KubeObject[]; failures: number }[] = [];
  const ns = (r: ApiResource) => (r.namespaced ? session.namespace : undefined);
  if (refs.length) {
    if (selector) throw new CliError('names cannot be combined with -l');
    for (const ref of refs) {
      try {
        out.push({ resource: ref.resource, objects: [await session.client.get(resourcePath(ref.resource, ns(ref.resource), ref.name))], failures: 0 });
      } catch (err) {
        ctx.stderr(`${formatError(err)}\n`);
        out.push({ resource: ref.resource, objects: [], failures: 1 });
      }
    }
    return out;
  }
  for (const r of kinds) out.push({ resource: r, objects: (await session.client.list(resourcePath(r, ns(r)), selector ? { labelSelector: selector } : undefined)).items, failures: 0 });
  return out;
}

export const command: Command = {
  name: 'describe',
  summary: 'Show the details of objects, their conditions and recent events.',
  usage: 'describe KIND [NAME...] | KIND/NAME... [-n NS] [-l SELECTOR]',
  examples: ['slipctl describe svc web -n shop-prod', 'slipctl describe domain/acme-shop -n shop-prod'],
  flags: [SELECTOR],
  async run(ctx, flags) {
    const groups = await objectsToDescribe(ctx, flags.positional, flags.string('selector'));
    const pages: string[] = [];
    for (const g of groups) for (const obj of g.objects) pages.push(renderDescribe(obj, await eventsFor(ctx.session, obj), ctx.now()));
    ctx.stdout(pages.join('\n'));
    const failures = groups.reduce((n, g) => n + g.failures, 0);
    if (pages.length === 0 && failures === 0) ctx.stderr('No resources found\n');
    return failures ? 1 : 0;
  },
};
