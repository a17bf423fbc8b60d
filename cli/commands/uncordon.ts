// `slipctl uncordon NODE`: the node takes new replicas again; a pending drain request is withdrawn.

import type { Command } from '../command.js';
import { uncordon } from './node-schedule.js';
import { nodeName } from './service-target.js';

export const command: Command = {
  name: 'uncordon',
  summary: 'Mark a node schedulable again (and withdraw a drain request).',
  usage: 'uncordon NODE',
  examples: ['slipctl uncordon vps-2'],
  flags: [],
  async run(ctx, flags) {
    await uncordon(ctx, nodeName(flags.positional, 'uncordon'));
    return 0;
  },
};
