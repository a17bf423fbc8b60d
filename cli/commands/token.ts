// `slipctl token create|list|revoke`: API bearer tokens. A token is shown once, when it is
// created; the server keeps only its hash. Revoking deletes the Token object.

import type { FlagSpec } from '../args.js';
import type { Command } from '../command.js';
import { CliError, isNotFound } from '../errors.js';
import { age, formatRows } from '../printers.js';

const TOKENS = '/apis/slipway.dev/v1alpha1/tokens';
const SUBCOMMANDS = ['create', 'list', 'revoke'] as const;

const FLAGS: FlagSpec[] = [
  { name: 'role', type: 'string', value: 'ROLE', description: 'create: the ClusterRole the token grants (admin, deployer, viewer, or your own).' },
  { name: 'ttl', type: 'string', value: 'DURATION', description: 'create: how long the token works, e.g. 12h or 90d (default: no expiry).' },
  { name: 'description', type: 'string', value: 'TEXT', description: 'create: what the token is for.' },
];

export const command: Command = {
  name: 'token',
  summary: 'Create, list or revoke API tokens.',
  usage: 'token create --role ROLE [-n NS] [--ttl DURATION] [--description TEXT] | token list | token revoke ID',
  description: 'create prints the token once; store it safely (the server keeps only a hash). With -n the role applies in that namespace only.',
  examples: ['slipctl token create --role deployer -n shop-prod --ttl 90d --description "CI deploys"', 'slipctl token list', 'slipctl token revoke 3f9c2e1a7b4d'],
  flags: FLAGS,
  async run(ctx, flags) {
    const [sub, arg, ...extra] = flags.positional;
    if (!sub || !(SUBCOMMANDS as readonly string[]).includes(sub)) throw new CliError(`token needs a subcommand: ${SUBCOMMANDS.join(', ')}`);
    const client = ctx.session.client;
    if (sub === 'create') {
      const role = flags.string('role');
      if (!role) throw new CliError('token create needs --role (admin, deployer, viewer, or a ClusterRole of yours)');
      const explicitNs = ctx.session.explicitNamespace;
      const res = await client.request('POST', `/apis/slipway.dev/v1alpha1/tokenrequests`, {
        body: { apiVersion: 'slipway.dev/v1alpha1', kind: 'TokenRequest', spec: { role, ...(explicitNs ? { namespace: explicitNs } : {}), ...(flags.string('ttl') ? { ttl: flags.string('ttl') } : {}), ...(flags.string('description') ? { description: flags.string('description') } : {}) } },
      });
      const status = res.body.status as { id: string; token: string; expiresAt?: string };
      ctx.stderr(`token ${status.id} created (role ${role}${explicitNs ? ` in namespace ${explicitNs}` : ''}${status.expiresAt ? `, expires ${status.expiresAt}` : ''}); it is shown only this once:\n`);
      ctx.stdout(`${status.token}\n`);
      return 0;
    }
    if (sub === 'list') {
      const list = await client.list(TOKENS);
      const rows = [['ID', 'ROLE', 'NAMESPACE', 'EXPIRES', 'CREATED-BY', 'AGE', 'DESCRIPTION']];
      for (const t of list.items) rows.push([t.metadata.name!, t.spec?.role ?? '', t.spec?.namespace ?? '<all>', t.spec?.expiresAt ?? 'never', t.spec?.createdBy ?? '', age(t.metadata.creationTimestamp, ctx.now()), t.spec?.description ?? '']);
      ctx.stdout(list.items.length ? formatRows(rows) : 'No tokens (static tokens from the token file are not listed).\n');
      return 0;
    }
    if (!arg || extra.length) throw new CliError('token revoke takes one token id (see slipctl token list)');
    try {
      await client.delete(`${TOKENS}/${encodeURIComponent(arg)}`);
    } catch (err) {
      if (isNotFound(err)) throw new CliError(`token ${arg} not found (see slipctl token list)`);
      throw err;
    }
    ctx.stdout(`token ${arg} revoked\n`);
    return 0;
  },
};
