// `slipctl replace -f`: PUT each object whole. The file's resourceVersion is used when it has
// one (a stale one is a 409, as it should be); otherwise the live one is filled in. `--force`
// deletes the object, waits until it is gone, and creates it again.

import type { KubeObject } from '../../src/api/types.js';
import { parseDuration } from '../args.js';
import { FILENAME, OUTPUT, RECURSIVE, TIMEOUT, type Command } from '../command.js';
import { CliError, formatError, isNotFound, step } from '../errors.js';
import { readManifests } from '../manifests.js';
import { checkResultFormat, formatResults, objectRef } from '../printers.js';
import { applyOrder, kindDefinedBy, resolveTarget, type Target } from '../targets.js';
import { deleteOne, quoted, waitGone } from './delete.js';

export const command: Command = {
  name: 'replace',
  summary: 'Replace objects with the content of manifests (PUT).',
  usage: 'replace -f FILE|DIR|- [-R] [-n NS] [--force] [-o name|yaml|json]',
  description: 'Without --force the objects must exist. --force deletes each object, waits until it is gone, and creates it anew.',
  examples: ['slipctl replace -f web.yaml', 'slipctl replace --force -f web.yaml'],
  flags: [
    FILENAME,
    RECURSIVE,
    { name: 'force', type: 'bool', description: 'Delete and re-create the objects.' },
    TIMEOUT('60s'),
    OUTPUT('name, yaml, json (default: a line per object)'),
  ],
  async run(ctx, flags) {
    if (flags.positional.length) throw new CliError(`unexpected arguments: ${flags.positional.join(' ')} (replace reads objects from -f)`);
    const format = checkResultFormat(flags.string('output'));
    const force = flags.bool('force');
    const timeoutMs = parseDuration(flags.string('timeout')!, 'timeout');
    const manifests = applyOrder(readManifests(flags.strings('filename'), flags.bool('recursive'), ctx.readStdin));
    const { client } = ctx.session;
    const pendingKinds = new Set<string>();
    const results: { resource: Target['resource']; object: KubeObject }[] = [];
    let failures = 0;
    for (const m of manifests) {
      try {
        const target = await resolveTarget(ctx.session, m, pendingKinds);
        const body = structuredClone(target.object);
        let replaced: KubeObject;
        if (force) {
          delete body.metadata.resourceVersion;
          delete body.metadata.uid;
          try {
            const uid = await deleteOne(ctx.session, target, 'Background');
            ctx.stdout(`${quoted(target)} deleted\n`);
            if (uid !== null) await waitGone(ctx.session, target, uid, timeoutMs);
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
          replaced = await step(`error when creating "${m.source}"`, () => client.create(target.collection, body));
        } else {
          if (!body.metadata.resourceVersion) {
            const live = await step(`error when retrieving current configuration of "${m.source}"`, () => client.get(target.path));
            body.metadata.resourceVersion = live.metadata.resourceVersion!;
          }
          replaced = await step(`error when replacing "${m.source}"`, () => client.replace(target.path, body));
        }
        const kind = kindDefinedBy(m.object);
        if (kind) pendingKinds.add(kind);
        if (format) results.push({ resource: target.resource, object: replaced });
        else ctx.stdout(`${objectRef(target.resource, replaced)} replaced\n`);
      } catch (err) {
        failures++;
        ctx.stderr(`${formatError(err)}\n`);
      }
    }
    if (format && results.length) ctx.stdout(formatResults(format, results));
    return failures ? 1 : 0;
  },
};
