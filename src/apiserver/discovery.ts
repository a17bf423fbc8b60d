// Discovery documents (`/apis`, `/apis/{group}`, `/apis/{group}/{version}`) in Kubernetes'
// format, so clients find kinds, short names, scopes and verbs without hard-coding them.

import type { Registry, Resource } from './resources.js';

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

const preferredVersion = (r: Resource) => r.storageVersion;

export function groupList(registry: Registry) {
  const groups = new Map<string, Set<string>>();
  const preferred = new Map<string, string>();
  for (const r of registry.all()) {
    const set = groups.get(r.group) ?? new Set<string>();
    for (const v of r.versions.values()) if (v.served) set.add(v.name);
    groups.set(r.group, set);
    if (!preferred.has(r.group)) preferred.set(r.group, preferredVersion(r));
  }
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: [...groups.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, versions]) => groupDoc(name, [...versions], preferred.get(name)!)),
  };
}

function groupDoc(name: string, versions: string[], preferred: string) {
  return {
    name,
    versions: versions.map((version) => ({ groupVersion: `${name}/${version}`, version })),
    preferredVersion: { groupVersion: `${name}/${preferred}`, version: preferred },
  };
}

export function group(registry: Registry, name: string) {
  const list = groupList(registry).groups.find((g) => g.name === name);
  return list ? { kind: 'APIGroup', apiVersion: 'v1', ...list } : undefined;
}

export function resourceList(registry: Registry, groupName: string, version: string) {
  const resources = registry
    .all()
    .filter((r) => r.group === groupName && r.versions.get(version)?.served)
    .sort((a, b) => a.plural.localeCompare(b.plural));
  if (resources.length === 0) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: `${groupName}/${version}`,
    resources: resources.flatMap((r) => {
      const main = {
        name: r.plural,
        singularName: r.singular,
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: VERBS,
        ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
        ...(r.categories.length ? { categories: r.categories } : {}),
      };
      const hasStatus = r.versions.get(version)!.hasStatus;
      return hasStatus
        ? [main, { name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] }]
        : [main];
    }),
  };
}
