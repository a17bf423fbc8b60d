// The resource registry: every kind the server serves, derived from CustomResourceDefinitions
// (plus the CRD kind itself). Lookups by group/version/plural serve the REST paths; keys map
// objects to etcd.

import type { PrinterColumn } from '../api/types.js';
import type { JSONSchema, ObjectSchema } from './schema.js';

export interface ServedVersion {
  name: string;
  served: boolean;
  storage: boolean;
  schema: ObjectSchema;
  openAPIV3Schema: JSONSchema;
  printerColumns: PrinterColumn[];
  /** Field paths usable in `fieldSelector` besides metadata.name/namespace, e.g. `involvedObject.uid`. */
  selectableFields: string[];
  hasStatus: boolean;
}

export interface Resource {
  group: string;
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  shortNames: string[];
  categories: string[];
  namespaced: boolean;
  versions: Map<string, ServedVersion>;
  storageVersion: string;
  /** `plural.group`: the name of the defining CRD. */
  crdName: string;
  /** True for kinds compiled into the server (the CRD kind). */
  builtin: boolean;
  /** The defining CRD is being deleted: existing objects are served, new ones refused. */
  terminating?: boolean;
}

export const resourceKey = (r: Resource, namespace: string | undefined, name: string): string =>
  r.namespaced ? `/registry/${r.group}/${r.plural}/${namespace}/${name}` : `/registry/${r.group}/${r.plural}/${name}`;

/** The etcd prefix of a resource, or of one namespace of it. */
export const resourcePrefix = (r: Resource, namespace?: string): string =>
  r.namespaced && namespace ? `/registry/${r.group}/${r.plural}/${namespace}/` : `/registry/${r.group}/${r.plural}/`;

export const apiVersionOf = (r: Resource, version: string = r.storageVersion) => `${r.group}/${version}`;

export class Registry {
  private readonly byName = new Map<string, Resource>();
  private readonly listeners = new Set<(r: Resource, removed: boolean) => void>();

  /** Adds or replaces a resource (keyed by `plural.group`). */
  put(resource: Resource): void {
    this.byName.set(resource.crdName, resource);
    for (const l of this.listeners) l(resource, false);
  }

  remove(crdName: string): void {
    const r = this.byName.get(crdName);
    if (!r) return;
    this.byName.delete(crdName);
    for (const l of this.listeners) l(r, true);
  }

  get(group: string, plural: string): Resource | undefined {
    return this.byName.get(`${plural}.${group}`);
  }

  /** The resource and served version for a REST path, if served. */
  lookup(group: string, version: string, plural: string): { resource: Resource; version: ServedVersion } | undefined {
    const resource = this.get(group, plural);
    const v = resource?.versions.get(version);
    return resource && v?.served ? { resource, version: v } : undefined;
  }

  /** Resolves an `apiVersion` + `kind` pair, as found in ownerReferences. */
  byKind(apiVersion: string, kind: string): Resource | undefined {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
    for (const r of this.byName.values()) if (r.group === group && r.kind === kind && r.versions.has(version!)) return r;
    return undefined;
  }

  all(): Resource[] {
    return [...this.byName.values()];
  }

  /** Notified on every put/remove (e.g. to start watching a new kind). */
  onChange(listener: (r: Resource, removed: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
