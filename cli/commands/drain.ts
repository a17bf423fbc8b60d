// `slipctl drain NODE`: cordons the node and asks the service controller to move its replicas
// elsewhere (annotation slipway.dev/drain), then waits until no Slipway replica runs there: the
// Node reports no running replica containers and no Service lists an endpoint on it.

import type { KubeObject } from '../../src/api/types.js';
import { parseDuration } from '../args.js';
import { TIMEOUT, type Command } from '../command.js';
import { CliError } from '../errors.js';
import { humanDuration } from '../printers.js';
import { Followed, followUntil } from './follow.js';
import { cordon } from './node-schedule.js';
import { nodeName, nodePath, rfc3339, servicePath } from './service-target.js';

/** What still runs on the node: its replica count and `ns/service (n)` for each Service with endpoints there. */
export function remaining(node: KubeObject | undefined, services: readonly KubeObject[], name: string): { containers: number; services: string[] } {
  const containers = typeof node?.status?.runningContainers === 'number' ? node.status.runningContainers : 0;
  const found: string[] = [];
  for (const svc of services) {
    const endpoints = Array.isArray(svc.status?.endpoints) ? (svc.status.endpoints as Record<string, unknown>[]) : [];
    const here = endpoints.filter((e) => e.node === name).length;
    if (here) found.push(`${svc.metadata.namespace}/${svc.metadata.name} (${here})`);
  }
  return { containers, services: found.sort() };
}

const describeRemaining = (r: ReturnType<typeof remaining>): string =>
  `${r.containers} replica container${r.containers === 1 ? '' : 's'} running${r.services.length ? `; endpoints on it: ${r.services.join(', ')}` : ''}`;

export const command: Command = {
  name: 'drain',
  summary: 'Cordon a node and wait until its replicas have moved to other nodes.',
  usage: 'drain NODE [--timeout 5m]',
  description: 'Sets spec.unschedulable and the slipway.dev/drain annotation; the service controller starts a replacement\nfor each replica elsewhere, waits until it is ready, then removes the old one. `slipctl uncordon NODE`\nends the drain.',
  examples: ['slipctl drain vps-2', 'slipctl drain vps-2 --timeout 15m'],
  flags: [TIMEOUT('5m')],
  async run(ctx, flags) {
    const name = nodeName(flags.positional, 'drain');
    const timeoutMs = parseDuration(flags.string('timeout')!, 'timeout');
    await cordon(ctx, name, rfc3339(ctx.now()));
    const nodes = new Followed(nodePath(), { fieldSelector: `metadata.name=${name}` });
    const services = new Followed(servicePath());
    let last = '';
    let gone = false;
    const check = (): boolean => {
      const node = nodes.objects.get(`/${name}`);
      if (!node) return (gone = true);
      const left = remaining(node, services.items, name);
      if (left.containers === 0 && left.services.length === 0) return true;
      const line = `waiting for node/${name} to drain: ${describeRemaining(left)}`;
      if (line !== last) ctx.stdout(`${line}\n`);
      last = line;
      return false;
    };
    const signal = timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : new AbortController().signal;
    if (!(await followUntil(ctx.session.client, [nodes, services], check, signal))) {
      const left = remaining(nodes.objects.get(`/${name}`), services.items, name);
      throw new CliError(`timed out after ${humanDuration(timeoutMs)} waiting for node/${name} to drain: ${describeRemaining(left)}`);
    }
    if (gone) throw new CliError(`node/${name} was deleted while draining`);
    ctx.stdout(`node/${name} drained\n`);
    return 0;
  },
};
