// The command table: each command lives in its own module, loaded only when it runs (or when
// help lists them all), which keeps slipctl's start-up cheap.

import type { Command } from '../command.js';

const LOADERS: Record<string, () => Promise<{ command: Command }>> = {
  apply: () => import('./apply.js'),
  create: () => import('./create.js'),
  replace: () => import('./replace.js'),
  get: () => import('./get.js'),
  describe: () => import('./describe.js'),
  delete: () => import('./delete.js'),
  patch: () => import('./patch.js'),
  diff: () => import('./diff.js'),
  wait: () => import('./wait.js'),
  rollout: () => import('./rollout.js'),
  backup: () => import('./backup.js'),
  domain: () => import('./domain.js'),
  logs: () => import('./logs.js'),
  exec: () => import('./exec.js'),
  cordon: () => import('./cordon.js'),
  uncordon: () => import('./uncordon.js'),
  drain: () => import('./drain.js'),
  secrets: () => import('./secrets.js'),
  explain: () => import('./explain.js'),
  'api-resources': () => import('./api-resources.js'),
  audit: () => import('./audit.js'),
  token: () => import('./token.js'),
  auth: () => import('./auth.js'),
  version: () => import('./version.js'),
  help: () => import('./help.js'),
};

export const COMMAND_NAMES = Object.keys(LOADERS);

export async function loadCommand(name: string): Promise<Command | undefined> {
  const loader = Object.prototype.hasOwnProperty.call(LOADERS, name) ? LOADERS[name] : undefined;
  return loader ? (await loader()).command : undefined;
}

export async function loadAll(): Promise<Command[]> {
  return Promise.all(COMMAND_NAMES.map(async (n) => (await loadCommand(n))!));
}
