// Wires the API server together: etcd store, resource registry fed by CRDs, object service,
// watch hub, garbage collector, compactor, the log/exec forwarding to the controller manager, and
// the koa app with its one error middleware.

import { SLIPWAY_VERSION } from '../util/version.js';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import Router from '@koa/router';
import { pino, type Logger } from 'pino';
import { GROUP, type KubeObject } from '../api/types.js';
import { EtcdStore } from '../store/etcd-store.js';
import { Compactor } from '../store/compactor.js';
import { ObjectIndex } from '../store/object-index.js';
import { ensureDefaultNamespace, installCrds, loadCrdFiles } from './bootstrap.js';
import { crdResource, resourceFromCrd } from './crd.js';
import { ApiError, internal, pathNotFound, tooManyRequests, unavailable } from './errors.js';
import { answerMalformedRequests, answerPlainHttpOnTls } from './http-guards.js';
import { GarbageCollector } from './garbage-collector.js';
import { gitHooks } from './git-hooks.js';
import { isLongRunning, ManagerProxy } from './manager-proxy.js';
import { ObjectCache } from './object-cache.js';
import { DomainHostIndex, startTlsAskServer, type TlsAskServer } from './tls-ask.js';
import { ApiMetrics } from './metrics.js';
import { ObjectService, type NamespaceLookup } from './objects.js';
import { ResourceRoutes, type RequestInfo } from './resource-routes.js';
import { Registry, resourceKey } from './resources.js';
import { SchemaCompiler } from './schema.js';
import { strategies } from './strategies.js';
import { registerSecretsRekey, reloadKeys, secretEncryption } from './secrets-encryption.js';
import { assertPlainHttpAllowed, loadServingCertificate } from './tls.js';
import { WatchHub } from './watch.js';
import { AuditLog } from './audit/audit-log.js';
import { auditMiddleware } from './audit/audit-middleware.js';
import { registerAuditRoutes } from './audit/audit-routes.js';
import { checkAccess } from './auth/access.js';
import { registerAuthRoutes } from './auth/auth-routes.js';
import { authenticate, Authenticator } from './auth/authenticate.js';
import { Authorizer } from './auth/authorize.js';
import { ensureBuiltinRoles } from './auth/builtin-roles.js';
import { RbacState } from './auth/rbac-state.js';
import { readStaticTokens, type StaticToken } from './auth/tokens.js';
import { REDACT } from '../util/log-redaction.js';

export const SERVER_VERSION = SLIPWAY_VERSION;

export interface ApiServerOptions {
  etcdEndpoints: string[];
  /** Directory of bundled CRDs installed at start (the schema source of truth). */
  crdsDir?: string;
  logger?: Logger;
  logLevel?: string;
  /** Where the built-in logger writes (default stdout); tests read the lines back. */
  logDestination?: NodeJS.WritableStream;
  bookmarkIntervalMs?: number;
  /** How often etcd history is compacted (to the revision of the previous tick). Defaults to 5 min. */
  compactionIntervalMs?: number;
  /** Non-watch requests served at once before answering 429. Defaults to 400. */
  maxInflight?: number;
  /** JSON key file (mode 0600) for encrypting Secrets at rest; without it Secrets are stored unencrypted. */
  encryptionKeyFile?: string;
  /** PEM serving certificate and key: with both, listen() serves HTTPS (TLS 1.2+); with neither, plain HTTP on loopback only. */
  /** Static bearer tokens (the admin's, the controller manager's), besides requested Tokens. */
  tokens?: StaticToken[];
  /** A `token,user,role` file of static tokens (mode 0600). */
  tokenFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** Directory of the audit log (JSON lines, rotated); auditing is off when unset. */
  auditDir?: string;
  /** Size at which audit.log is rotated (default 10 MiB) and rotated files kept (default 10). */
  auditMaxBytes?: number;
  auditMaxFiles?: number;
  /** `host:port` (loopback only) of the plain-HTTP on-demand TLS ask endpoint for Caddy; off when unset. */
  tlsAskAddress?: string;
}

export interface ApiServer {
  readonly app: Koa;
  readonly store: EtcdStore;
  readonly registry: Registry;
  readonly objects: ObjectService;
  readonly metrics: ApiMetrics;
  readonly log: Logger;
  /** Initialises state (CRDs, default namespace, GC) and listens. Returns the base URL (https:// with TLS). */
  listen(port?: number, host?: string): Promise<string>;
  /** Re-reads the encryption key file (SIGHUP); failures are logged and the old keys kept. */
  reloadEncryptionKeys(): void;
  /** URL of the on-demand TLS ask endpoint once listening with tlsAskAddress (`http://127.0.0.1:P/tls/ask`). */
  readonly tlsAskUrl: string | undefined;
  close(): Promise<void>;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export function createApiServer(options: ApiServerOptions): ApiServer {
  const log = options.logger ?? pino({ level: options.logLevel ?? 'info', base: { component: 'apiserver' }, redact: REDACT }, options.logDestination ?? process.stdout);
  const metrics = new ApiMetrics();
  const encryption = secretEncryption(options.encryptionKeyFile);
  if (!encryption.ring) log.warn('no --encryption-key-file: Secrets are stored in etcd unencrypted');
  const store = new EtcdStore({
    endpoints: options.etcdEndpoints,
    observe: (operation, seconds) => metrics.etcdDuration.observe({ operation }, seconds),
    transformers: [encryption.transformer],
    onUnreadable: (key, err) => log.error({ key, err: err.message }, 'cannot read a stored value; it is left out of the server caches'),
  });
  const compiler = new SchemaCompiler();
  const registry = new Registry();
  const crdKind = crdResource(compiler);
  registry.put(crdKind);

  // The object service reads the cache, which follows the hub, which serves the service's
  // lists: the closures below only run after `cache` is initialised.
  /** Namespaces this server marked Terminating, by the revision of that write (read-your-writes for admission). */
  const terminating = new Map<string, bigint>();
  const namespaces: NamespaceLookup = {
    async phase(name) {
      const resource = registry.get(GROUP, 'namespaces');
      if (!resource) return null;
      const key = resourceKey(resource, undefined, name);
      let ns: KubeObject | null | undefined = cache.get(resource, key);
      const marked = terminating.get(name);
      if (marked !== undefined && ns && BigInt(ns.metadata.resourceVersion ?? '0') >= marked) terminating.delete(name); // the cache caught up
      // Only a cached Active namespace is trusted, and not one this server has just marked
      // Terminating (the cache may not show that write yet); anything else is confirmed with etcd.
      if (!ns || ns.metadata.deletionTimestamp || terminating.has(name)) ns = await store.get(key);
      if (!ns) return null;
      return ns.metadata.deletionTimestamp ? 'Terminating' : 'Active';
    },
  };
  const objects: ObjectService = new ObjectService(store, strategies(registry, compiler), namespaces, (resource, key): KubeObject | undefined => cache.get(resource, key));
  const hub: WatchHub = new WatchHub(store, objects, {
    ...(options.bookmarkIntervalMs ? { bookmarkIntervalMs: options.bookmarkIntervalMs } : {}),
    onOpen: (r) => metrics.openWatches.inc({ resource: r.plural }),
    onClose: (r) => metrics.openWatches.dec({ resource: r.plural }),
  });
  const routes = new ResourceRoutes(registry, objects, hub, checkAccess);
  const managerProxy = new ManagerProxy(registry, objects);
  const cache: ObjectCache = new ObjectCache(registry, store, hub, (err) => log.warn({ err: String(err) }, 'cannot follow a resource'));
  const rbac = new RbacState(registry, store, cache);
  const domainHosts = new DomainHostIndex(cache);
  let tlsAsk: TlsAskServer | undefined;
  const authorizer = new Authorizer(rbac);
  const staticTokens = [...(options.tokens ?? []), ...(options.tokenFile ? readStaticTokens(options.tokenFile) : [])];
  if (!staticTokens.length) log.warn('no static tokens (--token-auth-file): only requested Tokens can use this API server');
  const authenticator = new Authenticator(staticTokens, rbac);
  const gc = new GarbageCollector(registry, store, cache, objects, log.child({ component: 'garbage-collector' }));
  const compactor = new Compactor(store, options.compactionIntervalMs, (err) => log.warn({ err: String(err) }, 'compaction failed'));

  // Served kinds follow the stored CRDs, in this server and in any other one sharing the etcd.
  const syncCrd = (crd: KubeObject | null, previous: KubeObject | null) => {
    if (crd) {
      try {
        registry.put(resourceFromCrd(crd, compiler));
      } catch (err) {
        log.error({ crd: crd.metadata.name, err: String(err) }, 'cannot serve CRD');
      }
    } else if (previous) registry.remove(previous.metadata.name!);
  };
  objects.onWrite((resource, obj, deleted) => {
    if (resource === crdKind) syncCrd(deleted ? null : obj, obj);
    if (resource.group === GROUP && resource.plural === 'namespaces' && obj.metadata.name) {
      if (!deleted && obj.metadata.deletionTimestamp) terminating.set(obj.metadata.name, BigInt(obj.metadata.resourceVersion ?? '0'));
      else terminating.delete(obj.metadata.name);
    }
  });
  const crdIndex = new ObjectIndex(store, hub.cacheFor(crdKind));
  crdIndex.onChange((_key, obj, previous) => syncCrd(obj, previous));

  let ready = false;
  const inflight = { count: 0 };
  const maxInflight = options.maxInflight ?? 400;

  const app = new Koa();
  app.proxy = false;
  // Failures after the response was handed over (a client that hung up mid-body): log, don't print stacks.
  app.on('error', (err: Error) => log.debug({ err: err.message }, 'request stream error'));
  const router = new Router();

  // Audit sits outside the error middleware, so it records the status code the client gets.
  const audit = options.auditDir
    ? new AuditLog({ dir: options.auditDir, maxBytes: options.auditMaxBytes, maxFiles: options.auditMaxFiles, registry: metrics.registry, log: log.child({ component: 'audit' }) })
    : undefined;
  if (audit) app.use(auditMiddleware(audit));

  // One error middleware: every failure becomes a Kubernetes Status; no stack reaches a client.
  app.use(async (ctx, next) => {
    const start = process.hrtime.bigint();
    const supplied = ctx.get('x-request-id');
    const requestId = REQUEST_ID.test(supplied) ? supplied : randomUUID();
    ctx.set('X-Request-Id', requestId);
    const isWatch = ctx.query.watch === 'true' || ctx.query.watch === '1' || isLongRunning(ctx.path, ctx.query);
    let counted = false;
    try {
      if (!isWatch && ctx.path.startsWith('/apis')) {
        if (inflight.count >= maxInflight) throw tooManyRequests(1);
        inflight.count++;
        counted = true;
        metrics.inflight.set(inflight.count);
      }
      await next();
      if (ctx.status === 404 && ctx.body === undefined && ctx.respond !== false) throw pathNotFound(ctx.path);
    } catch (err) {
      const apiError =
        err instanceof ApiError
          ? err
          : (log.error({ reqId: requestId, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'unexpected error'), internal());
      ctx.respond = true;
      ctx.status = apiError.code;
      if (apiError.details?.retryAfterSeconds) ctx.set('Retry-After', String(apiError.details.retryAfterSeconds));
      ctx.body = apiError.toStatus();
    } finally {
      if (counted) {
        inflight.count--;
        metrics.inflight.set(inflight.count);
      }
      const info: RequestInfo | undefined = ctx.state.request;
      const labels = { verb: info?.verb ?? ctx.method.toLowerCase(), resource: info?.resource ?? 'none' };
      metrics.requests.inc({ ...labels, code: String(ctx.status) });
      if (info?.verb !== 'watch') {
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        metrics.requestDuration.observe(labels, seconds);
        const mutating = ['create', 'update', 'patch', 'delete', 'deletecollection'].includes(labels.verb);
        const level = mutating || ctx.status >= 500 ? 'info' : 'debug';
        if (log.isLevelEnabled(level)) log[level]({ reqId: requestId, verb: labels.verb, path: ctx.path, status: ctx.status, ms: Math.round(seconds * 1000) }, 'request');
      }
    }
  });

  router.get('/healthz', (ctx) => {
    ctx.body = 'ok';
  });
  router.get('/livez', (ctx) => {
    ctx.body = 'ok';
  });
  router.get('/readyz', async (ctx) => {
    if (!ready) throw unavailable('the API server is starting');
    if (!(await store.healthy())) throw unavailable('etcd is not reachable');
    ctx.body = 'ok';
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });
  router.get('/version', (ctx) => {
    ctx.body = { gitVersion: `v${SERVER_VERSION}`, platform: `${process.platform}/${process.arch}`, nodeVersion: process.version };
  });
  router.get('/api', (ctx) => {
    ctx.body = { kind: 'APIVersions', versions: [], serverAddressByClientCIDRs: [] };
  });
  // The audit query endpoint; matched before the generic routes.
  registerAuditRoutes(router, audit, () => {
    if (!ready) throw unavailable('the API server is starting');
  });
  registerAuthRoutes(router, registry, objects, () => {
    if (!ready) throw unavailable('the API server is starting');
  });
  // services/{name}/log and /exec go to the controller manager; matched before the generic routes.
  managerProxy.register(router, () => {
    if (!ready) throw unavailable('the API server is starting');
  });
  registerSecretsRekey(router, encryption, store, log, () => {
    if (!ready) throw unavailable('the API server is starting');
  });
  router.all(/^\/apis(\/.*)?$/, async (ctx) => {
    if (!ready) throw unavailable('the API server is starting');
    await routes.handle(ctx);
  });
  // Push webhooks from git hosts authenticate by HMAC signature, not by bearer token.
  app.use(gitHooks(registry, objects, () => ready));
  // Every request but health and version carries a bearer token (401 otherwise); routes authorize.
  app.use(authenticate(authenticator, authorizer));
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: false }));

  let server: Server | HttpsServer | null = null;

  async function initialise(): Promise<void> {
    // etcd may still be starting (make up starts both): wait for it rather than failing.
    for (let attempt = 0; !(await store.healthy()); attempt++) {
      if (attempt === 0) log.info({ endpoints: options.etcdEndpoints }, 'waiting for etcd');
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
    }
    await crdIndex.start();
    if (options.crdsDir) await installCrds(await loadCrdFiles(options.crdsDir), objects, registry, log);
    await ensureDefaultNamespace(objects, registry);
    await ensureBuiltinRoles(objects, registry, log);
    gc.start();
    await cache.start();
    gc.synced();
    compactor.start();
    ready = true;
  }

  return {
    app,
    store,
    registry,
    objects,
    metrics,
    log,
    async listen(port = 0, host = '127.0.0.1') {
      const tls = loadServingCertificate(options.tlsCertFile, options.tlsKeyFile);
      if (!tls) assertPlainHttpAllowed(host);
      const scheme = tls ? 'https' : 'http';
      const serverOptions = { keepAliveTimeout: 65_000, requestTimeout: 60_000 };
      if (tls) {
        const https = createHttpsServer({ ...serverOptions, cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, app.callback());
        answerPlainHttpOnTls(https);
        server = https;
      } else {
        server = createServer(serverOptions, app.callback());
      }
      server.headersTimeout = 66_000;
      answerMalformedRequests(server);
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(port, host, () => resolve());
      });
      await initialise();
      if (options.tlsAskAddress) {
        tlsAsk = await startTlsAskServer(domainHosts, options.tlsAskAddress, log.child({ component: 'tls-ask' }));
        log.info({ url: tlsAsk.url }, 'TLS ask endpoint listening');
      }
      const address = server.address() as AddressInfo;
      const hostText = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      const url = `${scheme}://${hostText}:${address.port}`;
      log.info({ url, crds: registry.all().length, ...(tls ? { certificateExpires: tls.validTo.toISOString(), subjectAltName: tls.subjectAltName } : {}) }, 'API server ready');
      return url;
    },
    reloadEncryptionKeys: () => reloadKeys(encryption, log),
    get tlsAskUrl() {
      return tlsAsk?.url;
    },
    async close() {
      ready = false;
      await tlsAsk?.close();
      gc.stop();
      cache.stop();
      compactor.stop();
      crdIndex.stop();
      await hub.stop();
      await managerProxy.close();
      await audit?.close();
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server!.close(() => resolve()));
      }
      store.close();
    },
  };
}

