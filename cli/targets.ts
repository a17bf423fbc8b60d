// From manifests to API targets, for the commands that take `-f` (apply, create, replace,
// delete, diff): the order to write them in (CRDs, then Namespaces, then the rest), the resource
// and REST path of each object, and kubectl's namespace rules (the manifest's namespace, else
// `-n`, else the default; `-n` contradicting a manifest is an error).

import type { ApiResource } from '../src/client/discovery.js';
import { resourcePath, UnknownResourceError } from '../src/client/discovery.js';
import { CRD_GROUP, type KubeObject } from '../src/api/types.js';
import { CliError } from './errors.js';
import type { Manifest } from './manifests.js';
import type { Session } from './session.js';

export interface Target {
  manifest: Manifest;
  resource: ApiResource;
  /** The object as it should be sent: namespace filled in (namespaced kinds) or removed. */
  object: KubeObject;
  namespace?: string;
  name: string;
  /** The object's own path. */
  path: string;
  /** Its collection's path (for POST). */
  collection: string;
}

const rank = (o: KubeObject): number => {
  const group = String(o.apiVersion ?? '').split('/')[0];
  if (o.kind === 'CustomResourceDefinition' && group === CRD_GROUP) return 0;
  if (o.kind === 'Namespace') return 1;
  return 2;
};

/** CRDs first, Namespaces next, then everything else; the order within each group is kept. */
export function applyOrder(manifests: readonly Manifest[]): Manifest[] {
  return manifests.map((m, i) => ({ m, i })).sort((a, b) => rank(a.m.object) - rank(b.m.object) || a.i - b.i).map((x) => x.m);
}

/** The `group/Kind` a CRD object defines, for waiting until it is served. */
export function kindDefinedBy(o: KubeObject): string | undefined {
  if (rank(o) !== 0) return undefined;
  return `${o.spec?.group}/${o.spec?.names?.kind}`;
}

/**
 * Resolves a manifest to its target. When its kind is defined by a CRD applied earlier in this
 * run (`pendingKinds`), waits up to `waitMs` for the server to serve it.
 */
export async function resolveTarget(session: Session, m: Manifest, pendingKinds: ReadonlySet<string> = new Set(), waitMs = 30_000): Promise<Target> {
  const o = m.object;
  const name = o.metadata?.name;
  let resource: ApiResource;
  try {
    resource = await resolveServedKind(session, o, pendingKinds, waitMs);
  } catch (err) {
    if (err instanceof UnknownResourceError) {
      throw new CliError(`resource mapping not found for name: "${name ?? ''}" from "${m.source}": ${err.message}\nensure CRDs are installed first`);
    }
    throw err;
  }
  const object = structuredClone(o);
  object.metadata ??= {};
  let namespace: string | undefined;
  if (resource.namespaced) {
    const fromFile = object.metadata.namespace;
    const explicit = session.explicitNamespace;
    if (fromFile && explicit && fromFile !== explicit) {
      throw new CliError(
        `the namespace from the provided object "${fromFile}" does not match the namespace "${explicit}". You must pass '--namespace=${fromFile}' to perform this operation.`,
      );
    }
    namespace = fromFile || session.namespace;
    object.metadata.namespace = namespace;
  } else {
    delete object.metadata.namespace;
  }
  return {
    manifest: m,
    resource,
    object,
    ...(namespace !== undefined ? { namespace } : {}),
    name: name ?? '',
    path: resourcePath(resource, namespace, name ?? ''),
    collection: resourcePath(resource, namespace),
  };
}

async function resolveServedKind(session: Session, o: KubeObject, pendingKinds: ReadonlySet<string>, waitMs: number): Promise<ApiResource> {
  const group = String(o.apiVersion).includes('/') ? String(o.apiVersion).split('/')[0] : '';
  const pending = pendingKinds.has(`${group}/${o.kind}`);
  const deadline = Date.now() + waitMs;
  for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
    try {
      return await session.resolveKind(o.apiVersion, o.kind);
    } catch (err) {
      if (!(err instanceof UnknownResourceError) || !pending || Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}
