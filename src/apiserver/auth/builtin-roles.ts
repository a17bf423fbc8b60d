// Restores the built-in ClusterRoles (admin, deployer, viewer, controller-manager) at start,
// so `slipctl get clusterroles` shows them and an edited or deleted built-in comes back as shipped.

import type { Logger } from 'pino';
import { API_VERSION, GROUP, type KubeObject } from '../../api/types.js';
import { ApiError } from '../errors.js';
import type { ObjectService } from '../objects.js';
import type { Registry } from '../resources.js';
import { BUILTIN_CLUSTER_ROLES } from './rbac.js';

export async function ensureBuiltinRoles(objects: ObjectService, registry: Registry, log: Logger): Promise<void> {
  const found = registry.lookup(GROUP, 'v1alpha1', 'clusterroles');
  if (!found) return;
  const scope = { resource: found.resource, version: found.version };
  for (const [name, rules] of Object.entries(BUILTIN_CLUSTER_ROLES)) {
    const desired = { apiVersion: API_VERSION, kind: 'ClusterRole', metadata: { name, labels: { 'slipway.dev/builtin': 'true' } }, rules };
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        let current: KubeObject | null = null;
        try {
          current = await objects.get(scope, name);
        } catch (err) {
          if (!(err instanceof ApiError && err.code === 404)) throw err;
        }
        if (!current) await objects.create(scope, desired);
        else if (JSON.stringify(current.rules) !== JSON.stringify(rules)) {
          await objects.update(scope, name, { ...desired, metadata: { ...desired.metadata, resourceVersion: current.metadata.resourceVersion } }, undefined);
          log.info({ role: name }, 'restored built-in ClusterRole');
        }
        break;
      } catch (err) {
        if (err instanceof ApiError && err.code === 409 && attempt < 4) continue;
        throw err;
      }
    }
  }
}
