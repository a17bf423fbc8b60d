// `slipctl rollout history`: a Service's Releases as a table sorted by revision, the active one
// marked with `*`; `--revision N` prints that release's template as YAML.

import type { KubeObject } from '../../src/api/types.js';
import type { CommandContext } from '../command.js';
import { CliError } from '../errors.js';
import { age, formatRows, toYaml } from '../printers.js';
import { releasePath, SERVICE_LABEL, servicePath } from './service-target.js';

/** The Service's Releases (label and spec.service agree), oldest revision first. */
export async function releasesOf(ctx: CommandContext, ns: string, name: string): Promise<KubeObject[]> {
  const list = await ctx.session.client.list(releasePath(ns), { labelSelector: `${SERVICE_LABEL}=${name}` });
  return list.items.filter((r) => r.spec?.service === undefined || r.spec.service === name).sort((a, b) => (a.spec?.revision ?? 0) - (b.spec?.revision ?? 0));
}

/** The image a release runs: its image, else its template's, else its git source. */
function imageOf(r: KubeObject): string {
  const image = r.spec?.image ?? r.spec?.template?.image;
  if (image) return String(image);
  const source = r.spec?.source;
  if (source?.git) return `${source.git}${source.commit ? `@${String(source.commit).slice(0, 12)}` : source.ref ? `#${source.ref}` : ''}`;
  return '<none>';
}

export function historyTable(releases: readonly KubeObject[], active: string | undefined, now: number): string {
  const rows = [['REVISION', 'RELEASE', 'PHASE', 'ACTIVE', 'CAUSE', 'IMAGE', 'AGE']];
  for (const r of releases) {
    rows.push([
      String(r.spec?.revision ?? '<none>'),
      r.metadata.name ?? '',
      r.status?.phase ?? '<none>',
      r.metadata.name === active ? '*' : '',
      r.spec?.cause ?? '<none>',
      imageOf(r),
      age(r.metadata.creationTimestamp, now),
    ]);
  }
  return formatRows(rows);
}

export async function rolloutHistory(ctx: CommandContext, name: string, revision: number | undefined): Promise<number> {
  const ns = ctx.session.namespace;
  const svc = await ctx.session.client.get(servicePath(ns, name));
  const releases = await releasesOf(ctx, ns, name);
  if (revision !== undefined) {
    const found = releases.find((r) => r.spec?.revision === revision);
    if (!found) throw new CliError(`revision ${revision} not found for service "${name}"${releases.length ? ` (revisions: ${releases.map((r) => r.spec?.revision).join(', ')})` : ''}`);
    ctx.stdout(toYaml(found.spec?.template ?? {}));
    return 0;
  }
  if (releases.length === 0) {
    ctx.stdout(`No rollout history found for service "${name}" in namespace "${ns}".\n`);
    return 0;
  }
  ctx.stdout(historyTable(releases, svc.status?.activeRelease, ctx.now()));
  return 0;
}
