// Registry credentials for pulls: the Service's imagePullSecretRef names a Secret of type
// `kubernetes.io/dockerconfigjson`; the entry for the image's registry becomes Docker's
// authconfig. Values never reach logs or errors.

import type { Secret } from '../../api/generated/crd-types.js';
import { ApiRequestError, type ApiClient } from '../../client/api-client.js';
import type { ReleaseTemplate } from './template.js';

export type AuthConfig = { username?: string; password?: string; auth?: string; serveraddress: string };

/** The registry host of an image reference (`docker.io` when it names none). */
export function registryOf(image: string): string {
  const first = image.split('/')[0]!;
  const isHost = image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  return isHost ? first : 'docker.io';
}

const DOCKER_HUB_ALIASES = ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/'];

export async function registryAuth(client: ApiClient, namespace: string, template: ReleaseTemplate): Promise<AuthConfig | undefined> {
  const ref = template.imagePullSecretRef;
  if (!ref || !template.image) return undefined;
  let secret: Secret;
  try {
    secret = await client.get<Secret>(`/apis/slipway.dev/v1alpha1/namespaces/${namespace}/secrets/${encodeURIComponent(ref.name)}`);
  } catch (err) {
    if (err instanceof ApiRequestError && err.code === 404) throw new Error(`imagePullSecretRef: Secret ${namespace}/${ref.name} does not exist`);
    throw err;
  }
  const raw = secret.data?.['.dockerconfigjson'];
  if (!raw) throw new Error(`imagePullSecretRef: Secret ${namespace}/${ref.name} has no key ".dockerconfigjson"`);
  let config: { auths?: Record<string, { username?: string; password?: string; auth?: string }> };
  try {
    config = JSON.parse(Buffer.from(raw, 'base64').toString('utf8'));
  } catch {
    throw new Error(`imagePullSecretRef: Secret ${namespace}/${ref.name} key ".dockerconfigjson" is not JSON`);
  }
  const registry = registryOf(template.image);
  const candidates = registry === 'docker.io' ? DOCKER_HUB_ALIASES : [registry, `https://${registry}`, `http://${registry}`];
  const entry = Object.entries(config.auths ?? {}).find(([host]) => candidates.includes(host.replace(/\/+$/, '')) || candidates.includes(host))?.[1];
  if (!entry) throw new Error(`imagePullSecretRef: Secret ${namespace}/${ref.name} has no credentials for registry ${registry}`);
  let { username, password } = entry;
  if ((!username || !password) && entry.auth) [username, password] = Buffer.from(entry.auth, 'base64').toString('utf8').split(/:(.*)/s) as [string, string];
  return { username: username ?? '', password: password ?? '', serveraddress: registry };
}
