// Endpoints about identity that are not stored objects: `tokenrequests` (issue a token: the only
// time its secret is shown), `selfsubjectaccessreviews` (can I?) and `whoami`.

import type Router from '@koa/router';
import type { Context } from 'koa';
import { API_VERSION, GROUP, type StatusCause } from '../../api/types.js';
import { readObject } from '../body.js';
import { invalid, unavailable } from '../errors.js';
import type { ObjectService } from '../objects.js';
import type { Registry } from '../resources.js';
import { can, requirePermission, unauthorized, type UserInfo } from './authorize.js';
import { issueToken } from './tokens.js';

const BASE = `/apis/${GROUP}/v1alpha1`;
const DURATION = /^([0-9]+)(s|m|h|d)$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function currentUser(ctx: Context): UserInfo {
  const user = ctx.state.user as UserInfo | undefined;
  if (!user) throw unauthorized();
  return user;
}

export function registerAuthRoutes(router: Router, registry: Registry, objects: ObjectService, ready: () => void): void {
  router.get(`${BASE}/whoami`, (ctx) => {
    const user = currentUser(ctx);
    ctx.body = { kind: 'WhoAmI', apiVersion: API_VERSION, user };
  });

  router.post(`${BASE}/selfsubjectaccessreviews`, async (ctx) => {
    currentUser(ctx);
    const body = (await readObject(ctx.req, ['json', 'yaml'])).value as { spec?: { resourceAttributes?: Record<string, unknown> } };
    const attrs = body?.spec?.resourceAttributes;
    if (!attrs || typeof attrs.verb !== 'string' || typeof attrs.resource !== 'string') {
      throw invalid({ group: GROUP, resource: 'selfsubjectaccessreviews', kind: 'SelfSubjectAccessReview' }, [{ reason: 'FieldValueRequired', field: 'spec.resourceAttributes', message: 'Required value: verb and resource (strings)' }]);
    }
    const request = {
      verb: attrs.verb,
      resource: attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource,
      ...(typeof attrs.namespace === 'string' && attrs.namespace ? { namespace: attrs.namespace } : {}),
      ...(typeof attrs.name === 'string' && attrs.name ? { name: attrs.name } : {}),
    };
    const allowed = await can(ctx, request);
    ctx.status = 201;
    ctx.body = { kind: 'SelfSubjectAccessReview', apiVersion: API_VERSION, spec: body.spec, status: { allowed } };
  });

  router.post(`${BASE}/tokenrequests`, async (ctx) => {
    ready();
    const user = await requirePermission(ctx, { verb: 'create', resource: 'tokens' });
    const body = (await readObject(ctx.req, ['json', 'yaml'])).value as { spec?: Record<string, unknown> };
    const spec = body?.spec ?? {};
    const causes: StatusCause[] = [];
    if (typeof spec.role !== 'string' || !spec.role) causes.push({ reason: 'FieldValueRequired', field: 'spec.role', message: 'Required value: the ClusterRole the token grants, e.g. deployer' });
    if (spec.namespace !== undefined && (typeof spec.namespace !== 'string' || !NAME.test(spec.namespace))) causes.push({ reason: 'FieldValueInvalid', field: 'spec.namespace', message: 'Invalid value: a namespace name' });
    let expiresAt: string | undefined;
    if (spec.ttl !== undefined) {
      const m = typeof spec.ttl === 'string' ? DURATION.exec(spec.ttl) : null;
      if (!m || Number(m[1]) <= 0) causes.push({ reason: 'FieldValueInvalid', field: 'spec.ttl', message: 'Invalid value: a duration such as 30m, 12h or 90d' });
      // Rounded up to the second (timestamps have second precision), so a token lives at least its ttl.
      else expiresAt = new Date(Math.ceil((Date.now() + Number(m[1]) * UNIT_SECONDS[m[2]!]! * 1000) / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    }
    if (spec.description !== undefined && (typeof spec.description !== 'string' || spec.description.length > 1024)) causes.push({ reason: 'FieldValueInvalid', field: 'spec.description', message: 'Invalid value: a string of at most 1024 characters' });
    if (causes.length) throw invalid({ group: GROUP, resource: 'tokenrequests', kind: 'TokenRequest' }, causes);
    const found = registry.lookup(GROUP, 'v1alpha1', 'tokens');
    if (!found) throw unavailable('the tokens resource is not served yet');
    const issued = issueToken();
    await objects.create(
      { resource: found.resource, version: found.version },
      {
        apiVersion: API_VERSION,
        kind: 'Token',
        metadata: { name: issued.id },
        spec: {
          role: spec.role,
          ...(spec.namespace ? { namespace: spec.namespace } : {}),
          secretHash: issued.secretHash,
          ...(expiresAt ? { expiresAt } : {}),
          ...(spec.description ? { description: spec.description } : {}),
          createdBy: user.name,
        },
      },
    );
    ctx.status = 201;
    ctx.body = { kind: 'TokenRequest', apiVersion: API_VERSION, status: { id: issued.id, token: issued.token, ...(expiresAt ? { expiresAt } : {}) } };
  });
}

