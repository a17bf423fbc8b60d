// `slipctl help [COMMAND]`: the command list, or one command's usage, flags and examples,
// generated from the same flag specs the parser uses so help never drifts from behaviour.

import { formatFlags } from '../args.js';
import { GLOBAL_FLAGS, type Command } from '../command.js';
import { CliError } from '../errors.js';
import { COMMAND_NAMES, loadAll, loadCommand } from './index.js';

export async function overview(): Promise<string> {
  const commands = await loadAll();
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'slipctl controls Slipway, a Kubernetes-style control plane for small SaaS apps.',
    '',
    'Usage:',
    '  slipctl COMMAND [ARGS] [flags]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}   ${c.summary}`),
    '',
    'Global flags:',
    formatFlags(GLOBAL_FLAGS),
    '',
    'Configuration: ~/.slipway/config (YAML: server, token, namespace), or the file named by SLIPWAY_CONFIG;',
    'SLIPWAY_SERVER or --server override the server. `make up` writes the config.',
    '',
    'Use "slipctl help COMMAND" or "slipctl COMMAND --help" for more about a command.',
    '',
  ].join('\n');
}

export function commandHelp(command: Command): string {
  return [
    command.summary,
    '',
    'Usage:',
    `  slipctl ${command.usage}`,
    ...(command.description ? ['', command.description] : []),
    ...(command.examples?.length ? ['', 'Examples:', ...command.examples.map((e) => `  ${e}`)] : []),
    ...(command.flags.length ? ['', 'Flags:', formatFlags(command.flags)] : []),
    '',
    'Global flags:',
    formatFlags(GLOBAL_FLAGS),
    '',
  ].join('\n');
}

export const command: Command = {
  name: 'help',
  summary: 'Show help for slipctl or one of its commands.',
  usage: 'help [COMMAND]',
  flags: [],
  async run(ctx, flags) {
    const [name, ...extra] = flags.positional;
    if (extra.length) throw new CliError('help takes at most one command name');
    if (!name) {
      ctx.stdout(await overview());
      return 0;
    }
    const found = await loadCommand(name);
    if (!found) throw new CliError(`unknown command "${name}" for "slipctl"; commands: ${COMMAND_NAMES.join(', ')}`);
    ctx.stdout(commandHelp(found));
    return 0;
  },
};
