// The container environment of a release: literal values and values from Secrets (`env[].valueFrom`,
// `envFrom`), read through the API at container creation. Values are never logged; errors name the
// Secret and key, never the value.

import type { Secret } from '../../api/generated/crd-types.js';
import { ApiRequestError, type ApiClient } from '../../client/api-client.js';
import type { ReleaseTemplate } from './template.js';

const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

export async function resolveEnv(client: ApiClient, namespace: string, template: ReleaseTemplate): Promise<string[]> {
  const secrets = new Map<string, Secret | null>();
  const read = async (name: string): Promise<Secret | null> => {
    if (!secrets.has(name)) {
      try {
        secrets.set(name, await client.get<Secret>(`/apis/slipway.dev/v1alpha1/namespaces/${namespace}/secrets/${encodeURIComponent(name)}`));
      } catch (err) {
        if (err instanceof ApiRequestError && err.code === 404) secrets.set(name, null);
        else throw err;
      }
    }
    return secrets.get(name)!;
  };
  const decode = (value: string) => Buffer.from(value, 'base64').toString('utf8');
  const env: string[] = [];
  for (const from of template.envFrom ?? []) {
    const ref = from.secretRef;
    const secret = await read(ref.name);
    if (!secret) {
      if (ref.optional) continue;
      throw new Error(`envFrom: Secret ${namespace}/${ref.name} does not exist`);
    }
    for (const [key, value] of Object.entries(secret.data ?? {})) {
      const name = `${from.prefix ?? ''}${key}`;
      if (ENV_NAME.test(name)) env.push(`${name}=${decode(value)}`);
    }
  }
  for (const entry of template.env ?? []) {
    if (entry.valueFrom?.secretKeyRef) {
      const ref = entry.valueFrom.secretKeyRef;
      const secret = await read(ref.name);
      const value = secret?.data?.[ref.key];
      if (value === undefined) {
        if (ref.optional) continue;
        throw new Error(`env ${entry.name}: ${secret ? `Secret ${namespace}/${ref.name} has no key ${JSON.stringify(ref.key)}` : `Secret ${namespace}/${ref.name} does not exist`}`);
      }
      env.push(`${entry.name}=${decode(value)}`);
    } else {
      env.push(`${entry.name}=${entry.value ?? ''}`);
    }
  }
  return env;
}
