// Forwards `services/{name}/log` (GET) and `services/{name}/exec` (POST) to the controller
// manager that leads, at the address it records in Lease slipway-system/slipway-controller-manager
// (spec.holderAddress). The API server checks the Service exists and validates the request; the
// answer (status, content type, body) is streamed through unbuffered, and the upstream request is
// aborted when the client goes away.

import { pipeline } from 'node:stream/promises';
import type { Router, RouterContext } from '@koa/router';
import { Agent, request, type Dispatcher } from 'undici';
import { GROUP, VERSION, type StatusCause } from '../api/types.js';
import { bodyKind, parseBody, readRaw } from './body.js';
import { ApiError, badRequest, methodNotAllowed, unavailable } from './errors.js';
import type { ObjectService, Scope } from './objects.js';
import type { Registry } from './resources.js';
import { requirePermission } from './auth/authorize.js';

export const MANAGER_LEASE = { namespace: 'slipway-system', name: 'slipway-controller-manager' };
export const MAX_EXEC_BODY_BYTES = 64 * 1024;
export const MAX_EXEC_ARGS = 256;

const PREFIX = `/apis/${GROUP}/${VERSION}/namespaces/:ns/services/:name`;
export const LOG_PATH = `${PREFIX}/log`;
export const EXEC_PATH = `${PREFIX}/exec`;
/** The build log of a Release made from git. */
export const RELEASE_LOG_PATH = `/apis/${GROUP}/${VERSION}/namespaces/:ns/releases/:name/log`;

/** The query parameters of the log endpoint, checked here and forwarded as given. */
const LOG_PARAMS: Record<string, (v: string) => boolean> = {
  follow: (v) => v === 'true' || v === 'false',
  timestamps: (v) => v === 'true' || v === 'false',
  tailLines: (v) => /^\d{1,9}$/.test(v),
  release: (v) => /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(v) && v.length <= 253,
};
const LOG_PARAM_HELP: Record<string, string> = {
  follow: 'true or false',
  timestamps: 'true or false',
  tailLines: 'a non-negative integer',
  release: 'a Release name',
};

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

const SUBRESOURCE = new RegExp(`^/apis/${GROUP.replace('.', '\\.')}/${VERSION}/namespaces/[^/]+/(?:services|releases)/[^/]+/(log|exec)/?$`);

/** Whether a request may stay open for long, like a watch (`log?follow=true`, any exec). */
export function isLongRunning(path: string, query: Record<string, unknown>): boolean {
  const m = SUBRESOURCE.exec(path);
  return m !== null && (m[1] === 'exec' || query.follow === 'true');
}

/** 422 for an exec body, with one cause naming the field. */
function invalidExec(name: string, field: string, message: string): ApiError {
  const cause: StatusCause = { reason: 'FieldValueInvalid', field, message };
  return new ApiError(422, 'Invalid', `exec request for services.${GROUP} "${name}" is invalid: ${field}: ${message}`, {
    group: GROUP,
    kind: 'services',
    name,
    causes: [cause],
  });
}

/** Checks an exec body: `{command: string[] (1..256 items), replica?: integer >= 0}`, nothing else. */
export function validateExecBody(name: string, value: unknown): { command: string[]; replica?: number } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidExec(name, '<body>', 'must be a JSON object like {"command": ["sh", "-c", "..."]}');
  const body = value as Record<string, unknown>;
  for (const key of Object.keys(body)) {
    if (key !== 'command' && key !== 'replica') throw invalidExec(name, key, 'unknown field (expected command and optionally replica)');
  }
  const { command, replica } = body;
  if (command === undefined) throw invalidExec(name, 'command', 'Required value: a list of 1 to 256 strings');
  if (!Array.isArray(command) || command.length < 1 || command.length > MAX_EXEC_ARGS) {
    throw invalidExec(name, 'command', `must be a list of 1 to ${MAX_EXEC_ARGS} strings`);
  }
  command.forEach((arg, i) => {
    if (typeof arg !== 'string') throw invalidExec(name, `command[${i}]`, `must be a string, got ${arg === null ? 'null' : typeof arg}`);
  });
  if (command[0] === '') throw invalidExec(name, 'command[0]', 'the program to run must not be empty');
  if (replica !== undefined && (typeof replica !== 'number' || !Number.isInteger(replica) || replica < 0)) {
    throw invalidExec(name, 'replica', `must be an integer >= 0, got ${JSON.stringify(replica)}`);
  }
  return { command: command as string[], ...(replica !== undefined ? { replica: replica as number } : {}) };
}

export class ManagerProxy {
  private readonly agent = new Agent({ keepAliveTimeout: 10_000, connections: 64 });

  constructor(
    private readonly registry: Registry,
    private readonly objects: ObjectService,
  ) {}

  /** Adds the two routes; they must come before the generic `/apis` route. `check` runs first (readiness). */
  register(router: Router, check: () => void): void {
    router.all(LOG_PATH, async (ctx) => {
      check();
      if (ctx.method !== 'GET') throw methodNotAllowed(ctx.method, ctx.path);
      await this.log(ctx);
    });
    router.all(RELEASE_LOG_PATH, async (ctx) => {
      check();
      if (ctx.method !== 'GET') throw methodNotAllowed(ctx.method, ctx.path);
      await this.releaseLog(ctx);
    });
    router.all(EXEC_PATH, async (ctx) => {
      check();
      if (ctx.method !== 'POST') throw methodNotAllowed(ctx.method, ctx.path);
      await this.exec(ctx);
    });
  }

  /** Ends every forwarded request (open log streams would otherwise keep the server from closing). */
  async close(): Promise<void> {
    await this.agent.destroy();
  }

  private scope(plural: string, namespace: string): Scope {
    const found = this.registry.lookup(GROUP, VERSION, plural);
    if (!found) throw unavailable(`the ${plural}.${GROUP} resource is not served yet`);
    return { resource: found.resource, version: found.version, namespace };
  }

  /** Namespace and Service name from the path, and a check that the Service exists (404 like a GET). */
  private async target(ctx: RouterContext): Promise<{ namespace: string; name: string }> {
    const { ns, name } = ctx.params as { ns: string; name: string };
    for (const [what, v] of [['namespace', ns], ['service name', name]] as const) {
      if (!NAME.test(v) || v.length > 253) throw badRequest(`invalid ${what} in URL path: ${JSON.stringify(v.slice(0, 80))}`);
    }
    await requirePermission(ctx, { verb: ctx.method === 'GET' ? 'get' : 'create', resource: ctx.method === 'GET' ? 'services/log' : 'services/exec', namespace: ns, name });
    await this.objects.get(this.scope('services', ns), name);
    ctx.state.request = { verb: ctx.method === 'GET' ? 'get' : 'create', group: GROUP, version: VERSION, resource: 'services', namespace: ns, name };
    return { namespace: ns, name };
  }

  /** `spec.holderAddress` of the controller manager's Lease; 503 when nobody holds it. */
  private async managerAddress(): Promise<string> {
    const { namespace, name } = MANAGER_LEASE;
    let lease;
    try {
      lease = await this.objects.get(this.scope('leases', namespace), name);
    } catch (err) {
      if (err instanceof ApiError && err.code === 404) throw unavailable(`no controller manager is running: Lease ${namespace}/${name} does not exist`);
      throw err;
    }
    const address = lease.spec?.holderAddress;
    if (typeof address !== 'string' || !/^https?:\/\/[^/\s]+\/?$/.test(address) || !lease.spec?.holderIdentity) {
      throw unavailable(`no controller manager is running: Lease ${namespace}/${name} has no holder address`);
    }
    return address.replace(/\/$/, '');
  }

  private async log(ctx: RouterContext): Promise<void> {
    const { namespace, name } = await this.target(ctx);
    const query = new URLSearchParams();
    for (const [key, raw] of Object.entries(ctx.query)) {
      const check = LOG_PARAMS[key];
      if (!check) continue; // unknown parameters are ignored, as Kubernetes does
      if (Array.isArray(raw)) throw badRequest(`query parameter ${key} was given more than once`);
      if (!check(raw ?? '')) throw badRequest(`query parameter ${key} must be ${LOG_PARAM_HELP[key]} (got ${JSON.stringify(String(raw).slice(0, 80))})`);
      query.set(key, raw!);
    }
    const qs = query.toString();
    await this.forward(ctx, 'GET', `/v1/namespaces/${encodeURIComponent(namespace)}/services/${encodeURIComponent(name)}/log${qs ? `?${qs}` : ''}`);
  }

  /** `releases/{name}/log[?follow=true]`: the Release's build log, from the controller manager. */
  private async releaseLog(ctx: RouterContext): Promise<void> {
    const { ns, name } = ctx.params as { ns: string; name: string };
    for (const [what, v] of [['namespace', ns], ['release name', name]] as const) {
      if (!NAME.test(v) || v.length > 253) throw badRequest(`invalid ${what} in URL path: ${JSON.stringify(v.slice(0, 80))}`);
    }
    await requirePermission(ctx, { verb: 'get', resource: 'releases/log', namespace: ns, name });
    await this.objects.get(this.scope('releases', ns), name);
    ctx.state.request = { verb: 'get', group: GROUP, version: VERSION, resource: 'releases', namespace: ns, name };
    const follow = ctx.query.follow;
    if (follow !== undefined && follow !== 'true' && follow !== 'false') throw badRequest('query parameter follow must be true or false');
    await this.forward(ctx, 'GET', `/v1/namespaces/${encodeURIComponent(ns)}/releases/${encodeURIComponent(name)}/log${follow === 'true' ? '?follow=true' : ''}`);
  }

  private async exec(ctx: RouterContext): Promise<void> {
    const { namespace, name } = await this.target(ctx);
    const kind = bodyKind(ctx.get('content-type'), ['json']);
    const body = validateExecBody(name, parseBody(await readRaw(ctx.req, MAX_EXEC_BODY_BYTES), kind));
    await this.forward(ctx, 'POST', `/v1/namespaces/${encodeURIComponent(namespace)}/services/${encodeURIComponent(name)}/exec`, JSON.stringify(body));
  }

  /** Sends the request to the manager and streams its answer to the client as it arrives. */
  private async forward(ctx: RouterContext, method: 'GET' | 'POST', path: string, body?: string): Promise<void> {
    const address = await this.managerAddress();
    const abort = new AbortController();
    const onClose = () => {
      if (!ctx.res.writableFinished) abort.abort();
    };
    ctx.res.once('close', onClose);
    let upstream: Dispatcher.ResponseData;
    try {
      upstream = await request(`${address}${path}`, {
        method,
        dispatcher: this.agent,
        signal: abort.signal,
        headersTimeout: 30_000,
        bodyTimeout: 0,
        headers: {
          accept: ctx.get('accept') || '*/*',
          'x-request-id': String(ctx.response.get('X-Request-Id') || ''),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body } : {}),
      });
    } catch (err) {
      ctx.res.off('close', onClose);
      if (abort.signal.aborted) {
        ctx.respond = false; // the client is gone: nobody to answer
        return;
      }
      const e = err as Error & { code?: string };
      throw unavailable(`the controller manager at ${address} is not reachable: ${e.code ?? e.name}: ${e.message}`);
    }
    ctx.respond = false;
    const headers: Record<string, string> = { 'cache-control': 'no-cache', 'x-request-id': String(ctx.response.get('X-Request-Id') || '') };
    const type = upstream.headers['content-type'];
    if (type) headers['content-type'] = String(type);
    ctx.res.writeHead(upstream.statusCode, headers);
    ctx.res.flushHeaders();
    try {
      await pipeline(upstream.body, ctx.res);
    } catch {
      // The client hung up or the manager broke off mid-stream; the headers are sent, so the
      // only thing left to do is to end both sides (pipeline has destroyed them).
      abort.abort();
    } finally {
      ctx.res.off('close', onClose);
    }
  }
}
