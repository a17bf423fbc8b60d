// A BackupStore in a directory on this machine. Artifacts are files under the root (mode 0600),
// folders are created as needed (mode 0700). Uploads are written to `<path>.partial-<random>`,
// fsynced and renamed into place; a failed upload removes its partial file.

import { constants } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  ArtifactNotFoundError,
  DigestStream,
  isPartialPath,
  partialPath,
  sortArtifacts,
  validateArtifactPath,
  validateListPrefix,
  type BackupStore,
  type StoredArtifact,
} from './location.js';

const isMissing = (err: unknown) => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '');

export class LocalStore implements BackupStore {
  private closed = false;

  /** `root` is an absolute or cwd-relative directory; it is created (0700) on first write. */
  constructor(readonly root: string) {
    if (!root) throw new Error('LocalStore needs a root directory');
  }

  describe(): string {
    return `file://${this.root}`;
  }

  private file(path: string): string {
    if (this.closed) throw new Error(`backup store ${this.describe()} is closed`);
    return join(this.root, validateArtifactPath(path));
  }

  async put(path: string, data: NodeJS.ReadableStream): Promise<{ size: number; sha256: string }> {
    const target = this.file(path);
    await mkdir(dirname(target), { recursive: true, mode: 0o700 });
    const temp = partialPath(target);
    let handle: FileHandle | undefined;
    try {
      handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      const digest = new DigestStream();
      const out = handle;
      await pipeline(data, digest, async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) await out.write(chunk);
      });
      await handle.sync();
      await handle.close();
      handle = undefined;
      await rename(temp, target);
      return { size: digest.size, sha256: digest.sha256 };
    } catch (err) {
      await handle?.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      throw new Error(`writing backup artifact ${path} to ${this.describe()} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async get(path: string): Promise<NodeJS.ReadableStream> {
    const file = this.file(path);
    try {
      const handle = await open(file, 'r');
      return handle.createReadStream();
    } catch (err) {
      if (isMissing(err)) throw new ArtifactNotFoundError(path, this.describe());
      throw new Error(`reading backup artifact ${path} from ${this.describe()} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async stat(path: string): Promise<{ size: number } | undefined> {
    const file = this.file(path);
    try {
      const st = await stat(file);
      if (!st.isFile()) throw new Error(`${path} in ${this.describe()} is not a regular file`);
      return { size: st.size };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async list(prefix: string): Promise<StoredArtifact[]> {
    if (this.closed) throw new Error(`backup store ${this.describe()} is closed`);
    const { dir } = validateListPrefix(prefix);
    const out: StoredArtifact[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(join(this.root, rel), { withFileTypes: true });
      } catch (err) {
        if (isMissing(err)) return;
        throw err;
      }
      for (const entry of entries) {
        const path = rel ? `${rel}/${entry.name}` : entry.name;
        if (entry.isDirectory()) {
          // Only descend where matches are possible.
          if (path.startsWith(prefix) || prefix.startsWith(`${path}/`)) await walk(path);
        } else if (entry.isFile() && path.startsWith(prefix) && !isPartialPath(path)) {
          const st = await stat(join(this.root, path)).catch((err) => (isMissing(err) ? undefined : Promise.reject(err)));
          if (st) out.push({ path, size: st.size, modified: st.mtime });
        }
      }
    };
    await walk(dir);
    return sortArtifacts(out);
  }

  async remove(path: string): Promise<void> {
    const file = this.file(path);
    await unlink(file).catch((err) => {
      if (!isMissing(err)) throw new Error(`removing backup artifact ${path} from ${this.describe()} failed: ${(err as Error).message}`, { cause: err });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
