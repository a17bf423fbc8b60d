// One slipctl invocation's view of the server: the resolved config, a lazily created API client,
// cached discovery (refreshed when a name is not found, so a CRD applied a moment ago resolves),
// the namespace rules (`-n`, else the config's default), and the CRD lookups the printers need.

import { ApiClient } from '../src/client/api-client.js';
import { discover, resolveResource, resourceForKind, UnknownResourceError, type ApiResource } from '../src/client/discovery.js';
import type { KubeObject, PrinterColumn } from '../src/api/types.js';
import { loadConfig, readCertificateAuthority, type CliConfig } from './config.js';
import { isNotFound } from './errors.js';

export interface SessionOptions {
  serverFlag?: string;
  /** --certificate-authority: the CA an https server must be signed by. */
  caFlag?: string;
  namespaceFlag?: string;
  env: NodeJS.ProcessEnv;
}

/** kubectl's way of naming a type in messages: `service.slipway.dev`. */
export const typeName = (r: ApiResource): string => (r.group ? `${r.singular}.${r.group}` : r.singular);
/** The plural form, as the server names resources in its messages: `services.slipway.dev`. */
export const pluralName = (r: ApiResource): string => (r.group ? `${r.plural}.${r.group}` : r.plural);

const CRD_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

/** Columns for kinds without a stored CRD (the CRD kind itself is built into the server). */
const BUILTIN_COLUMNS: Record<string, PrinterColumn[]> = {
  'apiextensions.k8s.io/customresourcedefinitions': [{ name: 'Created At', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
};

export class Session {
  private configValue?: CliConfig;
  private clientValue?: ApiClient;
  private resourceList?: ApiResource[];
  private readonly crds = new Map<string, Promise<KubeObject | null>>();

  constructor(private readonly options: SessionOptions) {}

  get config(): CliConfig {
    this.configValue ??= loadConfig({
      env: this.options.env,
      ...(this.options.serverFlag ? { serverFlag: this.options.serverFlag } : {}),
      ...(this.options.caFlag ? { caFlag: this.options.caFlag } : {}),
    });
    return this.configValue;
  }

  get client(): ApiClient {
    // An https server must be signed by the configured CA, and only by it (pinning).
    const ca = this.clientValue || !this.config.server.startsWith('https:') ? undefined : readCertificateAuthority(this.config);
    this.clientValue ??= new ApiClient({
      server: this.config.server,
      ...(this.config.token ? { token: this.config.token } : {}),
      ...(ca ? { ca } : {}),
      userAgent: 'slipctl/0.1',
    });
    return this.clientValue;
  }

  /** The namespace given with `-n`, if any (a manifest's own namespace must agree with it). */
  get explicitNamespace(): string | undefined {
    return this.options.namespaceFlag || undefined;
  }

  /** `-n`, else the config's default namespace, else `default`. */
  get namespace(): string {
    return this.explicitNamespace ?? this.config.namespace;
  }

  async resources(refresh = false): Promise<ApiResource[]> {
    if (!this.resourceList || refresh) this.resourceList = await discover(this.client);
    return this.resourceList;
  }

  /** Resolves `svc`, `services`, `Service`, `services.slipway.dev`; rediscovers once before giving up. */
  async resolve(name: string): Promise<ApiResource> {
    try {
      return resolveResource(await this.resources(), name);
    } catch (err) {
      if (!(err instanceof UnknownResourceError)) throw err;
      return resolveResource(await this.resources(true), name);
    }
  }

  /** Resolves a manifest's apiVersion + kind; rediscovers once before giving up. */
  async resolveKind(apiVersion: string, kind: string): Promise<ApiResource> {
    try {
      return resourceForKind(await this.resources(), apiVersion, kind);
    } catch (err) {
      if (!(err instanceof UnknownResourceError)) throw err;
      return resourceForKind(await this.resources(true), apiVersion, kind);
    }
  }

  /** The stored CRD that defines a resource, or null for built-in kinds. */
  crdFor(r: ApiResource): Promise<KubeObject | null> {
    const name = `${r.plural}.${r.group}`;
    let found = this.crds.get(name);
    if (!found) {
      found = this.client.get(`${CRD_PATH}/${encodeURIComponent(name)}`).catch((err) => {
        if (isNotFound(err)) return null;
        throw err;
      });
      this.crds.set(name, found);
    }
    return found;
  }

  /** The served version's entry of a resource's CRD (schema, printer columns), or null. */
  async crdVersion(r: ApiResource): Promise<Record<string, any> | null> {
    const crd = await this.crdFor(r);
    if (!crd) return null;
    const versions = (crd.spec?.versions ?? []) as Record<string, any>[];
    return versions.find((v) => v.name === r.version) ?? null;
  }

  async printerColumns(r: ApiResource): Promise<PrinterColumn[]> {
    const builtin = BUILTIN_COLUMNS[`${r.group}/${r.plural}`];
    if (builtin) return builtin;
    const version = await this.crdVersion(r);
    const columns = (version?.additionalPrinterColumns as PrinterColumn[] | undefined) ?? [];
    return columns.length ? columns : [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }];
  }

  async close(): Promise<void> {
    await this.clientValue?.close();
  }
}
