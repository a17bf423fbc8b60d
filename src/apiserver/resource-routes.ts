// The REST surface for objects: parses `/apis/{group}/{version}/[namespaces/{ns}/]{plural}[/{name}[/status]]`
// and its query parameters, and maps each verb onto the object service or the watch hub.

import type { Context } from 'koa';
import { parseLabelSelector, SelectorSyntaxError, type Selector } from '../api/labels.js';
import type { DeleteOptions, KubeObject } from '../api/types.js';
import { redactSecret, redactSecretList } from './auth/access.js';
import { readObject } from './body.js';
import * as discovery from './discovery.js';
import { ApiError, badRequest, methodNotAllowed, pathNotFound } from './errors.js';
import { parseFieldSelector } from './field-selectors.js';
import type { ListQuery, ObjectService, Outcome, Scope, WriteOptions } from './objects.js';
import type { Registry } from './resources.js';
import type { FieldValidation } from './schema.js';
import type { WatchHub } from './watch.js';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection' | 'discovery';

/** What a request is about; set on `ctx.state.request` for logging, metrics and (later) authorization. */
export interface RequestInfo {
  verb: Verb;
  group?: string;
  version?: string;
  resource?: string;
  subresource?: 'status';
  namespace?: string;
  name?: string;
}

interface ParsedPath {
  segments: string[];
  info: RequestInfo;
  scope?: Scope;
}

const NAME_MAX = 253;

function decodeSegments(path: string): string[] {
  const raw = path.split('/').slice(1);
  if (raw.length && raw[raw.length - 1] === '') raw.pop();
  return raw.map((segment) => {
    if (segment === '') throw pathNotFound(path);
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      throw badRequest(`malformed URL path segment ${JSON.stringify(segment.slice(0, 80))}`);
    }
    if (decoded === '.' || decoded === '..' || decoded.includes('/') || decoded.includes('%') || /[\u0000-\u001f\u007f]/.test(decoded) || decoded.length > NAME_MAX) {
      throw badRequest(`invalid name in URL path: ${JSON.stringify(decoded.slice(0, 80))} (may not be '.' or '..' and may not contain '/', '%' or control characters)`);
    }
    return decoded;
  });
}

function single(ctx: Context, name: string): string | undefined {
  const v = ctx.query[name];
  if (Array.isArray(v)) throw badRequest(`query parameter ${name} was given more than once`);
  return v;
}

function boolParam(ctx: Context, name: string): boolean {
  const v = single(ctx, name);
  if (v === undefined || v === '' || v === 'false' || v === '0') return false;
  if (v === 'true' || v === '1') return true;
  throw badRequest(`query parameter ${name} must be true or false (got ${JSON.stringify(v)})`);
}

function intParam(ctx: Context, name: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = single(ctx, name);
  if (v === undefined || v === '') return undefined;
  if (!/^\d{1,15}$/.test(v) || Number(v) > max) throw badRequest(`query parameter ${name} must be a non-negative integer (got ${JSON.stringify(v.slice(0, 40))})`);
  return Number(v);
}

export class ResourceRoutes {
  constructor(
    private readonly registry: Registry,
    private readonly objects: ObjectService,
    private readonly hub: WatchHub,
    /** Authorization of each parsed request (throws 401/403); tells whether Secret values must be hidden. */
    private readonly access: (ctx: Context, info: RequestInfo) => Promise<{ redactSecrets: boolean }> = async () => ({ redactSecrets: false }),
  ) {}

  /** Resolves the path into a scope and request info, or a discovery document. */
  private parse(ctx: Context): ParsedPath {
    const segments = decodeSegments(ctx.path).slice(1); // drop "apis"
    const method = ctx.method;
    const [group, version, ...rest] = segments;
    const info: RequestInfo = { verb: 'discovery', ...(group ? { group } : {}), ...(version ? { version } : {}) };
    if (rest.length === 0) return { segments, info };
    let namespace: string | undefined;
    let tail = rest;
    const namespacesIsResource = this.registry.lookup(group!, version!, 'namespaces') !== undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && !(namespacesIsResource && rest.length === 3 && rest[2] === 'status')) {
      namespace = rest[1];
      tail = rest.slice(2);
    }
    const [plural, name, sub, ...extra] = tail;
    if (extra.length || (sub !== undefined && sub !== 'status')) throw pathNotFound(ctx.path);
    const found = this.registry.lookup(group!, version!, plural!);
    if (!found) throw pathNotFound(ctx.path);
    const { resource } = found;
    if (namespace !== undefined && !resource.namespaced) throw pathNotFound(ctx.path);
    if (resource.namespaced && namespace === undefined && name !== undefined) throw pathNotFound(ctx.path);
    if (sub === 'status' && !found.version.hasStatus) throw pathNotFound(ctx.path);
    const scope: Scope = { resource, version: found.version, ...(namespace !== undefined ? { namespace } : {}) };
    let verb: Verb;
    if (name === undefined) {
      if (method === 'GET') verb = boolParam(ctx, 'watch') ? 'watch' : 'list';
      else if (method === 'POST') {
        if (resource.namespaced && namespace === undefined) throw methodNotAllowed(method, ctx.path);
        verb = 'create';
      } else if (method === 'DELETE') verb = 'deletecollection';
      else throw methodNotAllowed(method, ctx.path);
    } else {
      const verbs: Record<string, Verb> = sub ? { GET: 'get', PUT: 'update', PATCH: 'patch' } : { GET: 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
      const v = verbs[method];
      if (!v) throw methodNotAllowed(method, ctx.path);
      verb = v;
      if (verb === 'get' && boolParam(ctx, 'watch')) throw badRequest('watch a single object with a fieldSelector on metadata.name');
    }
    Object.assign(info, {
      verb,
      resource: resource.plural,
      ...(sub ? { subresource: 'status' as const } : {}),
      ...(namespace !== undefined ? { namespace } : {}),
      ...(name !== undefined ? { name } : {}),
    });
    return { segments, info, scope };
  }

  /** Resolves what the request is about without serving it (for logs and metrics). */
  describe(ctx: Context): RequestInfo {
    return this.parse(ctx).info;
  }

  private writeOptions(ctx: Context): WriteOptions {
    const dryRun = single(ctx, 'dryRun');
    if (dryRun !== undefined && dryRun !== 'All' && dryRun !== '') throw badRequest(`invalid dryRun value ${JSON.stringify(dryRun)}: the only supported value is All`);
    const fv = single(ctx, 'fieldValidation') ?? 'Strict';
    if (!['Strict', 'Warn', 'Ignore'].includes(fv)) throw badRequest(`invalid fieldValidation value ${JSON.stringify(fv)}: must be Strict, Warn or Ignore`);
    return { dryRun: dryRun === 'All', fieldValidation: fv as FieldValidation };
  }

  private selectors(ctx: Context, scope: Scope): { labelSelector: Selector; fieldSelector: ReturnType<typeof parseFieldSelector> } {
    let labelSelector: Selector;
    try {
      labelSelector = parseLabelSelector(single(ctx, 'labelSelector') ?? '');
    } catch (err) {
      if (err instanceof SelectorSyntaxError) throw badRequest(`unable to parse requirement: ${err.message}`);
      throw err;
    }
    const fieldSelector = parseFieldSelector(single(ctx, 'fieldSelector') ?? '', scope.version.selectableFields);
    return { labelSelector, fieldSelector };
  }

  private listQuery(ctx: Context, scope: Scope): ListQuery {
    const rvMatch = single(ctx, 'resourceVersionMatch');
    const rv = single(ctx, 'resourceVersion');
    if (rv !== undefined && rv !== '' && !/^\d{1,15}$/.test(rv)) throw badRequest(`invalid resourceVersion ${JSON.stringify(rv.slice(0, 40))}: must be a number`);
    if (rvMatch !== undefined && !['Exact', 'NotOlderThan'].includes(rvMatch)) throw badRequest('resourceVersionMatch must be Exact or NotOlderThan');
    const limit = intParam(ctx, 'limit');
    const cont = single(ctx, 'continue');
    return {
      ...this.selectors(ctx, scope),
      ...(limit !== undefined ? { limit } : {}),
      ...(cont ? { continueToken: cont } : {}),
      ...(rvMatch === 'Exact' && rv ? { exactRevision: Number(rv) } : {}),
    };
  }

  private respond(ctx: Context, outcome: Outcome, hide: (obj: KubeObject) => KubeObject = (o) => o): void {
    ctx.status = outcome.code;
    if (outcome.warnings.length) ctx.set('Warning', outcome.warnings.map((w) => `299 - ${JSON.stringify(w)}`).join(', '));
    ctx.body = outcome.object && typeof outcome.object === 'object' && (outcome.object as KubeObject).kind ? hide(outcome.object as KubeObject) : outcome.object;
  }

  async handle(ctx: Context): Promise<void> {
    const { segments, info, scope } = this.parse(ctx);
    ctx.state.request = info;
    const { redactSecrets } = await this.access(ctx, info);
    const hide = <T>(obj: T): T => (redactSecrets ? (redactSecret(obj as KubeObject) as T) : obj);
    if (!scope) {
      if (ctx.method !== 'GET') throw methodNotAllowed(ctx.method, ctx.path);
      const doc =
        segments.length === 0
          ? discovery.groupList(this.registry)
          : segments.length === 1
            ? discovery.group(this.registry, segments[0]!)
            : discovery.resourceList(this.registry, segments[0]!, segments[1]!);
      if (!doc) throw pathNotFound(ctx.path);
      ctx.body = doc;
      return;
    }
    const name = info.name!;
    switch (info.verb) {
      case 'list':
        ctx.type = 'application/json';
        const json = await this.objects.listJson(scope, this.listQuery(ctx, scope));
        ctx.body = redactSecrets ? redactSecretList(json) : json;
        return;
      case 'watch': {
        const rv = single(ctx, 'resourceVersion');
        const timeoutSeconds = intParam(ctx, 'timeoutSeconds', 86_400);
        ctx.respond = false;
        try {
          await this.hub.serve(ctx.res, {
            scope,
            ...this.selectors(ctx, scope),
            ...(rv !== undefined ? { resourceVersion: rv } : {}),
            bookmarks: boolParam(ctx, 'allowWatchBookmarks'),
            ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
          });
        } catch (err) {
          ctx.respond = true;
          throw err;
        }
        return;
      }
      case 'get':
        ctx.body = hide(await this.objects.get(scope, name));
        return;
      case 'create': {
        const body = await readObject(ctx.req, ['json', 'yaml']);
        this.respond(ctx, await this.objects.create(scope, body.value as KubeObject, this.writeOptions(ctx)), hide);
        return;
      }
      case 'update': {
        const body = await readObject(ctx.req, ['json', 'yaml']);
        this.respond(ctx, await this.objects.update(scope, name, body.value as KubeObject, info.subresource, this.writeOptions(ctx)), hide);
        return;
      }
      case 'patch': {
        const body = await readObject(ctx.req, ['merge-patch', 'json-patch']);
        const type = body.kind === 'json-patch' ? 'json' : 'merge';
        this.respond(ctx, await this.objects.patch(scope, name, type, body.value, info.subresource, this.writeOptions(ctx)), hide);
        return;
      }
      case 'delete':
        this.respond(ctx, await this.objects.delete(scope, name, await this.deleteOptions(ctx), this.writeOptions(ctx)), hide);
        return;
      case 'deletecollection':
        ctx.body = await this.objects.deleteCollection(scope, this.listQuery(ctx, scope), await this.deleteOptions(ctx), this.writeOptions(ctx));
        return;
      default:
        throw new ApiError(500, 'InternalError', 'unhandled verb');
    }
  }

  /** DeleteOptions from the body (optional) and the query string, which wins. */
  private async deleteOptions(ctx: Context): Promise<DeleteOptions> {
    let opts: DeleteOptions = {};
    const hasBody = Number(ctx.get('content-length') || 0) > 0 || ctx.get('transfer-encoding') !== '';
    if (hasBody) {
      const body = await readObject(ctx.req, ['json', 'yaml']).catch((err) => {
        if (err instanceof ApiError && err.message === 'the request body is empty') return { kind: 'json' as const, value: {} };
        throw err;
      });
      opts = body.value as DeleteOptions;
      if (opts.kind !== undefined && opts.kind !== 'DeleteOptions') throw badRequest(`expected a DeleteOptions body, got kind ${JSON.stringify(opts.kind)}`);
      if (opts.preconditions !== undefined && (typeof opts.preconditions !== 'object' || opts.preconditions === null)) throw badRequest('preconditions must be an object');
      for (const k of ['uid', 'resourceVersion'] as const) {
        const v = opts.preconditions?.[k];
        if (v !== undefined && typeof v !== 'string') throw badRequest(`preconditions.${k} must be a string`);
      }
    }
    const policy = single(ctx, 'propagationPolicy');
    if (policy !== undefined) opts.propagationPolicy = policy as DeleteOptions['propagationPolicy'];
    // Checked here, not per object: a collection delete that matches nothing must still reject it.
    if (opts.propagationPolicy !== undefined && !['Background', 'Foreground', 'Orphan'].includes(opts.propagationPolicy)) {
      throw badRequest(`propagationPolicy must be one of Background, Foreground, Orphan (got ${JSON.stringify(opts.propagationPolicy)})`);
    }
    intParam(ctx, 'gracePeriodSeconds');
    return opts;
  }
}
