// Start-up state the server guarantees: the bundled CRDs from `crds/` installed or upgraded
// (they are the schema source of truth) and the `default` Namespace present. Safe to run from
// several API servers at once and on every start.

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Logger } from 'pino';
import { API_VERSION, CRD_GROUP, GROUP, type KubeObject } from '../api/types.js';
import { deepEqual } from '../api/deep-equal.js';
import { ApiError } from './errors.js';
import type { ObjectService, Scope } from './objects.js';
import type { Registry } from './resources.js';
import { CRD_PLURAL } from './crd.js';

export async function loadCrdFiles(dir: string): Promise<KubeObject[]> {
  const files = (await readdir(dir)).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();
  const crds: KubeObject[] = [];
  for (const file of files) {
    const text = await readFile(join(dir, file), 'utf8');
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      const obj = doc.toJS() as KubeObject | null;
      if (obj && obj.kind === 'CustomResourceDefinition') crds.push(obj);
    }
  }
  return crds;
}

function scopeOf(registry: Registry, group: string, plural: string): Scope {
  const resource = registry.get(group, plural);
  if (!resource) throw new Error(`resource ${plural}.${group} is not registered`);
  return { resource, version: resource.versions.get(resource.storageVersion)! };
}

/** Creates each CRD, or updates it when its spec differs from the stored one. */
export async function installCrds(crds: KubeObject[], objects: ObjectService, registry: Registry, log: Logger): Promise<void> {
  const scope = scopeOf(registry, CRD_GROUP, CRD_PLURAL);
  for (const crd of crds) {
    const name = crd.metadata.name!;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const current = await objects.get(scope, name).catch((err) => {
          if (err instanceof ApiError && err.code === 404) return null;
          throw err;
        });
        if (!current) {
          await objects.create(scope, crd);
          log.info({ crd: name }, 'installed CRD');
        } else if (!deepEqual(current.spec, crd.spec)) {
          await objects.update(scope, name, { ...crd, metadata: { ...current.metadata, labels: crd.metadata.labels ?? current.metadata.labels } }, undefined);
          log.info({ crd: name }, 'upgraded CRD');
        }
        break;
      } catch (err) {
        if (err instanceof ApiError && (err.code === 409 || err.code === 503) && attempt < 4) continue;
        throw err;
      }
    }
  }
}

export async function ensureDefaultNamespace(objects: ObjectService, registry: Registry): Promise<void> {
  if (!registry.get(GROUP, 'namespaces')) return;
  const scope = scopeOf(registry, GROUP, 'namespaces');
  for (const name of SYSTEM_NAMESPACES) {
    try {
      await objects.create(scope, { apiVersion: API_VERSION, kind: 'Namespace', metadata: { name }, spec: {} });
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 409)) throw err;
    }
  }
}

/** `default` for users, `slipway-system` for Slipway's own objects (the controller managers' Lease). */
export const SYSTEM_NAMESPACES = ['default', 'slipway-system'];
