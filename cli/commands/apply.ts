// `slipctl apply -f`: client-side apply. Creates missing objects; otherwise sends the JSON merge
// patch of a three-way merge (last applied, file, live), so fields removed from the file are
// removed from the object while fields others set are kept. Records the file's configuration in
// the `slipway.dev/last-applied-configuration` annotation. CRDs go first and are waited for.

import type { KubeObject } from '../../src/api/types.js';
import { ApiRequestError } from '../../src/client/api-client.js';
import { FILENAME, OUTPUT, RECURSIVE, type Command } from '../command.js';
import { CliError, isNotFound, step } from '../errors.js';
import { runOnManifests, serverDryRun } from '../manifest-runner.js';
import type { Target } from '../targets.js';
import { lastApplied, sameObject, threeWayMergePatch, withLastApplied } from '../three-way-merge.js';
import type { Session } from '../session.js';

export type ApplyVerb = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  verb: ApplyVerb;
  object: KubeObject;
}

/** Applies one resolved object; `dryRun` asks the server to validate without storing. */
export async function applyOne(session: Session, target: Target, dryRun: boolean): Promise<ApplyResult> {
  const { client } = session;
  const source = target.manifest.source;
  const desired = withLastApplied(target.object);
  const query = dryRun ? { dryRun: 'All' } : undefined;
  const live = await step(`error when retrieving current configuration of "${source}"`, () =>
    client.get(target.path).catch((err) => {
      if (isNotFound(err) && (err as ApiRequestError).status?.details?.name === target.name) return null;
      throw err;
    }),
  );
  if (!live) {
    const created = await step(`error when creating "${source}"`, () => client.create(target.collection, desired, query));
    return { verb: 'created', object: created };
  }
  const patch = threeWayMergePatch(lastApplied(live), desired, live);
  if (Object.keys(patch).length === 0) return { verb: 'unchanged', object: live };
  const patched = await step(`error when patching "${source}"`, () => client.patch(target.path, patch, 'merge', query));
  // A patch can still be a no-op for the server (write-only fields such as a Secret's
  // stringData, or values the server defaults inside replaced lists): report what happened.
  return { verb: sameObject(patched, live) ? 'unchanged' : 'configured', object: patched };
}

export const command: Command = {
  name: 'apply',
  summary: 'Create or update objects from manifests, keeping what others set (client-side apply).',
  usage: 'apply -f FILE|DIR|- [-R] [-n NS] [--dry-run=server] [-o name|yaml|json]',
  description: [
    'Objects that do not exist are created. Existing ones get a JSON merge patch from a three-way merge of the',
    'last applied configuration (annotation slipway.dev/last-applied-configuration), the file and the live object:',
    'fields removed from the file are removed, fields that differ are set, fields set by others are kept.',
    'CustomResourceDefinitions are applied first, then Namespaces, then the rest in file order.',
  ].join('\n'),
  examples: ['slipctl apply -f manifests/', 'slipctl apply -f crds/ -f manifests/', 'cat web.yaml | slipctl apply -f -'],
  flags: [
    FILENAME,
    RECURSIVE,
    { name: 'dry-run', type: 'string', value: 'server|none', description: 'server: send the requests with dryRun=All; nothing is stored.' },
    OUTPUT('name, yaml, json (default: a line per object)'),
  ],
  async run(ctx, flags) {
    const dryRun = serverDryRun(flags);
    return runOnManifests(ctx, flags, 'apply', { dryRun }, async (target, m) => {
      if (!m.object.metadata?.name) throw new CliError(`error when applying "${m.source}": apply needs metadata.name (generateName is only for create)`);
      return applyOne(ctx.session, target, dryRun);
    });
  },
};
