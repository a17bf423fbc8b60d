// Where backup artifacts are stored: the BackupStore interface shared by the local-directory and
// SFTP stores, plus the pieces both use. Artifact paths are relative, '/'-separated and validated
// (no '..', no absolute paths, no NUL). Writes are atomic: data goes to `<path>.partial-<random>`
// and is renamed into place only after the whole stream was written, so a reader never sees half
// an artifact. `put` measures size and SHA-256 while streaming; nothing is buffered whole.

import { createHash, randomBytes, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export interface StoredArtifact {
  path: string;
  size: number;
  modified: Date;
}

export interface BackupStore {
  /** Streams data to `path` atomically (parents created); resolves with what was written. */
  put(path: string, data: NodeJS.ReadableStream): Promise<{ size: number; sha256: string }>;
  /** A stream of the artifact; rejects with ArtifactNotFoundError when it does not exist. */
  get(path: string): Promise<NodeJS.ReadableStream>;
  /** The artifact's size, or undefined when it does not exist. */
  stat(path: string): Promise<{ size: number } | undefined>;
  /**
   * Artifacts whose path starts with `prefix` (a plain string prefix, so `db/` lists a folder
   * and `db/2024-` a name range; '' lists everything), sorted by path. Partial uploads are skipped.
   */
  list(prefix: string): Promise<StoredArtifact[]>;
  /** Deletes the artifact; removing a missing artifact is not an error. */
  remove(path: string): Promise<void>;
  /** Releases connections; the store is unusable afterwards. */
  close(): Promise<void>;
  /** Human-readable location for logs and status, e.g. `sftp://backup@host:22/srv/backups`. */
  describe(): string;
}

/** A path given to a store is unsafe or malformed. */
export class InvalidArtifactPathError extends Error {
  override readonly name = 'InvalidArtifactPathError';
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`invalid artifact path ${JSON.stringify(path)}: ${reason}`);
  }
}

/** get() of an artifact that does not exist. */
export class ArtifactNotFoundError extends Error {
  override readonly name = 'ArtifactNotFoundError';
  constructor(
    readonly path: string,
    readonly location: string,
  ) {
    super(`artifact ${path} not found in ${location}`);
  }
}

const PARTIAL_RE = /\.partial-[0-9a-f]{16}$/;
const MAX_PATH_LENGTH = 1024;

function checkCommon(path: unknown, what: 'path' | 'prefix'): asserts path is string {
  if (typeof path !== 'string') throw new InvalidArtifactPathError(String(path), `the ${what} must be a string`);
  if (path.length > MAX_PATH_LENGTH) throw new InvalidArtifactPathError(path, `longer than ${MAX_PATH_LENGTH} characters`);
  if (path.includes('\0')) throw new InvalidArtifactPathError(path, 'contains a NUL character');
  if (path.includes('\\')) throw new InvalidArtifactPathError(path, 'contains a backslash; use / as the separator');
  if (path.startsWith('/')) throw new InvalidArtifactPathError(path, `must be relative to the store, not absolute`);
  if (/^[A-Za-z]:/.test(path)) throw new InvalidArtifactPathError(path, 'must be relative to the store, not a drive path');
}

/**
 * Validates an artifact path and returns it unchanged. Rejects empty, absolute, NUL-containing,
 * '..' / '.' / empty segments, trailing '/', and names that look like partial uploads.
 */
export function validateArtifactPath(path: string): string {
  checkCommon(path, 'path');
  if (path === '') throw new InvalidArtifactPathError(path, 'is empty');
  for (const segment of path.split('/')) {
    if (segment === '..') throw new InvalidArtifactPathError(path, "'..' segments are not allowed");
    if (segment === '.') throw new InvalidArtifactPathError(path, "'.' segments are not allowed");
    if (segment === '') throw new InvalidArtifactPathError(path, 'has an empty segment (a leading, trailing or double /)');
  }
  if (PARTIAL_RE.test(path)) throw new InvalidArtifactPathError(path, 'names a partial upload (.partial-<random> is reserved)');
  return path;
}

/**
 * Validates a list() prefix: '' or a relative path prefix, which may end with '/'. Returns the
 * directory to walk ('' for the root) and the prefix itself.
 */
export function validateListPrefix(prefix: string): { dir: string; prefix: string } {
  checkCommon(prefix, 'prefix');
  const segments = prefix.split('/');
  for (const [i, segment] of segments.entries()) {
    if (segment === '..') throw new InvalidArtifactPathError(prefix, "'..' segments are not allowed");
    // The last segment is a partial name, so '.' or '' there is a legitimate name prefix.
    if (i < segments.length - 1 && (segment === '.' || segment === '')) {
      throw new InvalidArtifactPathError(prefix, "'.' and empty segments are not allowed");
    }
  }
  return { dir: segments.slice(0, -1).join('/'), prefix };
}

/** The temporary name an upload of `path` is written to before the rename. */
export function partialPath(path: string): string {
  return `${path}.partial-${randomBytes(8).toString('hex')}`;
}

/** True for a temporary upload name made by partialPath(). */
export function isPartialPath(path: string): boolean {
  return PARTIAL_RE.test(path);
}

/** A pass-through stream that counts bytes and computes their SHA-256 on the way. */
export class DigestStream extends Transform {
  size = 0;
  private readonly hash: Hash = createHash('sha256');
  private digestHex: string | undefined;

  override _transform(chunk: Buffer | string, encoding: BufferEncoding, callback: TransformCallback): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    this.size += buf.length;
    this.hash.update(buf);
    callback(null, buf);
  }

  /** Hex SHA-256 of everything that passed through; call after the stream ended. */
  get sha256(): string {
    this.digestHex ??= this.hash.digest('hex');
    return this.digestHex;
  }
}

/** Reads a stream to its end, returning its size and hex SHA-256 (streaming, not buffering). */
export async function digestStream(stream: NodeJS.ReadableStream): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buf.length;
    hash.update(buf);
  }
  return { size, sha256: hash.digest('hex') };
}

/** Sorts list() results by path (stable output for callers and tests). */
export function sortArtifacts(items: StoredArtifact[]): StoredArtifact[] {
  return items.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
