// `slipctl create -f`: POST each object; an existing object is an error (AlreadyExists), unlike
// apply. `--save-config` records the last-applied annotation so later applies merge correctly.

import type { KubeObject } from '../../src/api/types.js';
import { FILENAME, OUTPUT, RECURSIVE, type Command } from '../command.js';
import { CliError, formatError, step } from '../errors.js';
import { readManifests } from '../manifests.js';
import { checkResultFormat, formatResults, objectRef } from '../printers.js';
import { applyOrder, kindDefinedBy, resolveTarget, type Target } from '../targets.js';
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
    if (flags.positional.length) throw new CliError(`unexpected arguments: ${flags.positional.join(' ')} (create reads objects from -f)`);
    const dryRunFlag = flags.string('dry-run') ?? 'none';
    if (!['server', 'none'].includes(dryRunFlag)) throw new CliError(`invalid --dry-run value "${dryRunFlag}": only "server" and "none" are supported`);
    const dryRun = dryRunFlag === 'server';
    const format = checkResultFormat(flags.string('output'));
    const manifests = applyOrder(readManifests(flags.strings('filename'), flags.bool('recursive'), ctx.readStdin));
    const pendingKinds = new Set<string>();
    const results: { resource: Target['resource']; object: KubeObject }[] = [];
    let failures = 0;
    for (const m of manifests) {
      try {
        const target = await resolveTarget(ctx.session, m, pendingKinds);
        const body = flags.bool('save-config') ? withLastApplied(target.object) : target.object;
        const created = await step(`error when creating "${m.source}"`, () => ctx.session.client.create(target.collection, body, dryRun ? { dryRun: 'All' } : undefined));
        const kind = kindDefinedBy(m.object);
        if (kind && !dryRun) pendingKinds.add(kind);
        if (format) results.push({ resource: target.resource, object: created });
        else ctx.stdout(`${objectRef(target.resource, created)} created${dryRun ? ' (server dry run)' : ''}\n`);
      } catch (err) {
        failures++;
        ctx.stderr(`${formatError(err)}\n`);
      }
    }
    if (format && results.length) ctx.stdout(formatResults(format, results));
    return failures ? 1 : 0;
  },
};
