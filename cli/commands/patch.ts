// `slipctl patch`: sends a JSON merge patch (default) or a JSON patch to one object, or to its
// status subresource with `--subresource=status`. The patch is JSON or YAML, inline or from a file.

import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { resourcePath } from '../../src/client/discovery.js';
import { OUTPUT, type Command } from '../command.js';
import { CliError } from '../errors.js';
import { parseResourceArgs } from '../object-args.js';
import { checkResultFormat, formatResults, objectRef } from '../printers.js';
import { sameObject } from '../three-way-merge.js';

export function parsePatch(text: string, type: 'merge' | 'json'): unknown {
  let value: unknown;
  try {
    value = parse(text);
  } catch (err) {
    throw new CliError(`unable to parse the patch: ${(err as Error).message.split('\n')[0]}`);
  }
  if (type === 'merge' && (typeof value !== 'object' || value === null || Array.isArray(value))) throw new CliError('a merge patch must be an object, e.g. {"spec":{"replicas":3}}');
  if (type === 'json' && !Array.isArray(value)) throw new CliError('a JSON patch must be a list of operations, e.g. [{"op":"replace","path":"/spec/replicas","value":3}]');
  return value;
}

export const command: Command = {
  name: 'patch',
  summary: 'Change fields of one object with a JSON merge patch or a JSON patch.',
  usage: 'patch KIND NAME | KIND/NAME (-p PATCH | --patch-file FILE) [--type merge|json] [--subresource status] [-n NS]',
  examples: [
    'slipctl patch svc web -n shop-prod -p \'{"spec":{"replicas":3}}\'',
    'slipctl patch svc/web --type json -p \'[{"op":"remove","path":"/spec/edge"}]\'',
  ],
  flags: [
    { name: 'patch', short: 'p', type: 'string', value: 'PATCH', description: 'The patch, as JSON or YAML.' },
    { name: 'patch-file', type: 'string', value: 'FILE', description: 'Read the patch from this file.' },
    { name: 'type', type: 'string', value: 'merge|json', default: 'merge', description: 'merge: JSON merge patch (RFC 7386, default); json: JSON patch (RFC 6902).' },
    { name: 'subresource', type: 'string', value: 'status', description: 'Patch the status subresource instead of the object.' },
    { name: 'dry-run', type: 'string', value: 'server|none', description: 'server: validate on the server without storing.' },
    OUTPUT('name, yaml, json (default: a line)'),
  ],
  async run(ctx, flags) {
    const type = flags.string('type')!;
    if (type !== 'merge' && type !== 'json') throw new CliError(`--type must be merge or json (got "${type}"; strategic merge patches are a Kubernetes built-in-types feature)`);
    const inline = flags.string('patch');
    const file = flags.string('patch-file');
    if ((inline === undefined) === (file === undefined)) throw new CliError('give the patch with exactly one of -p PATCH or --patch-file FILE');
    const text = inline ?? readFileSync(file!, 'utf8');
    const patch = parsePatch(text, type);
    const subresource = flags.string('subresource');
    if (subresource !== undefined && subresource !== 'status') throw new CliError(`--subresource must be status (got "${subresource}")`);
    const dryRun = flags.string('dry-run') ?? 'none';
    if (!['server', 'none'].includes(dryRun)) throw new CliError(`invalid --dry-run value "${dryRun}": only "server" and "none" are supported`);
    const format = checkResultFormat(flags.string('output'));
    const { refs } = await parseResourceArgs(ctx.session, flags.positional);
    if (refs.length !== 1) throw new CliError('patch needs exactly one object: KIND NAME or KIND/NAME');
    const ref = refs[0]!;
    const path = resourcePath(ref.resource, ref.resource.namespaced ? ctx.session.namespace : undefined, ref.name, subresource);
    const before = await ctx.session.client.get(resourcePath(ref.resource, ref.resource.namespaced ? ctx.session.namespace : undefined, ref.name));
    const after = await ctx.session.client.patch(path, patch, type, dryRun === 'server' ? { dryRun: 'All' } : undefined);
    if (format) ctx.stdout(formatResults(format, [{ resource: ref.resource, object: after }]));
    else ctx.stdout(`${objectRef(ref.resource, after)} patched${sameObject(before, after) ? ' (no change)' : ''}${dryRun === 'server' ? ' (server dry run)' : ''}\n`);
    return 0;
  },
};
