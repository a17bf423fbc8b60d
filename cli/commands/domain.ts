// `slipctl domain verify NAME`: the "I have set the record, check now" button. It stamps the
// Domain's slipway.dev/verify-requested-at annotation, which makes the domain controller look the
// records up at once (past its backoff and negative cache), waits for that check and prints what it
// found, as `describe domain` does. Exit 1 while the record proving ownership is missing.

import { parseDuration } from '../args.js';
import type { Command } from '../command.js';
import { renderDomainSummary } from '../domain-summary.js';
import { CliError, isNotFound } from '../errors.js';
import { waitForObject, WaitTimeout } from '../wait-for.js';
import { VERIFY_REQUESTED_AT_ANNOTATION } from '../../src/api/service-contract.js';
import type { KubeObject } from '../../src/api/types.js';

const API = '/apis/slipway.dev/v1alpha1';

export const command: Command = {
  name: 'domain',
  summary: 'Check a Domain\'s DNS records now.',
  usage: 'domain verify NAME [-n NS] [--timeout DURATION]',
  description: [
    'verify NAME   Asks the domain controller to look the expected DNS records up now, instead of at the',
    '              next check of its backoff, waits for the result and prints it. A verified Domain is',
    '              checked again too: missing records give a DNSRecordsMissing warning, the route stays.',
    '              Exit 0 when the record proving ownership is found, 1 when it is not.',
  ].join('\n'),
  examples: ['slipctl domain verify acme-shop -n shop-prod'],
  flags: [{ name: 'timeout', type: 'string', value: 'DURATION', description: 'How long to wait for the check; default 30s.' }],
  async run(ctx, flags) {
    const [sub, arg, ...extra] = flags.positional;
    if (sub !== 'verify') throw new CliError(sub ? `unknown domain subcommand "${sub}": expected verify` : 'domain needs a subcommand: verify');
    const name = arg?.replace(/^domains?\//, '');
    if (!name) throw new CliError('domain verify needs the name of a Domain');
    if (extra.length) throw new CliError(`domain verify takes one Domain (got ${JSON.stringify(extra[0])} too)`);
    const timeoutMs = parseDuration(flags.string('timeout') ?? '30s', 'timeout');
    const collection = `${API}/namespaces/${encodeURIComponent(ctx.session.namespace)}/domains`;
    const stamp = new Date(ctx.now()).toISOString();
    try {
      await ctx.session.client.patch(`${collection}/${encodeURIComponent(name)}`, { metadata: { annotations: { [VERIFY_REQUESTED_AT_ANNOTATION]: stamp } } }, 'merge');
    } catch (err) {
      if (isNotFound(err)) throw new CliError(`domain "${name}" not found in namespace "${ctx.session.namespace}"`);
      throw err;
    }
    let checked: KubeObject | null;
    try {
      checked = await waitForObject(ctx.session.client, collection, name, (obj) => !obj || obj.status?.observedVerifyRequest === stamp, timeoutMs);
    } catch (err) {
      if (err instanceof WaitTimeout) throw new CliError(`the domain controller did not check domain "${name}" within ${flags.string('timeout') ?? '30s'} (is the controller manager running?)`);
      throw err;
    }
    if (!checked) throw new CliError(`domain "${name}" was deleted`);
    ctx.stdout(`${renderDomainSummary(checked, ctx.now()).join('\n')}\n`);
    // The first expected record is the one that proves ownership (the others route traffic).
    const [proof] = (checked.status?.expectedRecords ?? []) as Array<{ observed?: boolean }>;
    return proof?.observed === true ? 0 : 1;
  },
};
