// `slipctl rollout status`: follows a Service and its Releases and prints each step of the
// release being rolled out as it changes, until the rollout of the Service's generation at the
// start has finished: exit 0 when it succeeded, 1 with the Release's reason when it failed.

import type { KubeObject } from '../../src/api/types.js';
import type { CommandContext } from '../command.js';
import { CliError } from '../errors.js';
import { Followed, followUntil } from './follow.js';
import { releasePath, SERVICE_LABEL, servicePath } from './service-target.js';

export interface RolloutState {
  finished: boolean;
  succeeded: boolean;
}

const condition = (obj: KubeObject | undefined, type: string): Record<string, any> | undefined =>
  (Array.isArray(obj?.status?.conditions) ? (obj!.status.conditions as Record<string, any>[]) : []).find((c) => c.type === type);

/**
 * The contract's rule: a rollout for generation G is finished when observedGeneration >= G and
 * no candidate is left; it succeeded when Progressing says RolloutComplete (or, lacking a reason,
 * when a release is active) and failed when it says RolloutFailed.
 */
export function rolloutState(svc: KubeObject, generation: number): RolloutState {
  const status = svc.status ?? {};
  const finished = typeof status.observedGeneration === 'number' && status.observedGeneration >= generation && !status.candidateRelease;
  if (!finished) return { finished: false, succeeded: false };
  const reason = condition(svc, 'Progressing')?.reason;
  if (reason === 'RolloutFailed') return { finished: true, succeeded: false };
  if (reason === 'RolloutComplete' || status.activeRelease) return { finished: true, succeeded: true };
  return { finished: false, succeeded: false }; // observed, but no release yet: wait for one
}

/** One line per step: `Release web-4: HealthCheck Running (2/3 replicas healthy)`. */
export function stepLines(release: KubeObject, desiredReplicas: number): string[] {
  const name = release.metadata.name;
  const status = release.status ?? {};
  const steps = Array.isArray(status.steps) ? (status.steps as Record<string, any>[]) : [];
  if (steps.length === 0) return status.phase ? [`Release ${name}: ${status.phase}`] : [];
  return steps.map((s) => {
    const result = s.result ?? (s.endTime ? 'Done' : s.startTime ? 'Running' : 'Pending');
    const details: string[] = [];
    if (s.name === 'HealthCheck') details.push(`${status.readyReplicas ?? 0}/${desiredReplicas} replicas healthy`);
    if (typeof s.attempts === 'number' && s.attempts > 1) details.push(`attempt ${s.attempts}`);
    const message = result === 'Failed' && s.message ? `: ${s.message}` : '';
    return `Release ${name}: ${s.name} ${result}${details.length ? ` (${details.join(', ')})` : ''}${message}`;
  });
}

export async function rolloutStatus(ctx: CommandContext, name: string, opts: { timeoutMs: number; watch: boolean }): Promise<number> {
  const ns = ctx.session.namespace;
  const client = ctx.session.client;
  const start = await client.get(servicePath(ns, name));
  const generation = start.metadata.generation ?? 0;
  const services = new Followed(servicePath(ns), { fieldSelector: `metadata.name=${name}` });
  const releases = new Followed(releasePath(ns), { labelSelector: `${SERVICE_LABEL}=${name}` });
  const printed = new Set<string>();
  const say = (line: string) => {
    if (printed.has(line)) return;
    printed.add(line);
    ctx.stdout(`${line}\n`);
  };
  const release = (n: string | undefined) => (n ? releases.objects.get(`${ns}/${n}`) : undefined);
  let tracked: string | undefined;
  let outcome: RolloutState | undefined;
  let svc: KubeObject = start;
  let deleted = false;

  const check = (): boolean => {
    const current = services.objects.get(`${ns}/${name}`);
    if (!current) return (deleted = true);
    svc = current;
    const desired = typeof svc.spec?.replicas === 'number' ? svc.spec.replicas : 1;
    const candidate = svc.status?.candidateRelease as string | undefined;
    if (candidate) tracked = candidate;
    if (tracked) {
      const r = release(tracked);
      if (r) stepLines(r, desired).forEach(say);
      else if (candidate) say(`Waiting for release ${candidate}`);
    }
    const state = rolloutState(svc, generation);
    if (state.finished) {
      outcome = state;
      return true;
    }
    if (!candidate) say(`Waiting for service "${name}" rollout to start (generation ${generation} not yet rolled out)`);
    return false;
  };

  if (!opts.watch) {
    // One look: the lists, the check, no watch.
    const [s, r] = await Promise.all([client.list(services.path, services.query), client.list(releases.path, releases.query)]);
    services.reset(s.items);
    releases.reset(r.items);
    if (!check()) return 0;
  } else if (!(await followUntil(client, [services, releases], check, opts.timeoutMs > 0 ? AbortSignal.timeout(opts.timeoutMs) : new AbortController().signal))) {
    const r = release(tracked);
    const at = r?.status?.steps?.length ? ` at step ${(r.status.steps as Record<string, any>[]).at(-1)!.name}` : '';
    throw new CliError(`timed out waiting for service "${name}" to roll out${tracked ? ` (release ${tracked}${at})` : ''}`);
  }
  if (deleted) throw new CliError(`service "${name}" was deleted while waiting for its rollout`);
  if (outcome!.succeeded) {
    ctx.stdout(`service "${name}" successfully rolled out (release ${svc.status?.activeRelease ?? tracked ?? '<none>'})\n`);
    return 0;
  }
  const failedName = tracked ?? (svc.status?.currentRevision ? `${name}-${svc.status.currentRevision}` : undefined);
  const failed = release(failedName);
  if (failed) stepLines(failed, typeof svc.spec?.replicas === 'number' ? svc.spec.replicas : 1).forEach(say);
  const progressing = condition(svc, 'Progressing');
  const reason = failed?.status?.reason ?? progressing?.reason ?? 'RolloutFailed';
  const message = failed?.status?.message ?? progressing?.message;
  throw new CliError(`service "${name}" rollout failed${failedName ? ` (release ${failedName})` : ''}: ${reason}${message ? `: ${message}` : ''}`);
}
