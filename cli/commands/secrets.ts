// `slipctl secrets rekey`: asks the API server to re-read its encryption key file and
// re-encrypt every Secret not stored under the active key (after a new key was added).

import type { Command } from '../command.js';
import { CliError } from '../errors.js';

const REKEY_PATH = '/apis/slipway.dev/v1alpha1/secrets-rekey';

export const command: Command = {
  name: 'secrets',
  summary: 'Manage the encryption of Secrets at rest (rekey).',
  usage: 'secrets rekey',
  description: [
    'Subcommands:',
    '  rekey   Re-encrypt every Secret with the active key of the API server\'s key file.',
    'Rotation: run scripts/new-encryption-key.sh (adds a key and makes it active), then slipctl secrets rekey.',
  ].join('\n'),
  examples: ['slipctl secrets rekey'],
  flags: [],
  async run(ctx, flags) {
    const [sub, ...extra] = flags.positional;
    if (sub !== 'rekey') throw new CliError(sub ? `unknown secrets subcommand "${sub}": expected rekey` : 'secrets needs a subcommand: rekey');
    if (extra.length) throw new CliError(`secrets rekey takes no arguments (got ${JSON.stringify(extra[0])})`);
    const res = await ctx.session.client.request<{ rewritten: number; activeKeyId: string }>('POST', REKEY_PATH, { body: {} });
    const { rewritten, activeKeyId } = res.body;
    ctx.stdout(`re-encrypted ${rewritten} secrets with key ${activeKeyId}\n`);
    return 0;
  },
};
