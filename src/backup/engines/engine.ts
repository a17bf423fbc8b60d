// Backup engine contract and the shared plumbing every engine uses: running a dump/restore
// tool with child_process.spawn (argv arrays, never a shell), streaming its stdout/stdin with
// backpressure, capturing a redacted stderr tail for errors, private temp dirs for secrets.
// Credentials never go on a command line: engines pass them via environment or 0600 files.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A database server and credentials (for postgres and mysql `database` is the one to dump). */
export interface ConnectionTarget {
  host: string;
  port: number;
  user: string;
  password?: string;
  database?: string;
}

/** Where a SQL restore goes: always a NEW database (created by the engine) unless overwriteSource. */
export interface RestoreTarget {
  /** Database to create and restore into. */
  database: string;
  /** Another server to restore onto (defaults to the dump target's server and credentials). */
  server?: ConnectionTarget;
  /** Allow restoring over the database the backup was taken from (destructive). */
  overwriteSource?: boolean;
}

export interface DumpResult {
  /** `--version` output of the dump tool, e.g. "pg_dump (PostgreSQL) 15.14". */
  toolVersion: string;
  /** Bytes written to `out`. */
  bytes: number;
}

/**
 * A backup engine. `dump` streams an artifact into `out` (which it does NOT end: the caller
 * owns it) and fails on an empty dump; `restore` reads an artifact into an isolated target.
 */
export interface BackupEngine<Target = ConnectionTarget, Into = RestoreTarget, Restored = void> {
  dump(target: Target, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<DumpResult>;
  restore(target: Target, artifact: NodeJS.ReadableStream, into: Into, signal?: AbortSignal): Promise<Restored>;
}

/** Observes every tool an engine spawns (logging, tests that inspect /proc/<pid>/cmdline). */
export type SpawnObserver = (info: { tool: string; pid: number; argv: string[] }) => void;

export interface EngineOptions {
  onSpawn?: SpawnObserver;
}

/** A tool exited non-zero, was killed, or could not be started. */
export class ToolError extends Error {
  constructor(
    message: string,
    readonly tool: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'ToolError';
  }
}

export interface RunToolOptions {
  tool: string;
  argv: string[];
  env?: Record<string, string | undefined>;
  /** Piped into the tool's stdin (then stdin is ended); stdin is closed immediately if absent. */
  stdin?: NodeJS.ReadableStream | AsyncIterable<Buffer | string> | string;
  /** The tool's stdout is streamed here (not ended). If absent stdout is collected and returned. */
  stdout?: NodeJS.WritableStream;
  /** Strings to scrub from error messages (passwords). */
  secrets?: (string | undefined)[];
  signal?: AbortSignal;
  onSpawn?: SpawnObserver;
  /** Bytes of stdout collected when `stdout` is absent (default 1 MiB). */
  maxCollect?: number;
  cwd?: string;
}

export interface RunToolResult {
  bytes: number;
  output: string;
  stderr: string;
}

/** Removes every secret from text. */
export function redact(text: string, secrets: (string | undefined)[] = []): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}

function lastLines(text: string, n = 8): string {
  return text.trim().split('\n').slice(-n).join('\n').trim();
}

/** Environment for a tool: the parent's minus well-known credential variables, plus `extra`. */
export function toolEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['PGPASSWORD', 'PGPASSFILE', 'PGSERVICEFILE', 'MYSQL_PWD', 'REDISCLI_AUTH', 'PGOPTIONS']) delete env[k];
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/**
 * Runs one tool to completion, streaming stdin/stdout with backpressure. Rejects with a
 * ToolError naming the tool, its exit code (or signal) and the last redacted stderr lines.
 */
export async function runTool(opts: RunToolOptions): Promise<RunToolResult> {
  const { tool, argv, secrets = [] } = opts;
  opts.signal?.throwIfAborted();
  const child = spawn(argv[0]!, argv.slice(1), {
    env: toolEnv(opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: opts.cwd,
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderr = (stderr + d).slice(-16_000);
  });
  const exited = new Promise<{ code: number | null; sig: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, sig) => resolve({ code, sig }));
  });
  exited.catch(() => undefined);
  const onAbort = () => child.kill('SIGKILL');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const spawnErr = await Promise.race([once(child, 'spawn').then(() => null), exited.then(() => null, (e: Error) => e)]);
    if (spawnErr) {
      const msg = (spawnErr as NodeJS.ErrnoException).code === 'ENOENT' ? `${tool} not found (${argv[0]})` : `${tool} could not be started: ${spawnErr.message}`;
      throw new ToolError(msg, tool, null, '');
    }
    if (child.pid !== undefined) opts.onSpawn?.({ tool, pid: child.pid, argv: [...argv] });

    // stdin: a stream failing (e.g. a refusing filter) kills the tool so a partial input is never committed.
    let stdinError: Error | undefined;
    child.stdin.on('error', () => undefined); // EPIPE when the tool exits early: its exit code tells why
    const feeding = (async () => {
      if (opts.stdin === undefined) return child.stdin.end();
      if (typeof opts.stdin === 'string') return child.stdin.end(opts.stdin);
      // Errors writing to the tool (EPIPE: it exited early) are ignored: its exit code and stderr tell why.
      let toolGone = false;
      child.once('close', () => (toolGone = true));
      // One promise for the tool's exit, raced against every wait for 'drain' (a listener per wait would pile up).
      const gone = exited.then(() => false, () => false);
      try {
        for await (const chunk of opts.stdin as AsyncIterable<Buffer | string>) {
          if (toolGone || child.exitCode !== null || child.signalCode !== null || child.stdin.destroyed) return;
          if (!child.stdin.write(chunk)) {
            const drained = await Promise.race([
              once(child.stdin, 'drain').then(() => true, () => false),
              gone,
            ]);
            if (!drained) return;
          }
        }
        child.stdin.end();
      } catch (e) {
        // The input itself failed (unreadable artifact, refusing filter): never let the tool see EOF.
        stdinError = e as Error;
        child.kill('SIGKILL');
      }
    })();

    let bytes = 0;
    const collected: Buffer[] = [];
    const max = opts.maxCollect ?? 1 << 20;
    let outError: Error | undefined;
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (opts.stdout) {
        if (!opts.stdout.write(chunk)) {
          try {
            await once(opts.stdout as NodeJS.EventEmitter, 'drain');
          } catch (e) {
            outError = e as Error;
            child.kill('SIGKILL');
            break;
          }
        }
      } else if (bytes <= max) collected.push(chunk);
    }
    await feeding;
    const { code, sig } = await exited;
    if (opts.signal?.aborted) throw new ToolError(`${tool} aborted`, tool, code, '');
    if (stdinError) throw stdinError;
    if (outError) throw new Error(`${tool}: writing its output failed: ${outError.message}`);
    const err = redact(lastLines(stderr), secrets);
    if (code !== 0) {
      const how = sig ? `was killed by ${sig}` : `exited with code ${code}`;
      throw new ToolError(`${tool} ${how}${err ? `: ${err}` : ''}`, tool, code, err);
    }
    return { bytes, output: Buffer.concat(collected).toString('utf8'), stderr: err };
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** First line of `<tool> --version`. */
export async function toolVersion(tool: string, bin: string): Promise<string> {
  const { output } = await runTool({ tool, argv: [bin, '--version'] });
  return output.trim().split('\n')[0]!.trim();
}

/** A private (0700) temp directory, removed by the returned cleanup. */
export async function privateTempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `slipway-${prefix}-`)); // mkdtemp creates mode 0700
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes a secret file readable only by this user. */
export async function writeSecretFile(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: 0o600, flag: 'wx' });
}

/**
 * Wraps an artifact so that reading it fails with a clear error when it is empty.
 * Data flows through unchanged.
 */
export async function* nonEmpty(artifact: NodeJS.ReadableStream, what: string): AsyncGenerator<Buffer> {
  let bytes = 0;
  for await (const chunk of artifact as AsyncIterable<Buffer | string>) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    bytes += buf.length;
    if (buf.length) yield buf;
  }
  if (bytes === 0) throw new Error(`${what}: the backup artifact is empty`);
}

export function sameServer(a: ConnectionTarget, b: ConnectionTarget): boolean {
  const h = (x: string) => (x === 'localhost' || x === '::1' ? '127.0.0.1' : x);
  return h(a.host) === h(b.host) && a.port === b.port;
}

/** Streams a finished dump file into `out` (respecting backpressure); an empty file is an error. */
export async function streamDumpFile(file: string, out: NodeJS.WritableStream, emptyMessage: string, signal?: AbortSignal): Promise<number> {
  const size = await stat(file).then((s) => s.size, () => 0);
  if (size === 0) throw new Error(emptyMessage);
  let bytes = 0;
  for await (const chunk of createReadStream(file, signal ? { signal } : {}) as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (!out.write(chunk)) await once(out as NodeJS.EventEmitter, 'drain');
  }
  return bytes;
}

/**
 * Where a database restore goes and whether it overwrites its source: a restore names a target
 * database, and writing over the source needs `overwriteSource`.
 */
export function restoreDestination(engine: string, target: ConnectionTarget, into: RestoreTarget, source: string): { server: ConnectionTarget; database: string; overwriting: boolean } {
  const server = into.server ?? target;
  if (!into.database) throw new Error(`${engine}: restore needs a target database name`);
  const overwriting = sameServer(server, target) && into.database === source;
  if (overwriting && !into.overwriteSource) {
    throw new Error(`${engine}: refusing to restore into the source database "${source}" (set overwriteSource to allow it)`);
  }
  return { server, database: into.database, overwriting };
}
