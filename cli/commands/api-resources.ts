// `slipctl api-resources`: the kinds the server serves, from discovery (names, short names,
// group/version, scope, kind; verbs and categories with -o wide).

import { groupVersion } from '../../src/client/discovery.js';
import { OUTPUT, type Command } from '../command.js';
import { CliError } from '../errors.js';
import { formatRows } from '../printers.js';
import { pluralName } from '../session.js';

export const command: Command = {
  name: 'api-resources',
  summary: 'List the kinds the server serves.',
  usage: 'api-resources [-o wide|name] [--no-headers]',
  flags: [OUTPUT('wide, name (default: a table)'), { name: 'no-headers', type: 'bool', description: 'Print the table without the header line.' }],
  async run(ctx, flags) {
    const output = flags.string('output') ?? '';
    if (!['', 'wide', 'name'].includes(output)) throw new CliError(`--output must be wide or name (got "${output}")`);
    const resources = [...(await ctx.session.resources())].sort((a, b) => a.group.localeCompare(b.group) || a.plural.localeCompare(b.plural));
    if (output === 'name') {
      ctx.stdout(resources.map((r) => `${pluralName(r)}\n`).join(''));
      return 0;
    }
    const wide = output === 'wide';
    const header = ['NAME', 'SHORTNAMES', 'APIVERSION', 'NAMESPACED', 'KIND', ...(wide ? ['VERBS', 'CATEGORIES'] : [])];
    const rows = resources.map((r) => [
      r.plural,
      r.shortNames.join(','),
      groupVersion(r),
      String(r.namespaced),
      r.kind,
      ...(wide ? [`[${r.verbs.join(' ')}]`, r.categories.join(',')] : []),
    ]);
    ctx.stdout(formatRows(flags.bool('no-headers') ? rows : [header, ...rows]));
    return 0;
  },
};
