// Idempotent container operations on one Docker Engine: create-or-start by deterministic name,
// stop and remove, tolerating "already done" answers so that re-running any step is safe.

import type Docker from 'dockerode';
import { LABEL_CLUSTER, LABEL_MANAGED_BY, LABEL_RELEASE, MANAGED_BY, type DockerCreateOptions } from './container-spec.js';

export class ForeignContainerError extends Error {
  override name = 'ForeignContainerError';
}

const statusOf = (err: unknown) => (err as { statusCode?: number }).statusCode;

/**
 * Makes sure the named container exists with our labels and runs (unless `start` is false).
 * A container of that name that Slipway does not own is never touched.
 */
export async function ensureContainer(docker: Docker, options: DockerCreateOptions, start = true): Promise<string> {
  let id: string;
  try {
    const info = await docker.getContainer(options.name).inspect();
    const labels = info.Config?.Labels ?? {};
    if (labels[LABEL_MANAGED_BY] !== MANAGED_BY || labels[LABEL_CLUSTER] !== options.Labels[LABEL_CLUSTER] || labels[LABEL_RELEASE] !== options.Labels[LABEL_RELEASE]) {
      throw new ForeignContainerError(`a container named ${options.name} exists that this release does not own; it was left alone`);
    }
    id = info.Id;
    if (!start || info.State?.Running) return id;
  } catch (err) {
    if (err instanceof ForeignContainerError) throw err;
    if (statusOf(err) !== 404) throw err;
    try {
      const created = await docker.createContainer(options as Docker.ContainerCreateOptions);
      id = created.id;
    } catch (createErr) {
      // Another run created it between inspect and create: use that one.
      if (statusOf(createErr) === 409) return ensureContainer(docker, options, start);
      throw createErr;
    }
  }
  if (start) {
    try {
      await docker.getContainer(id).start();
    } catch (err) {
      if (statusOf(err) !== 304) throw err;
    }
  }
  return id;
}

export async function removeContainer(docker: Docker, id: string, graceSeconds = 10): Promise<void> {
  const container = docker.getContainer(id);
  try {
    await container.stop({ t: graceSeconds });
  } catch (err) {
    if (statusOf(err) !== 304 && statusOf(err) !== 404) throw err;
  }
  try {
    await container.remove({ force: true, v: false });
  } catch (err) {
    if (statusOf(err) !== 404 && statusOf(err) !== 409) throw err;
  }
}

export async function stopContainer(docker: Docker, id: string, graceSeconds = 10): Promise<void> {
  try {
    await docker.getContainer(id).stop({ t: graceSeconds });
  } catch (err) {
    if (statusOf(err) !== 304 && statusOf(err) !== 404) throw err;
  }
}

export async function startContainer(docker: Docker, id: string): Promise<void> {
  try {
    await docker.getContainer(id).start();
  } catch (err) {
    if (statusOf(err) !== 304) throw err;
  }
}
