// Wires the API server together: etcd store, resource registry fed by CRDs, object service,
// watch hub, garbage collector, compactor, the log/exec forwarding to the controller manager, and
// the koa app with its one error middleware.

import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
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
import { answerMalformedRequests } from './http-guards.js';
import { GarbageCollector } from './garbage-collector.js';
import { isLongRunning, ManagerProxy } from './manager-proxy.js';
import { ObjectCache } from './object-cache.js';
import { ApiMetrics } from './metrics.js';
import { ObjectService, type NamespaceLookup } from './objects.js';
import { ResourceRoutes, type RequestInfo } from './resource-routes.js';
import { Registry, resourceKey } from './resources.js';
import { SchemaCompiler } from './schema.js';
import { strategies } from './strategies.js';
import { WatchHub } from './watch.js';

export const SERVER_VERSION = '0.1.0';

export interface ApiServerOptions {
  etcdEndpoints: string[];
  /** Directory of bundled CRDs installed at start (the schema source of truth). */
  crdsDir?: string;
  logger?: Logger;
  logLevel?: string;
  bookmarkIntervalMs?: number;
  /** How often etcd history is compacted (to the revision of the previous tick). Defaults to 5 min. */
  compactionIntervalMs?: number;
  /** Non-watch requests served at once before answering 429. Defaults to 400. */
  maxInflight?: number;
}

export interface ApiServer {
  readonly app: Koa;
  readonly store: EtcdStore;
  readonly registry: Registry;
  readonly objects: ObjectService;
  readonly metrics: ApiMetrics;
  readonly log: Logger;
  /** Initialises state (CRDs, default namespace, GC) and listens. Returns the base URL. */
  listen(port?: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export function createApiServer(options: ApiServerOptions): ApiServer {
  const log = options.logger ?? pino({ level: options.logLevel ?? 'info', base: { component: 'apiserver' } });
  const metrics = new ApiMetrics();
  const store = new EtcdStore({
    endpoints: options.etcdEndpoints,
    observe: (operation, seconds) => metrics.etcdDuration.observe({ operation }, seconds),
  });
  const compiler = new SchemaCompiler();
  const registry = new Registry();
  const crdKind = crdResource(compiler);
  registry.put(crdKind);

  // The object service reads the cache, which follows the hub, which serves the service's
  // lists: the closures below only run after `cache` is initialised.
  const namespaces: NamespaceLookup = {
    async phase(name) {
      const resource = registry.get(GROUP, 'namespaces');
      if (!resource) return null;
      const key = resourceKey(resource, undefined, name);
      let ns: KubeObject | null | undefined = cache.get(resource, key);
      // Only a cached Active namespace is trusted; anything else is confirmed with etcd.
      if (!ns || ns.metadata.deletionTimestamp) ns = await store.get(key);
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
  const routes = new ResourceRoutes(registry, objects, hub);
  const managerProxy = new ManagerProxy(registry, objects);
  const cache: ObjectCache = new ObjectCache(registry, store, hub, (err) => log.warn({ err: String(err) }, 'cannot follow a resource'));
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
  // services/{name}/log and /exec go to the controller manager; matched before the generic routes.
  managerProxy.register(router, () => {
    if (!ready) throw unavailable('the API server is starting');
  });
  router.all(/^\/apis(\/.*)?$/, async (ctx) => {
    if (!ready) throw unavailable('the API server is starting');
    await routes.handle(ctx);
  });
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: false }));

  let server: Server | null = null;

  async function initialise(): Promise<void> {
    // etcd may still be starting (make up starts both): wait for it rather than failing.
    for (let attempt = 0; !(await store.healthy()); attempt++) {
      if (attempt === 0) log.info({ endpoints: options.etcdEndpoints }, 'waiting for etcd');
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
    }
    await crdIndex.start();
    if (options.crdsDir) await installCrds(await loadCrdFiles(options.crdsDir), objects, registry, log);
    await ensureDefaultNamespace(objects, registry);
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
      server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 60_000 }, app.callback());
      server.headersTimeout = 66_000;
      answerMalformedRequests(server);
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(port, host, () => resolve());
      });
      await initialise();
      const address = server.address() as AddressInfo;
      const hostText = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      log.info({ url: `http://${hostText}:${address.port}`, crds: registry.all().length }, 'API server ready');
      return `http://${hostText}:${address.port}`;
    },
    async close() {
      ready = false;
      gc.stop();
      cache.stop();
      compactor.stop();
      crdIndex.stop();
      await hub.stop();
      await managerProxy.close();
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server!.close(() => resolve()));
      }
      store.close();
    },
  };
}

