#!/usr/bin/env node
// slipctl, the kubectl-like CLI of Slipway. This entry only finds the command (global flags may
// come before it), parses flags against the command's specs, runs it and turns any failure into
// kubectl-style messages on stderr with a non-zero exit code. The commands are in commands/.

import { readFileSync } from 'node:fs';
import { Flags, parseArgs, UsageError } from './args.js';
import { GLOBAL_FLAGS, type CommandContext } from './command.js';
import { CliError, formatError } from './errors.js';
import { Session } from './session.js';
import { COMMAND_NAMES, loadCommand } from './commands/index.js';
import { commandHelp, overview } from './commands/help.js';

/** Splits `argv` into the command name and the rest, skipping global flags before the command. */
function findCommand(argv: string[]): { name?: string; rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return { rest: argv };
    if (!arg.startsWith('-') || arg === '-') return { name: arg, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
    const long = arg.startsWith('--') ? arg.slice(2).split('=')[0]! : undefined;
    const spec = long !== undefined ? GLOBAL_FLAGS.find((f) => f.name === long) : GLOBAL_FLAGS.find((f) => f.short === arg[1]);
    if (!spec) throw new UsageError(`unknown flag: ${arg} (global flags before the command are --server, --certificate-authority, -n/--namespace, -h/--help)`);
    const inline = long !== undefined ? arg.includes('=') : arg.length > 2;
    if (spec.type !== 'bool' && !inline) i++;
  }
  return { rest: argv };
}

async function main(argv: string[]): Promise<number> {
  const ctx: Omit<CommandContext, 'session'> = {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    readStdin: () => readFileSync(0, 'utf8'),
    now: () => Date.now(),
  };
  let session: Session | undefined;
  try {
    const { name, rest } = findCommand(argv);
    if (!name) {
      const parsed = new Flags(parseArgs(rest, GLOBAL_FLAGS), GLOBAL_FLAGS);
      if (parsed.positional.length) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positional[0])}`);
      ctx.stdout(await overview());
      return 0;
    }
    const command = await loadCommand(name);
    if (!command) throw new CliError(`unknown command "${name}" for "slipctl"\nRun 'slipctl help' for usage; commands: ${COMMAND_NAMES.join(', ')}`);
    const specs = [...GLOBAL_FLAGS, ...command.flags];
    const flags = new Flags(parseArgs(rest, specs), specs);
    if (flags.bool('help')) {
      ctx.stdout(commandHelp(command));
      return 0;
    }
    const namespaceFlag = flags.string('namespace');
    if (namespaceFlag !== undefined && namespaceFlag === '') throw new UsageError('--namespace must not be empty');
    session = new Session({
      env: process.env,
      ...(flags.string('server') ? { serverFlag: flags.string('server')! } : {}),
      ...(flags.string('certificate-authority') ? { caFlag: flags.string('certificate-authority')! } : {}),
      ...(namespaceFlag ? { namespaceFlag } : {}),
    });
    return await command.run({ ...ctx, session }, flags);
  } catch (err) {
    ctx.stderr(`${formatError(err)}\n`);
    if (err instanceof UsageError) ctx.stderr(`See 'slipctl help' for usage.\n`);
    if (process.env.SLIPWAY_DEBUG === '1' && err instanceof Error && err.stack) ctx.stderr(`${err.stack}\n`);
    return err instanceof CliError ? err.exitCode : 1;
  } finally {
    await session?.close().catch(() => undefined);
  }
}

// `slipctl get -w | head` closes the pipe: that is the reader's choice, not an error to report.
process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 0 : 1));

const code = await main(process.argv.slice(2));
// Exit only after stdout and stderr have drained, so piped output is never cut short.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
