// `slipctl backup list|run|restore`: the Backups of a namespace (or one policy), a backup run now,
// and a restore of a Backup into a new target. `run` and `restore` create the Backup or Restore
// object and, by default, wait for the controller to finish it (exit 1 when it failed).

import { parseDuration, type FlagSpec } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { CliError, isNotFound } from '../errors.js';
import { age, formatRows } from '../printers.js';
import { waitForObject, WaitTimeout } from '../wait-for.js';
import type { KubeObject } from '../../src/api/types.js';

const API = '/apis/slipway.dev/v1alpha1';
const SUBCOMMANDS = ['list', 'run', 'restore'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];
const collection = (ns: string, plural: string) => `${API}/namespaces/${encodeURIComponent(ns)}/${plural}`;

const FLAGS: (FlagSpec & { for: Subcommand[] })[] = [
  { name: 'wait', type: 'bool', for: ['run', 'restore'], description: 'run, restore: wait until it finished (default true; --wait=false returns at once).' },
  { name: 'timeout', type: 'string', value: 'DURATION', for: ['run', 'restore'], description: 'run, restore: how long to wait; default 1h.' },
  { name: 'into', type: 'string', value: 'NAME', for: ['restore'], description: 'restore: the new database (mysql, postgres) or volume to restore into; default <source>_restore_<name>.' },
  { name: 'data-dir', type: 'string', value: 'DIR', for: ['restore'], description: 'restore: etcd or Redis: a new directory on the manager\'s machine for the restored data.' },
  { name: 'overwrite-source', type: 'bool', for: ['restore'], description: 'restore: restore over the policy\'s own source (destructive).' },
  { name: 'name', type: 'string', value: 'NAME', for: ['run', 'restore'], description: 'run, restore: name of the Backup or Restore to create (default: generated).' },
];

const seconds = (s: unknown) => `${typeof s === 'number' ? s.toFixed(1) : '?'} s`;
const stamp = (now: number) => Math.floor(now / 1000).toString(36);

function bytes(n: unknown): string {
  if (typeof n !== 'number') return '';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) (v /= 1024), i++;
  return `${v.toFixed(1)} ${units[i]}`;
}

/** The table `backup list` prints. */
export function renderBackups(items: readonly KubeObject[], now: number): string {
  if (items.length === 0) return '';
  const sorted = [...items].sort((a, b) => String(b.metadata.creationTimestamp).localeCompare(String(a.metadata.creationTimestamp)) || b.metadata.name!.localeCompare(a.metadata.name!));
  const rows = sorted.map((b) => [
    b.metadata.name!,
    String(b.spec?.policy ?? ''),
    String(b.status?.phase ?? 'Pending'),
    bytes(b.status?.sizeBytes),
    b.status?.verified === true ? 'yes' : 'no',
    String(b.spec?.trigger ?? ''),
    age(b.metadata.creationTimestamp, now),
    String(b.status?.error ?? '').split('\n')[0]!.slice(0, 80),
  ]);
  return formatRows([['NAME', 'POLICY', 'PHASE', 'SIZE', 'VERIFIED', 'TRIGGER', 'AGE', 'ERROR'], ...rows]);
}

/**
 * Creates a Backup or Restore and, with `wait`, follows it until it finished: prints `created`, then
 * `succeeded: <summary>` (exit 0) or `failed: <error>` on stderr (exit 1).
 */
async function createAndFollow(ctx: CommandContext, kind: 'Backup' | 'Restore', obj: { metadata: { name: string; labels?: Record<string, string> }; spec: Record<string, unknown> }, opts: { wait: boolean; timeout?: string }, summary: (done: KubeObject) => string): Promise<number> {
  const plural = `${kind.toLowerCase()}s`;
  const ref = `${kind.toLowerCase()}/${obj.metadata.name}`;
  await ctx.session.client.create(collection(ctx.session.namespace, plural), { apiVersion: 'slipway.dev/v1alpha1', kind, ...obj });
  ctx.stdout(`${ref} created\n`);
  if (!opts.wait) return 0;
  let done: KubeObject | null;
  try {
    done = await waitForObject(ctx.session.client, collection(ctx.session.namespace, plural), obj.metadata.name, (o) => o === null || ['Succeeded', 'Failed'].includes(String(o.status?.phase)), parseDuration(opts.timeout ?? '1h', 'timeout'));
  } catch (err) {
    if (err instanceof WaitTimeout) throw new CliError(`timed out waiting for ${ref} to finish`);
    throw err;
  }
  if (!done) throw new CliError(`${ref} was deleted while waiting`);
  if (done.status?.phase === 'Failed') {
    ctx.stderr(`${ref} failed: ${done.status?.error ?? 'unknown error'}\n`);
    return 1;
  }
  ctx.stdout(`${ref} succeeded: ${summary(done)}\n`);
  return 0;
}

/** One object of the namespace, or a CliError naming it. */
async function getNamed(ctx: CommandContext, plural: string, name: string): Promise<KubeObject> {
  const ns = ctx.session.namespace;
  try {
    return await ctx.session.client.get(`${collection(ns, plural)}/${encodeURIComponent(name)}`);
  } catch (err) {
    if (isNotFound(err)) throw new CliError(`${plural.replace(/ies$/, 'y').replace(/s$/, '')} "${name}" not found in namespace ${ns}`);
    throw err;
  }
}

async function run(ctx: CommandContext, policy: string, opts: { name?: string; wait: boolean; timeout?: string }): Promise<number> {
  await getNamed(ctx, 'backuppolicies', policy);
  const name = opts.name ?? `${policy.slice(0, 230)}-manual-${stamp(ctx.now())}`;
  return createAndFollow(ctx, 'Backup', { metadata: { name, labels: { 'slipway.dev/backup-policy': policy } }, spec: { policy, trigger: 'Manual' } }, opts, (done) =>
    `${bytes(done.status?.sizeBytes)}, sha256 ${done.status?.sha256}, verified, in ${seconds(done.status?.durationSeconds)}`,
  );
}

async function restore(ctx: CommandContext, backup: string, opts: { name?: string; into?: string; dataDir?: string; overwrite: boolean; wait: boolean; timeout?: string }): Promise<number> {
  const b = await getNamed(ctx, 'backups', backup);
  const spec: Record<string, unknown> = { backup };
  if (opts.into) {
    const policy = await getNamed(ctx, 'backuppolicies', String(b.spec?.policy));
    const type = String(policy.spec?.target?.type);
    if (type === 'mysql' || type === 'postgres') spec.database = opts.into;
    else if (type === 'volume') spec.volume = opts.into;
    else throw new CliError(`--into names a database or volume; a ${type} backup restores into a new data directory (use --data-dir)`);
  }
  if (opts.dataDir) spec.dataDir = opts.dataDir;
  if (opts.overwrite) spec.overwriteSource = true;
  const name = opts.name ?? `${backup.slice(0, 230)}-restore-${stamp(ctx.now())}`;
  return createAndFollow(ctx, 'Restore', { metadata: { name }, spec }, opts, (done) => `${done.status?.target} in ${seconds(done.status?.durationSeconds)}`);
}

export const command: Command = {
  name: 'backup',
  summary: 'List backups, run a backup now, or restore one into a new target.',
  usage: 'backup list [POLICY] | run POLICY | restore BACKUP [--into NAME] [-n NS] [flags]',
  description: [
    'Subcommands:',
    '  list [POLICY]                                      The Backups of the namespace (or of one BackupPolicy), newest first.',
    '  run POLICY [--wait=false] [--timeout 1h]           Create a Backup of the policy now and wait for it to be verified.',
    '  restore BACKUP [--into NAME] [--overwrite-source]  Restore the Backup into a NEW database or volume (or --data-dir for etcd/Redis).',
    'A restore never writes over the policy\'s source unless --overwrite-source is given.',
  ].join('\n'),
  examples: ['slipctl backup list shop-db -n shop-prod', 'slipctl backup run shop-db', 'slipctl backup restore shop-db-1767225600 --into shop_copy'],
  flags: FLAGS.map(({ for: _for, ...spec }) => spec),
  async run(ctx, flags) {
    const [sub, arg, ...extra] = flags.positional;
    if (!sub) throw new CliError(`backup needs a subcommand: ${SUBCOMMANDS.join(', ')}`);
    if (!(SUBCOMMANDS as readonly string[]).includes(sub)) throw new CliError(`unknown backup subcommand "${sub}": expected one of ${SUBCOMMANDS.join(', ')}`);
    const subcommand = sub as Subcommand;
    for (const f of FLAGS) {
      if (flags.string(f.name) !== undefined && !f.for.includes(subcommand)) throw new CliError(`--${f.name} is not a flag of backup ${subcommand}`);
    }
    if (extra.length) throw new CliError(`backup ${subcommand} takes one argument (got ${JSON.stringify(extra[0])} too)`);
    const wait = flags.string('wait') === undefined ? true : flags.bool('wait');
    switch (subcommand) {
      case 'list': {
        const list = await ctx.session.client.list(collection(ctx.session.namespace, 'backups'));
        const items = list.items.filter((b) => !arg || b.spec?.policy === arg);
        if (!items.length) ctx.stderr(`No backups found in namespace ${ctx.session.namespace}${arg ? ` for policy ${arg}` : ''}\n`);
        else ctx.stdout(renderBackups(items, ctx.now()));
        return 0;
      }
      case 'run':
        if (!arg) throw new CliError('backup run needs a BackupPolicy name');
        return run(ctx, arg, { ...(flags.string('name') ? { name: flags.string('name')! } : {}), wait, ...(flags.string('timeout') ? { timeout: flags.string('timeout')! } : {}) });
      case 'restore':
        if (!arg) throw new CliError('backup restore needs a Backup name (see slipctl backup list)');
        return restore(ctx, arg, {
          ...(flags.string('name') ? { name: flags.string('name')! } : {}),
          ...(flags.string('into') ? { into: flags.string('into')! } : {}),
          ...(flags.string('data-dir') ? { dataDir: flags.string('data-dir')! } : {}),
          overwrite: flags.bool('overwrite-source'),
          wait,
          ...(flags.string('timeout') ? { timeout: flags.string('timeout')! } : {}),
        });
    }
  },
};
