// `slipctl diff -f`: what `apply` would change. For each object it computes the request apply
// would send, asks the server for the result with `dryRun=All`, and shows `diff -u -N` of the
// live object and that result as YAML (as kubectl does). Exit 0: no differences, 1: some, >1: error.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAST_APPLIED_ANNOTATION, type KubeObject } from '../../src/api/types.js';
import type { ApiClient } from '../../src/client/api-client.js';
import { FILENAME, RECURSIVE, type Command } from '../command.js';
import { CliError, formatError, isNotFound, step } from '../errors.js';
import { readManifests } from '../manifests.js';
import { toYaml } from '../printers.js';
import { applyOrder, resolveTarget, type Target } from '../targets.js';
import { lastApplied, threeWayMergePatch, withLastApplied } from '../three-way-merge.js';

const EXIT_ERROR = 2;

/** Drops what always differs or is noise: resourceVersion, generation, managedFields, the last-applied record. */
export function forDiff(obj: KubeObject): KubeObject {
  const out = structuredClone(obj);
  const m = out.metadata ?? {};
  delete m.resourceVersion;
  delete m.generation;
  delete (m as Record<string, unknown>).managedFields;
  if (m.annotations) {
    delete m.annotations[LAST_APPLIED_ANNOTATION];
    if (Object.keys(m.annotations).length === 0) delete m.annotations;
  }
  return out;
}

/** Secret values never reach the terminal: equal values show as `***`, changed ones as before/after. */
export function maskSecrets(live: KubeObject | null, merged: KubeObject): [KubeObject | null, KubeObject] {
  if (merged.kind !== 'Secret') return [live, merged];
  const l = live ? structuredClone(live) : null;
  const m = structuredClone(merged);
  const before = (l?.data ?? {}) as Record<string, string>;
  const after = (m.data ?? {}) as Record<string, string>;
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const same = before[k] === after[k];
    if (k in before) before[k] = same ? '***' : '*** (before)';
    if (k in after) after[k] = same ? '***' : '*** (after)';
  }
  return [l, m];
}

/** kubectl's file name for an object: `slipway.dev.v1alpha1.Service.shop-prod.web`. */
export const diffName = (t: Target): string => [t.resource.group, t.resource.version, t.resource.kind, ...(t.namespace ? [t.namespace] : []), t.name].filter(Boolean).join('.');

/** The live object and what the server says apply would make of it. */
async function dryRunApply(client: ApiClient, t: Target): Promise<{ live: KubeObject | null; merged: KubeObject }> {
  const source = t.manifest.source;
  const desired = withLastApplied(t.object);
  const live = await step(`error when retrieving current configuration of "${source}"`, () =>
    client.get(t.path).catch((err) => {
      if (isNotFound(err)) return null;
      throw err;
    }),
  );
  if (!live) return { live, merged: await step(`error when creating "${source}" (server dry run)`, () => client.create(t.collection, desired, { dryRun: 'All' })) };
  const patch = threeWayMergePatch(lastApplied(live), desired, live);
  if (Object.keys(patch).length === 0) return { live, merged: live };
  return { live, merged: await step(`error when patching "${source}" (server dry run)`, () => client.patch(t.path, patch, 'merge', { dryRun: 'All' })) };
}

export const command: Command = {
  name: 'diff',
  summary: 'Show what apply would change, as a unified diff of live objects and a server dry run.',
  usage: 'diff -f FILE|DIR|- [-R] [-n NS]',
  description: 'Exit status: 0 when nothing would change, 1 when something would, greater than 1 on errors.',
  examples: ['slipctl diff -f manifests/'],
  flags: [FILENAME, RECURSIVE],
  async run(ctx, flags) {
    try {
      if (flags.positional.length) throw new CliError(`unexpected arguments: ${flags.positional.join(' ')} (diff reads objects from -f)`);
      const manifests = applyOrder(readManifests(flags.strings('filename'), flags.bool('recursive'), ctx.readStdin));
      const { client } = ctx.session;
      const dir = mkdtempSync(join(tmpdir(), 'slipctl-diff-'));
      let differs = false;
      let errors = 0;
      try {
        for (const [i, m] of manifests.entries()) {
          try {
            const t = await resolveTarget(ctx.session, m);
            const { live, merged } = await dryRunApply(client, t);
            const [before, after] = maskSecrets(live ? forDiff(live) : null, forDiff(merged));
            const name = diffName(t);
            const liveFile = join(dir, `${i}-live.yaml`);
            const mergedFile = join(dir, `${i}-merged.yaml`);
            if (before) writeFileSync(liveFile, toYaml(before));
            writeFileSync(mergedFile, toYaml(after));
            const res = spawnSync('diff', ['-u', '-N', '--label', `a/${name}`, '--label', `b/${name}`, liveFile, mergedFile], { encoding: 'utf8' });
            if (res.error) throw new CliError(`cannot run diff: ${res.error.message}`);
            if (res.status === 1) {
              differs = true;
              ctx.stdout(res.stdout);
            } else if (res.status !== 0) throw new CliError(`diff failed (exit ${res.status}): ${res.stderr.trim()}`);
          } catch (err) {
            errors++;
            ctx.stderr(`${formatError(err)}\n`);
          }
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      return errors ? EXIT_ERROR : differs ? 1 : 0;
    } catch (err) {
      ctx.stderr(`${formatError(err)}\n`);
      return EXIT_ERROR;
    }
  },
};
