// The part of a Service that defines what runs (its template), the hash that tells whether a
// change needs a new Release, and the deterministic names of Releases and containers.

import { createHash } from 'node:crypto';
import type { Service, ServiceSpec } from '../../api/generated/crd-types.js';
import type { DeepReadonly } from '../runtime/informer.js';
import { TEMPLATE_FIELDS } from '../../api/service-contract.js';
import { stableJson } from '../../api/stable-json.js';

export type ReleaseTemplate = Partial<Pick<ServiceSpec, (typeof TEMPLATE_FIELDS)[number]>>;

export { CHANGE_CAUSE_ANNOTATION, RESTARTED_AT_ANNOTATION } from '../../api/service-contract.js';

export function templateOf(service: DeepReadonly<Service>): ReleaseTemplate {
  const spec = (service.spec ?? {}) as Record<string, unknown>;
  const template: Record<string, unknown> = {};
  for (const field of TEMPLATE_FIELDS) if (spec[field] !== undefined) template[field] = structuredClone(spec[field]);
  return template as ReleaseTemplate;
}

/** Names of the Secrets a template reads (environment and registry credentials). */
export function referencedSecrets(template: ReleaseTemplate): string[] {
  const names = new Set<string>();
  for (const e of template.env ?? []) if (e.valueFrom?.secretKeyRef?.name) names.add(e.valueFrom.secretKeyRef.name);
  for (const f of template.envFrom ?? []) names.add(f.secretRef.name);
  if (template.imagePullSecretRef?.name) names.add(template.imagePullSecretRef.name);
  return [...names].sort();
}

/** The template's identity; `secretsHash` (the versions of its Secrets) counts when the Service rolls out on Secret changes. */
export function configHash(template: ReleaseTemplate, restartedAt?: string, secretsHash?: string): string {
  return createHash('sha256')
    .update(stableJson({ template, restartedAt: restartedAt ?? '', ...(secretsHash ? { secretsHash } : {}) }))
    .digest('hex')
    .slice(0, 32);
}

export const releaseName = (service: string, revision: number) => `${service}-${revision}`;

/** Docker container name of one replica: unique per node and deterministic, so re-running is safe. */
export const replicaContainerName = (namespace: string, service: string, revision: number, replica: number) =>
  `${namespace}.${service}-${revision}-${replica}`;

export const migrateContainerName = (namespace: string, service: string, revision: number) => `${namespace}.${service}-${revision}-migrate`;
