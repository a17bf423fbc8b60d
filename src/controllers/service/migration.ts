// One migration attempt as a one-shot container from the release's image: started once, observed
// on every reconcile until it exits (or times out), its exit code and last log lines reported,
// then removed. Progress lives in Docker (the container) and in the Release's steps, not in memory.

import type Docker from 'dockerode';
import { ensureContainer, removeContainer } from './docker-ops.js';
import type { DockerCreateOptions } from './container-spec.js';
import { demuxToText } from '../../docker/demux.js';

export type MigrationOutcome = { state: 'running' } | { state: 'succeeded' } | { state: 'failed'; message: string };

const statusOf = (err: unknown) => (err as { statusCode?: number }).statusCode;

export async function stepMigration(docker: Docker, options: DockerCreateOptions, timeoutMs: number): Promise<MigrationOutcome> {
  let info: Docker.ContainerInspectInfo;
  try {
    info = await docker.getContainer(options.name).inspect();
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
    await ensureContainer(docker, options, true);
    return { state: 'running' };
  }
  const state = info.State;
  if (state.Status === 'created') {
    await ensureContainer(docker, options, true);
    return { state: 'running' };
  }
  if (state.Running) {
    const started = Date.parse(state.StartedAt);
    if (Number.isFinite(started) && Date.now() - started > timeoutMs) {
      const logs = await lastLines(docker, info.Id);
      await removeContainer(docker, info.Id, 0);
      return { state: 'failed', message: `migration timed out after ${Math.round(timeoutMs / 1000)}s${logs}` };
    }
    return { state: 'running' };
  }
  const logs = await lastLines(docker, info.Id);
  await removeContainer(docker, info.Id, 0);
  if (state.ExitCode === 0) return { state: 'succeeded' };
  return { state: 'failed', message: `migration exited with code ${state.ExitCode}${state.Error ? ` (${state.Error})` : ''}${logs}` };
}

/** The container's last log lines, for a failure message. */
export async function lastLines(docker: Docker, id: string, count = 10): Promise<string> {
  try {
    const raw = (await docker.getContainer(id).logs({ stdout: true, stderr: true, tail: count, follow: false })) as unknown as Buffer;
    const text = demuxToText(raw).trim();
    return text ? `; last output: ${text.slice(-1500)}` : '';
  } catch {
    return '';
  }
}
