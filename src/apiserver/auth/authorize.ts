// Authorization: whether a user may do a verb on a resource (in a namespace), from the role their
// token carries and the RoleBindings / ClusterRoleBindings naming them; and the one helper every
// route calls, which answers 401 without an identity and 403 naming the missing permission.

import type { Context } from 'koa';
import { ApiError } from '../errors.js';
import { rulesAllow, type Attributes } from './rbac.js';
import type { RbacSnapshot, RbacState } from './rbac-state.js';

export interface UserInfo {
  /** `admin`, `system:controller-manager`, or `token:<id>` for requested tokens. */
  name: string;
  tokenId?: string;
  /** ClusterRole the token itself grants. */
  role?: string;
  /** When set, `role` applies in this namespace only. */
  namespace?: string;
  groups: string[];
}

export const unauthorized = (message = 'a valid bearer token is required (Authorization: Bearer <token>)') => new ApiError(401, 'Unauthorized', `Unauthorized: ${message}`);

function allowedBy(snapshot: RbacSnapshot, user: UserInfo, attrs: Attributes): boolean {
  if (user.role && (!user.namespace || user.namespace === attrs.namespace)) {
    const rules = snapshot.clusterRole(user.role);
    if (rules && rulesAllow(rules, attrs)) return true;
  }
  const isSubject = (b: { subjects: Array<{ kind: string; name: string }> }) =>
    b.subjects.some((s) => (s.kind === 'Token' && s.name === user.tokenId) || (s.kind === 'User' && s.name === user.name));
  for (const binding of snapshot.clusterRoleBindings()) {
    if (binding.roleRef.kind !== 'ClusterRole' || !isSubject(binding)) continue;
    const rules = snapshot.clusterRole(binding.roleRef.name);
    if (rules && rulesAllow(rules, attrs)) return true;
  }
  if (attrs.namespace) {
    for (const binding of snapshot.roleBindings(attrs.namespace)) {
      if (!isSubject(binding)) continue;
      const rules = binding.roleRef.kind === 'Role' ? snapshot.role(attrs.namespace, binding.roleRef.name) : snapshot.clusterRole(binding.roleRef.name);
      if (rules && rulesAllow(rules, attrs)) return true;
    }
  }
  return false;
}

export class Authorizer {
  constructor(private readonly state: RbacState) {}

  /** Allowed by the cached RBAC view, or, when that says no, by a fresh read (a binding made a moment ago counts). */
  async allowed(user: UserInfo, attrs: Attributes): Promise<boolean> {
    if (allowedBy(this.state.snapshot, user, attrs)) return true;
    return allowedBy(await this.state.fresh(), user, attrs);
  }
}

export function describeUser(user: UserInfo): string {
  const role = user.role ? ` (role ${user.role}${user.namespace ? ` in namespace ${user.namespace}` : ''})` : '';
  return `${user.name}${role}`;
}

export function forbiddenFor(user: UserInfo, attrs: Attributes, extra = ''): ApiError {
  const where = attrs.namespace ? ` in namespace "${attrs.namespace}"` : attrs.resource && !attrs.namespace ? ' across all namespaces' : '';
  const what = `${attrs.verb} ${attrs.resource}${attrs.name ? ` "${attrs.name}"` : ''}`;
  return new ApiError(403, 'Forbidden', `Forbidden: ${describeUser(user)} cannot ${what}${where}: missing permission "${attrs.verb}" on "${attrs.resource}"${extra}`, {
    ...(attrs.name ? { name: attrs.name } : {}),
    group: 'slipway.dev',
    kind: attrs.resource,
  });
}

/** Throws 401 when the request has no identity and 403 when its identity lacks the permission. */
export async function requirePermission(ctx: Context, attrs: Attributes): Promise<UserInfo> {
  const user = ctx.state.user as UserInfo | undefined;
  const authorizer = ctx.state.authorizer as Authorizer | undefined;
  if (!user || !authorizer) throw unauthorized();
  if (!(await authorizer.allowed(user, attrs))) throw forbiddenFor(user, attrs);
  return user;
}

/** Whether the request's identity has the permission (no throw). */
export async function can(ctx: Context, attrs: Attributes): Promise<boolean> {
  const user = ctx.state.user as UserInfo | undefined;
  const authorizer = ctx.state.authorizer as Authorizer | undefined;
  return !!user && !!authorizer && (await authorizer.allowed(user, attrs));
}
