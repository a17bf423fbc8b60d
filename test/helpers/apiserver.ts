// A real API server for tests: in-process on a free port, on a real etcd, with the bundled CRDs.

import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { createApiServer, type ApiServer, type ApiServerOptions } from '../../src/apiserver/server.js';
import { ApiClient } from '../../src/client/api-client.js';
import { startEtcd, type EtcdCluster } from './etcd.js';
import { randomBytes } from 'node:crypto';
import { sha256Hex } from '../../src/apiserver/auth/tokens.js';

export const CHECKOUT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CRDS_DIR = resolve(CHECKOUT, 'crds');

export interface TestApi {
  url: string;
  /** Static token of user `admin` (role admin); `client` sends it. */
  adminToken: string;
  /** Static token of the controller manager (role system:controller-manager). */
  managerToken: string;
  server: ApiServer;
  client: ApiClient;
  etcd: EtcdCluster;
  stop(): Promise<void>;
}

/**
 * Starts etcd (unless given) and an API server on it. With tlsCertFile/tlsKeyFile the server
 * serves HTTPS; `ca` (PEM) is then what `client` trusts.
 */
export async function startApi(options: Partial<ApiServerOptions> & { etcd?: EtcdCluster; ca?: string } = {}): Promise<TestApi> {
  const ownEtcd = !options.etcd;
  const etcd = options.etcd ?? (await startEtcd());
  const adminToken = `admin-${randomBytes(24).toString('hex')}`;
  const managerToken = `manager-${randomBytes(24).toString('hex')}`;
  const server = createApiServer({
    etcdEndpoints: etcd.endpoints,
    crdsDir: CRDS_DIR,
    logLevel: process.env.SLIPWAY_TEST_LOG ?? 'silent',
    ...options,
    tokens: [
      { hash: sha256Hex(adminToken), user: 'admin', role: 'admin' },
      { hash: sha256Hex(managerToken), user: 'system:controller-manager', role: 'controller-manager' },
      ...(options.tokens ?? []),
    ],
  });
  const url = await server.listen(0, '127.0.0.1');
  const client = new ApiClient({ server: url, token: adminToken, ...(options.ca ? { ca: options.ca } : {}) });
  return {
    url,
    adminToken,
    managerToken,
    server,
    client,
    etcd,
    async stop() {
      await client.close();
      await server.close();
      if (ownEtcd) await etcd.stop();
    },
  };
}

export const NS_PATH = '/apis/slipway.dev/v1alpha1/namespaces';
export const svcPath = (ns: string, name?: string) => `${NS_PATH}/${ns}/services${name ? `/${name}` : ''}`;

export function service(name: string, extra: Record<string, unknown> = {}, labels?: Record<string, string>) {
  return {
    apiVersion: 'slipway.dev/v1alpha1',
    kind: 'Service',
    metadata: { name, ...(labels ? { labels } : {}) },
    spec: { image: 'busybox:1', ...extra },
  };
}

export async function createNamespace(client: ApiClient, name: string): Promise<void> {
  await client.create(NS_PATH, { apiVersion: 'slipway.dev/v1alpha1', kind: 'Namespace', metadata: { name }, spec: {} });
}
