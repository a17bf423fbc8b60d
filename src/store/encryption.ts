// Encryption at rest for stored values (Secrets): an AES-256-GCM envelope that names its key,
// with keys from a JSON key file only its owner may read. The key ring reloads the file on
// request, so a newly added active key encrypts new writes without a restart; values under an
// older key keep reading until they are re-encrypted (`slipctl secrets rekey`).
//
// Stored form: `slipway:enc:aesgcm:v1:<keyid>:` + 12-byte nonce + ciphertext + 16-byte GCM tag,
// with the etcd key as additional authenticated data (a value copied under another key fails).
// A value without the prefix is plaintext written before encryption was on; it still reads.

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { ValueTransformer } from './etcd-store.js';

export const ENVELOPE_PREFIX = 'slipway:enc:aesgcm:v1:';
const PREFIX_BYTES = Buffer.from(ENVELOPE_PREFIX);
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** A key file that cannot be used, or a value that cannot be decrypted; the message is for users. */
export class EncryptionError extends Error {
  override name = 'EncryptionError';
}

export interface EncryptionConfig {
  /** Key id → 32-byte AES key, in file order. */
  keys: Map<string, Buffer>;
  /** The key new writes are encrypted with. */
  active: string;
}

/** Parses and validates the key file's JSON: `{"keys":[{"id","secret"}...],"active"?}`. */
export function parseKeyFile(text: string, file: string): EncryptionConfig {
  const fail = (message: string): never => {
    throw new EncryptionError(`encryption key file ${file}: ${message}`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return fail(`not valid JSON (${(err as Error).message})`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return fail('must be a JSON object with "keys" and optionally "active"');
  const root = doc as Record<string, unknown>;
  for (const field of Object.keys(root)) if (field !== 'keys' && field !== 'active') fail(`unknown field "${field}" (expected "keys" and "active")`);
  if (!Array.isArray(root.keys) || root.keys.length === 0) return fail('"keys" must be a non-empty array of {"id", "secret"}');
  const keys = new Map<string, Buffer>();
  root.keys.forEach((entry: unknown, i) => {
    const where = `keys[${i}]`;
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) return fail(`${where} must be an object {"id", "secret"}`);
    const k = entry as Record<string, unknown>;
    for (const field of Object.keys(k)) if (field !== 'id' && field !== 'secret') fail(`${where}: unknown field "${field}" (expected "id" and "secret")`);
    if (typeof k.id !== 'string' || !KEY_ID.test(k.id)) {
      return fail(`${where}.id must be 1-64 characters of letters, digits, '.', '_' or '-' (got ${JSON.stringify(k.id)})`);
    }
    if (keys.has(k.id)) fail(`${where}.id "${k.id}" is used by more than one key`);
    if (typeof k.secret !== 'string' || !BASE64.test(k.secret) || k.secret.length % 4 !== 0) {
      return fail(`${where}.secret must be a base64 string (key "${k.id}")`);
    }
    const secret = Buffer.from(k.secret, 'base64');
    if (secret.length !== KEY_BYTES) fail(`${where}.secret must decode to ${KEY_BYTES} bytes, got ${secret.length} (key "${k.id}")`);
    keys.set(k.id, secret);
  });
  let active = keys.keys().next().value as string;
  if (root.active !== undefined) {
    if (typeof root.active !== 'string') return fail('"active" must be a key id string');
    if (!keys.has(root.active)) fail(`"active" names key "${root.active}", which is not in "keys"`);
    active = root.active;
  }
  return { keys, active };
}

/** Reads a key file, refusing one that group or others could read (it must be mode 0600). */
export function loadKeyFile(file: string): EncryptionConfig {
  let mode: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new EncryptionError(`encryption key file ${file} is not a regular file`);
    mode = st.mode & 0o777;
  } catch (err) {
    if (err instanceof EncryptionError) throw err;
    throw new EncryptionError(`cannot read encryption key file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if ((mode & 0o077) !== 0) {
    throw new EncryptionError(
      `encryption key file ${file} has mode 0${mode.toString(8)}: it must be readable by its owner only (run: chmod 600 ${file})`,
    );
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new EncryptionError(`cannot read encryption key file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseKeyFile(text, file);
}

/** The key id an envelope names; null for a plaintext value; undefined for a malformed envelope. */
export function keyIdOf(stored: Buffer): string | null | undefined {
  if (stored.length < PREFIX_BYTES.length || PREFIX_BYTES.compare(stored, 0, PREFIX_BYTES.length) !== 0) return null;
  const end = stored.indexOf(0x3a /* : */, PREFIX_BYTES.length);
  if (end < 0 || end - PREFIX_BYTES.length > 64) return undefined;
  const id = stored.subarray(PREFIX_BYTES.length, end).toString('latin1');
  return KEY_ID.test(id) ? id : undefined;
}

export function encryptValue(config: EncryptionConfig, plaintext: Buffer, aad: string): Buffer {
  const key = config.keys.get(config.active)!;
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([PREFIX_BYTES, Buffer.from(`${config.active}:`, 'latin1'), nonce, body, cipher.getAuthTag()]);
}

/**
 * The plaintext of a stored value (a plaintext value is returned as it is). `what` names the
 * value in errors, e.g. `secret default/db`; `config` null means no key file was given.
 */
export function decryptValue(config: EncryptionConfig | null, stored: Buffer, aad: string, what: string): Buffer {
  const id = keyIdOf(stored);
  if (id === null) return stored;
  const fail = (why: string): never => {
    throw new EncryptionError(`cannot decrypt ${what}: ${why}`);
  };
  if (id === undefined) return fail('the stored value is not a valid encryption envelope');
  if (!config) return fail(`it is encrypted with key id ${id}, but the API server has no encryption key file (--encryption-key-file)`);
  const key = config.keys.get(id);
  if (!key) return fail(`key id ${id} is not in the key file`);
  const start = PREFIX_BYTES.length + Buffer.byteLength(id, 'latin1') + 1;
  if (stored.length < start + NONCE_BYTES + TAG_BYTES) return fail('the stored value is truncated');
  const nonce = stored.subarray(start, start + NONCE_BYTES);
  const body = stored.subarray(start + NONCE_BYTES, stored.length - TAG_BYTES);
  const tag = stored.subarray(stored.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    return fail(`the stored value failed its integrity check with key id ${id} (tampered with, or copied from another key)`);
  }
}

/** The current keys of one key file; `reload()` swaps them in (a failed reload keeps the old ones). */
export class KeyRing {
  private config: EncryptionConfig;

  constructor(readonly file: string) {
    this.config = loadKeyFile(file);
  }

  reload(): void {
    this.config = loadKeyFile(this.file);
  }

  get activeKeyId(): string {
    return this.config.active;
  }

  get keyIds(): string[] {
    return [...this.config.keys.keys()];
  }

  encrypt(plaintext: Buffer, etcdKey: string): Buffer {
    return encryptValue(this.config, plaintext, etcdKey);
  }

  decrypt(stored: Buffer, etcdKey: string, what: string): Buffer {
    return decryptValue(this.config, stored, etcdKey, what);
  }
}

/**
 * The store transformer for values under `prefix`: encrypted with the ring's active key, or
 * stored as plaintext without a ring (enveloped values then fail to read with a clear error).
 * `describe` names a value in errors from its etcd key.
 */
export function encryptionTransformer(prefix: string, ring: KeyRing | null, describe: (etcdKey: string) => string): ValueTransformer {
  return {
    prefix,
    encrypt: (plaintext, key) => (ring ? ring.encrypt(plaintext, key) : plaintext),
    decrypt: (stored, key) => (ring ? ring.decrypt(stored, key, describe(key)) : decryptValue(null, stored, key, describe(key))),
  };
}
