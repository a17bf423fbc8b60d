// `slipctl auth can-i VERB RESOURCE [NAME]` and `slipctl auth whoami`: what this token may do,
// answered by the API server's own authorizer.

import type { Command } from '../command.js';
import { CliError } from '../errors.js';

export const command: Command = {
  name: 'auth',
  summary: 'Check what your token may do (can-i) and who it is (whoami).',
  usage: 'auth can-i VERB RESOURCE[/SUBRESOURCE] [NAME] [-n NS] | auth whoami',
  description: 'can-i prints yes or no and exits 0 or 1. Without -n the question is about the config\'s default namespace; --all-namespaces asks about every namespace.',
  examples: ['slipctl auth can-i create services -n shop-prod', 'slipctl auth can-i get secrets', 'slipctl auth can-i get services/log', 'slipctl auth whoami'],
  flags: [{ name: 'all-namespaces', short: 'A', type: 'bool', description: 'can-i: ask about all namespaces (cluster-wide).' }],
  async run(ctx, flags) {
    const [sub, verb, resource, name, ...extra] = flags.positional;
    const client = ctx.session.client;
    if (sub === 'whoami') {
      const res = await client.request('GET', '/apis/slipway.dev/v1alpha1/whoami');
      const user = res.body.user as { name: string; role?: string; namespace?: string; tokenId?: string };
      ctx.stdout(`${user.name}${user.role ? `\trole ${user.role}${user.namespace ? ` in namespace ${user.namespace}` : ''}` : ''}\n`);
      return 0;
    }
    if (sub !== 'can-i') throw new CliError('auth needs a subcommand: can-i or whoami');
    if (!verb || !resource || extra.length) throw new CliError('usage: slipctl auth can-i VERB RESOURCE [NAME] [-n NS]');
    const [plural, subresource] = resource.split('/');
    const namespaced = !['nodes', 'namespaces', 'tokens', 'clusterroles', 'clusterrolebindings', 'customresourcedefinitions', 'auditevents', 'secrets-rekey'].includes(plural!);
    const namespace = flags.bool('all-namespaces') || !namespaced ? undefined : ctx.session.namespace;
    const res = await client.request('POST', '/apis/slipway.dev/v1alpha1/selfsubjectaccessreviews', {
      body: { apiVersion: 'slipway.dev/v1alpha1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { verb, resource: plural, ...(subresource ? { subresource } : {}), ...(namespace ? { namespace } : {}), ...(name ? { name } : {}) } } },
    });
    const allowed = res.body.status?.allowed === true;
    ctx.stdout(allowed ? 'yes\n' : 'no\n');
    return allowed ? 0 : 1;
  },
};
