// `slipctl delete`: by name, by `-f`, by `-l` or `--all`, with a propagation policy, and (by
// default, as kubectl) waiting with a watch until each object is really gone, finalizers included.

import { resourcePath, type ApiResource } from '../../src/client/discovery.js';
import type { KubeObject } from '../../src/api/types.js';
import { parseDuration } from '../args.js';
import { ALL_NAMESPACES, FILENAME, RECURSIVE, SELECTOR, TIMEOUT, type Command, type CommandContext } from '../command.js';
import { CliError, formatError, isNotFound } from '../errors.js';
import { readManifests } from '../manifests.js';
import { parseResourceArgs } from '../object-args.js';
import { pluralName, typeName, type Session } from '../session.js';
import { applyOrder, resolveTarget } from '../targets.js';
import { waitForObject, WaitTimeout } from '../wait-for.js';

export interface DeleteTarget {
  resource: ApiResource;
  namespace?: string;
  name: string;
}

const POLICIES: Record<string, string> = { background: 'Background', foreground: 'Foreground', orphan: 'Orphan', true: 'Background', false: 'Orphan' };

export function propagationPolicy(cascade: string): string {
  const policy = POLICIES[cascade.toLowerCase()];
  if (!policy) throw new CliError(`invalid --cascade value "${cascade}": must be background, foreground or orphan`);
  return policy;
}

/** `service.slipway.dev "web"`, how kubectl names an object in delete messages. */
export const quoted = (t: DeleteTarget): string => `${typeName(t.resource)} "${t.name}"`;

/**
 * Sends one DELETE. Resolves with the uid of an object that is still there (finalizers or
 * foreground deletion pending), null when it is already gone.
 */
export async function deleteOne(session: Session, t: DeleteTarget, policy: string): Promise<string | null> {
  const res = await session.client.delete(resourcePath(t.resource, t.namespace, t.name), undefined, { propagationPolicy: policy });
  return res.status === 202 ? (res.body.metadata?.uid ?? '') : null;
}

/** Waits until the object with `uid` no longer exists (a new object under the same name counts as gone). */
export async function waitGone(session: Session, t: DeleteTarget, uid: string, timeoutMs: number): Promise<void> {
  await waitForObject(session.client, resourcePath(t.resource, t.namespace), t.name, (o) => o === null || (uid !== '' && o.metadata.uid !== uid), timeoutMs);
}

/** Why a deletion may be stuck: the finalizers still on the object. */
async function finalizerHint(session: Session, t: DeleteTarget): Promise<string> {
  try {
    const finalizers = (await session.client.get(resourcePath(t.resource, t.namespace, t.name))).metadata.finalizers ?? [];
    return finalizers.length ? ` (still has finalizers: ${finalizers.join(', ')})` : '';
  } catch {
    return '';
  }
}

async function targetsFromArgs(ctx: CommandContext, flags: Parameters<Command['run']>[1]): Promise<DeleteTarget[]> {
  const { session } = ctx;
  const files = flags.strings('filename');
  const selector = flags.string('selector');
  const all = flags.bool('all');
  const allNamespaces = flags.bool('all-namespaces');
  if (files.length) {
    if (flags.positional.length || selector || all) throw new CliError('-f cannot be combined with names, -l or --all');
    const manifests = applyOrder(readManifests(files, flags.bool('recursive'), ctx.readStdin)).reverse();
    const out: DeleteTarget[] = [];
    for (const m of manifests) {
      const t = await resolveTarget(session, m);
      out.push({ resource: t.resource, ...(t.namespace !== undefined ? { namespace: t.namespace } : {}), name: t.name });
    }
    return out;
  }
  const { kinds, refs } = await parseResourceArgs(session, flags.positional);
  if (kinds.length === 0) throw new CliError('you must provide one or more resources by argument or filename (slipctl delete KIND NAME, KIND/NAME, -f FILE, or KIND -l SELECTOR / --all)');
  const ns = (r: ApiResource) => (r.namespaced ? { namespace: session.namespace } : {});
  if (refs.length) {
    if (selector || all) throw new CliError('names cannot be combined with -l or --all');
    return refs.map((r) => ({ resource: r.resource, ...ns(r.resource), name: r.name }));
  }
  if (!selector && !all) throw new CliError('resource(s) were provided, but no name was specified: give names, -l SELECTOR or --all');
  const out: DeleteTarget[] = [];
  for (const r of kinds) {
    const list = await session.client.list(resourcePath(r, r.namespaced && !allNamespaces ? session.namespace : undefined), selector ? { labelSelector: selector } : undefined);
    for (const item of list.items as KubeObject[]) {
      out.push({ resource: r, ...(item.metadata.namespace ? { namespace: item.metadata.namespace } : {}), name: item.metadata.name! });
    }
  }
  return out;
}

export const command: Command = {
  name: 'delete',
  summary: 'Delete objects by name, by manifest, or by label selector.',
  usage: 'delete (KIND NAME... | KIND/NAME... | -f FILE | KIND -l SELECTOR | KIND --all) [-n NS] [flags]',
  description: 'Objects with finalizers are marked for deletion and disappear once their finalizers are removed; by default\nslipctl waits for that (--wait=false returns at once).',
  examples: ['slipctl delete svc web -n shop-prod', 'slipctl delete -f manifests/30-domain.yaml', 'slipctl delete domains -l app=shop --wait=false'],
  flags: [
    FILENAME,
    RECURSIVE,
    SELECTOR,
    ALL_NAMESPACES,
    { name: 'all', type: 'bool', description: 'Delete every object of the kind in the namespace.' },
    { name: 'wait', type: 'bool', default: true, description: 'Wait until the objects are gone (default true).' },
    { name: 'cascade', type: 'string', value: 'background|foreground|orphan', default: 'background', description: 'What happens to dependents (ownerReferences); default background.' },
    { name: 'ignore-not-found', type: 'bool', description: 'Treat objects that do not exist as deleted.' },
    TIMEOUT('60s'),
  ],
  async run(ctx, flags) {
    const policy = propagationPolicy(flags.string('cascade')!);
    const timeoutMs = parseDuration(flags.string('timeout')!, 'timeout');
    const targets = await targetsFromArgs(ctx, flags);
    const ignoreNotFound = flags.bool('ignore-not-found');
    if (targets.length === 0) {
      if (!ignoreNotFound) ctx.stderr('No resources found\n');
      return 0;
    }
    let failures = 0;
    const pending: { target: DeleteTarget; uid: string }[] = [];
    for (const t of targets) {
      try {
        const uid = await deleteOne(ctx.session, t, policy);
        ctx.stdout(`${quoted(t)} deleted\n`);
        if (uid !== null) pending.push({ target: t, uid });
      } catch (err) {
        if (isNotFound(err) && ignoreNotFound) continue;
        failures++;
        ctx.stderr(`${formatError(err)}\n`);
      }
    }
    if (flags.bool('wait')) {
      const results = await Promise.allSettled(pending.map((p) => waitGone(ctx.session, p.target, p.uid, timeoutMs)));
      for (const [i, r] of results.entries()) {
        if (r.status === 'fulfilled') continue;
        failures++;
        const t = pending[i]!.target;
        if (!(r.reason instanceof WaitTimeout)) ctx.stderr(`${formatError(r.reason)}\n`);
        else ctx.stderr(`error: timed out waiting for the condition on ${pluralName(t.resource)}/${t.name}${await finalizerHint(ctx.session, t)}\n`);
      }
    }
    return failures ? 1 : 0;
  },
};
