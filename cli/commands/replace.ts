// `slipctl replace -f`: PUT each object whole. The file's resourceVersion is used when it has
// one (a stale one is a 409, as it should be); otherwise the live one is filled in. `--force`
// deletes the object, waits until it is gone, and creates it again.

import { parseDuration } from '../args.js';
import { FILENAME, OUTPUT, RECURSIVE, TIMEOUT, type Command } from '../command.js';
import { isNotFound, step } from '../errors.js';
import { runOnManifests } from '../manifest-runner.js';
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
    const force = flags.bool('force');
    const timeoutMs = parseDuration(flags.string('timeout')!, 'timeout');
    const { client } = ctx.session;
    return runOnManifests(ctx, flags, 'replace', {}, async (target, m) => {
      const body = structuredClone(target.object);
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
        return { object: await step(`error when creating "${m.source}"`, () => client.create(target.collection, body)), verb: 'replaced' };
      }
      if (!body.metadata.resourceVersion) {
        const live = await step(`error when retrieving current configuration of "${m.source}"`, () => client.get(target.path));
        body.metadata.resourceVersion = live.metadata.resourceVersion!;
      }
      return { object: await step(`error when replacing "${m.source}"`, () => client.replace(target.path, body)), verb: 'replaced' };
    });
  },
};
