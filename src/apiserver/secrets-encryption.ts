// Secrets encrypted at rest: the store transformer for the Secret key prefix (built from the
// --encryption-key-file key ring), and `POST /apis/slipway.dev/v1alpha1/secrets-rekey`, which
// reloads the key file and re-encrypts every Secret not stored under the active key.

import type Router from '@koa/router';
import type { Logger } from 'pino';
import { GROUP, VERSION } from '../api/types.js';
import { encryptionTransformer, keyIdOf, KeyRing } from '../store/encryption.js';
import type { EtcdStore, ValueTransformer } from '../store/etcd-store.js';
import { requirePermission } from './auth/authorize.js';
import { ApiError, badRequest, internal, methodNotAllowed } from './errors.js';
import { resourcePrefix, type Resource } from './resources.js';

/** Where Secrets live in etcd (the same key builder as every resource). */
export const SECRETS_PREFIX = resourcePrefix({ group: GROUP, plural: 'secrets', namespaced: true } as Resource);

export const REKEY_PATH = `/apis/${GROUP}/${VERSION}/secrets-rekey`;

export interface SecretEncryption {
  /** Null when the server runs without a key file (Secrets are stored as plaintext). */
  ring: KeyRing | null;
  transformer: ValueTransformer;
  /** Re-reads the key file (a failed reload keeps the keys in use and throws). */
  reload(): void;
}

/** Loads the key file (throwing a clear error for a bad one) and builds the Secret transformer. */
export function secretEncryption(keyFile: string | undefined): SecretEncryption {
  const ring = keyFile ? new KeyRing(keyFile) : null;
  const describe = (key: string) => `secret ${key.slice(SECRETS_PREFIX.length)}`;
  return {
    ring,
    transformer: encryptionTransformer(SECRETS_PREFIX, ring, describe),
    reload: () => ring?.reload(),
  };
}

export interface RekeyResult {
  rewritten: number;
  activeKeyId: string;
}

/** Reloads the key file, then re-encrypts every Secret not stored under the active key. */
export async function rekeySecrets(enc: SecretEncryption, store: EtcdStore, log: Logger): Promise<RekeyResult> {
  const { ring } = enc;
  if (!ring) throw badRequest('encryption at rest is not configured: start the API server with --encryption-key-file');
  try {
    ring.reload();
  } catch (err) {
    throw internal(`cannot reload the encryption key file: ${(err as Error).message}`);
  }
  const active = ring.activeKeyId;
  let result;
  try {
    result = await store.retransform(SECRETS_PREFIX, (stored) => keyIdOf(stored) !== active);
  } catch (err) {
    throw internal(`re-encrypting secrets failed: ${(err as Error).message}`);
  }
  log.info({ rewritten: result.rewritten, failed: result.failed.length, activeKeyId: active }, 'secrets re-encrypted');
  if (result.failed.length) {
    const shown = result.failed.slice(0, 10).map((f) => f.message);
    const more = result.failed.length - shown.length;
    throw internal(
      `re-encrypted ${result.rewritten} secrets with key ${active}, but ${result.failed.length} could not be: ${shown.join('; ')}${more > 0 ? `; and ${more} more` : ''}`,
    );
  }
  return { rewritten: result.rewritten, activeKeyId: active };
}

/** Serves `POST .../secrets-rekey`; `check` refuses requests before the server is ready. */
export function registerSecretsRekey(router: Router, enc: SecretEncryption, store: EtcdStore, log: Logger, check: () => void): void {
  router.all(REKEY_PATH, async (ctx) => {
    check();
    if (ctx.method !== 'POST') throw methodNotAllowed(ctx.method, ctx.path);
    await requirePermission(ctx, { verb: 'update', resource: 'secrets' });
    ctx.body = await rekeySecrets(enc, store, log);
  });
}

/** Reloads the key file on SIGHUP-like requests: logs instead of throwing. */
export function reloadKeys(enc: SecretEncryption, log: Logger): void {
  if (!enc.ring) {
    log.warn('no --encryption-key-file: nothing to reload');
    return;
  }
  try {
    enc.reload();
    log.info({ activeKeyId: enc.ring.activeKeyId, keys: enc.ring.keyIds }, 'encryption key file reloaded');
  } catch (err) {
    log.error({ err: err instanceof ApiError || err instanceof Error ? err.message : String(err) }, 'cannot reload the encryption key file; keeping the keys in use');
  }
}
