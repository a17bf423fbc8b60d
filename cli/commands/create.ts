// `slipctl create -f`: POST each object; an existing object is an error (AlreadyExists), unlike
// apply. `--save-config` records the last-applied annotation so later applies merge correctly.

import { FILENAME, OUTPUT, RECURSIVE, type Command } from '../command.js';
import { step } from '../errors.js';
import { runOnManifests, serverDryRun } from '../manifest-runner.js';
import { withLastApplied } from '../three-way-merge.js';

export const command: Command = {
  name: 'create',
  summary: 'Create objects from manifests (fails for objects that exist).',
  usage: 'create -f FILE|DIR|- [-R] [-n NS] [--save-config] [--dry-run=server] [-o name|yaml|json]',
  examples: ['slipctl create -f manifests/20-service.yaml'],
  flags: [
    FILENAME,
    RECURSIVE,
    { name: 'save-config', type: 'bool', description: 'Record the configuration in the last-applied annotation, for later `apply`.' },
    { name: 'dry-run', type: 'string', value: 'server|none', description: 'server: validate on the server without storing.' },
    OUTPUT('name, yaml, json (default: a line per object)'),
  ],
  async run(ctx, flags) {
    const dryRun = serverDryRun(flags);
    return runOnManifests(ctx, flags, 'create', { dryRun }, async (target, m) => {
      const body = flags.bool('save-config') ? withLastApplied(target.object) : target.object;
      const created = await step(`error when creating "${m.source}"`, () => ctx.session.client.create(target.collection, body, dryRun ? { dryRun: 'All' } : undefined));
      return { object: created, verb: 'created' };
    });
  },
};
