// The controller manager's own HTTP endpoints: health, Prometheus metrics, and the log and exec
// streams the API server forwards to the leader (`services/{name}/log`, `services/{name}/exec`).

import { PassThrough } from 'node:stream';
import Koa from 'koa';
import Router from '@koa/router';
import type Docker from 'dockerode';
import type { Node, Release, Service } from '../api/generated/crd-types.js';
import { ApiRequestError, type ApiClient } from '../client/api-client.js';
import { streamExec, streamLogs, type LogSource } from './container-streams.js';
import type { NodeHostAccess } from './node-hosts.js';
import type { Informer } from './runtime/informer.js';
import type { ControllerMetrics } from './runtime/metrics.js';
import { LABEL_RELEASE, LABEL_ROLE } from './service/container-spec.js';
import { serviceFilters, toObserved } from './service/world.js';
import type { BuildLogs } from '../build/build-log.js';

export interface EndpointOptions {
  client: ApiClient;
  nodes: Informer<Node>;
  hosts: NodeHostAccess;
  metrics: ControllerMetrics;
  buildLogs: BuildLogs;
  isLeader: () => boolean;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export function createEndpoints(o: EndpointOptions): Koa {
  const app = new Koa();
  const router = new Router();
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const e = err instanceof HttpError ? err : err instanceof ApiRequestError && err.code ? new HttpError(err.code, err.reason ?? 'Error', err.message) : new HttpError(500, 'InternalError', (err as Error).message);
      ctx.status = e.code;
      ctx.body = { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: e.code, reason: e.reason, message: e.message };
    }
  });
  router.get('/healthz', (ctx) => {
    ctx.body = 'ok';
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = o.metrics.registry.contentType;
    ctx.body = await o.metrics.registry.metrics();
  });

  /** Containers of the service's release (the active one unless `release` is given), on every reachable node. */
  async function containersOf(namespace: string, name: string, release?: string) {
    if (!o.isLeader()) throw new HttpError(503, 'ServiceUnavailable', 'this controller manager is not the leader');
    const svc = await o.client.get<Service>(`/apis/slipway.dev/v1alpha1/namespaces/${namespace}/services/${name}`);
    const wanted = release ?? svc.status?.activeRelease;
    if (!wanted) throw new HttpError(404, 'NotFound', `service ${namespace}/${name} has no active release yet`);
    const found: Array<LogSource & { replica: number; running: boolean }> = [];
    for (const node of o.nodes.list()) {
      let docker: Docker;
      try {
        docker = await o.hosts.docker(node.metadata.name);
      } catch {
        continue;
      }
      const list = await docker.listContainers({ all: true, filters: { label: [...serviceFilters(o.hosts.cluster, namespace, name).label, `${LABEL_RELEASE}=${wanted}`, `${LABEL_ROLE}=replica`] } });
      for (const c of list) {
        const seen = toObserved(node.metadata.name, c, undefined);
        found.push({ docker, id: c.Id, name: seen.name, replica: seen.replica, running: seen.running });
      }
    }
    if (!found.length) throw new HttpError(404, 'NotFound', `release ${wanted} of service ${namespace}/${name} has no containers`);
    return found.sort((a, b) => a.replica - b.replica);
  }

  router.get('/v1/namespaces/:ns/services/:name/log', async (ctx) => {
    const q = ctx.query as Record<string, string | undefined>;
    const sources = await containersOf(ctx.params.ns!, ctx.params.name!, q.release || undefined);
    const tail = q.tailLines !== undefined && q.tailLines !== '' ? Number(q.tailLines) : undefined;
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) throw new HttpError(400, 'BadRequest', 'tailLines must be a non-negative integer');
    const out = new PassThrough();
    const abort = new AbortController();
    ctx.req.on('close', () => abort.abort());
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = out;
    void streamLogs(sources, { follow: q.follow === 'true', timestamps: q.timestamps === 'true', ...(tail !== undefined ? { tail } : {}) }, out, abort.signal).catch((err: Error) => out.end(`error: ${err.message}\n`));
  });

  // The build log of a Release made from git, kept in the data directory by release uid.
  router.get('/v1/namespaces/:ns/releases/:name/log', async (ctx) => {
    if (!o.isLeader()) throw new HttpError(503, 'ServiceUnavailable', 'this controller manager is not the leader');
    const release = await o.client.get<Release>(`/apis/slipway.dev/v1alpha1/namespaces/${ctx.params.ns}/releases/${ctx.params.name}`);
    const uid = release.metadata.uid!;
    if (!release.spec?.source) throw new HttpError(404, 'NotFound', `release ${ctx.params.name} was not built from git (it has no build log)`);
    if (!(await o.buildLogs.exists(uid))) throw new HttpError(404, 'NotFound', release.status?.build?.reused ? `release ${ctx.params.name} reused an image built earlier: it has no build log of its own` : `release ${ctx.params.name} has no build log (yet)`);
    const out = new PassThrough();
    const abort = new AbortController();
    ctx.req.on('close', () => abort.abort());
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = out;
    void o.buildLogs.stream(uid, out, (ctx.query as Record<string, string>).follow === 'true', abort.signal).catch((err: Error) => out.end(`error: ${err.message}\n`));
  });

  router.post('/v1/namespaces/:ns/services/:name/exec', async (ctx) => {
    const body = await readJson(ctx.req);
    const command = body?.command;
    if (!Array.isArray(command) || !command.length || !command.every((c: unknown) => typeof c === 'string')) throw new HttpError(422, 'Invalid', 'command: expected a non-empty array of strings');
    const containers = await containersOf(ctx.params.ns!, ctx.params.name!);
    const target = body.replica !== undefined ? containers.find((c) => c.replica === body.replica) : containers.find((c) => c.running);
    if (!target) throw new HttpError(404, 'NotFound', body.replica !== undefined ? `replica ${body.replica} does not exist` : 'no running replica');
    if (!target.running) throw new HttpError(409, 'Conflict', `container ${target.name} is not running`);
    const out = new PassThrough();
    const abort = new AbortController();
    ctx.req.on('close', () => abort.abort());
    ctx.type = 'application/x-ndjson';
    ctx.body = out;
    void streamExec(target.docker, target.id, command, out, abort.signal).catch((err: Error) => out.end(`${JSON.stringify({ stream: 'stderr', data: Buffer.from(`exec failed: ${err.message}\n`).toString('base64') })}\n${JSON.stringify({ exitCode: 126 })}\n`));
  });

  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

async function readJson(req: NodeJS.ReadableStream): Promise<any> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 65_536) throw new HttpError(413, 'RequestEntityTooLarge', 'request body larger than 64 KiB');
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new HttpError(400, 'BadRequest', 'request body is not valid JSON');
  }
}
