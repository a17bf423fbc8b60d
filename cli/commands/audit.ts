// `slipctl audit`: the API server's audit records (who changed what, who read which Secret, who was
// refused), newest first, as a table or JSON/YAML; filters are applied by the server.

import { OUTPUT, type Command } from '../command.js';
import { CliError } from '../errors.js';
import { formatRows, toJson, toYaml } from '../printers.js';
import type { AuditRecord } from '../../src/api/audit.js';

export const AUDIT_EVENTS_PATH = '/apis/slipway.dev/v1alpha1/auditevents';


/** TIME USER VERB RESOURCE NAMESPACE NAME CODE SOURCE, one row per record in the given order. */
export function auditTable(records: readonly AuditRecord[]): string {
  const rows = [['TIME', 'USER', 'VERB', 'RESOURCE', 'NAMESPACE', 'NAME', 'CODE', 'SOURCE']];
  for (const r of records) {
    const time = typeof r.time === 'string' ? r.time.replace(/\.\d+Z$/, 'Z') : '<unknown>';
    const resource = r.resource ? `${r.resource}${r.subresource ? `/${r.subresource}` : ''}` : '<none>';
    rows.push([time, r.user ?? '<none>', r.verb ?? '<none>', resource, r.namespace ?? '', r.name ?? '', String(r.code ?? ''), r.sourceIP ?? '']);
  }
  return formatRows(rows);
}

export const command: Command = {
  name: 'audit',
  summary: 'Show audit records: writes, Secret reads and refused requests.',
  usage: 'audit [--since 1h] [--user U] [--resource R] [-n NS] [--verb V] [--limit N] [-o json|yaml]',
  description: 'Queries the API server\'s audit log (it must run with --audit-dir). Newest records first. Without -n, records of all namespaces are shown.',
  examples: ['slipctl audit --since 1h', 'slipctl audit --resource secrets -n shop-prod', 'slipctl audit --user token:3f2a9c01d4e5 --verb delete -o json'],
  flags: [
    { name: 'since', type: 'string', value: 'TIME|DURATION', description: 'Only records since this RFC 3339 time or this long ago (e.g. 30m, 1h, 7d).' },
    { name: 'until', type: 'string', value: 'TIME|DURATION', description: 'Only records up to this RFC 3339 time or this long ago.' },
    { name: 'user', type: 'string', value: 'USER', description: 'Only requests of this user (e.g. admin, token:<id>).' },
    { name: 'resource', type: 'string', value: 'RESOURCE', description: 'Only this resource (plural, e.g. secrets, services/exec).' },
    { name: 'verb', type: 'string', value: 'VERB', description: 'Only this verb (create, update, patch, delete, deletecollection, get, list, watch).' },
    { name: 'limit', type: 'string', value: 'N', description: 'At most N records (default 500, at most 10000).' },
    OUTPUT('json, yaml'),
  ],
  async run(ctx, flags) {
    if (flags.positional.length) throw new CliError(`unexpected argument ${JSON.stringify(flags.positional[0])}: audit takes only flags`);
    const output = flags.string('output');
    if (output !== undefined && output !== 'json' && output !== 'yaml') throw new CliError(`--output must be json or yaml (got "${output}")`);
    const limit = flags.string('limit');
    if (limit !== undefined && !/^\d+$/.test(limit)) throw new CliError(`--limit must be a positive integer (got "${limit}")`);
    const query = {
      since: flags.string('since'),
      until: flags.string('until'),
      user: flags.string('user'),
      resource: flags.string('resource'),
      verb: flags.string('verb'),
      namespace: ctx.session.explicitNamespace,
      limit,
    };
    const list = (await ctx.session.client.request<{ items?: AuditRecord[] }>('GET', AUDIT_EVENTS_PATH, { query })).body;
    const items = list?.items ?? [];
    if (output === 'json') ctx.stdout(toJson(list));
    else if (output === 'yaml') ctx.stdout(toYaml(list));
    else if (items.length === 0) ctx.stderr('No audit records found.\n');
    else ctx.stdout(auditTable(items));
    return 0;
  },
};
