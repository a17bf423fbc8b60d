// `slipctl explain KIND[.field.path] [--recursive]`: documentation of a kind's fields from the
// descriptions in its CRD's openAPIV3Schema (the single source of truth), in kubectl's layout.

import { CliError } from '../errors.js';
import type { Command } from '../command.js';
import { pluralName } from '../session.js';

type Schema = Record<string, any>;

const WIDTH = 80;

/** kubectl's type labels: `<string>`, `<Object>`, `<[]Object>`, `<map[string]string>`. */
export function typeLabel(s: Schema): string {
  if (s['x-kubernetes-int-or-string']) return 'IntOrString';
  switch (s.type) {
    case 'array':
      return `[]${s.items ? typeLabel(s.items) : 'Object'}`;
    case 'object':
      if (s.additionalProperties && typeof s.additionalProperties === 'object' && !s.properties) return `map[string]${typeLabel(s.additionalProperties)}`;
      return 'Object';
    case undefined:
      return 'Object';
    default:
      return String(s.type);
  }
}

/** The object whose `properties` are a field's children (arrays explain their items). */
const container = (s: Schema): Schema => (s.type === 'array' && s.items ? container(s.items) : s);

export function wrap(text: string, indent: number): string[] {
  const out: string[] = [];
  for (const paragraph of text.split('\n')) {
    let line = '';
    for (const word of paragraph.split(/\s+/).filter(Boolean)) {
      if (line && indent + line.length + 1 + word.length > WIDTH) {
        out.push(' '.repeat(indent) + line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    out.push(' '.repeat(indent) + line);
  }
  return out;
}

/** The first sentence of a description's first line: the summary shown in FIELDS lists. */
export function summaryOf(description: string | undefined): string {
  const first = (description ?? '').trim().split('\n')[0] ?? '';
  const m = /^(.+?[.!?])(\s|$)/.exec(first);
  return m ? m[1]! : first;
}

function fieldLines(s: Schema, indent: number, recursive: boolean, depth = 0): string[] {
  const c = container(s);
  const props = (c.properties ?? {}) as Record<string, Schema>;
  const required = new Set<string>(Array.isArray(c.required) ? c.required : []);
  const lines: string[] = [];
  for (const name of Object.keys(props).sort()) {
    const child = props[name]!;
    lines.push(`${' '.repeat(indent)}${name}\t<${typeLabel(child)}>${required.has(name) ? ' -required-' : ''}`);
    if (recursive) {
      if (depth < 32) lines.push(...fieldLines(child, indent + 2, true, depth + 1));
    } else {
      const summary = summaryOf(child.description);
      lines.push(...(summary ? wrap(summary, indent + 2) : [`${' '.repeat(indent + 2)}<no description>`]), '');
    }
  }
  if (!recursive && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export interface ExplainInput {
  group: string;
  kind: string;
  version: string;
  schema: Schema;
  /** Field path below the kind, e.g. ['spec', 'healthCheck']. */
  path: string[];
  recursive: boolean;
}

/** Renders the explanation; throws a CliError naming the path when a field does not exist. */
export function renderExplain(input: ExplainInput): string {
  let node = input.schema;
  let name = '';
  for (let i = 0; i < input.path.length; i++) {
    const field = input.path[i]!;
    const props = container(node).properties as Record<string, Schema> | undefined;
    if (!props || !Object.prototype.hasOwnProperty.call(props, field)) {
      throw new CliError(`field "${input.path.slice(0, i + 1).join('.')}" does not exist in ${input.kind}`);
    }
    node = props[field]!;
    name = field;
  }
  const lines = [`GROUP:      ${input.group}`, `KIND:       ${input.kind}`, `VERSION:    ${input.version}`, ''];
  if (input.path.length) lines.push(`FIELD: ${name} <${typeLabel(node)}>`, '');
  lines.push('DESCRIPTION:', ...(node.description ? wrap(String(node.description), 4) : ['    <empty>']));
  const details: string[] = [];
  if (node.default !== undefined) details.push(`Default: ${JSON.stringify(node.default)}`);
  if (Array.isArray(node.enum)) details.push(`Possible values: ${node.enum.map((v: unknown) => JSON.stringify(v)).join(', ')}`);
  if (details.length) lines.push('', ...details.map((d) => `    ${d}`));
  const fields = fieldLines(node, 2, input.recursive);
  if (fields.length) lines.push('', 'FIELDS:', ...fields);
  return `${lines.join('\n')}\n`;
}

export const command: Command = {
  name: 'explain',
  summary: "Document a kind's fields from its CRD schema.",
  usage: 'explain KIND[.field.path] [--recursive]',
  examples: ['slipctl explain service', 'slipctl explain svc.spec.healthCheck', 'slipctl explain backuppolicy.spec --recursive'],
  flags: [{ name: 'recursive', type: 'bool', description: 'Show the whole tree of nested fields (names and types only).' }],
  async run(ctx, flags) {
    if (flags.positional.length !== 1) throw new CliError('explain takes one argument: KIND[.field.path], e.g. `slipctl explain service.spec.healthCheck`');
    const [kindArg, ...path] = flags.positional[0]!.split('.');
    const resource = await ctx.session.resolve(kindArg!);
    const version = await ctx.session.crdVersion(resource);
    const schema = version?.schema?.openAPIV3Schema as Schema | undefined;
    if (!schema) throw new CliError(`no schema is published for ${pluralName(resource)}: explain needs a CRD with an openAPIV3Schema`);
    if (path.some((p) => p === '')) throw new CliError(`invalid field path ${JSON.stringify(flags.positional[0])}`);
    ctx.stdout(renderExplain({ group: resource.group, kind: resource.kind, version: resource.version, schema, path, recursive: flags.bool('recursive') }));
    return 0;
  },
};
