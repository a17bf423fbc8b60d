// `slipctl cordon NODE`: no new replicas are placed on the node; running ones stay.

import type { Command } from '../command.js';
import { cordon } from './node-schedule.js';
import { nodeName } from './service-target.js';

export const command: Command = {
  name: 'cordon',
  summary: 'Mark a node unschedulable: no new replicas are placed on it.',
  usage: 'cordon NODE',
  examples: ['slipctl cordon vps-2'],
  flags: [],
  async run(ctx, flags) {
    await cordon(ctx, nodeName(flags.positional, 'cordon'));
    return 0;
  },
};
