// `slipctl get`: lists or fetches objects and prints them as tables built from the CRD's
// printer columns, or as YAML, JSON, names or JSONPath; `-w` keeps printing changes from a
// watch; `--raw PATH` prints a server response as is.

import { ApiRequestError } from '../../src/client/api-client.js';
import { resourcePath, type ApiResource } from '../../src/client/discovery.js';
import type { KubeObject } from '../../src/api/types.js';
import { ALL_NAMESPACES, OUTPUT, SELECTOR, type Command, type CommandContext } from '../command.js';
import { CliError, formatError } from '../errors.js';
import { parseResourceArgs, type ResourceArgs } from '../object-args.js';
import {
  columnWidths,
  compileColumns,
  formatRows,
  jsonPathPrinter,
  listOf,
  objectRef,
  tableHeader,
  tableRow,
  toJson,
  toYaml,
  type CompiledColumn,
  type TableOptions,
} from '../printers.js';
import { typeName, type Session } from '../session.js';

type Format = { kind: 'table'; wide: boolean } | { kind: 'yaml' } | { kind: 'json' } | { kind: 'name' } | { kind: 'jsonpath'; print: (data: unknown) => string };

export function parseFormat(output: string | undefined): Format {
  if (output === undefined || output === '') return { kind: 'table', wide: false };
  if (output === 'wide') return { kind: 'table', wide: true };
  if (output === 'yaml' || output === 'json' || output === 'name') return { kind: output };
  const m = /^jsonpath=(.*)$/s.exec(output);
  if (m) return { kind: 'jsonpath', print: jsonPathPrinter(m[1]!) };
  throw new CliError(`unable to match a printer suitable for the output format "${output}", allowed formats are: json, jsonpath=TEMPLATE, name, wide, yaml`);
}

/** The objects of one kind to print, with the query that found them (for `-w`). */
interface Group {
  resource: ApiResource;
  items: KubeObject[];
  /** Set for listed kinds: what to watch from. */
  listed?: { collection: string; resourceVersion: string };
}

interface Query {
  labelSelector?: string;
  fieldSelector?: string;
  allNamespaces: boolean;
}

const scopeNamespace = (session: Session, r: ApiResource, q: Query): string | undefined => (r.namespaced && !q.allNamespaces ? session.namespace : undefined);

async function fetchGroups(ctx: CommandContext, args: ResourceArgs, q: Query): Promise<{ groups: Group[]; failures: number }> {
  const { session } = ctx;
  const groups: Group[] = [];
  let failures = 0;
  if (args.refs.length) {
    for (const ref of args.refs) {
      try {
        const obj = await session.client.get(resourcePath(ref.resource, ref.resource.namespaced ? session.namespace : undefined, ref.name));
        const last = groups[groups.length - 1];
        if (last && last.resource === ref.resource) last.items.push(obj);
        else groups.push({ resource: ref.resource, items: [obj] });
      } catch (err) {
        failures++;
        ctx.stderr(`${formatError(err)}\n`);
      }
    }
    return { groups, failures };
  }
  for (const r of args.kinds) {
    const collection = resourcePath(r, scopeNamespace(session, r, q));
    const list = await session.client.list(collection, { labelSelector: q.labelSelector, fieldSelector: q.fieldSelector });
    groups.push({ resource: r, items: list.items, listed: { collection, resourceVersion: list.metadata.resourceVersion ?? '' } });
  }
  return { groups, failures };
}

interface Printer {
  /** Prints what was fetched (kubectl: a List for yaml/json unless one object was named). */
  initial(groups: readonly Group[]): void;
  /** Prints one watched change. */
  change(obj: KubeObject): void;
}

interface PrintOptions {
  watch: boolean;
  showLabels: boolean;
  noHeaders: boolean;
}

async function makePrinter(ctx: CommandContext, format: Format, args: ResourceArgs, q: Query, opts: PrintOptions): Promise<Printer> {
  if (format.kind === 'table') return tablePrinter(ctx, format.wide, args, q, opts);
  if (format.kind === 'name') {
    return {
      initial: (groups) => groups.forEach((g) => g.items.forEach((o) => ctx.stdout(`${objectRef(g.resource, o)}\n`))),
      change: (obj) => ctx.stdout(`${objectRef(args.kinds[0]!, obj)}\n`),
    };
  }
  const render = format.kind === 'yaml' ? toYaml : format.kind === 'json' ? toJson : format.print;
  const change = (obj: KubeObject) => ctx.stdout(format.kind === 'yaml' ? `---\n${render(obj)}` : render(obj));
  return {
    initial(groups) {
      const all = groups.flatMap((g) => g.items);
      if (opts.watch) all.forEach(change);
      else if (args.refs.length === 1 && all.length === 1) ctx.stdout(render(all[0]));
      else if (all.length > 0 || args.refs.length === 0) ctx.stdout(render(listOf(all)));
    },
    change,
  };
}

/** Tables, one per kind (names prefixed with the kind when there are several); -w rows keep the widths. */
async function tablePrinter(ctx: CommandContext, wide: boolean, args: ResourceArgs, q: Query, opts: PrintOptions): Promise<Printer> {
  const now = ctx.now();
  const several = args.kinds.length > 1;
  const tables = new Map<string, { columns: CompiledColumn[]; options: TableOptions }>();
  const key = (r: ApiResource) => `${r.group}/${r.plural}`;
  await Promise.all(
    args.kinds.map(async (r) => {
      const columns = compileColumns(await ctx.session.printerColumns(r), wide);
      const options = { wide, now, showLabels: opts.showLabels, withNamespace: q.allNamespaces && r.namespaced, ...(several ? { kindPrefix: typeName(r) } : {}) };
      tables.set(key(r), { columns, options });
    }),
  );
  let widths: number[] = [];
  let headerDone = opts.noHeaders;
  return {
    initial(groups) {
      let first = true;
      for (const g of groups) {
        if (g.items.length === 0) continue;
        const { columns, options } = tables.get(key(g.resource))!;
        const rows = [...(opts.noHeaders ? [] : [tableHeader(columns, options)]), ...g.items.map((o) => tableRow(o, columns, options))];
        widths = columnWidths(rows);
        ctx.stdout(`${first ? '' : '\n'}${formatRows(rows, widths)}`);
        first = false;
        headerDone = true;
      }
      if (first && !opts.watch && args.refs.length === 0) ctx.stderr(noneFound(ctx.session, args, q));
    },
    change(obj) {
      const { columns, options } = tables.get(key(args.kinds[0]!))!;
      const current = { ...options, now: ctx.now() };
      const row = tableRow(obj, columns, current);
      const rows = headerDone ? [row] : [tableHeader(columns, current), row];
      if (!headerDone) widths = columnWidths(rows);
      headerDone = true;
      ctx.stdout(formatRows(rows, widths.map((w, i) => Math.max(w, (row[i]?.length ?? 0) + 3))));
    },
  };
}

function noneFound(session: Session, args: ResourceArgs, q: Query): string {
  const namespaced = args.kinds.some((k) => k.namespaced);
  return namespaced && !q.allNamespaces ? `No resources found in ${session.namespace} namespace.\n` : 'No resources found\n';
}

/** Follows a watch of one collection, printing each change, until interrupted. */
async function follow(ctx: CommandContext, group: Group, q: Query, print: (obj: KubeObject) => void): Promise<void> {
  const { client } = ctx.session;
  const listed = group.listed!;
  let resourceVersion = listed.resourceVersion;
  for (;;) {
    let expired = false;
    try {
      await client.watch(listed.collection, { labelSelector: q.labelSelector, fieldSelector: q.fieldSelector, resourceVersion, allowWatchBookmarks: true }, (event) => {
        if (event.type === 'ERROR') {
          expired = true;
          return false;
        }
        resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion;
        if (event.type !== 'BOOKMARK') print(event.object);
        return true;
      });
    } catch (err) {
      if (!(err instanceof ApiRequestError && err.code === 410)) throw err;
      expired = true;
    }
    if (expired) {
      // Missed history: start again from a fresh list, printing nothing twice that did not change.
      const list = await client.list(listed.collection, { labelSelector: q.labelSelector, fieldSelector: q.fieldSelector });
      resourceVersion = list.metadata.resourceVersion ?? '';
    } else await new Promise((r) => setTimeout(r, 200));
  }
}

export const command: Command = {
  name: 'get',
  summary: 'Show objects as a table, YAML, JSON, names or JSONPath; -w follows changes.',
  usage: 'get KIND[,KIND...] [NAME...] | KIND/NAME... [-n NS | -A] [-l SELECTOR] [--field-selector S] [-o FORMAT] [-w]',
  description: 'KIND is a plural, singular, kind or short name (svc, services, service, Service). Tables use the CRD\'s\nadditionalPrinterColumns; -o wide adds the columns with priority > 0.',
  examples: [
    'slipctl get svc -n shop-prod',
    'slipctl get services,domains -A -o wide',
    'slipctl get svc web -o jsonpath=\'{.status.conditions[?(@.type=="Available")].status}\'',
    'slipctl get --raw /apis/slipway.dev/v1alpha1',
  ],
  flags: [
    ALL_NAMESPACES,
    SELECTOR,
    { name: 'field-selector', type: 'string', value: 'SELECTOR', description: 'Field selector, e.g. metadata.name=web (plus the CRD\'s selectableFields).' },
    OUTPUT('wide, yaml, json, name, jsonpath=TEMPLATE (default: a table)'),
    { name: 'watch', short: 'w', type: 'bool', description: 'After printing, keep printing changes until interrupted.' },
    { name: 'show-labels', type: 'bool', description: 'Add a LABELS column.' },
    { name: 'no-headers', type: 'bool', description: 'Print tables without the header line.' },
    { name: 'raw', type: 'string', value: 'PATH', description: 'GET this server path and print the response body as is.' },
  ],
  async run(ctx, flags) {
    const { session } = ctx;
    const raw = flags.string('raw');
    if (raw !== undefined) {
      if (flags.positional.length) throw new CliError('arguments may not be passed when --raw is specified');
      if (!raw.startsWith('/')) throw new CliError(`--raw takes a server path starting with "/" (got ${JSON.stringify(raw)})`);
      const res = await session.client.request('GET', raw, { headers: { accept: '*/*' } });
      const text = typeof res.body === 'string' ? res.body : JSON.stringify(res.body);
      ctx.stdout(text.endsWith('\n') ? text : `${text}\n`);
      return 0;
    }
    const format = parseFormat(flags.string('output'));
    const args = await parseResourceArgs(session, flags.positional);
    if (args.kinds.length === 0) throw new CliError('you must specify the type of resource to get, e.g. `slipctl get services` (see `slipctl api-resources`)');
    const labelSelector = flags.string('selector');
    const fieldSelector = flags.string('field-selector');
    if (args.refs.length && (labelSelector || fieldSelector)) throw new CliError('names cannot be combined with -l or --field-selector');
    const watch = flags.bool('watch');
    if (watch && args.kinds.length > 1) throw new CliError('you may only watch one kind at a time');
    if (watch && args.refs.length > 1) throw new CliError('watch is only supported on one named object or a whole collection');
    const q: Query = { ...(labelSelector ? { labelSelector } : {}), ...(fieldSelector ? { fieldSelector } : {}), allNamespaces: flags.bool('all-namespaces') };

    const { groups, failures } = await fetchGroups(ctx, args, q);
    const printer = await makePrinter(ctx, format, args, q, { watch, showLabels: flags.bool('show-labels'), noHeaders: flags.bool('no-headers') });
    printer.initial(groups);
    if (!watch) return failures ? 1 : 0;
    let group = groups[0] ?? { resource: args.kinds[0]!, items: [] };
    if (args.refs.length === 1) {
      // Watch one object: its collection, narrowed to its name.
      const ref = args.refs[0]!;
      const collection = resourcePath(ref.resource, ref.resource.namespaced ? session.namespace : undefined);
      const list = await session.client.list(collection, { fieldSelector: `metadata.name=${ref.name}` });
      group = { resource: ref.resource, items: list.items, listed: { collection, resourceVersion: list.metadata.resourceVersion ?? '' } };
      q.fieldSelector = `metadata.name=${ref.name}`;
    }
    await follow(ctx, group, q, printer.change);
    return 0;
  },
};
