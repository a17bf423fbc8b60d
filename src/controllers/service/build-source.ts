// The git side of a Service built from source (spec.build): which commit its ref names now (kept
// in the Service's status.build, re-resolved when the ref, the restart annotation or the poll
// interval says so), where builds run, the deploy key, and finding an image already built for a
// build key on any node.

import type Docker from 'dockerode';
import type { Node, Secret, ServiceSpec } from '../../api/generated/crd-types.js';
import { ApiRequestError, type ApiClient } from '../../client/api-client.js';
import { BUILD_KEY_LABEL, FINISHED_BUILD_LABEL } from '../../build/build-identity.js';
import type { GitCredentials } from '../../build/git.js';
import { getCondition, type Condition } from '../runtime/conditions.js';
import type { DeepReadonly } from '../runtime/informer.js';
import { LABEL_CLUSTER } from './container-spec.js';
import { matchesSelector } from './placement.js';

export type BuildSpec = NonNullable<ServiceSpec['build']>;
export const BUILDER_LABEL = 'slipway.dev/builder';

/** What a resolved commit is valid for: a change of any part means resolving again. */
export function sourceKey(build: DeepReadonly<BuildSpec>, restartedAt: string | undefined): string {
  return JSON.stringify([build.git, build.ref, restartedAt ?? '']);
}

/**
 * The node a build runs on: the first Ready node matching spec.build.nodeSelector; without one,
 * a Ready node labelled slipway.dev/builder=true, else the first Ready node (by name).
 */
export function chooseBuildNode(nodes: ReadonlyArray<DeepReadonly<Node>>, selector: Readonly<Record<string, string>> | undefined, unreachable: { has(name: string): boolean }): string | undefined {
  const ready = nodes
    .filter((n) => getCondition(n.status?.conditions as Condition[], 'Ready')?.status === 'True' && !unreachable.has(n.metadata.name!))
    .map((n) => ({ name: n.metadata.name!, labels: n.metadata.labels ?? {} }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  if (selector && Object.keys(selector).length) return ready.find((n) => matchesSelector(n.labels, selector))?.name;
  return ready.find((n) => n.labels[BUILDER_LABEL] === 'true')?.name ?? ready[0]?.name;
}

/** The deploy key (spec.build.sshKeySecretRef) and pinned host key. Never logged. */
export async function gitCredentials(client: ApiClient, namespace: string, build: DeepReadonly<BuildSpec>): Promise<GitCredentials> {
  const ref = build.sshKeySecretRef;
  const credentials: GitCredentials = build.hostKey ? { hostKey: build.hostKey } : {};
  if (!ref) return credentials;
  const key = ref.key ?? 'ssh-privatekey';
  let secret: Secret;
  try {
    secret = await client.get<Secret>(`/apis/slipway.dev/v1alpha1/namespaces/${namespace}/secrets/${encodeURIComponent(ref.name)}`);
  } catch (err) {
    if (err instanceof ApiRequestError && err.code === 404) throw new Error(`spec.build.sshKeySecretRef: Secret ${namespace}/${ref.name} does not exist`);
    throw err;
  }
  const value = secret.data?.[key];
  if (!value) throw new Error(`spec.build.sshKeySecretRef: Secret ${namespace}/${ref.name} has no key ${JSON.stringify(key)}`);
  return { ...credentials, sshPrivateKey: Buffer.from(value, 'base64').toString('utf8') };
}

/** An image this installation (`cluster`) built with `key`, on one of the nodes (the first that has one). */
export async function findBuiltImage(nodes: Array<{ node: string; docker: Docker }>, key: string, cluster: string): Promise<{ node: string; id: string } | undefined> {
  for (const { node, docker } of nodes) {
    const images = await docker.listImages({ filters: { label: [`${BUILD_KEY_LABEL}=${key}`, FINISHED_BUILD_LABEL, `${LABEL_CLUSTER}=${cluster}`] } } as Docker.ListImagesOptions).catch(() => []);
    const found = images.sort((a, b) => a.Created - b.Created)[0];
    if (found) return { node, id: found.Id };
  }
  return undefined;
}
