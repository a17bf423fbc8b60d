// The loop shared by `apply`, `create` and `replace`: read the -f manifests in apply order,
// resolve each to its REST target (waiting for kinds defined by CRDs earlier in the same run),
// run one write per object, print a line or collect results for -o, and keep going after a
// failed object so the exit code reports it at the end.

import type { KubeObject } from '../src/api/types.js';
import type { Flags } from './args.js';
import type { CommandContext } from './command.js';
import { CliError, formatError } from './errors.js';
import { readManifests, type Manifest } from './manifests.js';
import { checkResultFormat, formatResults, objectRef } from './printers.js';
import { applyOrder, kindDefinedBy, resolveTarget, type Target } from './targets.js';

export interface WriteOutcome {
  object: KubeObject;
  /** The word printed after the object, e.g. `created`, `configured`, `unchanged`. */
  verb: string;
}

/** `--dry-run=server|none` → whether to send dryRun=All. */
export function serverDryRun(flags: Flags): boolean {
  const value = flags.string('dry-run') ?? 'none';
  if (!['server', 'none'].includes(value)) throw new CliError(`invalid --dry-run value "${value}": only "server" and "none" are supported`);
  return value === 'server';
}

export async function runOnManifests(
  ctx: CommandContext,
  flags: Flags,
  command: string,
  options: { dryRun?: boolean },
  write: (target: Target, manifest: Manifest) => Promise<WriteOutcome>,
): Promise<number> {
  if (flags.positional.length) throw new CliError(`unexpected arguments: ${flags.positional.join(' ')} (${command} reads objects from -f)`);
  const format = checkResultFormat(flags.string('output'));
  const manifests = applyOrder(readManifests(flags.strings('filename'), flags.bool('recursive'), ctx.readStdin));
  const pendingKinds = new Set<string>();
  const results: { resource: Target['resource']; object: KubeObject }[] = [];
  let failures = 0;
  for (const m of manifests) {
    try {
      const target = await resolveTarget(ctx.session, m, pendingKinds);
      const outcome = await write(target, m);
      const kind = kindDefinedBy(m.object);
      if (kind && !options.dryRun) pendingKinds.add(kind);
      if (format) results.push({ resource: target.resource, object: outcome.object });
      else ctx.stdout(`${objectRef(target.resource, outcome.object)} ${outcome.verb}${options.dryRun ? ' (server dry run)' : ''}\n`);
    } catch (err) {
      failures++;
      ctx.stderr(`${formatError(err)}\n`);
    }
  }
  if (format && results.length) ctx.stdout(formatResults(format, results));
  return failures ? 1 : 0;
}
