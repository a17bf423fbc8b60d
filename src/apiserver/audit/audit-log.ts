// The audit trail's storage: append-only JSON lines in `<dir>/audit.log`, rotated by size into
// `audit.log.1` (newest) … `audit.log.N` (oldest); files are mode 0600. Appends are queued and
// written in batches by one serialized writer, so a request never waits on another one's write; a
// failed write loses those records, is logged at most once a minute and counted in
// `slipway_audit_write_errors_total`, and never fails a request. Queries scan the files newest
// first and skip unparsable lines (a line torn by a crash).

import { mkdir, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from 'pino';

export type { AuditRecord } from '../../api/audit.js';
import type { AuditRecord } from '../../api/audit.js';

export interface AuditQuery {
  /** Only records at or after this time (ms since the epoch). */
  since?: number;
  /** Only records at or before this time (ms since the epoch). */
  until?: number;
  user?: string;
  /** Plural resource (`secrets`), `resource.group` or `resource/subresource`. */
  resource?: string;
  namespace?: string;
  verb?: string;
  /** At most this many records (newest first); default 500. */
  limit?: number;
}

export interface AuditLogOptions {
  dir: string;
  /** Rotate once the current file would grow past this size. Default 10 MiB. */
  maxBytes?: number;
  /** Rotated files kept (`audit.log.1` … `audit.log.N`). Default 10. */
  maxFiles?: number;
  /** Records waiting to be written beyond which new ones are dropped (and counted). Default 10,000. */
  maxPending?: number;
  /** The API server's metrics registry, for `slipway_audit_write_errors_total`. */
  registry?: Registry;
  log?: Logger;
}

export const AUDIT_FILE = 'audit.log';
export const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_MAX_FILES = 10;
export const DEFAULT_QUERY_LIMIT = 500;
const ERROR_LOG_INTERVAL_MS = 60_000;

interface Pending {
  line: string;
  done: () => void;
}

export class AuditLog {
  readonly dir: string;
  private readonly path: string;
  private readonly maxBytes: number;
  private readonly maxFiles: number;
  private readonly maxPending: number;
  private readonly log: Logger | undefined;
  private readonly writeErrors: Counter | undefined;
  private handle: FileHandle | null = null;
  private size = 0;
  private pending: Pending[] = [];
  private drainScheduled = false;
  /** Every file operation runs on this chain, one at a time. */
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private lastErrorLog = 0;
  private unreported = 0;

  constructor(options: AuditLogOptions) {
    this.dir = options.dir;
    this.path = join(options.dir, AUDIT_FILE);
    this.maxBytes = Math.max(1, options.maxBytes ?? DEFAULT_MAX_BYTES);
    this.maxFiles = Math.max(0, options.maxFiles ?? DEFAULT_MAX_FILES);
    this.maxPending = options.maxPending ?? 10_000;
    this.log = options.log;
    if (options.registry) {
      const existing = options.registry.getSingleMetric('slipway_audit_write_errors_total');
      this.writeErrors =
        (existing as Counter | undefined) ??
        new Counter({
          name: 'slipway_audit_write_errors_total',
          help: 'Audit records that could not be written (and are lost).',
          registers: [options.registry],
        });
    }
  }

  /** Queues a record; resolves once it is written or known lost. Never rejects. */
  append(record: AuditRecord): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.pending.length >= this.maxPending) {
      this.failed(1, new Error(`more than ${this.maxPending} audit records are waiting to be written`));
      return Promise.resolve();
    }
    let line: string;
    try {
      line = `${JSON.stringify(record)}\n`;
    } catch (err) {
      this.failed(1, err);
      return Promise.resolve();
    }
    return new Promise<void>((done) => {
      this.pending.push({ line, done });
      if (!this.drainScheduled) {
        this.drainScheduled = true;
        void this.serialize(() => this.drain());
      }
    });
  }

  /** Resolves once every record appended so far is written (or known lost). */
  flush(): Promise<void> {
    return this.serialize(async () => {}).catch(() => {});
  }

  /** Records matching `query`, newest first. Sees every record appended before the call. */
  async query(query: AuditQuery = {}): Promise<AuditRecord[]> {
    const limit = query.limit ?? DEFAULT_QUERY_LIMIT;
    // Open every file in one step of the chain: a rotation cannot shift them while they are read.
    const files = await this.serialize(() => this.openForReading());
    const found: AuditRecord[] = [];
    try {
      for (const file of files) {
        if (found.length >= limit) break;
        const text = await file.readFile({ encoding: 'utf8' });
        const lines = text.split('\n');
        let oldest = Infinity;
        for (let i = lines.length - 1; i >= 0 && found.length < limit; i--) {
          const line = lines[i]!;
          if (!line) continue;
          let record: AuditRecord;
          try {
            record = JSON.parse(line) as AuditRecord;
          } catch {
            continue; // a torn or damaged line
          }
          if (!record || typeof record !== 'object') continue;
          const time = Date.parse(record.time);
          if (!Number.isNaN(time)) oldest = Math.min(oldest, time);
          if (matches(record, time, query)) found.push(record);
        }
        // Older files only hold older records: stop once this one reaches back past `since`.
        if (query.since !== undefined && oldest < query.since) break;
      }
    } finally {
      await Promise.all(files.map((f) => f.close().catch(() => {})));
    }
    return found;
  }

  /** Writes what is queued and closes the file; later appends are ignored. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    await this.serialize(async () => {
      await this.handle?.close().catch(() => {});
      this.handle = null;
    }).catch(() => {});
  }

  private serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.chain.then(task, task);
    this.chain = run.catch(() => {});
    return run;
  }

  private async drain(): Promise<void> {
    this.drainScheduled = false;
    const batch = this.pending;
    this.pending = [];
    let i = 0;
    try {
      while (i < batch.length) {
        const handle = await this.current();
        let chunk = '';
        let bytes = 0;
        let j = i;
        for (; j < batch.length; j++) {
          const n = Buffer.byteLength(batch[j]!.line);
          // A record larger than maxBytes still goes into a file of its own.
          if (this.size + bytes + n > this.maxBytes && this.size + bytes > 0) break;
          chunk += batch[j]!.line;
          bytes += n;
        }
        if (j === i) {
          await this.rotate();
          continue;
        }
        await handle.appendFile(chunk, 'utf8');
        this.size += bytes;
        for (; i < j; i++) batch[i]!.done();
      }
    } catch (err) {
      this.failed(batch.length - i, err);
      for (; i < batch.length; i++) batch[i]!.done();
      // Start again from a fresh open next time (the directory may come back, the disk may clear).
      await this.handle?.close().catch(() => {});
      this.handle = null;
    }
  }

  /** The open current file (created 0600, and its directory 0700, when missing). */
  private async current(): Promise<FileHandle> {
    if (this.handle) return this.handle;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const handle = await open(this.path, 'a+', 0o600);
    try {
      await handle.chmod(0o600);
      let size = (await handle.stat()).size;
      if (size > 0) {
        // A crash may have torn the last line: end it, so the next record starts on a line of its own.
        const last = Buffer.alloc(1);
        await handle.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) {
          await handle.appendFile('\n');
          size++;
        }
      }
      this.size = size;
    } catch (err) {
      await handle.close().catch(() => {});
      throw err;
    }
    this.handle = handle;
    return handle;
  }

  /** audit.log → audit.log.1 → … → audit.log.N; the oldest beyond N is overwritten. */
  private async rotate(): Promise<void> {
    await this.handle?.close().catch(() => {});
    this.handle = null;
    if (this.maxFiles === 0) {
      await unlink(this.path).catch(ignoreMissing);
    } else {
      for (let k = this.maxFiles - 1; k >= 1; k--) await rename(`${this.path}.${k}`, `${this.path}.${k + 1}`).catch(ignoreMissing);
      await rename(this.path, `${this.path}.1`).catch(ignoreMissing);
    }
    this.size = 0;
  }

  private async openForReading(): Promise<FileHandle[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const rotated = names
      .map((n) => /^audit\.log\.(\d+)$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b)
      .map((k) => `${this.path}.${k}`);
    const paths = [...(names.includes(AUDIT_FILE) ? [this.path] : []), ...rotated];
    const handles: FileHandle[] = [];
    try {
      for (const p of paths) {
        try {
          handles.push(await open(p, 'r'));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
    } catch (err) {
      await Promise.all(handles.map((h) => h.close().catch(() => {})));
      throw err;
    }
    return handles;
  }

  private failed(count: number, err: unknown): void {
    if (count <= 0) return;
    this.writeErrors?.inc(count);
    this.unreported += count;
    const now = Date.now();
    if (now - this.lastErrorLog >= ERROR_LOG_INTERVAL_MS) {
      this.lastErrorLog = now;
      this.log?.error({ dir: this.dir, lost: this.unreported, err: err instanceof Error ? err.message : String(err) }, 'cannot write audit records');
      this.unreported = 0;
    }
  }
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

function matches(r: AuditRecord, time: number, q: AuditQuery): boolean {
  if (q.since !== undefined && !(time >= q.since)) return false;
  if (q.until !== undefined && !(time <= q.until)) return false;
  if (q.user !== undefined && r.user !== q.user) return false;
  if (q.namespace !== undefined && r.namespace !== q.namespace) return false;
  if (q.verb !== undefined && r.verb !== q.verb) return false;
  if (q.resource !== undefined) {
    const names = [r.resource, r.group && `${r.resource}.${r.group}`, r.subresource && `${r.resource}/${r.subresource}`];
    if (!r.resource || !names.includes(q.resource)) return false;
  }
  return true;
}
