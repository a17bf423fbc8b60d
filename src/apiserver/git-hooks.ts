// Push webhooks from git hosts: `POST /hooks/git/{namespace}/{service}` with a GitHub
// (`X-Hub-Signature-256: sha256=<hex>`) or Gitea/Gogs (`X-Gitea-Signature: <hex>`) HMAC-SHA256
// of the raw body, keyed with the Secret named by the Service's spec.build.webhookSecretRef. A
// push to the branch the Service follows sets spec.build.ref to the pushed commit (the branch is
// remembered in an annotation), which rolls it out. The path needs no bearer token; every
// request that is not correctly signed for an existing Service gets the same 401, so the
// endpoint tells nothing about which Services or Secrets exist.

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Middleware } from 'koa';
import { CHANGE_CAUSE_ANNOTATION } from '../api/service-contract.js';
import { GROUP, type KubeObject } from '../api/types.js';
import { readRaw } from './body.js';
import { ApiError, badRequest, methodNotAllowed, unavailable } from './errors.js';
import type { ObjectService, Scope } from './objects.js';
import type { Registry } from './resources.js';

export const GIT_HOOK_PATH = /^\/hooks\/git\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/?$/;
/** On a Service: the branch a push webhook follows once spec.build.ref holds a pushed commit. */
export const GIT_BRANCH_ANNOTATION = 'slipway.dev/git-branch';
const MAX_HOOK_BODY = 4 * 1024 * 1024;

const refused = () => new ApiError(401, 'Unauthorized', 'Unauthorized: missing or invalid webhook signature');

/** The HMAC-SHA256 signature the request carries, as bytes (undefined when absent or malformed). */
export function signatureOf(headers: Record<string, string | string[] | undefined>): Buffer | undefined {
  const github = headers['x-hub-signature-256'];
  const gitea = headers['x-gitea-signature'] ?? headers['x-gogs-signature'];
  const text = typeof github === 'string' ? /^sha256=([0-9a-f]{64})$/i.exec(github.trim())?.[1] : typeof gitea === 'string' ? /^([0-9a-f]{64})$/i.exec(gitea.trim())?.[1] : undefined;
  return text ? Buffer.from(text, 'hex') : undefined;
}

/** Constant-time check of `signature` against HMAC-SHA256(secret, body). */
export function signatureMatches(secret: Buffer, body: Buffer, signature: Buffer | undefined): boolean {
  const expected = createHmac('sha256', secret).update(body).digest();
  return !!signature && signature.length === expected.length && timingSafeEqual(signature, expected);
}

/** `ref` and `after` of a GitHub/Gitea push payload (JSON, or form-encoded `payload=`). */
export function pushOf(body: Buffer, contentType: string): { ref: string; after: string } {
  let text = body.toString('utf8');
  if (/application\/x-www-form-urlencoded/i.test(contentType)) text = new URLSearchParams(text).get('payload') ?? '';
  let payload: { ref?: unknown; after?: unknown };
  try {
    payload = JSON.parse(text);
  } catch {
    throw badRequest('the webhook payload is not JSON');
  }
  if (typeof payload?.ref !== 'string' || typeof payload.after !== 'string' || !/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(payload.after)) {
    throw badRequest('the webhook payload is not a push (expected "ref" and a full commit SHA in "after")');
  }
  return { ref: payload.ref, after: payload.after };
}

/** The user audit records name for accepted push webhooks. */
export const GIT_WEBHOOK_USER = 'system:git-webhook';

export function gitHooks(registry: Registry, objects: ObjectService, isReady: () => boolean): Middleware {
  const scope = (plural: string, namespace: string): Scope => {
    const found = registry.lookup(GROUP, 'v1alpha1', plural);
    if (!found) throw unavailable(`the ${plural}.${GROUP} resource is not served yet`);
    return { resource: found.resource, version: found.version, namespace };
  };
  /** The Service and its webhook secret; undefined for anything that must look like a bad signature. */
  const lookup = async (namespace: string, name: string): Promise<{ svc: KubeObject; secret: Buffer } | undefined> => {
    try {
      const svc = await objects.get(scope('services', namespace), name);
      const ref = svc.spec?.build?.webhookSecretRef;
      if (!ref?.name) return undefined;
      const secret = await objects.get(scope('secrets', namespace), ref.name);
      const value = secret.data?.[ref.key ?? 'webhook-secret'];
      return typeof value === 'string' && value ? { svc, secret: Buffer.from(value, 'base64') } : undefined;
    } catch (err) {
      if (err instanceof ApiError && err.code === 404) return undefined;
      throw err;
    }
  };

  return async (ctx, next) => {
    const match = GIT_HOOK_PATH.exec(ctx.path);
    if (!match) return next();
    if (!isReady()) throw unavailable('the API server is starting');
    if (ctx.method !== 'POST') throw methodNotAllowed(ctx.method, ctx.path);
    const namespace = match[1]!;
    const name = match[3]!;
    const body = await readRaw(ctx.req, MAX_HOOK_BODY);
    const found = await lookup(namespace, name);
    // Always compute an HMAC, so a missing Service or secret costs the same as a wrong signature.
    const ok = signatureMatches(found?.secret ?? Buffer.from('slipway-no-secret'), body, signatureOf(ctx.headers));
    if (!found || !ok) throw refused();
    // Who the audit record names: the holder of the Service's webhook secret.
    ctx.state.user = { name: GIT_WEBHOOK_USER };
    const event = ctx.get('x-github-event') || ctx.get('x-gitea-event') || ctx.get('x-gogs-event');
    if (event === 'ping') {
      ctx.body = { message: 'pong' };
      return;
    }
    const push = pushOf(body, ctx.get('content-type'));
    const svc = found.svc;
    const branch: string = svc.metadata.annotations?.[GIT_BRANCH_ANNOTATION] ?? svc.spec.build.ref;
    const followed = push.ref === `refs/heads/${branch}` || push.ref === branch;
    if (!followed || /^0+$/.test(push.after)) {
      ctx.status = 202;
      ctx.body = { message: `ignored: the push to ${push.ref} is not a new commit on branch ${branch}` };
      return;
    }
    if (svc.spec.build.ref !== push.after) {
      await objects.patch(scope('services', namespace), name, 'merge', {
        metadata: { annotations: { [GIT_BRANCH_ANNOTATION]: branch, [CHANGE_CAUSE_ANNOTATION]: `GitPush: ${push.after.slice(0, 7)}` } },
        spec: { build: { ref: push.after } },
      }, undefined);
    }
    ctx.body = { message: `deploying ${push.after} to service ${namespace}/${name}`, commit: push.after };
  };
}
