// Bearer tokens: the `slw_<id>_<secret>` format, hashing (only SHA-256 hashes are stored), and the
// static token file (`token,user,role` lines, like Kubernetes' --token-auth-file) that bootstraps
// the admin and the controller manager.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

export const TOKEN_PATTERN = /^slw_([a-f0-9]{12})_([A-Za-z0-9_-]{43})$/;

export interface IssuedToken {
  id: string;
  secret: string;
  /** What the client sends: `slw_<id>_<secret>`. */
  token: string;
  secretHash: string;
}

export const sha256Hex = (text: string) => createHash('sha256').update(text).digest('hex');

export function issueToken(): IssuedToken {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, secret, token: `slw_${id}_${secret}`, secretHash: sha256Hex(secret) };
}

/** Constant-time comparison of two hex digests. */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

export interface StaticToken {
  /** SHA-256 of the whole token string. */
  hash: string;
  user: string;
  role: string;
}

/** Reads `token,user,role` lines; the file must not be readable by others. */
export function readStaticTokens(path: string): StaticToken[] {
  const mode = statSync(path).mode & 0o077;
  if (mode) throw new Error(`token file ${path} is readable by other users (mode ${(statSync(path).mode & 0o777).toString(8)}); chmod 600 it`);
  const tokens: StaticToken[] = [];
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const text = line.trim();
      if (!text || text.startsWith('#')) return;
      const [token, user, role] = text.split(',').map((s) => s.trim());
      if (!token || !user || !role || token.length < 32) throw new Error(`token file ${path} line ${i + 1}: expected "token,user,role" with a token of at least 32 characters`);
      tokens.push({ hash: sha256Hex(token), user, role });
    });
  return tokens;
}
