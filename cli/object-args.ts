// The object arguments of get, describe, delete and wait, as kubectl reads them: `KIND`,
// `KIND NAME...`, `KIND/NAME...` and comma lists of kinds (`svc,domains`), each kind given by
// plural, singular, kind or short name, or by a category (`all`).

import { UnknownResourceError, type ApiResource } from '../src/client/discovery.js';
import { CliError } from './errors.js';
import type { Session } from './session.js';

export interface ObjectRef {
  resource: ApiResource;
  name: string;
}

export interface ResourceArgs {
  /** The kinds named (one per comma-separated entry, or one per KIND/NAME argument). */
  kinds: ApiResource[];
  /** Named objects; empty when only kinds were given. */
  refs: ObjectRef[];
}

/** A kind by any of its names, or every kind of a category (`all`, `slipway`) as kubectl does. */
async function resolveKindOrCategory(session: Session, name: string): Promise<ApiResource[]> {
  try {
    return [await session.resolve(name)];
  } catch (err) {
    if (!(err instanceof UnknownResourceError)) throw err;
    const members = (await session.resources()).filter((r) => r.categories.includes(name.toLowerCase()));
    if (members.length === 0) throw err;
    return members.sort((a, b) => a.plural.localeCompare(b.plural));
  }
}

export async function parseResourceArgs(session: Session, positional: readonly string[]): Promise<ResourceArgs> {
  if (positional.length === 0) return { kinds: [], refs: [] };
  if (positional[0]!.includes('/')) {
    const refs: ObjectRef[] = [];
    for (const arg of positional) {
      const slash = arg.indexOf('/');
      if (slash <= 0 || slash === arg.length - 1) {
        throw new CliError(`there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (got ${JSON.stringify(arg)})`);
      }
      refs.push({ resource: await session.resolve(arg.slice(0, slash)), name: arg.slice(slash + 1) });
    }
    const kinds = [...new Map(refs.map((r) => [`${r.resource.group}/${r.resource.plural}`, r.resource])).values()];
    return { kinds, refs };
  }
  const [kindArg, ...names] = positional as [string, ...string[]];
  const kinds: ApiResource[] = [];
  for (const k of kindArg.split(',')) {
    if (!k) throw new CliError(`invalid resource type list ${JSON.stringify(kindArg)}`);
    kinds.push(...(await resolveKindOrCategory(session, k)));
  }
  for (const n of names) if (n.includes('/')) throw new CliError(`arguments in resource/name form must have a single resource and name (got ${JSON.stringify(n)} after a kind)`);
  return { kinds, refs: kinds.flatMap((resource) => names.map((name) => ({ resource, name }))) };
}
