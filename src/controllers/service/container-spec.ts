// Pure builders of Docker create options for a release's replica and migration containers (commands
// as data, kamal-style): labels naming the owner, hardening defaults, resource limits, a port
// published on the node's internal address. Tested by exact comparison; executed by the controller.

import { parseBytes, parseCpus } from '../../api/quantity.js';
import type { ReleaseTemplate } from './template.js';

export const LABEL_MANAGED_BY = 'slipway.dev/managed-by';
/** Which Slipway installation owns the container (uid of its `slipway-system` Namespace), so two never touch each other's containers on a shared Docker. */
export const LABEL_CLUSTER = 'slipway.dev/cluster';
export const LABEL_NAMESPACE = 'slipway.dev/namespace';
export const LABEL_SERVICE = 'slipway.dev/service';
export const LABEL_RELEASE = 'slipway.dev/release';
export const LABEL_REPLICA = 'slipway.dev/replica';
export const LABEL_ROLE = 'slipway.dev/role';
export const LABEL_CPUS = 'slipway.dev/cpus';
export const LABEL_MEMORY = 'slipway.dev/memory-bytes';
export const LABEL_CONFIG_HASH = 'slipway.dev/config-hash';
export const MANAGED_BY = 'slipway';

/** A long-running replica, a release's one-shot migration, or one scheduled run of a cron Service. */
export type ContainerRole = 'replica' | 'migrate' | 'run';
export const LABEL_SCHEDULED_TIME = 'slipway.dev/scheduled-time';

export interface ContainerPlan {
  cluster: string;
  namespace: string;
  service: string;
  release: string;
  configHash: string;
  /** Image ID (`sha256:…`) every replica runs, so all nodes run exactly the release's digest. */
  imageId: string;
  template: ReleaseTemplate;
  /** Environment after resolving Secret references, in order. */
  env: string[];
  role: ContainerRole;
  replica?: number;
  /** For a scheduled run: the slot it runs for (RFC 3339). */
  scheduledTime?: string;
  /** Address the container port is published on (the node's internal address). */
  hostIp: string;
}

export interface DockerCreateOptions {
  name: string;
  Image: string;
  Cmd?: string[];
  Entrypoint?: string[];
  Env: string[];
  Labels: Record<string, string>;
  User?: string;
  ExposedPorts?: Record<string, object>;
  StopTimeout?: number;
  HostConfig: Record<string, unknown>;
}

export function ownerLabels(plan: Pick<ContainerPlan, 'cluster' | 'namespace' | 'service' | 'release' | 'role' | 'replica' | 'scheduledTime' | 'configHash' | 'template'>): Record<string, string> {
  const labels: Record<string, string> = {
    [LABEL_MANAGED_BY]: MANAGED_BY,
    [LABEL_CLUSTER]: plan.cluster,
    [LABEL_NAMESPACE]: plan.namespace,
    [LABEL_SERVICE]: plan.service,
    [LABEL_RELEASE]: plan.release,
    [LABEL_ROLE]: plan.role,
    [LABEL_CONFIG_HASH]: plan.configHash,
  };
  if (plan.replica !== undefined) labels[LABEL_REPLICA] = String(plan.replica);
  if (plan.scheduledTime !== undefined) labels[LABEL_SCHEDULED_TIME] = plan.scheduledTime;
  const resources = plan.template.resources;
  if (plan.role === 'replica' && resources?.cpus !== undefined) labels[LABEL_CPUS] = String(parseCpus(resources.cpus));
  if (plan.role === 'replica' && resources?.memory !== undefined) labels[LABEL_MEMORY] = String(parseBytes(resources.memory));
  return labels;
}

export function buildContainerOptions(name: string, plan: ContainerPlan): DockerCreateOptions {
  const t = plan.template;
  const port = t.port ?? 3000;
  const security = t.security ?? {};
  const hostConfig: Record<string, unknown> = {
    Init: true,
    CapDrop: ['ALL'],
    ...(security.capabilities?.add?.length ? { CapAdd: [...security.capabilities.add] } : {}),
    SecurityOpt: ['no-new-privileges:true'],
    Privileged: false,
    ReadonlyRootfs: security.readOnlyRootFilesystem ?? false,
    LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
  };
  if (security.tmpfs?.length) {
    hostConfig.Tmpfs = Object.fromEntries(security.tmpfs.map((t) => [t.mountPath, `rw,noexec,nosuid,size=${parseBytes(t.size ?? '64Mi')}`]));
  }
  if (t.volumes?.length) hostConfig.Binds = t.volumes.map((v) => `${volumeName(plan.namespace, plan.service, v.name)}:${v.mountPath}${v.readOnly ? ':ro' : ''}`);
  if (t.resources?.memory !== undefined) hostConfig.Memory = parseBytes(t.resources.memory);
  if (t.resources?.cpus !== undefined) hostConfig.NanoCpus = Math.round(parseCpus(t.resources.cpus) * 1e9);
  if (plan.role === 'replica') {
    hostConfig.RestartPolicy = { Name: 'unless-stopped' };
    hostConfig.PortBindings = { [`${port}/tcp`]: [{ HostIp: plan.hostIp, HostPort: '' }] };
  } else {
    hostConfig.RestartPolicy = { Name: 'no' };
  }
  const user = security.runAsUser !== undefined ? `${security.runAsUser}${security.runAsGroup !== undefined ? `:${security.runAsGroup}` : ''}` : undefined;
  const cmd = plan.role === 'migrate' ? t.migrate?.command : t.args;
  const options: DockerCreateOptions = {
    name,
    Image: plan.imageId,
    Env: [...plan.env, `PORT=${port}`, `SLIPWAY_SERVICE=${plan.service}`, `SLIPWAY_RELEASE=${plan.release}`],
    Labels: ownerLabels(plan),
    StopTimeout: t.terminationGracePeriodSeconds ?? 30,
    HostConfig: hostConfig,
  };
  if (plan.role === 'replica') options.ExposedPorts = { [`${port}/tcp`]: {} };
  if (plan.role === 'migrate') {
    // The migration command replaces the image's entrypoint and command entirely.
    options.Entrypoint = [...(t.migrate?.command ?? [])];
    options.Cmd = [];
  } else {
    if (t.command?.length) options.Entrypoint = [...t.command];
    if (cmd?.length) options.Cmd = [...cmd];
  }
  if (user) options.User = user;
  return options;
}

/** The Docker volume behind a Service's named volume on a node (as the CRD documents). */
export const volumeName = (namespace: string, service: string, name: string) => `${namespace}-${service}-${name}`;
