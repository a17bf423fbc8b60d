// Authentication: every request except the health and version endpoints carries
// `Authorization: Bearer <token>`. Static tokens (the token file) and requested Tokens (stored
// hashed) are accepted; anything else is a 401. Sets `ctx.state.user` and `ctx.state.authorizer`.

import type { Middleware } from 'koa';
import { unauthorized, type Authorizer, type UserInfo } from './authorize.js';
import type { RbacState } from './rbac-state.js';
import { sameHash, sha256Hex, TOKEN_PATTERN, type StaticToken } from './tokens.js';

const OPEN_PATHS = new Set(['/healthz', '/livez', '/readyz', '/version']);

export class Authenticator {
  private readonly staticTokens: Map<string, StaticToken>;

  constructor(
    staticTokens: readonly StaticToken[],
    private readonly state: RbacState,
  ) {
    this.staticTokens = new Map(staticTokens.map((t) => [t.hash, t]));
  }

  async authenticate(token: string): Promise<UserInfo | null> {
    const known = this.staticTokens.get(sha256Hex(token));
    if (known) return { name: known.user, role: known.role, groups: ['system:authenticated'] };
    const match = TOKEN_PATTERN.exec(token);
    if (!match) return null;
    const [, id, secret] = match as unknown as [string, string, string];
    const obj = await this.state.token(id);
    if (!obj || obj.metadata.deletionTimestamp) return null;
    const spec = obj.spec ?? {};
    if (typeof spec.secretHash !== 'string' || !sameHash(spec.secretHash, sha256Hex(secret))) return null;
    if (spec.expiresAt && Date.parse(spec.expiresAt) <= Date.now()) return null;
    return {
      name: `token:${id}`,
      tokenId: id,
      ...(spec.role ? { role: spec.role } : {}),
      ...(spec.namespace ? { namespace: spec.namespace } : {}),
      groups: ['system:authenticated'],
    };
  }
}

export function authenticate(authn: Authenticator, authorizer: Authorizer): Middleware {
  return async (ctx, next) => {
    if (OPEN_PATHS.has(ctx.path)) return next();
    const header = ctx.get('authorization');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) {
      ctx.set('WWW-Authenticate', 'Bearer realm="slipway"');
      throw unauthorized(header ? 'the Authorization header must be "Bearer <token>"' : undefined);
    }
    const user = await authn.authenticate(match[1]!);
    if (!user) {
      ctx.set('WWW-Authenticate', 'Bearer realm="slipway", error="invalid_token"');
      throw unauthorized('the token is unknown, revoked or expired');
    }
    ctx.state.user = user;
    ctx.state.authorizer = authorizer;
    await next();
  };
}
