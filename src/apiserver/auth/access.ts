// Access control for object routes: discovery needs only an identity; every object request needs
// the permission for its verb and resource. Secrets are special, as in the issue: values go only
// to those allowed to `get` secrets; others with `list` see names, keys and sizes.

import type { Context } from 'koa';
import { LAST_APPLIED_ANNOTATION, type KubeObject } from '../../api/types.js';
import type { RequestInfo } from '../resource-routes.js';
import { can, forbiddenFor, requirePermission, unauthorized, type UserInfo } from './authorize.js';

export const REDACTED_ANNOTATION = 'slipway.dev/redacted';

export interface AccessDecision {
  /** Hide Secret values in what this request returns. */
  redactSecrets: boolean;
}

export async function checkAccess(ctx: Context, info: RequestInfo): Promise<AccessDecision> {
  if (!ctx.state.user) throw unauthorized();
  if (!info.resource || info.verb === 'discovery') return { redactSecrets: false };
  const resource = info.subresource ? `${info.resource}/${info.subresource}` : info.resource;
  const attrs = { verb: info.verb, resource, ...(info.namespace ? { namespace: info.namespace } : {}), ...(info.name ? { name: info.name } : {}) };
  if (info.resource !== 'secrets') {
    await requirePermission(ctx, attrs);
    return { redactSecrets: false };
  }
  const canGet = await can(ctx, { ...attrs, verb: 'get' });
  if (info.verb === 'get') {
    if (canGet) return { redactSecrets: false };
    // Without `get`, `list` still shows the Secret's names, keys and sizes.
    if (await can(ctx, { ...attrs, verb: 'list' })) return { redactSecrets: true };
    throw forbiddenFor(ctx.state.user as UserInfo, attrs);
  }
  if (info.verb === 'watch' && !canGet) throw forbiddenFor(ctx.state.user as UserInfo, { ...attrs, verb: 'get' }, ' (watch events carry Secret values)');
  await requirePermission(ctx, attrs);
  return { redactSecrets: !canGet };
}

/** A Secret without its values: keys and sizes only, and no last-applied copy (it may hold stringData). */
export function redactSecret(obj: KubeObject): KubeObject {
  if (obj?.kind !== 'Secret') return obj;
  const sizes: Record<string, number> = {};
  for (const [k, v] of Object.entries((obj.data ?? {}) as Record<string, string>)) sizes[k] = Buffer.from(v, 'base64').length;
  const { data: _data, stringData: _stringData, ...rest } = obj;
  const annotations = { ...(obj.metadata.annotations ?? {}) };
  delete annotations[LAST_APPLIED_ANNOTATION];
  annotations[REDACTED_ANNOTATION] = 'values are hidden: reading them needs permission "get" on "secrets"';
  return { ...rest, metadata: { ...obj.metadata, annotations }, dataSizes: sizes };
}

/** Redacts the items of a list answer (given as JSON text, as the fast list path produces it). */
export function redactSecretList(json: Buffer | string): string {
  const list = JSON.parse(json.toString('utf8')) as { items?: KubeObject[] };
  list.items = (list.items ?? []).map(redactSecret);
  return JSON.stringify(list);
}
