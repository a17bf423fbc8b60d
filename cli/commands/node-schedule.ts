// Cordoning and uncordoning a Node (spec.unschedulable), shared by cordon, uncordon and drain.

import type { CommandContext } from '../command.js';
import { DRAIN, nodePath } from './service-target.js';

/** Marks the node unschedulable (and, for drain, records the drain request); prints what changed. */
export async function cordon(ctx: CommandContext, name: string, drainRequestedAt?: string): Promise<void> {
  const node = await ctx.session.client.get(nodePath(name));
  const already = node.spec?.unschedulable === true;
  const patch: Record<string, unknown> = { spec: { unschedulable: true } };
  if (drainRequestedAt) patch.metadata = { annotations: { [DRAIN]: drainRequestedAt } };
  if (!already || drainRequestedAt) await ctx.session.client.patch(nodePath(name), patch, 'merge');
  ctx.stdout(`node/${name} ${already ? 'already cordoned' : 'cordoned'}\n`);
}

/** Makes the node schedulable again and withdraws any drain request. */
export async function uncordon(ctx: CommandContext, name: string): Promise<void> {
  const node = await ctx.session.client.get(nodePath(name));
  const draining = node.metadata.annotations?.[DRAIN] !== undefined;
  if (node.spec?.unschedulable !== true && !draining) {
    ctx.stdout(`node/${name} already uncordoned\n`);
    return;
  }
  await ctx.session.client.patch(nodePath(name), { spec: { unschedulable: false }, metadata: { annotations: { [DRAIN]: null } } }, 'merge');
  ctx.stdout(`node/${name} uncordoned\n`);
}
