// MySQL/MariaDB backup engine: `mariadb-dump` of ONE database without CREATE DATABASE/USE
// (--single-transaction --quick --routines --triggers --skip-lock-tables DBNAME), streamed;
// restore through the `mariadb` client (--binary-mode --sandbox) with a NEW database (created
// here, dropped again on failure) selected, behind DatabaseSwitchGuard, a line-based Transform
// that refuses dumps which switch or create/drop/alter databases (see its comment).
// Credentials go in a 0600 option file in a private temp dir (`--defaults-file`, which also
// keeps ~/.my.cnf and /etc/mysql out of it), deleted afterwards; never on the command line.

import { once } from 'node:events';
import { Transform, type TransformCallback } from 'node:stream';
import { join } from 'node:path';
import {
  restoreDestination,
  nonEmpty,
  privateTempDir,
  runTool,
  toolVersion,
  writeSecretFile,
  type BackupEngine,
  type ConnectionTarget,
  type DumpResult,
  type EngineOptions,
  type RestoreTarget,
} from './engine.js';

export interface MysqlEngineOptions extends EngineOptions {
  /** Dump tool (default "mariadb-dump"; "mysqldump" works too). */
  dumpBin?: string;
  /** Client (default "mariadb"). */
  clientBin?: string;
}

/** A quoted identifier. */
export function mysqlIdent(name: string): string {
  if (name.includes('\0')) throw new Error('database name contains a NUL byte');
  return '`' + name.replace(/`/g, '``') + '`';
}

function optionValue(key: string, v: string): string {
  if (/[\r\n\0]/.test(v)) throw new Error(`mysql: the ${key} contains a line break or NUL byte`);
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The [client] option file contents for a connection (TCP only). */
export function clientOptionFile(t: ConnectionTarget): string {
  const lines = ['[client]', `host=${optionValue('host', t.host)}`, `port=${Number(t.port)}`, 'protocol=TCP', `user=${optionValue('user', t.user)}`];
  if (t.password !== undefined) lines.push(`password=${optionValue('password', t.password)}`);
  return lines.join('\n') + '\n';
}

/** Runs `fn` with the path of a 0600 option file for `t`, deleted afterwards. */
async function withOptionFile<T>(t: ConnectionTarget, fn: (path: string) => Promise<T>): Promise<T> {
  const { dir, cleanup } = await privateTempDir('mysql');
  try {
    const path = join(dir, 'client.cnf');
    await writeSecretFile(path, clientOptionFile(t));
    return await fn(path);
  } finally {
    await cleanup();
  }
}

export class DatabaseSwitchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseSwitchError';
  }
}

const enum S {
  Code,
  Single,
  Double,
  Backtick,
  LineComment,
  BlockComment,
}

const FORBIDDEN_FIRST = new Set(['USE', 'CONNECT', 'SOURCE', 'SYSTEM']);
const DB_WORDS = new Set(['DATABASE', 'SCHEMA']);
const DESYNC_MODES = [/NO_BACKSLASH_ESCAPES/i, /ANSI_QUOTES/i];

function isWordByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x24 || c >= 0x80;
}

/**
 * DatabaseSwitchGuard: a pass-through Transform over a SQL dump that forwards input one complete
 * line (or block of complete lines) at a time, and only after inspecting it; on a forbidden line
 * it fails with DatabaseSwitchError and forwards nothing more (the restore then kills the client,
 * so the offending statement is never sent). Data is never rewritten.
 *
 * It lexes SQL the way the mariadb client in --binary-mode does: '…' and "…" strings (backslash
 * escapes, doubled quotes), `…` identifiers, -- and # line comments, /* … *\/ comments, and
 * executable comments /*!NNNNN … *\/ and /*M!NNNNN … *\/ whose contents are treated as code.
 * Statements end at ';' or the current DELIMITER (set by `DELIMITER x` lines). It refuses:
 *  - a statement whose first word is USE, CONNECT, SOURCE or SYSTEM (also inside /*! … *\/);
 *  - CREATE / DROP / ALTER DATABASE|SCHEMA and CREATE OR REPLACE DATABASE|SCHEMA (comments may sit
 *    between the words);
 *  - any client backslash command outside strings/comments (\u, \r, \., \!, \C, \-, …); the one
 *    exception is the exact line `/*M!999999\- enable the sandbox mode *\/` that newer mariadb-dump
 *    writes first (it enables the client's sandbox, which only restricts), which is skipped;
 *  - any line mentioning NO_BACKSLASH_ESCAPES or ANSI_QUOTES, since switching those SQL modes would
 *    make the server quote differently from this lexer.
 * It does NOT stop statements that name other databases explicitly (INSERT INTO other.t …,
 * GRANT … ON other.*, RENAME TABLE … TO other.t) or SQL modes built dynamically; for untrusted
 * artifacts restore as a user whose privileges cover only the target database.
 */
export class DatabaseSwitchGuard extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private state: S = S.Code;
  private escape = false;
  private inExec = false;
  private words: string[] = [];
  private word = '';
  private delimiter = ';';
  private lineNo = 0;

  constructor(private readonly maxLineBytes = 256 << 20) {
    super();
  }

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const nl = buf.lastIndexOf(0x0a);
    if (nl < 0) {
      this.pending.push(buf);
      this.pendingBytes += buf.length;
      if (this.pendingBytes > this.maxLineBytes) return cb(new DatabaseSwitchError(`line ${this.lineNo + 1} is longer than ${this.maxLineBytes} bytes`));
      return cb();
    }
    const block = Buffer.concat([...this.pending, buf.subarray(0, nl + 1)]);
    this.pending = nl + 1 < buf.length ? [buf.subarray(nl + 1)] : [];
    this.pendingBytes = buf.length - nl - 1;
    try {
      this.inspectBlock(block);
    } catch (e) {
      return cb(e as Error);
    }
    cb(null, block);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.pendingBytes) return cb();
    const block = Buffer.concat(this.pending);
    this.pending = [];
    try {
      this.inspectBlock(block);
    } catch (e) {
      return cb(e as Error);
    }
    cb(null, block);
  }

  private inspectBlock(block: Buffer): void {
    let start = 0;
    while (start < block.length) {
      let end = block.indexOf(0x0a, start);
      end = end < 0 ? block.length : end + 1;
      this.lineNo++;
      this.inspectLine(block.subarray(start, end));
      start = end;
    }
  }

  private refuse(what: string): never {
    throw new DatabaseSwitchError(`refusing to restore: line ${this.lineNo} ${what} (a restore must stay in its target database)`);
  }

  private inspectLine(line: Buffer): void {
    const text = line.toString('latin1');
    for (const re of DESYNC_MODES) if (re.test(text)) this.refuse(`sets SQL mode ${re.source}`);
    if (this.state === S.Code && !this.inExec && this.words.length === 0 && this.word === '') {
      const m = /^\s*delimiter\s+(\S+)/i.exec(text);
      if (m) {
        this.delimiter = m[1]!;
        return;
      }
      // Newer mariadb-dump's first line: the client's \- command (enable sandbox mode), which only restricts.
      if (/^\/\*M!999999\\- enable the sandbox mode \*\/\s*$/.test(text)) return;
    }
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      switch (this.state) {
        case S.Single:
        case S.Double: {
          if (this.escape) this.escape = false;
          else if (c === 0x5c) this.escape = true;
          else if (c === (this.state === S.Single ? 0x27 : 0x22)) {
            if (line[i + 1] === c) i++;
            else this.state = S.Code;
          }
          continue;
        }
        case S.Backtick:
          if (c === 0x60) {
            if (line[i + 1] === 0x60) i++;
            else this.state = S.Code;
          }
          continue;
        case S.LineComment:
          if (c === 0x0a) this.state = S.Code;
          continue;
        case S.BlockComment:
          if (c === 0x2a && line[i + 1] === 0x2f) {
            i++;
            this.state = S.Code;
          }
          continue;
        case S.Code:
          break;
      }
      if (isWordByte(c)) {
        this.word += String.fromCharCode(c);
        continue;
      }
      this.endWord();
      if (c === 0x27) this.state = S.Single;
      else if (c === 0x22) this.state = S.Double;
      else if (c === 0x60) this.state = S.Backtick;
      else if (c === 0x23) this.state = S.LineComment;
      else if (c === 0x2d && line[i + 1] === 0x2d && (i + 2 >= line.length || line[i + 2]! <= 0x20)) this.state = S.LineComment;
      else if (c === 0x2f && line[i + 1] === 0x2a) {
        // /*! and /*M! executable comments: their contents run as code.
        let j = i + 2;
        if (line[j] === 0x4d && line[j + 1] === 0x21) j += 2;
        else if (line[j] === 0x21) j += 1;
        else {
          this.state = S.BlockComment;
          i++;
          continue;
        }
        if (this.inExec) this.refuse('nests executable comments');
        while (j < line.length && line[j]! >= 0x30 && line[j]! <= 0x39) j++;
        this.inExec = true;
        i = j - 1;
      } else if (c === 0x2a && line[i + 1] === 0x2f && this.inExec) {
        this.inExec = false;
        i++;
      } else if (c === 0x5c) {
        const cmd = line[i + 1];
        this.refuse(`contains the client command \\${cmd === undefined ? '' : String.fromCharCode(cmd)}`);
      } else if (c === 0x3b) {
        this.words = [];
      } else if (this.delimiter !== ';' && line.subarray(i, i + this.delimiter.length).toString('latin1') === this.delimiter) {
        this.words = [];
        i += this.delimiter.length - 1;
      }
    }
    this.endWord();
  }

  private endWord(): void {
    if (!this.word) return;
    const w = this.word.toUpperCase();
    this.word = '';
    // A delimiter made of word characters (rare) ends the statement too.
    if (this.delimiter !== ';' && w === this.delimiter.toUpperCase()) {
      this.words = [];
      return;
    }
    if (this.words.length >= 4) return;
    this.words.push(w);
    const [w0, w1, w2, w3] = this.words;
    if (this.words.length === 1 && FORBIDDEN_FIRST.has(w0!)) this.refuse(`starts a ${w0} statement`);
    if (this.words.length === 2 && (w0 === 'CREATE' || w0 === 'DROP' || w0 === 'ALTER') && DB_WORDS.has(w1!)) this.refuse(`contains ${w0} ${w1}`);
    if (this.words.length === 4 && w0 === 'CREATE' && w1 === 'OR' && w2 === 'REPLACE' && DB_WORDS.has(w3!)) this.refuse(`contains CREATE OR REPLACE ${w3}`);
  }
}

export class MysqlEngine implements BackupEngine<ConnectionTarget, RestoreTarget, void> {
  private readonly dumpBin: string;
  private readonly clientBin: string;

  constructor(private readonly options: MysqlEngineOptions = {}) {
    this.dumpBin = options.dumpBin ?? 'mariadb-dump';
    this.clientBin = options.clientBin ?? 'mariadb';
  }

  private database(t: ConnectionTarget): string {
    if (!t.database) throw new Error('mysql: the target has no database to back up');
    return t.database;
  }

  async dump(target: ConnectionTarget, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<DumpResult> {
    const db = this.database(target);
    const version = await toolVersion('mariadb-dump', this.dumpBin);
    const { bytes } = await withOptionFile(target, (cnf) =>
      runTool({
        tool: 'mariadb-dump',
        argv: [
          this.dumpBin,
          `--defaults-file=${cnf}`,
          '--single-transaction',
          '--quick',
          '--routines',
          '--triggers',
          '--skip-lock-tables',
          '--no-tablespaces',
          '--hex-blob',
          '--default-character-set=utf8mb4',
          '--',
          db,
        ],
        stdout: out,
        secrets: [target.password],
        signal,
        onSpawn: this.options.onSpawn,
      }),
    );
    if (bytes === 0) throw new Error(`mariadb-dump of database "${db}" produced no output`);
    return { toolVersion: version, bytes };
  }

  /** Runs SQL through the client (in `database` if given); returns batch output (tab-separated, raw). */
  async sql(server: ConnectionTarget, sql: string, signal?: AbortSignal, database?: string): Promise<string> {
    const { output } = await withOptionFile(server, (cnf) =>
      runTool({
        tool: 'mariadb',
        argv: [this.clientBin, `--defaults-file=${cnf}`, '--batch', '--skip-column-names', '--raw', ...(database ? [`--database=${database}`] : [])],
        stdin: sql,
        secrets: [server.password],
        signal,
        onSpawn: this.options.onSpawn,
      }),
    );
    return output;
  }

  async restore(target: ConnectionTarget, artifact: NodeJS.ReadableStream, into: RestoreTarget, signal?: AbortSignal): Promise<void> {
    const source = this.database(target);
    const { server, overwriting } = restoreDestination('mysql', target, into, source);
    const lit = `'${into.database.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
    let created = false;
    if (!overwriting) {
      const exists = (await this.sql(server, `SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${lit};\n`, signal)).trim();
      if (exists) throw new Error(`mysql: restore target database "${into.database}" already exists (restores go into a NEW database)`);
      await this.sql(server, `CREATE DATABASE ${mysqlIdent(into.database)} CHARACTER SET utf8mb4;\n`, signal);
      created = true;
    }
    try {
      const guarded = new DatabaseSwitchGuard();
      guarded.on('error', () => undefined); // surfaced through runTool reading it
      const input = nonEmpty(artifact, 'mariadb restore');
      // Feed the guard from the artifact; a guard error ends the client's stdin with that error.
      (async () => {
        try {
          for await (const chunk of input) if (!guarded.write(chunk)) await once(guarded, 'drain');
          guarded.end();
        } catch (e) {
          guarded.destroy(e as Error);
        }
      })();
      await withOptionFile(server, (cnf) =>
        runTool({
          tool: 'mariadb',
          argv: [
            this.clientBin,
            `--defaults-file=${cnf}`,
            '--batch',
            '--binary-mode',
            '--sandbox',
            '--default-character-set=utf8mb4',
            `--database=${into.database}`,
          ],
          stdin: guarded,
          secrets: [server.password],
          signal,
          onSpawn: this.options.onSpawn,
        }),
      ).finally(() => guarded.destroy());
    } catch (e) {
      if (created) await this.sql(server, `DROP DATABASE IF EXISTS ${mysqlIdent(into.database)};\n`).catch(() => undefined);
      throw e;
    }
  }
}
