// `slipctl rollout status|history|undo|restart service/NAME`: watch, list, roll back or restart
// the rollouts of a Service. One command with subcommands, like kubectl's; the work of each is in
// rollout-*.ts.

import { parseDuration, type FlagSpec } from '../args.js';
import type { Command } from '../command.js';
import { CliError } from '../errors.js';
import { rolloutHistory } from './rollout-history.js';
import { rolloutStatus } from './rollout-status.js';
import { rolloutUndo } from './rollout-undo.js';
import { intFlag, RESTARTED_AT, serviceName, servicePath } from './service-target.js';

const SUBCOMMANDS = ['status', 'history', 'undo', 'restart'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

/** Flags with the subcommands that take them (no defaults here, so a misplaced flag is noticed). */
const FLAGS: (FlagSpec & { for: Subcommand[] })[] = [
  { name: 'timeout', type: 'string', value: 'DURATION', for: ['status'], description: 'status: how long to wait (e.g. 30s, 5m; 0 waits forever); default 10m.' },
  { name: 'watch', short: 'w', type: 'bool', for: ['status'], description: 'status: wait for the rollout to finish (default true; --watch=false reports once).' },
  { name: 'revision', type: 'string', value: 'N', for: ['history'], description: 'history: print the template of revision N as YAML.' },
  { name: 'to-revision', type: 'string', value: 'N', for: ['undo'], description: 'undo: roll back to revision N (default: the previous release).' },
  { name: 'force', type: 'bool', for: ['undo'], description: 'undo: roll back even to a release whose rollout failed.' },
];

export const command: Command = {
  name: 'rollout',
  summary: 'Follow, list, undo or restart the rollouts of a Service.',
  usage: 'rollout status|history|undo|restart service/NAME [-n NS] [flags]',
  description: [
    'Subcommands:',
    '  status service/NAME [--timeout 10m] [--watch=true]   Print each step of the rollout until it finishes; exit 1 if it failed.',
    '  history service/NAME [--revision N]                  List the releases (the active one marked *), or one template.',
    '  undo service/NAME [--to-revision N] [--force]        Write an earlier release\'s template back into the Service.',
    '  restart service/NAME                                 Roll out the same template again (sets slipway.dev/restartedAt).',
    'service/NAME may also be written svc/NAME or NAME.',
  ].join('\n'),
  examples: [
    'slipctl rollout status svc/web -n shop-prod --timeout 5m',
    'slipctl rollout history service/web',
    'slipctl rollout undo service/web --to-revision 3',
    'slipctl rollout restart web',
  ],
  flags: FLAGS.map(({ for: _for, ...spec }) => spec),
  async run(ctx, flags) {
    const [sub, arg, ...extra] = flags.positional;
    if (!sub) throw new CliError(`rollout needs a subcommand: ${SUBCOMMANDS.join(', ')}`);
    if (!(SUBCOMMANDS as readonly string[]).includes(sub)) throw new CliError(`unknown rollout subcommand "${sub}": expected one of ${SUBCOMMANDS.join(', ')}`);
    const subcommand = sub as Subcommand;
    for (const f of FLAGS) {
      if (flags.string(f.name) !== undefined && !f.for.includes(subcommand)) throw new CliError(`--${f.name} is not a flag of rollout ${subcommand} (it belongs to rollout ${f.for.join(', ')})`);
    }
    if (extra.length) throw new CliError(`rollout ${subcommand} takes one service (got ${JSON.stringify(extra[0])} too)`);
    const name = await serviceName(ctx.session, arg, `rollout ${subcommand}`);
    switch (subcommand) {
      case 'status': {
        const timeout = flags.string('timeout') ?? '10m';
        const watchFlag = flags.string('watch');
        return rolloutStatus(ctx, name, { timeoutMs: parseDuration(timeout, 'timeout'), watch: watchFlag === undefined ? true : flags.bool('watch') });
      }
      case 'history':
        return rolloutHistory(ctx, name, intFlag(flags.string('revision'), 'revision', 1));
      case 'undo':
        return rolloutUndo(ctx, name, { ...(flags.string('to-revision') !== undefined ? { toRevision: intFlag(flags.string('to-revision'), 'to-revision', 1)! } : {}), force: flags.bool('force') });
      case 'restart':
        await ctx.session.client.patch(servicePath(ctx.session.namespace, name), { metadata: { annotations: { [RESTARTED_AT]: new Date(ctx.now()).toISOString() } } }, 'merge');
        ctx.stdout(`service/${name} restarted\n`);
        return 0;
    }
  },
};
