// Turns a BackupPolicy's target and a BackupLocation into what the backup library needs: connection
// details with the password read from its Secret, a Docker client for a volume's node, an open store.
// A `serviceRef` is resolved to a ready endpoint of the Service's active release (its published port
// on its node), or for volumes to the Service's volume on the node of its first replica. A Redis
// restore never connects to its source, so resolving for one does not need the Service to be up.
// Errors name the field and the object, never a secret value.

import type Docker from 'dockerode';
import type { BackupLocation, BackupPolicySpec, Secret, Service } from '../../api/generated/crd-types.js';
import { ApiRequestError, type ApiClient } from '../../client/api-client.js';
import { LocalStore } from '../../backup/local-store.js';
import type { BackupStore } from '../../backup/location.js';
import type { BackupTarget } from '../../backup/run.js';
import { SftpStore } from '../../backup/sftp-store.js';
import { volumeName } from '../service/container-spec.js';

const API = '/apis/slipway.dev/v1alpha1';

/** A problem with the policy or its references that retrying will not fix until someone changes them. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface DockerHosts {
  docker(node: string): Promise<Docker>;
}

async function getOrUndefined<T>(client: ApiClient, path: string): Promise<T | undefined> {
  try {
    return (await client.get(path)) as T;
  } catch (err) {
    if (err instanceof ApiRequestError && err.code === 404) return undefined;
    throw err;
  }
}

/** The value of one Secret key, decoded. */
export async function secretValue(client: ApiClient, namespace: string, ref: { name: string; key?: string }, field: string, defaultKey = 'password'): Promise<string> {
  const key = ref.key ?? defaultKey;
  const secret = await getOrUndefined<Secret>(client, `${API}/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(ref.name)}`);
  if (!secret) throw new ConfigError(`${field}: Secret ${namespace}/${ref.name} does not exist`);
  const value = secret.data?.[key];
  if (value === undefined) throw new ConfigError(`${field}: Secret ${namespace}/${ref.name} has no key ${JSON.stringify(key)}`);
  return Buffer.from(value, 'base64').toString('utf8');
}

async function service(client: ApiClient, namespace: string, name: string, field: string): Promise<Service> {
  const svc = await getOrUndefined<Service>(client, `${API}/namespaces/${encodeURIComponent(namespace)}/services/${encodeURIComponent(name)}`);
  if (!svc) throw new ConfigError(`${field}: Service ${namespace}/${name} does not exist`);
  return svc;
}

/** host:port of a ready replica of the Service's active release. */
async function serviceEndpoint(client: ApiClient, namespace: string, name: string, field: string): Promise<{ host: string; port: number }> {
  const svc = await service(client, namespace, name, field);
  const endpoint = svc.status?.endpoints?.find((e) => e.ready) ?? undefined;
  if (!endpoint) throw new Error(`${field}: Service ${namespace}/${name} has no ready replica to connect to`);
  return { host: endpoint.host, port: endpoint.port };
}

type Conn = { host?: string; port?: number; serviceRef?: { name: string } };

async function address(client: ApiClient, namespace: string, c: Conn, field: string, defaultPort: number): Promise<{ host: string; port: number }> {
  if (c.serviceRef) return serviceEndpoint(client, namespace, c.serviceRef.name, `${field}.serviceRef`);
  if (!c.host) throw new ConfigError(`${field}: set host or serviceRef`);
  return { host: c.host, port: c.port ?? defaultPort };
}

const password = (client: ApiClient, namespace: string, ref: { name: string; key?: string } | undefined, field: string) =>
  ref ? secretValue(client, namespace, ref, `${field}.passwordSecretRef`) : Promise.resolve(undefined);

/** What a target is resolved for: a backup reads the source; a restore (or drill) may not need it. */
export type ResolvePurpose = 'backup' | 'restore';

export async function resolveTarget(client: ApiClient, hosts: DockerHosts, namespace: string, spec: BackupPolicySpec, purpose: ResolvePurpose = 'backup'): Promise<BackupTarget> {
  const t = spec.target;
  const missing = (): never => {
    throw new ConfigError(`spec.target.${t.type} is required when spec.target.type is ${t.type}`);
  };
  switch (t.type) {
    case 'mysql':
    case 'postgres': {
      const c = t[t.type] ?? missing();
      const field = `spec.target.${t.type}`;
      const at = await address(client, namespace, c, field, t.type === 'mysql' ? 3306 : 5432);
      const pw = await password(client, namespace, c.passwordSecretRef, field);
      return { type: t.type, connection: { ...at, user: c.user, database: c.database, ...(pw !== undefined ? { password: pw } : {}) } };
    }
    case 'redis': {
      const c = t.redis ?? missing();
      // A Redis restore starts a new server from the artifact and never contacts the source: a
      // Service that is down (the usual reason to restore) must not block it. No address is needed.
      if (purpose === 'restore' && c.serviceRef) return { type: 'redis', connection: { host: `service ${namespace}/${c.serviceRef.name}`, port: 0 } };
      const at = await address(client, namespace, c, 'spec.target.redis', 6379);
      const pw = await password(client, namespace, c.passwordSecretRef, 'spec.target.redis');
      return { type: 'redis', connection: { ...at, ...(c.user ? { user: c.user } : {}), ...(pw !== undefined ? { password: pw } : {}) } };
    }
    case 'etcd': {
      const c = t.etcd ?? missing();
      const pw = await password(client, namespace, c.passwordSecretRef, 'spec.target.etcd');
      return { type: 'etcd', connection: { endpoints: [...c.endpoints], ...(c.user ? { user: c.user } : {}), ...(pw !== undefined ? { password: pw } : {}) } };
    }
    case 'volume': {
      const c = t.volume ?? missing();
      let node = c.node;
      let volume = c.name;
      if (c.serviceRef) {
        const svc = await service(client, namespace, c.serviceRef.name, 'spec.target.volume.serviceRef');
        const declared = (svc.spec?.volumes ?? []).map((v) => v.name);
        if (!declared.includes(c.name)) {
          throw new ConfigError(`spec.target.volume.name: Service ${namespace}/${c.serviceRef.name} has no volume ${JSON.stringify(c.name)} (its volumes: ${declared.join(', ') || 'none'})`);
        }
        volume = volumeName(namespace, c.serviceRef.name, c.name);
        node ??= svc.status?.endpoints?.[0]?.node;
        if (!node) throw new Error(`spec.target.volume.serviceRef: Service ${namespace}/${c.serviceRef.name} has no replica, so the node holding volume ${volume} is unknown; set spec.target.volume.node`);
      }
      if (!node) throw new ConfigError('spec.target.volume.node: set node or serviceRef');
      return { type: 'volume', docker: await hosts.docker(node), volume, node, ...(c.helperImage ? { image: c.helperImage } : {}) };
    }
  }
}

/** Opens the named BackupLocation; the caller closes the store. Returns the secrets to scrub from errors too. */
export async function openLocation(client: ApiClient, namespace: string, name: string): Promise<{ store: BackupStore; secrets: string[] }> {
  const loc = await getOrUndefined<BackupLocation>(client, `${API}/namespaces/${encodeURIComponent(namespace)}/backuplocations/${encodeURIComponent(name)}`);
  if (!loc?.spec) throw new ConfigError(`spec.location: BackupLocation ${namespace}/${name} does not exist`);
  if (loc.spec.local) return { store: new LocalStore(loc.spec.local.path), secrets: [] };
  const s = loc.spec.sftp;
  if (!s) throw new ConfigError(`BackupLocation ${namespace}/${name} sets neither local nor sftp`);
  const privateKey = await secretValue(client, namespace, s.privateKeySecretRef, `BackupLocation ${namespace}/${name} spec.sftp.privateKeySecretRef`, 'privateKey');
  return { store: await SftpStore.open({ host: s.host, port: s.port ?? 22, username: s.user, privateKey, hostKey: s.hostKey, basePath: s.path }), secrets: [privateKey] };
}
