// A BackupStore on a remote host over SFTP (ssh2): key authentication and a PINNED host key (an
// unknown or changed key refuses to connect with HostKeyMismatchError naming both fingerprints).
// One SSH connection and SFTP session is reused for all operations. When it drops, the next
// operation reconnects; idempotent operations (stat, list, get, remove) that fail because the
// connection died underneath them are retried once on a fresh connection, while an upload in
// flight fails with a clear error (its stream cannot be replayed) and leaves no visible artifact.
// Paths are relative to a remote base path; parent folders are created `mkdir -p` style (0700),
// files are written as 0600 to `<path>.partial-<random>` and renamed into place with the
// `posix-rename@openssh.com` extension when the server has it, else unlink + rename.

import { once } from 'node:events';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client, type ConnectConfig, type SFTPWrapper, type Stats } from 'ssh2';
import { HostKeyMismatchError, parseHostKey, pinnedHostKey } from '../docker/ssh-tunnel.js';
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

export interface SftpStoreOptions {
  host: string;
  port?: number;
  username: string;
  /** Unencrypted private key, OpenSSH or PEM format. */
  privateKey: string | Buffer;
  /** Pinned host key in OpenSSH public-key format: `ssh-ed25519 AAAA... [comment]`. */
  hostKey: string;
  /** Remote folder holding the artifacts; relative paths are relative to the login's home. */
  basePath: string;
  /** Time allowed for one connection attempt (TCP + handshake + auth). Default 10 s. */
  readyTimeoutMs?: number;
  /** SSH keepalive interval. Default 10 s. */
  keepaliveIntervalMs?: number;
}

/** SFTP status codes (draft-ietf-secsh-filexfer-02). */
const SFTP_EOF = 1;
const SFTP_NO_SUCH_FILE = 2;
const READ_CHUNK = 64 * 1024;

interface Session {
  client: Client;
  sftp: SFTPWrapper;
  alive: boolean;
}

/** An SFTP status error (the server answered); anything else means the connection failed. */
function sftpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

const isNoSuchFile = (err: unknown) => sftpCode(err) === SFTP_NO_SUCH_FILE;

/** A failure that says nothing about the connection (bad remote state, failing input stream). */
class StoreOperationError extends Error {
  override readonly name = 'StoreOperationError';
}

function call<T>(fn: (cb: (err: Error | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      fn((err, value) => (err ? reject(err) : resolve(value)));
    } catch (err) {
      // ssh2 throws synchronously when the channel is already gone.
      reject(err);
    }
  });
}

/**
 * Streams a remote file (one 64 KiB read in flight). Unlike ssh2's ReadStream, closing the handle
 * after the end never turns into an unhandled 'error' when the connection is gone by then.
 */
class SftpFileReader extends Readable {
  private position = 0;
  private handleOpen = true;

  constructor(
    private readonly sftp: SFTPWrapper,
    private readonly handle: Buffer,
    private readonly what: string,
  ) {
    super({ highWaterMark: READ_CHUNK });
  }

  override _read(): void {
    const buffer = Buffer.allocUnsafe(READ_CHUNK);
    try {
      this.sftp.read(this.handle, buffer, 0, READ_CHUNK, this.position, (err, bytesRead) => {
        if (err) {
          // EOF is reported as a status error by some servers.
          if (sftpCode(err) === SFTP_EOF) this.push(null);
          else this.destroy(new Error(`reading ${this.what} failed: ${err.message}`, { cause: err }));
          return;
        }
        if (bytesRead === 0) {
          this.push(null);
          return;
        }
        this.position += bytesRead;
        this.push(buffer.subarray(0, bytesRead));
      });
    } catch (err) {
      this.destroy(new Error(`reading ${this.what} failed: ${(err as Error).message}`, { cause: err }));
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.handleOpen) {
      this.handleOpen = false;
      try {
        this.sftp.close(this.handle, () => undefined);
      } catch {
        // the connection is gone, and the handle with it
      }
    }
    callback(error);
  }
}

export class SftpStore implements BackupStore {
  readonly target: string;
  private readonly pinned: { type: string; blob: Buffer };
  private readonly base: string;
  private session: Session | undefined;
  private connecting: Promise<Session> | undefined;
  private closed = false;

  private constructor(private readonly options: SftpStoreOptions) {
    this.target = `${options.username}@${options.host}:${options.port ?? 22}`;
    this.pinned = parseHostKey(options.hostKey);
    if (!options.basePath) throw new Error('SftpStore needs a remote basePath');
    if (options.basePath.includes('\0')) throw new Error('SftpStore basePath contains a NUL character');
    this.base = posix.normalize(options.basePath).replace(/(.)\/+$/, '$1');
  }

  /** Connects (verifying the pinned host key) and opens the SFTP session. */
  static async open(options: SftpStoreOptions): Promise<SftpStore> {
    const store = new SftpStore(options);
    await store.connection();
    return store;
  }

  describe(): string {
    return `sftp://${this.target}${this.base.startsWith('/') ? '' : '/~/'}${this.base}`;
  }

  private remote(path: string): string {
    return posix.join(this.base, path);
  }

  // ------------------------------------------------------------------ connection

  private connection(): Promise<Session> {
    if (this.closed) return Promise.reject(new Error(`backup store ${this.describe()} is closed`));
    if (this.session?.alive) return Promise.resolve(this.session);
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private connect(): Promise<Session> {
    const { options } = this;
    const client = new Client();
    let mismatch: HostKeyMismatchError | undefined;
    let lastError: Error | undefined;
    const config: ConnectConfig = {
      host: options.host,
      port: options.port ?? 22,
      username: options.username,
      privateKey: options.privateKey,
      readyTimeout: options.readyTimeoutMs ?? 10_000,
      keepaliveInterval: options.keepaliveIntervalMs ?? 10_000,
      keepaliveCountMax: 3,
      ...pinnedHostKey(this.pinned, `${options.host}:${options.port ?? 22}`, (err) => (mismatch = err)),
    };
    return new Promise<Session>((resolve, reject) => {
      let session: Session | undefined;
      const fail = (err: Error) => {
        client.destroy();
        if (err instanceof HostKeyMismatchError) reject(err);
        else reject(new Error(`SFTP connection to ${this.target} failed: ${err.message}`, { cause: err }));
      };
      client.on('error', (err: Error) => {
        lastError = mismatch ?? err;
      });
      client.once('close', () => {
        if (session) {
          session.alive = false;
          if (this.session === session) this.session = undefined;
        } else {
          fail(lastError ?? new Error('connection closed during the handshake'));
        }
      });
      client.once('ready', () => {
        client.sftp((err, sftp) => {
          if (err) {
            fail(new Error(`cannot start the SFTP subsystem: ${err.message}`));
            return;
          }
          session = { client, sftp, alive: true };
          const s = session;
          // Protocol errors also end the channel ('close' below); without a listener they would throw.
          sftp.on('error', (e: Error) => {
            lastError = e;
          });
          sftp.once('close', () => {
            s.alive = false;
            if (this.session === s) this.session = undefined;
            client.end();
          });
          if (this.closed) {
            client.end();
            reject(new Error(`backup store ${this.describe()} is closed`));
            return;
          }
          this.session = s;
          resolve(s);
        });
      });
      try {
        client.connect(config);
        client.setNoDelay(true);
      } catch (err) {
        fail(err as Error);
      }
    });
  }

  /** Drops a session whose connection failed, so the next operation reconnects. */
  private drop(session: Session): void {
    session.alive = false;
    if (this.session === session) this.session = undefined;
    session.client.destroy();
  }

  /**
   * Runs op on the current session. A failure that is not an SFTP status (the connection died)
   * drops the session; idempotent operations are then retried once on a new connection.
   */
  private async run<T>(what: string, op: (sftp: SFTPWrapper) => Promise<T>, idempotent: boolean): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const session = await this.connection();
      try {
        return await op(session.sftp);
      } catch (err) {
        if (err instanceof ArtifactNotFoundError) throw err;
        if (err instanceof StoreOperationError || sftpCode(err) !== undefined) {
          throw new Error(`${what} on ${this.describe()} failed: ${(err as Error).message}`, { cause: err });
        }
        // No SFTP status: the connection broke (or was closed under us). Reconnect next time.
        this.drop(session);
        if (!idempotent || attempt > 0 || this.closed) {
          throw new Error(`${what} on ${this.describe()} failed, SFTP connection lost: ${(err as Error).message}`, { cause: err });
        }
      }
    }
  }

  // ------------------------------------------------------------------ helpers

  private async statRemote(sftp: SFTPWrapper, path: string): Promise<Stats | undefined> {
    try {
      return await call<Stats>((cb) => sftp.stat(path, cb));
    } catch (err) {
      if (isNoSuchFile(err)) return undefined;
      throw err;
    }
  }

  /** mkdir -p: creates dir and missing parents (0700); an existing folder is fine. */
  private async mkdirs(sftp: SFTPWrapper, dir: string): Promise<void> {
    const st = await this.statRemote(sftp, dir);
    if (st) {
      if (!st.isDirectory()) throw new StoreOperationError(`${dir} exists on ${this.target} and is not a folder`);
      return;
    }
    const parent = posix.dirname(dir);
    if (parent !== dir) await this.mkdirs(sftp, parent);
    try {
      await call<void>((cb) => sftp.mkdir(dir, { mode: 0o700 }, (err) => cb(err, undefined)));
    } catch (err) {
      // Created by someone else in the meantime?
      const again = await this.statRemote(sftp, dir);
      if (!again?.isDirectory()) throw new StoreOperationError(`cannot create folder ${dir} on ${this.target}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async renameOver(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
    try {
      await call<void>((cb) => sftp.ext_openssh_rename(from, to, (err) => cb(err, undefined)));
      return;
    } catch (err) {
      // ssh2 throws this synchronously when the server did not announce the extension.
      if (!/does not support this extended request/.test((err as Error).message)) throw err;
    }
    // Plain SFTP rename fails when the target exists: remove it first (not atomic for a
    // replacement, but a crash in between leaves the complete partial file, never a torn one).
    await call<void>((cb) => sftp.unlink(to, (err) => cb(err, undefined))).catch((err) => {
      if (!isNoSuchFile(err)) throw err;
    });
    await call<void>((cb) => sftp.rename(from, to, (err) => cb(err, undefined)));
  }

  // ------------------------------------------------------------------ BackupStore

  async put(path: string, data: NodeJS.ReadableStream): Promise<{ size: number; sha256: string }> {
    const target = this.remote(validateArtifactPath(path));
    const temp = partialPath(target);
    return this.run(
      `upload of ${path}`,
      async (sftp) => {
        await this.mkdirs(sftp, posix.dirname(target));
        const digest = new DigestStream();
        let inputError: Error | undefined;
        data.once('error', (err: Error) => {
          inputError = err;
        });
        const out = sftp.createWriteStream(temp, { flags: 'wx', mode: 0o600 });
        const closed = once(out, 'close');
        closed.catch(() => undefined);
        // Errors after the pipeline settled (closing the handle on a dead connection) are moot.
        out.on('error', () => undefined);
        try {
          await pipeline(data, digest, out);
          await closed;
          await this.renameOver(sftp, temp, target);
        } catch (err) {
          out.destroy();
          await call<void>((cb) => sftp.unlink(temp, (e) => cb(e, undefined))).catch(() => undefined);
          if (inputError) throw new StoreOperationError(`reading the input failed: ${inputError.message}`, { cause: inputError });
          throw err;
        }
        return { size: digest.size, sha256: digest.sha256 };
      },
      false,
    );
  }

  async get(path: string): Promise<NodeJS.ReadableStream> {
    const file = this.remote(validateArtifactPath(path));
    return this.run(
      `download of ${path}`,
      async (sftp) => {
        const st = await this.statRemote(sftp, file);
        if (!st) throw new ArtifactNotFoundError(path, this.describe());
        if (!st.isFile()) throw new StoreOperationError(`${path} is not a regular file`);
        const handle = await call<Buffer>((cb) => sftp.open(file, 'r', cb));
        return new SftpFileReader(sftp, handle, `${path} in ${this.describe()}`);
      },
      true,
    );
  }

  async stat(path: string): Promise<{ size: number } | undefined> {
    const file = this.remote(validateArtifactPath(path));
    return this.run(
      `stat of ${path}`,
      async (sftp) => {
        const st = await this.statRemote(sftp, file);
        if (!st) return undefined;
        if (!st.isFile()) throw new StoreOperationError(`${path} is not a regular file`);
        return { size: st.size };
      },
      true,
    );
  }

  async list(prefix: string): Promise<StoredArtifact[]> {
    const { dir } = validateListPrefix(prefix);
    return this.run(
      `listing of ${prefix || '(all)'}`,
      async (sftp) => {
        const out: StoredArtifact[] = [];
        const walk = async (rel: string): Promise<void> => {
          let entries;
          try {
            entries = await call<Array<{ filename: string; attrs: Stats }>>((cb) => sftp.readdir(rel ? this.remote(rel) : this.base, cb));
          } catch (err) {
            if (isNoSuchFile(err)) return;
            throw err;
          }
          for (const { filename, attrs } of entries) {
            if (filename === '.' || filename === '..') continue;
            const path = rel ? `${rel}/${filename}` : filename;
            if (attrs.isDirectory()) {
              if (path.startsWith(prefix) || prefix.startsWith(`${path}/`)) await walk(path);
            } else if (attrs.isFile() && path.startsWith(prefix) && !isPartialPath(path)) {
              out.push({ path, size: attrs.size, modified: new Date(attrs.mtime * 1000) });
            }
          }
        };
        await walk(dir);
        return sortArtifacts(out);
      },
      true,
    );
  }

  async remove(path: string): Promise<void> {
    const file = this.remote(validateArtifactPath(path));
    await this.run(
      `removal of ${path}`,
      async (sftp) => {
        await call<void>((cb) => sftp.unlink(file, (err) => cb(err, undefined))).catch((err) => {
          if (!isNoSuchFile(err)) throw err;
        });
      },
      true,
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const session = this.session ?? (await this.connecting?.catch(() => undefined));
    this.session = undefined;
    if (!session) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        session.client.destroy();
        resolve();
      }, 2000);
      session.client.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      session.client.end();
    });
  }
}
