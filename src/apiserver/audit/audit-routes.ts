// The audit query endpoint, `GET /apis/slipway.dev/v1alpha1/auditevents?since=&until=&user=
// &resource=&namespace=&verb=&limit=`: an AuditEventList of the matching records, newest first.
// Needs `list auditevents` permission. Registered before the generic /apis route.

import type { Router } from '@koa/router';
import type { Context } from 'koa';
import { GROUP, VERSION } from '../../api/types.js';
import { requirePermission } from '../auth/authorize.js';
import { ApiError, badRequest, methodNotAllowed } from '../errors.js';
import { DEFAULT_QUERY_LIMIT, type AuditLog, type AuditQuery } from './audit-log.js';

export const AUDIT_EVENTS_PATH = `/apis/${GROUP}/${VERSION}/auditevents`;
export const MAX_QUERY_LIMIT = 10_000;

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const DURATION = /^(?:\d{1,9}(?:ms|s|m|h|d))+$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

const TEXT_PARAMS: Record<'user' | 'resource' | 'namespace' | 'verb', { pattern: RegExp; help: string }> = {
  user: { pattern: /^[\x21-\x7e]{1,253}$/, help: 'a user name such as admin or token:<id>' },
  resource: { pattern: /^[a-z0-9][a-z0-9.-]{0,252}(\/[a-z0-9-]{1,63})?$/, help: 'a plural resource such as secrets, services/exec or secrets.slipway.dev' },
  namespace: { pattern: /^[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?$/, help: 'a namespace name' },
  verb: { pattern: /^[a-z]{1,32}$/, help: 'a verb such as create, update, patch, delete or get' },
};

/** `2024-05-01T12:00:00Z`, or a duration back from `now` (`90s`, `30m`, `1h30m`, `7d`); null when neither. */
export function parseTime(text: string, now: number): number | null {
  if (RFC3339.test(text)) {
    const t = Date.parse(text.replace(' ', 'T'));
    return Number.isNaN(t) ? null : t;
  }
  if (DURATION.test(text)) {
    let ms = 0;
    for (const m of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
    return now - ms;
  }
  return null;
}

/** Checks the query parameters; a bad one is a 400 naming it. Unknown parameters are ignored. */
export function parseAuditQuery(params: Record<string, string | string[] | undefined>, now: number): AuditQuery {
  const single = (name: string): string | undefined => {
    const v = params[name];
    if (Array.isArray(v)) throw badRequest(`query parameter ${name} was given more than once`);
    return v === '' ? undefined : v;
  };
  const query: AuditQuery = { limit: DEFAULT_QUERY_LIMIT };
  for (const name of ['since', 'until'] as const) {
    const v = single(name);
    if (v === undefined) continue;
    const t = parseTime(v, now);
    if (t === null) throw badRequest(`query parameter ${name} must be an RFC 3339 time (e.g. 2024-05-01T12:00:00Z) or a duration back from now (e.g. 90s, 30m, 1h, 7d); got ${JSON.stringify(v.slice(0, 80))}`);
    query[name] = t;
  }
  for (const [name, { pattern, help }] of Object.entries(TEXT_PARAMS) as [keyof typeof TEXT_PARAMS, { pattern: RegExp; help: string }][]) {
    const v = single(name);
    if (v === undefined) continue;
    if (!pattern.test(v)) throw badRequest(`query parameter ${name} must be ${help}; got ${JSON.stringify(v.slice(0, 80))}`);
    query[name] = v;
  }
  const limit = single('limit');
  if (limit !== undefined) {
    if (!/^\d{1,6}$/.test(limit) || Number(limit) < 1 || Number(limit) > MAX_QUERY_LIMIT) {
      throw badRequest(`query parameter limit must be an integer from 1 to ${MAX_QUERY_LIMIT}; got ${JSON.stringify(limit.slice(0, 40))}`);
    }
    query.limit = Number(limit);
  }
  if (query.since !== undefined && query.until !== undefined && query.since > query.until) {
    throw badRequest('query parameter since must not be later than until');
  }
  return query;
}

/** Adds the endpoint; `log` is undefined when auditing is off (the endpoint then answers 404). */
export function registerAuditRoutes(router: Router, log: AuditLog | undefined, check: () => void): void {
  router.all(AUDIT_EVENTS_PATH, async (ctx: Context) => {
    check();
    if (ctx.method !== 'GET') throw methodNotAllowed(ctx.method, ctx.path);
    ctx.state.request = { verb: 'list', group: GROUP, version: VERSION, resource: 'auditevents' };
    await requirePermission(ctx, { verb: 'list', resource: 'auditevents' });
    if (!log) throw new ApiError(404, 'NotFound', 'auditing is not enabled on this API server (start it with --audit-dir DIR or SLIPWAY_AUDIT_DIR)');
    const query = parseAuditQuery(ctx.query, Date.now());
    ctx.body = { kind: 'AuditEventList', apiVersion: `${GROUP}/${VERSION}`, items: await log.query(query) };
  });
}
