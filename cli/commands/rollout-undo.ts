// `slipctl rollout undo`: writes an earlier Release's template back into its Service (by default
// the previous release), so the service controller rolls it out as a new release. Fields of the
// template the target did not have are removed; replicas, edge, schedule and the other fields
// outside the template are left alone.

import { ApiRequestError } from '../../src/client/api-client.js';
import { deepEqual } from '../../src/api/deep-equal.js';
import type { KubeObject } from '../../src/api/types.js';
import type { CommandContext } from '../command.js';
import { CliError, isNotFound } from '../errors.js';
import { releasesOf } from './rollout-history.js';
import { TEMPLATE_FIELDS } from '../../src/api/service-contract.js';
import { CHANGE_CAUSE, releasePath, servicePath } from './service-target.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A merge patch turning `current` into exactly `target`: keys only in current become null, objects recurse. */
export function replaceWith(current: unknown, target: unknown): unknown {
  if (!isObject(current) || !isObject(target)) return target;
  const patch: Record<string, unknown> = {};
  for (const key of Object.keys(current)) if (!(key in target)) patch[key] = null;
  for (const [key, value] of Object.entries(target)) {
    if (value === null || value === undefined) continue;
    if (!deepEqual(current[key], value)) patch[key] = replaceWith(current[key], value);
  }
  return patch;
}

/** The spec part of the patch: every template field, set from `template` or removed. */
export function templatePatch(spec: Record<string, unknown>, template: Record<string, unknown>): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  for (const field of TEMPLATE_FIELDS) {
    const want = template[field];
    if (want === undefined || want === null) {
      if (spec[field] !== undefined) patch[field] = null;
    } else if (!deepEqual(spec[field], want)) patch[field] = replaceWith(spec[field], want);
  }
  return patch;
}

/** Whether two Services have the same template fields. */
const sameTemplate = (a: KubeObject, b: KubeObject): boolean => TEMPLATE_FIELDS.every((f) => deepEqual(a.spec?.[f], b.spec?.[f]));

async function target(ctx: CommandContext, ns: string, svc: KubeObject, toRevision: number | undefined): Promise<KubeObject> {
  const name = svc.metadata.name!;
  if (toRevision !== undefined) {
    const releases = await releasesOf(ctx, ns, name);
    const found = releases.find((r) => r.spec?.revision === toRevision);
    if (!found) throw new CliError(`revision ${toRevision} not found for service "${name}"${releases.length ? ` (revisions: ${releases.map((r) => r.spec?.revision).join(', ')})` : ''}`);
    return found;
  }
  const previous = svc.status?.previousRelease as string | undefined;
  if (!previous) throw new CliError(`no previous release to roll back to for service "${name}"`);
  try {
    return await ctx.session.client.get(releasePath(ns, previous));
  } catch (err) {
    if (isNotFound(err)) throw new CliError(`the previous release ${previous} of service "${name}" no longer exists; pick a revision with --to-revision (see slipctl rollout history service/${name})`);
    throw err;
  }
}

export async function rolloutUndo(ctx: CommandContext, name: string, opts: { toRevision?: number; force: boolean }): Promise<number> {
  const ns = ctx.session.namespace;
  const { client } = ctx.session;
  for (let attempt = 1; ; attempt++) {
    const svc = await client.get(servicePath(ns, name));
    const release = await target(ctx, ns, svc, opts.toRevision);
    const revision = release.spec?.revision;
    if (release.status?.phase === 'Failed' && !opts.force) {
      const why = release.status?.reason ? ` (${release.status.reason}${release.status.message ? `: ${release.status.message}` : ''})` : '';
      throw new CliError(`release ${release.metadata.name} (revision ${revision}) failed${why}; use --force to roll back to it anyway`);
    }
    const template = isObject(release.spec?.template) ? release.spec.template : undefined;
    if (!template) throw new CliError(`release ${release.metadata.name} (revision ${revision}) has no template to roll back to`);
    const spec = templatePatch(svc.spec ?? {}, template);
    const patch = {
      metadata: { resourceVersion: svc.metadata.resourceVersion, annotations: { [CHANGE_CAUSE]: `rollback to revision ${revision}` } },
      spec,
    };
    try {
      // Removed fields may come back as the same defaults: only a real change counts (a dry run tells).
      const unchanged = Object.keys(spec).length === 0 || sameTemplate(svc, await client.patch(servicePath(ns, name), patch, 'merge', { dryRun: 'All' }));
      if (unchanged) {
        ctx.stdout(`service/${name} skipped rollback (current template already matches revision ${revision})\n`);
        return 0;
      }
      await client.patch(servicePath(ns, name), patch, 'merge');
    } catch (err) {
      // Someone else changed the Service in between: recompute against the new version.
      if (err instanceof ApiRequestError && err.code === 409 && attempt < 5) continue;
      throw err;
    }
    ctx.stdout(`service/${name} rolled back to revision ${revision}\n`);
    return 0;
  }
}
