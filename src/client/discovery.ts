// Client-side discovery: which kinds the server serves, resolved from plural, singular, kind or
// short name (`svc`, `services`, `Service`, `services.slipway.dev`), and the REST paths for them.

import type { ApiClient } from './api-client.js';

export interface ApiResource {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  verbs: string[];
}

export class UnknownResourceError extends Error {}

export const groupVersion = (r: ApiResource) => (r.group ? `${r.group}/${r.version}` : r.version);

/** The REST path of a collection, an object, or its status. */
export function resourcePath(r: ApiResource, namespace?: string, name?: string, subresource?: string): string {
  let path = `/apis/${r.group}/${r.version}`;
  if (r.namespaced && namespace) path += `/namespaces/${encodeURIComponent(namespace)}`;
  path += `/${r.plural}`;
  if (name !== undefined) path += `/${encodeURIComponent(name)}`;
  if (subresource) path += `/${subresource}`;
  return path;
}

export async function discover(client: ApiClient): Promise<ApiResource[]> {
  const groups = await client.request<any>('GET', '/apis');
  const lists = await Promise.all(
    (groups.body.groups as any[]).map((g) => client.request<any>('GET', `/apis/${g.preferredVersion.groupVersion}`).then((r) => r.body)),
  );
  const out: ApiResource[] = [];
  for (const list of lists) {
    const [group, version] = String(list.groupVersion).split('/') as [string, string];
    for (const r of list.resources as any[]) {
      if (String(r.name).includes('/')) continue;
      out.push({
        group,
        version,
        plural: r.name,
        singular: r.singularName || String(r.kind).toLowerCase(),
        kind: r.kind,
        namespaced: r.namespaced,
        shortNames: r.shortNames ?? [],
        categories: r.categories ?? [],
        verbs: r.verbs ?? [],
      });
    }
  }
  return out;
}

/** Finds a resource by any of its names, optionally qualified with its group (`svc.slipway.dev`). */
export function resolveResource(resources: ApiResource[], name: string): ApiResource {
  const lower = name.toLowerCase();
  const dot = lower.indexOf('.');
  const candidates = (n: string, group?: string) =>
    resources.filter(
      (r) =>
        (group === undefined || r.group === group) &&
        (r.plural === n || r.singular === n || r.kind.toLowerCase() === n || r.shortNames.includes(n)),
    );
  let found = candidates(lower);
  if (found.length === 0 && dot > 0) found = candidates(lower.slice(0, dot), lower.slice(dot + 1));
  if (found.length === 0) throw new UnknownResourceError(`the server doesn't have a resource type "${name}"`);
  // Prefer Slipway's own group when a name is ambiguous, like kubectl prefers core.
  found.sort((a, b) => Number(b.group === 'slipway.dev') - Number(a.group === 'slipway.dev'));
  return found[0]!;
}

/** Resolves an object's `apiVersion` + `kind` (from a manifest). */
export function resourceForKind(resources: ApiResource[], apiVersion: string, kind: string): ApiResource {
  const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
  const r = resources.find((x) => x.group === group && x.kind === kind);
  if (!r) throw new UnknownResourceError(`no matches for kind "${kind}" in version "${apiVersion}"`);
  return { ...r, version };
}
