// `slipctl version`: the client's version and the server's `/version`.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OUTPUT, type Command } from '../command.js';
import { CliError, formatError } from '../errors.js';
import { toJson, toYaml } from '../printers.js';

/** The version in the checkout's package.json (two levels above the compiled cli/ directory). */
export function clientVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), '../../../package.json'), 'utf8')) as { version?: string };
    return pkg.version ? `v${pkg.version}` : 'unknown';
  } catch {
    return 'unknown';
  }
}

export const command: Command = {
  name: 'version',
  summary: 'Print the client and server versions.',
  usage: 'version [--client] [-o json|yaml]',
  flags: [{ name: 'client', type: 'bool', description: 'Only the client version; do not contact the server.' }, OUTPUT('json, yaml')],
  async run(ctx, flags) {
    const output = flags.string('output');
    if (output !== undefined && output !== 'json' && output !== 'yaml') throw new CliError(`--output must be json or yaml (got "${output}")`);
    const client = { gitVersion: clientVersion(), platform: `${process.platform}/${process.arch}`, nodeVersion: process.version };
    let server: Record<string, unknown> | undefined;
    let failure: unknown;
    if (!flags.bool('client')) {
      try {
        server = (await ctx.session.client.request('GET', '/version')).body as Record<string, unknown>;
      } catch (err) {
        failure = err;
      }
    }
    if (output) {
      const doc = { clientVersion: client, ...(server ? { serverVersion: server } : {}) };
      ctx.stdout(output === 'json' ? toJson(doc) : toYaml(doc));
    } else {
      ctx.stdout(`Client Version: ${client.gitVersion}\n`);
      if (server) ctx.stdout(`Server Version: ${String(server.gitVersion ?? 'unknown')}\n`);
    }
    if (failure) {
      ctx.stderr(`${formatError(failure)}\n`);
      return 1;
    }
    return 0;
  },
};
