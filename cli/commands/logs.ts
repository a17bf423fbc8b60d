// `slipctl logs service/NAME`: prints the merged logs of a Service's replicas (each line prefixed
// with `[container]`) as the API server streams them from the controller manager; `-f` keeps
// following until the stream ends or Ctrl-C.

import { StringDecoder } from 'node:string_decoder';
import type { Command } from '../command.js';
import { CliError } from '../errors.js';
import { intFlag, releasePath, serviceName, servicePath } from './service-target.js';
import { openStream } from './stream-request.js';

export const command: Command = {
  name: 'logs',
  summary: 'Print the logs of a Service\'s replicas; -f follows them.',
  usage: 'logs service/NAME [-n NS] [-f] [--tail N] [--release R] [--timestamps] | logs release/NAME [-f]',
  description: 'service/NAME may also be written svc/NAME or NAME. Lines of all replicas of the active release\n(or of --release) are merged, each prefixed with its container name.\nrelease/NAME (or rel/NAME) prints the build log of a release built from git; -f follows a running build.',
  examples: ['slipctl logs svc/web -n shop-prod --tail 100', 'slipctl logs web -f', 'slipctl logs web --release web-3 --timestamps', 'slipctl logs release/web-4 -f'],
  flags: [
    { name: 'follow', short: 'f', type: 'bool', description: 'Keep printing new lines until interrupted.' },
    { name: 'tail', type: 'string', value: 'N', description: 'Only the last N lines of each replica (default: all).' },
    { name: 'release', type: 'string', value: 'RELEASE', description: 'Logs of this release (e.g. web-3) instead of the active one.' },
    { name: 'timestamps', type: 'bool', description: 'Prefix each line with its RFC 3339 timestamp.' },
  ],
  async run(ctx, flags) {
    const [arg, ...extra] = flags.positional;
    if (extra.length) throw new CliError(`logs takes one service (got ${JSON.stringify(extra[0])} too)`);
    const releaseArg = /^(release|releases|rel)\/(.+)$/.exec(arg ?? '');
    if (releaseArg) {
      const res = await openStream(ctx.session, 'GET', `${releasePath(ctx.session.namespace, releaseArg[2]!)}/log`, { accept: 'text/plain, application/json', query: { follow: flags.bool('follow') ? 'true' : undefined } });
      return printStream(res.body, ctx.stdout);
    }
    const name = await serviceName(ctx.session, arg, 'logs');
    const tailText = flags.string('tail');
    const tail = tailText === '-1' ? undefined : intFlag(tailText, 'tail');
    const release = flags.string('release');
    if (release !== undefined && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(release)) throw new CliError(`invalid value ${JSON.stringify(release)} for --release: expected a release name such as ${name}-3`);
    const res = await openStream(ctx.session, 'GET', `${servicePath(ctx.session.namespace, name)}/log`, {
      accept: 'text/plain, application/json',
      query: {
        follow: flags.bool('follow') ? 'true' : undefined,
        tailLines: tail,
        release,
        timestamps: flags.bool('timestamps') ? 'true' : undefined,
      },
    });
    return printStream(res.body, ctx.stdout);
  },
};

async function printStream(body: AsyncIterable<unknown>, stdout: (text: string) => void): Promise<number> {
  const decoder = new StringDecoder('utf8');
  try {
    for await (const chunk of body) stdout(decoder.write(chunk as Buffer));
  } catch (err) {
    throw new CliError(`the log stream broke off: ${(err as Error).message}`);
  }
  const rest = decoder.end();
  if (rest) stdout(rest);
  return 0;
}
