// Reads the objects of `-f FILE|DIR|-` (with `-R` for subdirectories): multi-document YAML or
// JSON, `kind: List` expanded, empty documents skipped, and every problem reported with the file
// and document it is in, so a broken manifest never half-applies silently.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../src/api/types.js';
import { CliError } from './errors.js';

export interface Manifest {
  /** The file the object came from (`STDIN` for `-`). */
  source: string;
  /** 1-based position of the document in its file. */
  document: number;
  object: KubeObject;
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

/** The files behind one `-f` argument, directories expanded in name order. */
function expand(path: string, recursive: boolean): string[] {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new CliError(`the path "${path}" does not exist`);
  }
  if (!stat.isDirectory()) return [path];
  const files: string[] = [];
  for (const entry of readdirSync(path, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = join(path, entry.name);
    if (entry.isDirectory()) {
      if (recursive) files.push(...expand(full, true));
    } else if (MANIFEST_FILE.test(entry.name)) files.push(full);
  }
  return files;
}

/** Parses one file's text into objects; `source` names it in errors. */
export function parseManifests(text: string, source: string): Manifest[] {
  const out: Manifest[] = [];
  for (const [i, count, value] of documents(text, source)) {
    const where = count > 1 ? `${source} (document ${i + 1})` : source;
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) throw new CliError(`error parsing ${where}: expected an object with apiVersion and kind, got ${Array.isArray(value) ? 'a list' : typeof value}`);
    const obj = value as KubeObject;
    const items = obj.kind === 'List' || (typeof obj.kind === 'string' && obj.kind.endsWith('List') && Array.isArray(obj.items)) ? (obj.items as unknown[]) : [obj];
    for (const item of items) {
      const problems: string[] = [];
      if (typeof item !== 'object' || item === null || Array.isArray(item)) problems.push('not an object');
      else {
        const o = item as KubeObject;
        if (typeof o.apiVersion !== 'string' || !o.apiVersion) problems.push('apiVersion not set');
        if (typeof o.kind !== 'string' || !o.kind) problems.push('kind not set');
        if (o.metadata !== undefined && (typeof o.metadata !== 'object' || o.metadata === null || Array.isArray(o.metadata))) problems.push('metadata must be an object');
        else if (!o.metadata?.name && !o.metadata?.generateName) problems.push('metadata.name not set');
      }
      if (problems.length) throw new CliError(`error validating ${where}: ${problems.join(', ')}`);
      out.push({ source, document: i + 1, object: item as KubeObject });
    }
  }
  return out;
}

/** [index, count, value] of each document; JSON is parsed as JSON for precise error positions. */
function documents(text: string, source: string): [number, number, unknown][] {
  if (/\.json$/i.test(source) || /^\s*[{[]/.test(text)) {
    try {
      return [[0, 1, JSON.parse(text)]];
    } catch (err) {
      if (/\.json$/i.test(source)) throw new CliError(`error parsing ${source}: ${(err as Error).message}`);
      // Not JSON after all (a YAML flow mapping, or several documents): parse it as YAML below.
    }
  }
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  return list.map((doc, i) => {
    const where = list.length > 1 ? `${source} (document ${i + 1})` : source;
    if (doc.errors.length) throw new CliError(`error parsing ${where}: ${doc.errors[0]!.message.split('\n')[0]}`);
    return [i, list.length, doc.toJS({ maxAliasCount: 100 }) as unknown];
  });
}

/** Reads every `-f` argument in order; `-` reads standard input (once). */
export function readManifests(paths: readonly string[], recursive: boolean, readStdin: () => string): Manifest[] {
  if (paths.length === 0) throw new CliError('must specify one of -f (a file, a directory, or - for standard input)');
  const out: Manifest[] = [];
  for (const path of paths) {
    if (path === '-') {
      out.push(...parseManifests(readStdin(), 'STDIN'));
      continue;
    }
    for (const file of expand(path, recursive)) {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
      }
      out.push(...parseManifests(text, file));
    }
  }
  return out;
}
