// Output formats shared by the commands: kubectl-style tables from CRD printer columns (with
// ages like `45s`, `12m`, `3h`, `5d`), YAML, JSON, `-o name` and `-o jsonpath=`. Pure functions
// from objects to text, so the exact output is cheap to test.

import { stringify } from 'yaml';
import { evaluate, parseJsonPath, parseTemplate, renderTemplate, JsonPathError } from '../src/api/jsonpath.js';
import type { ApiResource } from '../src/client/discovery.js';
import type { KubeObject } from '../src/api/types.js';
import { CliError } from './errors.js';
import type { PrinterColumn } from '../src/api/types.js';
import { typeName } from './session.js';

/** kubectl's `duration.HumanDuration`: `45s`, `2m5s`, `12m`, `3h20m`, `3h`, `5d3h`, `12d`, `2y30d`. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(seconds / 3600);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.floor(hours / 24) % 365;
    return dy === 0 ? `${Math.floor(hours / 24 / 365)}y` : `${Math.floor(hours / 24 / 365)}y${dy}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

/** The age of a timestamp at `now`, or `<unknown>` when it is not a date. */
export function age(timestamp: unknown, now: number): string {
  const t = typeof timestamp === 'string' ? Date.parse(timestamp) : NaN;
  return Number.isNaN(t) ? '<unknown>' : humanDuration(now - t);
}

export const toJson = (value: unknown): string => `${JSON.stringify(value, null, 4)}\n`;

/** YAML the way kubectl prints it: block style, sequences not indented, long strings never folded. */
export const toYaml = (value: unknown): string => stringify(value, { indentSeq: false, lineWidth: 0, minContentWidth: 0, aliasDuplicateObjects: false });

/** `service.slipway.dev/web`, the `-o name` form. */
export const objectRef = (r: ApiResource, obj: KubeObject): string => `${typeName(r)}/${obj.metadata.name}`;

export const listOf = (items: KubeObject[]): Record<string, unknown> => ({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items });

/** Compiles `-o jsonpath=TEMPLATE` (kubectl accepts both `{.a}` templates and bare `.a`). */
export function jsonPathPrinter(template: string): (data: unknown) => string {
  try {
    const parts = parseTemplate(template.includes('{') ? template : `{${template}}`);
    return (data) => renderTemplate(parts, data);
  } catch (err) {
    if (err instanceof JsonPathError) throw new CliError(`error parsing jsonpath ${template}: ${err.message}`);
    throw err;
  }
}

export interface TableOptions {
  wide: boolean;
  /** Adds NAMESPACE as the first column (`-A`). */
  withNamespace: boolean;
  showLabels: boolean;
  /** Prefix names with their type (`service.slipway.dev/web`), when several kinds are printed. */
  kindPrefix?: string;
  now: number;
}

export interface CompiledColumn {
  header: string;
  type: string;
  path: ReturnType<typeof parseJsonPath> | null;
}

/** The columns a table shows: printer columns with priority 0, plus the rest in `-o wide`. */
export function compileColumns(columns: readonly PrinterColumn[], wide: boolean): CompiledColumn[] {
  return columns
    .filter((c) => wide || !c.priority)
    .map((c) => {
      let path: CompiledColumn['path'] = null;
      try {
        path = parseJsonPath(c.jsonPath);
      } catch {
        path = null; // a column the server accepted but we cannot evaluate prints as <none>
      }
      return { header: c.name.toUpperCase(), type: c.type, path };
    });
}

function cell(obj: KubeObject, column: CompiledColumn, now: number): string {
  const values = column.path ? evaluate(column.path, obj).filter((v) => v !== undefined && v !== null) : [];
  if (values.length === 0) return '<none>';
  if (column.type === 'date') return values.map((v) => age(v, now)).join(',');
  return values
    .map((v) => (Array.isArray(v) && v.every((x) => typeof x !== 'object') ? v.join(',') : typeof v === 'object' ? JSON.stringify(v) : String(v)))
    .join(',');
}

export const formatLabels = (labels: Record<string, string> | undefined): string => {
  const entries = Object.entries(labels ?? {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(',') : '<none>';
};

export function tableHeader(columns: readonly CompiledColumn[], opts: TableOptions): string[] {
  return [...(opts.withNamespace ? ['NAMESPACE'] : []), 'NAME', ...columns.map((c) => c.header), ...(opts.showLabels ? ['LABELS'] : [])];
}

export function tableRow(obj: KubeObject, columns: readonly CompiledColumn[], opts: TableOptions): string[] {
  return [
    ...(opts.withNamespace ? [obj.metadata.namespace ?? ''] : []),
    `${opts.kindPrefix ? `${opts.kindPrefix}/` : ''}${obj.metadata.name ?? ''}`,
    ...columns.map((c) => cell(obj, c, opts.now)),
    ...(opts.showLabels ? [formatLabels(obj.metadata.labels)] : []),
  ];
}

/** Column widths as kubectl's tabwriter computes them (cell + 3 spaces, at least 6). */
export function columnWidths(rows: readonly string[][]): number[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 6, c.length + 3)));
  return widths;
}

/** Lays out rows; the last column is not padded. */
export function formatRows(rows: readonly string[][], widths: readonly number[] = columnWidths(rows)): string {
  return rows.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? c.length + 3))).join('') + '\n').join('');
}

/** `-o name|yaml|json` for the objects a write command produced (a List when JSON has several). */
export function formatResults(format: string, results: readonly { resource: ApiResource; object: KubeObject }[]): string {
  if (format === 'name') return results.map((r) => `${objectRef(r.resource, r.object)}\n`).join('');
  if (format === 'json') return toJson(results.length === 1 ? results[0]!.object : listOf(results.map((r) => r.object)));
  return results.map((r) => toYaml(r.object)).join('---\n');
}

/** Checks an `-o` value of a write command before anything is written. */
export function checkResultFormat(format: string | undefined): string | undefined {
  if (format === undefined || format === '') return undefined;
  if (!['name', 'yaml', 'json'].includes(format)) throw new CliError(`unable to match a printer suitable for the output format "${format}", allowed formats are: json, name, yaml`);
  return format;
}
