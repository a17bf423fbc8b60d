// The koa middleware that turns requests into audit records: every mutating request under /apis
// (object writes, and any other non-GET such as services/exec or secrets-rekey), every
// get/list/watch of Secrets, and every 401/403 answer under /apis. It must sit outside the error
// middleware so it sees the final status code. Push webhooks from git hosts (`/hooks/git/...`), which
// change a Service's ref, are recorded too, accepted or refused. Bodies are never looked at: an exec
// record says only that exec happened, a Secret write only which Secret.

import type { ServerResponse } from 'node:http';
import type { Context, Middleware } from 'koa';
import { GIT_HOOK_PATH } from '../git-hooks.js';
import type { RequestInfo } from '../resource-routes.js';
import type { AuditLog, AuditRecord } from './audit-log.js';

const MUTATING = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
const READS = new Set(['get', 'list', 'watch']);
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const METHOD_VERBS: Record<string, string> = { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
/** Resources whose reads are audited too. */
const SENSITIVE = new Set(['secrets']);
/** The code recorded when the client went away before any answer was sent (nginx's convention). */
export const CLIENT_CLOSED = 499;
const MAX_FIELD = 253;
const MAX_USER_AGENT = 256;

export interface AuditMiddlewareOptions {
  /** How long a request waits for its record to reach the file before answering anyway. Default 1 s. */
  waitMs?: number;
}

interface Identity {
  name?: string;
  tokenId?: string;
}

/** What the path names, for requests the resource routes did not describe (e.g. an exec of a missing Service). */
function fromPath(path: string): Partial<Record<'group' | 'resource' | 'subresource' | 'namespace' | 'name', string>> {
  const parts = path.split('/').slice(2).filter(Boolean).map(safeDecode); // drop '' and 'apis'
  const [group, , ...rest] = parts;
  let tail = rest;
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    tail = rest.slice(2);
  }
  const [resource, name, subresource] = tail;
  const out: ReturnType<typeof fromPath> = {};
  if (group) out.group = group;
  if (namespace !== undefined) out.namespace = namespace;
  if (resource) out.resource = resource;
  if (name) out.name = name;
  if (subresource) out.subresource = subresource;
  return out;
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

const clip = (value: string | undefined, max = MAX_FIELD): string | undefined => (value === undefined ? undefined : value.length > max ? value.slice(0, max) : value);

/** A create's object name, from the answer (the object, or a Status naming it); never from the request body. */
function answeredName(body: unknown): string | undefined {
  if (!body || typeof body !== 'object' || Buffer.isBuffer(body)) return undefined;
  const b = body as { kind?: unknown; metadata?: { name?: unknown }; details?: { name?: unknown } };
  const name = b.kind === 'Status' ? b.details?.name : b.metadata?.name;
  return typeof name === 'string' ? name : undefined;
}

/** Requests the audit looks at: the API, and push webhooks. */
const audited = (path: string) => path === '/apis' || path.startsWith('/apis/') || GIT_HOOK_PATH.test(path);

/** A push webhook as the create of subresource `git-hook` of the Service it names (undefined for other paths). */
function fromHookPath(path: string): ReturnType<typeof fromPath> | undefined {
  const match = GIT_HOOK_PATH.exec(path);
  return match ? { group: 'slipway.dev', resource: 'services', subresource: 'git-hook', namespace: match[1]!, name: match[3]! } : undefined;
}

/** The record for a finished (or answering) request, or null when it is not audited. */
export function auditRecordFor(ctx: Context, code: number, now = new Date()): AuditRecord | null {
  const info: RequestInfo | undefined = ctx.state.request;
  const described = info && info.verb !== 'discovery' ? info : undefined;
  const method = ctx.method.toUpperCase();
  const path = fromHookPath(ctx.path) ?? fromPath(ctx.path);
  const resource = described?.resource ?? path.resource;
  const verb = described?.verb ?? METHOD_VERBS[method] ?? (method === 'GET' ? (path.name ? 'get' : 'list') : method.toLowerCase());
  const denied = code === 401 || code === 403;
  const writes = !READ_METHODS.has(method) || MUTATING.has(verb);
  const sensitiveRead = READS.has(verb) && resource !== undefined && SENSITIVE.has(resource);
  if (!denied && !writes && !sensitiveRead) return null;

  const user: Identity | undefined = ctx.state.user;
  const requestId = (ctx.state.requestId as string | undefined) ?? (ctx.response.get('X-Request-Id') || undefined);
  // Subresources the routes do not model (exec, log) come from the path.
  const subresource = described?.subresource ?? (path.subresource && (!described || described.resource === path.resource) ? path.subresource : undefined);
  const fields: Array<[keyof AuditRecord, string | undefined]> = [
    ['requestId', requestId],
    ['user', user?.name],
    ['tokenId', user?.tokenId],
    ['sourceIP', ctx.req.socket.remoteAddress],
    ['verb', verb],
    ['group', described?.group ?? path.group],
    ['resource', resource],
    ['subresource', subresource],
    ['namespace', described ? described.namespace : path.namespace],
    ['name', (described ? described.name : path.name) ?? (verb === 'create' ? answeredName(ctx.body) : undefined)],
  ];
  const entry: Record<string, unknown> = { time: now.toISOString() };
  for (const [key, value] of fields) if (value !== undefined && value !== '') entry[key] = clip(value);
  entry.code = code;
  const record = entry as unknown as AuditRecord;
  const agent = ctx.get('user-agent');
  if (agent) record.userAgent = clip(agent, MAX_USER_AGENT);
  if (ctx.query.dryRun === 'All') record.dryRun = true;
  return record;
}

/** Audits requests under /apis into `log`; never fails or holds up a request for long. */
export function auditMiddleware(log: AuditLog, options: AuditMiddlewareOptions = {}): Middleware {
  const waitMs = options.waitMs ?? 1000;
  return async (ctx, next) => {
    if (!audited(ctx.path)) return next();
    let recorded = false;
    let written: Promise<void> | undefined;
    const record = (code: number) => {
      if (recorded) return;
      recorded = true;
      try {
        const entry = auditRecordFor(ctx, code);
        if (entry) written = log.append(entry);
      } catch {
        // Auditing must never break a request; a malformed request simply goes unrecorded.
      }
    };
    // Streamed answers (watch, exec, log) write their own headers, possibly long before they end:
    // record them when the status goes out. Ordinary answers are written after this middleware.
    const res: ServerResponse = ctx.res;
    const writeHead = res.writeHead;
    res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
      res.writeHead = writeHead;
      if (ctx.respond === false) record(typeof args[0] === 'number' ? args[0] : res.statusCode);
      return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
    } as typeof res.writeHead;
    try {
      await next();
    } finally {
      res.writeHead = writeHead;
      record(res.headersSent ? res.statusCode : ctx.respond === false ? CLIENT_CLOSED : ctx.status);
      if (written) await within(written, waitMs);
    }
  };
}

async function within(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
