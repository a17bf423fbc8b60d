// The API server's view of RBAC objects, kept current from the object cache, with a fresh read
// from etcd when the cache may lag a write made a moment ago (a binding just created): a denial is
// confirmed before it is final. Tokens are always read from etcd, so revocation is immediate.

import type { KubeObject } from '../../api/types.js';
import type { EtcdStore } from '../../store/etcd-store.js';
import type { ObjectCache } from '../object-cache.js';
import { resourceKey, resourcePrefix, type Registry, type Resource } from '../resources.js';
import { GROUP } from '../../api/types.js';
import { BUILTIN_CLUSTER_ROLES, type Rule } from './rbac.js';

export interface Binding {
  namespace?: string;
  roleRef: { kind: 'Role' | 'ClusterRole'; name: string };
  subjects: Array<{ kind: 'Token' | 'User'; name: string }>;
}

export interface RbacSnapshot {
  clusterRole(name: string): readonly Rule[] | undefined;
  role(namespace: string, name: string): readonly Rule[] | undefined;
  roleBindings(namespace: string): readonly Binding[];
  clusterRoleBindings(): readonly Binding[];
}

const KINDS = ['roles', 'clusterroles', 'rolebindings', 'clusterrolebindings'] as const;
type Kind = (typeof KINDS)[number];

class Maps implements RbacSnapshot {
  readonly objects: Record<Kind, Map<string, KubeObject>> = { roles: new Map(), clusterroles: new Map(), rolebindings: new Map(), clusterrolebindings: new Map() };

  clusterRole(name: string) {
    return (this.objects.clusterroles.get(name)?.rules as Rule[] | undefined) ?? BUILTIN_CLUSTER_ROLES[name];
  }
  role(namespace: string, name: string) {
    return this.objects.roles.get(`${namespace}/${name}`)?.rules as Rule[] | undefined;
  }
  roleBindings(namespace: string) {
    return [...this.objects.rolebindings.values()].filter((b) => b.metadata.namespace === namespace).map(toBinding);
  }
  clusterRoleBindings() {
    return [...this.objects.clusterrolebindings.values()].map(toBinding);
  }
}

const toBinding = (o: KubeObject): Binding => ({ ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}), roleRef: o.roleRef, subjects: o.subjects ?? [] });
const mapKey = (o: KubeObject) => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name!);

export class RbacState {
  private readonly cached = new Maps();

  constructor(
    private readonly registry: Registry,
    private readonly store: EtcdStore,
    cache: ObjectCache,
  ) {
    cache.onChange((resource, obj, previous) => {
      if (resource.group !== GROUP || !(KINDS as readonly string[]).includes(resource.plural)) return;
      const map = this.cached.objects[resource.plural as Kind];
      if (obj) map.set(mapKey(obj), obj);
      else if (previous) map.delete(mapKey(previous));
    });
  }

  /** The cached view: fast, possibly a few milliseconds behind. */
  get snapshot(): RbacSnapshot {
    return this.cached;
  }

  /** A view read from etcd now. */
  async fresh(): Promise<RbacSnapshot> {
    const maps = new Maps();
    await Promise.all(
      KINDS.map(async (kind) => {
        const resource = this.resource(kind);
        if (!resource) return;
        const list = await this.store.list(resourcePrefix(resource));
        for (const obj of list.items) maps.objects[kind].set(mapKey(obj), obj);
      }),
    );
    return maps;
  }

  /**
   * A Token object by id, read from etcd: a revoked token must stop working at once, even while
   * the cache still holds it for a few milliseconds.
   */
  async token(id: string): Promise<KubeObject | null> {
    const resource = this.resource('tokens');
    if (!resource) return null;
    return this.store.get(resourceKey(resource, undefined, id));
  }

  private resource(plural: string): Resource | undefined {
    return this.registry.get(GROUP, plural);
  }
}
