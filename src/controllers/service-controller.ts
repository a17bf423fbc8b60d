// The service controller: turns each Service into Releases and containers. A template change makes
// a new Release; the release is rolled out step by step (artifact, candidate replicas, migration,
// health, traffic switch) with any failure rolling back to the active release; the active release
// is kept at the desired replica count on Ready, schedulable nodes. Every reconcile re-reads Docker
// and the API, so a reconcile interrupted at any point is finished by the next one.

import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import type { Node, Release, Secret, Service } from '../api/generated/crd-types.js';
import { parseBytes, parseCpus } from '../api/quantity.js';
import { DRAIN_ANNOTATION } from '../api/service-contract.js';
import { ApiRequestError, type ApiClient } from '../client/api-client.js';
import type { EventRecorder } from '../client/event-recorder.js';
import type { NodeHostAccess } from './node-hosts.js';
import type { Controller, ReconcileContext } from './runtime/controller.js';
import { getCondition, nowIso, setCondition, type Condition } from './runtime/conditions.js';
import { splitKey, type DeepReadonly, type Informer, type Stored } from './runtime/informer.js';
import type { ControllerMetrics } from './runtime/metrics.js';
import type { ReconcileOutcome } from './runtime/work-queue.js';
import { buildContainerOptions, LABEL_CLUSTER, type ContainerPlan, type ContainerRole } from './service/container-spec.js';
import { ensureContainer, ForeignContainerError, removeContainer, startContainer, stopContainer } from './service/docker-ops.js';
import { resolveEnv } from './service/env.js';
import { healthSettings, HealthCounts, nextProbeMs, probe } from './service/health.js';
import { ensureImageOnNode, inspectImage, isPermanentPullError, resolveImage, runsAsRoot } from './service/image.js';
import { stepMigration } from './service/migration.js';
import { eligibleNodes, placeReplicas, type NodeCandidate } from './service/placement.js';
import { isDone, stepOf, stepsForReactivation, TERMINAL_PHASES, withStep, type Phase, type Step, type StepName } from './service/release-status.js';
import { stableJson } from '../api/stable-json.js';
import { CHANGE_CAUSE_ANNOTATION, configHash, referencedSecrets, migrateContainerName, releaseName, replicaContainerName, RESTARTED_AT_ANNOTATION, templateOf, type ReleaseTemplate } from './service/template.js';
import { observeService, type ObservedContainer, type ServiceWorld } from './service/world.js';
import { registryAuth } from './service/registry-auth.js';
import { decide, mergeRuns, observeRun, runContainerName, type Run } from './service/scheduled-runs.js';
import { chooseBuildNode, findBuiltImage, gitCredentials, sourceKey, type BuildSpec } from './service/build-source.js';
import { buildKey, buildTag } from '../build/build-identity.js';
import type { BuildLogs } from '../build/build-log.js';
import type { Builder } from '../build/builder.js';
import { isFullSha, resolveRef } from '../build/git.js';
import { pushImage, repoDigestIn } from '../build/registry-push.js';

const API = '/apis/slipway.dev/v1alpha1';
const ARTIFACT_ATTEMPTS = 3;

export interface ServiceControllerOptions {
  client: ApiClient;
  releases: Informer<Release>;
  nodes: Informer<Node>;
  /** Followed for the resourceVersions of the Secrets templates read. */
  secrets: Informer<Secret>;
  hosts: NodeHostAccess;
  events: EventRecorder;
  metrics: ControllerMetrics;
  /** How long a node may be NotReady before its replicas are started elsewhere. */
  nodeLossGraceMs: number;
  /** Re-check period of a settled service (health of its replicas). */
  resyncMs: number;
  /** The time scheduled runs are due by; tests move it forward. Defaults to Date.now. */
  clock?: () => number;
  /** Runs builds of Services made from git (spec.build). */
  builder: Builder;
  buildLogs: BuildLogs;
  /** Asks for a reconcile of `namespace/name` (a build ended). */
  enqueue: (key: string) => void;
}

type RO<T extends Release | Service | Node> = DeepReadonly<Stored<T>>;

interface Ctx extends ReconcileContext {
  svc: RO<Service>;
  namespace: string;
  name: string;
  world: ServiceWorld;
  releases: RO<Release>[];
  /** Releases as last written by this reconcile. */
  latest: Map<string, RO<Release>>;
  /** Earliest time a later look is needed, ms from now. */
  requeue: number;
  /** Why spec.build.ref could not be resolved to a commit, if it could not. */
  sourceProblem?: string;
}

export class ServiceController implements Controller {
  readonly name = 'service';
  readonly concurrency = 8;
  private readonly health = new HealthCounts();

  constructor(private readonly o: ServiceControllerOptions) {}

  async reconcile(rc: ReconcileContext, key: string): Promise<ReconcileOutcome | void> {
    const { namespace, name } = splitKey(key);
    if (!namespace) return;
    const nodeNames = this.o.nodes.list().map((n) => n.metadata.name);
    // The Service and its Releases are read fresh, not from the informers: this controller's own
    // writes of a moment ago (the active release, a phase) must be seen, or a rollout could repeat.
    let svc: Stored<Service>;
    try {
      svc = await this.o.client.get<Stored<Service>>(`${API}/namespaces/${namespace}/services/${name}`);
    } catch (err) {
      if (err instanceof ApiRequestError && err.code === 404) return this.removeEverything(rc, namespace, name, nodeNames);
      throw err;
    }
    if (svc.metadata.deletionTimestamp) return this.removeEverything(rc, namespace, name, nodeNames);
    const listed = await this.o.client.list<Stored<Release>>(`${API}/namespaces/${namespace}/releases`, { labelSelector: `slipway.dev/service=${name}` });
    const releases = listed.items
      .filter((r) => r.spec?.service === name && (r.metadata.ownerReferences ?? []).some((o) => o.uid === svc.metadata.uid))
      .sort((a, b) => a.spec!.revision - b.spec!.revision);
    const portOf = (release: string) => (releases.find((r) => r.metadata.name === release)?.spec?.template as ReleaseTemplate | undefined)?.port ?? 3000;
    const world = await observeService(this.o.hosts, nodeNames, namespace, name, portOf);
    rememberUnreachable(world, svc.status?.endpoints ?? [], namespace, name);
    const ctx: Ctx = { ...rc, svc, namespace, name, world, releases, latest: new Map(), requeue: this.o.resyncMs };

    const template = templateOf(svc);
    const secretsHash = this.secretsHash(namespace, template);
    // A Service built from git: its release is made from the commit the ref names now.
    const commit = template.build ? await this.resolveSource(ctx, template.build) : undefined;
    const hashed = template.build && commit ? { ...template, build: { ...template.build, commit } } : template;
    const hash = configHash(hashed, svc.metadata.annotations?.[RESTARTED_AT_ANNOTATION], svc.spec?.rolloutOnSecretChange === false ? undefined : secretsHash);
    let active: RO<Release> | undefined = releases.find((r) => r.metadata.name === svc.status?.activeRelease);
    let desired: RO<Release> | undefined = [...releases].reverse().find((r) => r.spec?.configHash === hash);
    // A release made before Secret versions were tracked still matches its template: an upgrade of
    // Slipway must not roll out every app.
    if (!desired && active && !active.spec.secretsHash && active.spec.configHash === configHash(template, svc.metadata.annotations?.[RESTARTED_AT_ANNOTATION])) desired = active;
    if (!desired && !svc.spec?.paused && (!template.build || commit)) {
      desired = await this.createRelease(ctx, template, hash, secretsHash, active, commit);
      if (!desired) return { requeueAfterMs: 200 };
    }

    // Finish an interrupted traffic switch: the Service already points at the release.
    if (active && active.status?.phase === 'TrafficShifted') active = await this.completeRelease(ctx, active);

    const rolling = desired && desired.metadata.name !== active?.metadata.name && !svc.spec?.paused && !TERMINAL_PHASE_FAILED(desired) ? desired : undefined;
    await this.supersedeOthers(ctx, [active, rolling]);

    let candidate: RO<Release> | undefined = rolling;
    let shiftedFrom: string | null | undefined;
    if (candidate) {
      const outcome = await this.advanceRollout(ctx, candidate, active);
      if (outcome === 'shifted') {
        shiftedFrom = active?.metadata.name ?? null;
        active = ctx.latest.get(candidate.metadata.name) ?? candidate;
        candidate = undefined;
      } else if (outcome === 'failed') {
        candidate = undefined;
      }
    }
    const recreateInProgress = candidate && (svc.spec?.strategy?.type ?? 'BlueGreen') === 'Recreate';
    const activeState = active && !recreateInProgress ? await this.maintainReplicas(ctx, active, desiredReplicas(svc), true) : undefined;
    const schedule = svc.spec?.schedule && active ? await this.runSchedule(ctx, active) : undefined;
    await this.cleanupOldReleases(ctx, active, candidate, shiftedFrom !== undefined ? shiftedFrom : svc.status?.previousRelease);
    await this.writeSteadyStatus(ctx, active, candidate, desired, activeState, shiftedFrom, schedule);
    return { requeueAfterMs: Math.max(100, ctx.requeue) };
  }

  // ---------------------------------------------------------------- releases

  /** Hash of the resourceVersions of the Secrets the template reads (undefined when it reads none). */
  /**
   * Hash of the resourceVersions of the Secrets the template reads (undefined when it reads none),
   * from the Secret informer: a lagging cache only delays the rollout until its event arrives.
   */
  private secretsHash(namespace: string, template: ReleaseTemplate): string | undefined {
    const names = referencedSecrets(template);
    if (!names.length) return undefined;
    const versions = names.map((name) => `${name}@${this.o.secrets.get(`${namespace}/${name}`)?.metadata.resourceVersion ?? 'absent'}`);
    return createHash('sha256').update(versions.join('\n')).digest('hex').slice(0, 32);
  }


  /**
   * The commit spec.build.ref names, from status.build when it was resolved for the same git URL,
   * ref and restart (and the poll interval has not passed), else from the repository. Undefined,
   * with ctx.sourceProblem set, when it cannot be resolved and nothing was resolved before.
   */
  private async resolveSource(ctx: Ctx, build: DeepReadonly<BuildSpec>): Promise<string | undefined> {
    const known = ctx.svc.status?.build;
    const key = sourceKey(build, ctx.svc.metadata.annotations?.[RESTARTED_AT_ANNOTATION]);
    const pollMs = build.poll && !isFullSha(build.ref) ? parseDuration(build.poll) : undefined;
    const lastPoll = Date.parse(known?.lastPollTime ?? '') || 0;
    const current = known?.source === key ? known.commit : undefined;
    if (current && (pollMs === undefined || Date.now() - lastPoll < pollMs)) {
      if (pollMs !== undefined) ctx.requeue = Math.min(ctx.requeue, Math.max(100, lastPoll + pollMs - Date.now()));
      return current;
    }
    try {
      const commit = await resolveRef(build.git, build.ref, await gitCredentials(this.o.client, ctx.namespace, build));
      if (commit !== current) ctx.log.info({ ref: build.ref, commit }, 'git ref resolved');
      await this.patchServiceStatus(ctx, { build: { commit, source: key, lastPollTime: nowIso() } });
      if (pollMs !== undefined) ctx.requeue = Math.min(ctx.requeue, pollMs);
      return commit;
    } catch (err) {
      const problem = `cannot resolve spec.build.ref ${JSON.stringify(build.ref)}: ${(err as Error).message}`;
      if (!current) ctx.sourceProblem = problem;
      ctx.log.warn({ err: problem }, 'git ref not resolved');
      ctx.requeue = Math.min(ctx.requeue, Math.min(pollMs ?? 10_000, 10_000));
      // A failed poll keeps the commit already resolved for this ref.
      return current;
    }
  }

  private async createRelease(ctx: Ctx, template: ReleaseTemplate, hash: string, secretsHash: string | undefined, active: RO<Release> | undefined, commit?: string): Promise<RO<Release> | undefined> {
    const revision = Math.max(0, ctx.svc.status?.currentRevision ?? 0, ...ctx.releases.map((r) => r.spec!.revision)) + 1;
    const sameTemplate = active && stableJson(active.spec.template ?? {}) === stableJson(template);
    const annotated = ctx.svc.metadata.annotations?.[CHANGE_CAUSE_ANNOTATION];
    const cause =
      (annotated && annotated !== ctx.svc.status?.consumedChangeCause ? annotated : undefined) ??
      (revision === 1 ? 'Initial' : sameTemplate && active.spec.secretsHash !== secretsHash ? 'SecretChange' : sameTemplate ? 'RolloutRestart' : 'SpecChange');
    const release = {
      apiVersion: 'slipway.dev/v1alpha1',
      kind: 'Release',
      metadata: {
        name: releaseName(ctx.name, revision),
        namespace: ctx.namespace,
        labels: { 'slipway.dev/service': ctx.name },
        ownerReferences: [{ apiVersion: 'slipway.dev/v1alpha1', kind: 'Service', name: ctx.name, uid: ctx.svc.metadata.uid!, controller: true, blockOwnerDeletion: true }],
      },
      spec: {
        service: ctx.name,
        revision,
        ...(template.image ? { image: template.image } : {}),
        ...(template.build && commit ? { image: buildTag(ctx.namespace, ctx.name, commit, buildKey({ ...template.build, commit }), template.build.registry?.repository), source: { git: template.build.git, ref: template.build.ref, commit } } : {}),
        configHash: hash,
        ...(secretsHash ? { secretsHash } : {}),
        template,
        cause,
      },
    };
    try {
      const created = await this.o.client.create<Stored<Release>>(`${API}/namespaces/${ctx.namespace}/releases`, release);
      ctx.log.info({ release: created.metadata.name, revision }, 'release created');
      void this.o.events.record(ctx.svc as Service, 'Normal', 'ReleaseCreated', `Created release ${created.metadata.name} (revision ${revision}, ${cause})`);
      await this.patchServiceStatus(ctx, { currentRevision: revision });
      ctx.releases.push(created);
      return created;
    } catch (err) {
      // The informer has not seen a release created by an earlier run yet: wait for it.
      if (err instanceof ApiRequestError && err.code === 409) return undefined;
      throw err;
    }
  }

  /** Stops unfinished rollouts of releases that are neither active nor the one being rolled out. */
  private async supersedeOthers(ctx: Ctx, keep: Array<RO<Release> | undefined>): Promise<void> {
    const keepNames = new Set(keep.filter(Boolean).map((r) => r!.metadata.name));
    for (const release of ctx.releases) {
      const phase = release.status?.phase ?? 'Queued';
      if (keepNames.has(release.metadata.name) || TERMINAL_PHASES.has(phase)) continue;
      this.o.builder.cancel(release.metadata.uid!, 'a newer release superseded this one');
      await this.removeReleaseContainers(ctx, release.metadata.name);
      await this.patchReleaseStatus(ctx, release, { phase: 'Failed', reason: 'Superseded', message: 'a newer spec replaced this release before its rollout finished', completionTime: nowIso() });
      this.o.metrics.releaseOutcomes.inc({ result: 'superseded' });
    }
  }

  /** Runs the next step(s) of a rollout; returns how far it got. */
  private async advanceRollout(ctx: Ctx, release: RO<Release>, active: RO<Release> | undefined): Promise<'waiting' | 'shifted' | 'failed'> {
    let status = release.status ?? {};
    const template = (release.spec?.template ?? {}) as ReleaseTemplate;
    if (!status.startTime || status.phase === 'Completed' || status.phase === 'TrafficShifted') {
      // A fresh rollout, or an earlier release rolled out again (undo): keep its artifact and migration.
      status = { phase: 'Queued', startTime: nowIso(), steps: stepsForReactivation(status.steps as Step[]), replicas: desiredReplicas(ctx.svc), readyReplicas: 0 };
      await this.patchReleaseStatus(ctx, release, { ...status, reason: null, message: null, completionTime: null, keepWarmUntil: null, trafficShiftedTime: null });
      void this.o.events.record(release as Release, 'Normal', 'RolloutStarted', `Rolling out ${release.metadata.name}`);
    }
    const steps = () => status.steps as Step[] | undefined;
    /** Updates one step (and the phase, and any other status fields given) in one write. */
    const setStep = async (name: StepName, change: Partial<Step>, phase?: Phase, more: Partial<NonNullable<Release['status']>> = {}) => {
      status = { ...status, ...more, steps: withStep(steps(), name, change), ...(phase ? { phase } : {}) };
      await this.patchReleaseStatus(ctx, release, { ...more, steps: status.steps, ...(phase ? { phase } : {}) });
    };
    const fail = async (step: StepName, reason: string, message: string) => {
      await setStep(step, { result: 'Failed', message: message.slice(0, 4000) });
      await this.failRollout(ctx, release, reason, message);
      return 'failed' as const;
    };

    // The deadline counts from the end of the build (a build has its own timeout).
    const deadlineMs = (ctx.svc.spec?.strategy?.progressDeadlineSeconds ?? 600) * 1000;
    const current = STEP_NAMES_PENDING(steps(), !!template.build);
    const since = Math.max(Date.parse(status.startTime!), Date.parse(stepOf({ status } as Release, 'Build')?.endTime ?? '') || 0);
    if (current && current !== 'Build' && Date.now() - since > deadlineMs) {
      return fail(current, 'ProgressDeadlineExceeded', `the rollout did not finish within ${deadlineMs / 1000}s (stuck in step ${current})`);
    }

    // 1. Artifact: resolve the image once, to the ID every node must run.
    let imageId = stepOf({ status } as Release, 'Artifact')?.message?.match(/sha256:[a-f0-9]{64}/)?.[0];
    if ((!isDone(stepOf({ status } as Release, 'Artifact')) || !imageId) && template.build) {
      const built = await this.stepBuild(ctx, release, template.build, () => status, setStep, fail);
      if (built === 'waiting' || built === 'failed') return built;
      imageId = built;
    }
    if (!isDone(stepOf({ status } as Release, 'Artifact')) || !imageId) {
      if (!template.image) return fail('Artifact', 'NoImage', 'the release has neither an image nor a build');
      const nodes = this.readyNodesFor(ctx, template);
      const node = nodes[0];
      if (!node) {
        await setStep('Artifact', { result: 'Running', message: 'waiting for a Ready node' }, 'Queued');
        ctx.requeue = Math.min(ctx.requeue, 2000);
        return 'waiting';
      }
      try {
        // A node that already holds the image defines it; only when none does is it pulled.
        let holder = node;
        for (const n of nodes) if (await inspectImage(await this.o.hosts.docker(n), template.image).catch(() => undefined)) {
          holder = n;
          break;
        }
        const image = await resolveImage(await this.o.hosts.docker(holder), template.image, await registryAuth(this.o.client, ctx.namespace, template));
        if (template.security?.runAsNonRoot && runsAsRoot(image.user, template.security.runAsUser)) {
          return fail('Artifact', 'RunAsRoot', `security.runAsNonRoot is set but ${template.image} runs as root (its USER is ${image.user ? JSON.stringify(image.user) : 'unset'}); set security.runAsUser or use an image with a non-root USER`);
        }
        imageId = image.id;
        if (!release.spec?.imageDigest) await this.o.client.patch(`${API}/namespaces/${ctx.namespace}/releases/${release.metadata.name}`, { spec: { imageDigest: image.digest } });
        await setStep('Artifact', { result: 'Succeeded', message: `${template.image} is ${image.id}` }, 'ArtifactReady');
      } catch (err) {
        const attempts = (stepOf({ status } as Release, 'Artifact')?.attempts ?? 0) + 1;
        const message = `cannot get image ${template.image} on node ${node}: ${(err as Error).message}`;
        // Refused credentials or a missing image will not fix themselves: fail at once.
        if (attempts >= ARTIFACT_ATTEMPTS || isPermanentPullError((err as Error).message)) return fail('Artifact', 'ImageUnavailable', message);
        await setStep('Artifact', { result: 'Running', attempts, message }, 'Queued');
        ctx.requeue = Math.min(ctx.requeue, 1000 * 2 ** attempts);
        return 'waiting';
      }
    }

    // 2. Candidate replicas beside the active ones (Recreate: the active ones are stopped first).
    const replicas = desiredReplicas(ctx.svc);
    if ((ctx.svc.spec?.strategy?.type ?? 'BlueGreen') === 'Recreate' && active) {
      await this.stopReleaseContainers(ctx, active.metadata.name, template.terminationGracePeriodSeconds ?? 30);
    }
    if (!stepOf({ status } as Release, 'StartCandidate')) await setStep('StartCandidate', { result: 'Running' }, 'ArtifactReady');
    let state: ReplicaState;
    try {
      state = await this.maintainReplicas(ctx, release, replicas, false, imageId);
    } catch (err) {
      if (err instanceof ForeignContainerError) return fail('StartCandidate', 'ContainerNameTaken', err.message);
      await setStep('StartCandidate', { result: 'Running', message: (err as Error).message });
      throw err;
    }
    if (state.placed < replicas) {
      await setStep('StartCandidate', { result: 'Running', message: `${state.placed}/${replicas} replicas placed; ${state.placementIssue ?? ''}`.trim() });
      ctx.requeue = Math.min(ctx.requeue, 2000);
      return 'waiting';
    }
    if (!isDone(stepOf({ status } as Release, 'StartCandidate'))) {
      const message = ctx.svc.spec?.schedule ? 'scheduled service: its runs start on schedule' : `${replicas} replicas started`;
      await setStep('StartCandidate', { result: ctx.svc.spec?.schedule ? 'Skipped' : 'Succeeded', message }, 'CandidateStarted');
    }

    // 3. Migration: once per release, from the new image, before any traffic reaches it.
    if (!isDone(stepOf({ status } as Release, 'Migrate'))) {
      const migrate = template.migrate;
      if (!migrate?.command?.length) {
        await setStep('Migrate', { result: 'Skipped', message: 'no migrate command' });
      } else {
        const step = stepOf({ status } as Release, 'Migrate');
        if (!step) await setStep('Migrate', { result: 'Running', attempts: 1 }, 'Migrating');
        const outcome = await this.runMigration(ctx, release, template, imageId, state.nodes[0]);
        if (outcome.state === 'running') {
          ctx.requeue = Math.min(ctx.requeue, 500);
          return 'waiting';
        }
        if (outcome.state === 'failed') {
          const attempts = stepOf({ status } as Release, 'Migrate')?.attempts ?? 1;
          if (attempts <= (migrate.retries ?? 0)) {
            await setStep('Migrate', { result: 'Running', attempts: attempts + 1, message: `attempt ${attempts} failed: ${outcome.message}` });
            ctx.requeue = Math.min(ctx.requeue, 500);
            return 'waiting';
          }
          return fail('Migrate', 'MigrationFailed', outcome.message);
        }
        await setStep('Migrate', { result: 'Succeeded', message: 'migration exited with code 0' });
        void this.o.events.record(release as Release, 'Normal', 'MigrationSucceeded', `Migration of ${release.metadata.name} succeeded`);
      }
    }

    // 4. Health: every candidate replica must pass its check successThreshold times in a row.
    if (!stepOf({ status } as Release, 'HealthCheck')) await setStep('HealthCheck', { result: 'Running' }, 'HealthValidating');
    if (state.failing) return fail('HealthCheck', 'HealthCheckFailed', state.failing);
    if (state.ready < replicas) {
      const message = `${state.ready}/${replicas} replicas healthy${state.lastProblem ? `; ${state.lastProblem}` : ''}`;
      if (stepOf({ status } as Release, 'HealthCheck')?.message !== message) await setStep('HealthCheck', { result: 'Running', message });
      await this.patchReleaseStatus(ctx, release, { readyReplicas: state.ready });
      ctx.requeue = Math.min(ctx.requeue, state.probeIntervalMs);
      return 'waiting';
    }
    await setStep('HealthCheck', ctx.svc.spec?.schedule ? { result: 'Skipped', message: 'scheduled service: no replicas to check' } : { result: 'Succeeded', message: `${state.ready}/${replicas} replicas healthy` });

    // 5. Switch traffic: the Service's activeRelease is the single source of truth for routing.
    await setStep('ShiftTraffic', { result: 'Running' }, 'TrafficShifted');
    await this.patchReleaseStatus(ctx, release, { trafficShiftedTime: nowIso(), readyReplicas: state.ready });
    // The Service's activeRelease moves in the status write that ends this reconcile, together with
    // its conditions, so a watcher never sees the switch without seeing how the rollout ended.
    if (active) {
      const keepFor = parseDuration(ctx.svc.spec?.strategy?.blueGreen?.keepOldFor ?? '10m');
      await this.patchReleaseStatus(ctx, active, { keepWarmUntil: nowIso(Date.now() + keepFor), conditions: setCondition(active.status?.conditions as Condition[], { type: 'Active', status: 'False', reason: 'Replaced', message: `traffic moved to ${release.metadata.name}` }) });
    }
    await this.completeRelease(ctx, { ...release, status } as RO<Release>);
    void this.o.events.record(ctx.svc as Service, 'Normal', 'TrafficShifted', `Release ${release.metadata.name} is now active`);
    if (active && active.spec.revision > release.spec.revision) {
      void this.o.events.record(ctx.svc as Service, 'Normal', 'RolledBack', `Rolled back from ${active.metadata.name} to ${release.metadata.name} (revision ${release.spec.revision})`);
      this.o.metrics.releaseOutcomes.inc({ result: 'rolled_back' });
    }
    return 'shifted';
  }

  /**
   * The Build step: an image already built for the release's commit and build configuration (on
   * any node) is used as it is; otherwise a build is started on the build node and followed until
   * it ends. Returns the image ID once the artifact is ready.
   */
  private async stepBuild(
    ctx: Ctx,
    release: RO<Release>,
    build: DeepReadonly<BuildSpec>,
    status: () => RO<Release>['status'],
    setStep: (name: StepName, change: Partial<Step>, phase?: Phase, more?: Partial<NonNullable<Release['status']>>) => Promise<void>,
    fail: (step: StepName, reason: string, message: string) => Promise<'failed'>,
  ): Promise<string | 'waiting' | 'failed'> {
    const commit = release.spec.source?.commit;
    if (!commit) return fail('Build', 'NoCommit', 'the release records no commit to build');
    const key = buildKey({ ...build, commit } as Parameters<typeof buildKey>[0]);
    const tag = release.spec.image ?? buildTag(ctx.namespace, ctx.name, commit, key, build.registry?.repository);
    const pushAuth = async () => (build.registry?.secretRef ? await registryAuth(this.o.client, ctx.namespace, { image: tag, imagePullSecretRef: build.registry.secretRef }) : undefined);
    const uid = release.metadata.uid!;
    const job = this.o.builder.state(uid);
    if (job?.state === 'running') {
      ctx.requeue = Math.min(ctx.requeue, 5000);
      return 'waiting';
    }
    const nodes: Array<{ node: string; docker: Docker }> = [];
    for (const node of this.readyNodesFor(ctx, {})) {
      const docker = await this.o.hosts.docker(node).catch(() => undefined);
      if (docker) nodes.push({ node, docker });
    }
    const found = job?.state === 'succeeded' ? { node: job.node, id: job.imageId } : await findBuiltImage(nodes, key, this.o.hosts.cluster);
    if (!found && !job && this.o.builder.building(key)) {
      // Another Release builds the same commit and configuration: its image will be reused.
      await setStep('Build', { result: 'Running', message: `waiting for the build of commit ${commit.slice(0, 12)} by another release` }, 'Building');
      ctx.requeue = Math.min(ctx.requeue, 1000);
      return 'waiting';
    }
    if (found) {
      const reused = !job && !status()?.build?.startTime;
      // With a registry, the digest there is what nodes pull: pushed by the build, or now for an image built earlier.
      let digest = found.id;
      if (build.registry) {
        const docker = nodes.find((n) => n.node === found.node)?.docker ?? (await this.o.hosts.docker(found.node));
        const info = await inspectImage(docker, found.id);
        try {
          digest = (job?.state === 'succeeded' ? job.digest : undefined) ?? (info && repoDigestIn(info, build.registry.repository)) ?? (await pushImage(docker, found.id, tag, await pushAuth()));
        } catch (err) {
          this.o.builder.forget(uid);
          return fail('Build', 'PushFailed', (err as Error).message);
        }
      }
      this.o.builder.forget(uid);
      if (!release.spec.imageDigest) await this.o.client.patch(`${API}/namespaces/${ctx.namespace}/releases/${release.metadata.name}`, { spec: { imageDigest: digest } });
      const tail = reused ? '' : await this.o.buildLogs.tail(uid, 5);
      const built = { ...(status()?.build ?? {}), node: status()?.build?.node ?? found.node, completionTime: nowIso(), reused };
      await setStep('Build', { result: 'Succeeded', message: reused ? `reused ${found.id}, already built for commit ${commit.slice(0, 12)} with the same build configuration` : `built commit ${commit.slice(0, 12)} on node ${found.node}${tail ? `\n${tail}` : ''}` }, undefined, { build: built });
      await setStep('Artifact', { result: 'Succeeded', message: build.registry ? `${found.id}, pushed as ${build.registry.repository}@${digest}` : `${tag} is ${found.id}` }, 'ArtifactReady');
      return found.id;
    }
    if (job?.state === 'failed') {
      this.o.builder.forget(uid);
      await setStep('Build', { result: 'Failed' }, undefined, { build: { ...(status()?.build ?? {}), completionTime: nowIso() } });
      return fail('Build', job.reason, job.message);
    }
    const node = chooseBuildNode(this.o.nodes.list(), build.nodeSelector, ctx.world.unreachable);
    if (!node) {
      await setStep('Build', { result: 'Running', message: 'waiting for a Ready node to build on' }, 'Queued');
      ctx.requeue = Math.min(ctx.requeue, 2000);
      return 'waiting';
    }
    let credentials;
    let push;
    try {
      credentials = await gitCredentials(this.o.client, ctx.namespace, build);
      push = build.registry ? { push: { auth: await pushAuth() } } : {};
    } catch (err) {
      return fail('Build', 'BuildFailed', (err as Error).message);
    }
    this.o.builder.start({
      id: uid,
      owner: `${ctx.namespace}/${ctx.name}`,
      node,
      docker: nodes.find((n) => n.node === node)?.docker ?? (await this.o.hosts.docker(node)),
      git: build.git,
      commit,
      ...(build.context ? { context: build.context } : {}),
      ...(build.dockerfile ? { dockerfile: build.dockerfile } : {}),
      ...(build.buildArgs ? { buildArgs: { ...build.buildArgs } } : {}),
      ...(build.target ? { target: build.target } : {}),
      credentials,
      key,
      tag,
      labels: { [LABEL_CLUSTER]: this.o.hosts.cluster },
      timeoutMs: (build.timeoutSeconds ?? 1800) * 1000,
      ...push,
      onDone: () => this.o.enqueue(`${ctx.namespace}/${ctx.name}`),
    });
    await setStep('Build', { result: 'Running', message: `building commit ${commit.slice(0, 12)} on node ${node} (slipctl logs release/${release.metadata.name} -f)` }, 'Building', { build: { node, startTime: nowIso(), log: this.o.buildLogs.pathOf(uid) } });
    ctx.log.info({ release: release.metadata.name, node, commit }, 'build started');
    ctx.requeue = Math.min(ctx.requeue, 5000);
    return 'waiting';
  }

  private async completeRelease(ctx: Ctx, release: RO<Release>): Promise<RO<Release>> {
    const status = release.status ?? {};
    const steps = withStep(status.steps as Step[], 'ShiftTraffic', { result: 'Succeeded' });
    let conditions = setCondition(status.conditions as Condition[], { type: 'Active', status: 'True', reason: 'TrafficShifted' });
    conditions = setCondition(conditions, { type: 'Succeeded', status: 'True', reason: 'RolloutComplete' });
    await this.patchReleaseStatus(ctx, release, { phase: 'Completed', steps, conditions, completionTime: nowIso(), reason: null, message: null });
    const seconds = (Date.now() - Date.parse(status.startTime ?? nowIso())) / 1000;
    this.o.metrics.releaseOutcomes.inc({ result: 'succeeded' });
    this.o.metrics.releaseDuration.observe({ result: 'succeeded' }, seconds);
    ctx.log.info({ release: release.metadata.name, seconds }, 'rollout complete');
    return { ...release, status: { ...status, phase: 'Completed', steps } } as RO<Release>;
  }

  private async failRollout(ctx: Ctx, release: RO<Release>, reason: string, message: string): Promise<void> {
    await this.removeReleaseContainers(ctx, release.metadata.name);
    const conditions = setCondition(release.status?.conditions as Condition[], { type: 'Succeeded', status: 'False', reason, message: message.slice(0, 4000) });
    await this.patchReleaseStatus(ctx, release, { phase: 'Failed', reason, message: message.slice(0, 4000), completionTime: nowIso(), conditions });
    const seconds = (Date.now() - Date.parse(release.status?.startTime ?? nowIso())) / 1000;
    this.o.metrics.releaseOutcomes.inc({ result: 'failed' });
    this.o.metrics.releaseDuration.observe({ result: 'failed' }, seconds);
    ctx.log.warn({ release: release.metadata.name, reason }, 'rollout failed; rolled back');
    void this.o.events.record(ctx.svc as Service, 'Warning', 'RolloutFailed', `Release ${release.metadata.name} failed (${reason}): ${message}`.slice(0, 1000));
    void this.o.events.record(release as Release, 'Warning', reason, message.slice(0, 1000));
  }

  private async runMigration(ctx: Ctx, release: RO<Release>, template: ReleaseTemplate, imageId: string, node: string | undefined) {
    if (!node) return { state: 'failed' as const, message: 'no node to run the migration on' };
    const docker = await this.o.hosts.docker(node);
    const plan = await this.plan(ctx, release, template, imageId, node, 'migrate');
    const options = buildContainerOptions(migrateContainerName(ctx.namespace, ctx.name, release.spec!.revision), plan);
    return stepMigration(docker, options, (template.migrate?.timeoutSeconds ?? 600) * 1000);
  }

  // ---------------------------------------------------------------- replicas

  private async plan(ctx: Ctx, release: RO<Release>, template: ReleaseTemplate, imageId: string, node: string, role: ContainerRole, replica?: number): Promise<ContainerPlan> {
    const nodeObj = this.o.nodes.get(node);
    return {
      cluster: this.o.hosts.cluster,
      namespace: ctx.namespace,
      service: ctx.name,
      release: release.metadata.name,
      configHash: release.spec?.configHash ?? '',
      imageId,
      template,
      env: await resolveEnv(this.o.client, ctx.namespace, template),
      role,
      ...(replica !== undefined ? { replica } : {}),
      hostIp: nodeAddress(nodeObj),
    };
  }

  /**
   * Keeps `count` replicas of `release` running: creates missing ones on placed nodes, restarts
   * stopped ones, replaces replicas on lost or draining nodes, removes extras, and probes health.
   */
  private async maintainReplicas(ctx: Ctx, release: RO<Release>, count: number, isActive: boolean, knownImageId?: string): Promise<ReplicaState> {
    const template = (release.spec?.template ?? {}) as ReleaseTemplate;
    const imageId = knownImageId ?? stepOf(release, 'Artifact')?.message?.match(/sha256:[a-f0-9]{64}/)?.[0] ?? release.spec?.imageDigest ?? '';
    const mine = ctx.world.containers.filter((c) => c.release === release.metadata.name && c.role === 'replica');
    const lost = (node: string) => this.isLost(node);
    const draining = (node: string) => !!this.o.nodes.get(node)?.metadata.annotations?.[DRAIN_ANNOTATION];
    const settings = healthSettings(template.healthCheck);
    const state: ReplicaState = { placed: 0, ready: 0, endpoints: [], nodes: [], probeIntervalMs: settings?.intervalMs ?? 1000 };
    const candidates = this.nodeCandidates(ctx, mine);
    const request = requestOf(template);

    const byIndex = new Map<number, ObservedContainer[]>();
    for (const c of mine) {
      if (c.replica >= count || c.replica < 0) {
        if (!lost(c.node)) await this.remove(ctx, c, template);
        continue;
      }
      byIndex.set(c.replica, [...(byIndex.get(c.replica) ?? []), c]);
    }
    // Decide every index first (placement is sequential so it sees its own choices), then create,
    // start and probe all replicas at once: a 2-replica rollout costs one container start, not two.
    const work: Array<{ index: number; keep?: ObservedContainer; createOn?: string }> = [];
    for (let index = 0; index < count; index++) {
      const all = byIndex.get(index) ?? [];
      // A replica on a node that stopped answering is kept (not ready) until the node counts as lost.
      const usable = all.filter((c) => !lost(c.node));
      const settled = usable.filter((c) => !draining(c.node));
      if (settled.length) {
        // Prefer a replica that passes its checks; remove duplicates (e.g. after a lost node returns).
        settled.sort((a, b) => Number(this.isReady(b)) - Number(this.isReady(a)) || b.created - a.created);
        const keep = settled[0]!;
        for (const extra of settled.slice(1)) await this.remove(ctx, extra, template);
        const drainingCopies = usable.filter((c) => draining(c.node));
        if (drainingCopies.length && this.isReady(keep)) for (const old of drainingCopies) await this.remove(ctx, old, template);
        work.push({ index, keep });
        continue;
      }
      const node = placeReplicas(candidates, template.nodeSelector, request, 1)[0];
      if (node) {
        const candidate = candidates.find((c) => c.name === node)!;
        candidate.replicasOfService++;
        candidate.allocatedCpus += request.cpus;
        candidate.allocatedMemoryBytes += request.memoryBytes;
        work.push({ index, createOn: node });
      } else if (usable.length) {
        work.push({ index, keep: usable[0] }); // draining with nowhere to go: keep serving from the draining node
        state.placementIssue = `no other node can take replica ${index}`;
      } else {
        const { skipped } = eligibleNodes(candidates, template.nodeSelector, request);
        state.placementIssue = `no eligible node for replica ${index}: ${skipped.join('; ') || 'no nodes'}`;
      }
    }
    const source = work.some((w) => w.createOn) ? await this.artifactSource(ctx, release, imageId) : undefined;
    const kept = await Promise.all(
      work.map(async ({ index, keep, createOn }) => {
        if (createOn) {
          const plan = await this.plan(ctx, release, template, imageId, createOn, 'replica', index);
          const docker = await this.o.hosts.docker(createOn);
          await ensureImageOnNode(docker, imageId, source!.ref, await this.imageSources(ctx, createOn), source!.auth);
          const name = replicaContainerName(ctx.namespace, ctx.name, release.spec!.revision, index);
          const id = await ensureContainer(docker, buildContainerOptions(name, plan));
          ctx.log.info({ node: createOn, container: name, replica: index }, 'replica started');
          keep = { node: createOn, id, name, release: release.metadata.name, role: 'replica', replica: index, state: 'running', running: true, created: Date.now() / 1000, labels: {} };
          ctx.world.containers.push(keep);
          ctx.requeue = Math.min(ctx.requeue, 300);
        } else if (keep!.unknown) {
          state.lastProblem = `${keep!.name}: node ${keep!.node} does not answer (${ctx.world.unreachable.get(keep!.node) ?? 'unreachable'})`;
          if (keep!.hostPort) state.endpoints.push({ node: keep!.node, containerName: keep!.name, host: nodeAddress(this.o.nodes.get(keep!.node)), port: keep!.hostPort, ready: false });
          return keep!;
        } else if (!keep!.running) {
          await startContainer(await this.o.hosts.docker(keep!.node), keep!.id);
          keep = { ...keep!, running: true };
          delete keep.hostPort; // a restarted container may publish on another port
          ctx.requeue = Math.min(ctx.requeue, 300);
        }
        await this.probeReplica(ctx, keep!, template, settings, state, isActive);
        return keep!;
      }),
    );
    state.placed = kept.length;
    state.nodes = kept.map((c) => c.node);
    state.endpoints.sort((a, b) => (a.containerName < b.containerName ? -1 : 1));
    return state;
  }

  private async probeReplica(ctx: Ctx, c: ObservedContainer, template: ReleaseTemplate, settings: ReturnType<typeof healthSettings>, state: ReplicaState, isActive: boolean): Promise<void> {
    // The container list already says whether it runs and on which port; inspect only a container
    // just created or started here, or when the start period needs its start time.
    let info: Docker.ContainerInspectInfo | undefined;
    if (!c.running || !c.hostPort || settings?.startPeriodMs) {
      try {
        info = await (await this.o.hosts.docker(c.node)).getContainer(c.id).inspect();
      } catch {
        info = undefined;
      }
    }
    const binding = info?.NetworkSettings?.Ports?.[`${template.port ?? 3000}/tcp`]?.[0];
    const hostPort = info ? (binding?.HostPort ? Number(binding.HostPort) : undefined) : c.hostPort;
    const host = nodeAddress(this.o.nodes.get(c.node));
    const running = info ? !!info.State?.Running : c.running;
    let ready = false;
    const intervalMs = settings?.intervalMs ?? 1000;
    if (!running || !hostPort) {
      this.health.record(c.id, { ok: false, detail: `container ${c.name} is ${info?.State?.Status ?? c.state}` }, intervalMs);
    } else if (!settings) {
      ready = true;
      this.health.record(c.id, { ok: true, detail: 'running (no health check)' });
    } else {
      const result = await probe(host, hostPort, settings.path, settings.timeoutMs);
      const startedMs = Date.parse(info?.State.StartedAt ?? '');
      const inStartPeriod = Number.isFinite(startedMs) && Date.now() - startedMs < settings.startPeriodMs;
      const count = inStartPeriod && !result.ok ? this.health.get(c.id) ?? { successes: 0, failures: 0, lastDetail: result.detail } : this.health.record(c.id, result, intervalMs);
      ready = count.successes >= (isActive ? 1 : settings.successThreshold);
      if (!result.ok) state.lastProblem = `${c.name}: ${result.detail}`;
      if (!isActive && count.failures >= settings.failureThreshold) state.failing = `replica ${c.name} failed its health check ${count.failures} times in a row: ${count.lastDetail}`;
    }
    if (ready) state.ready++;
    else ctx.requeue = Math.min(ctx.requeue, nextProbeMs(this.health.get(c.id), intervalMs));
    if (hostPort) state.endpoints.push({ node: c.node, containerName: c.name, host, port: hostPort, ready });
  }

  private isReady(c: ObservedContainer): boolean {
    return c.running && (this.health.get(c.id)?.successes ?? 0) > 0;
  }

  private async remove(ctx: Ctx, c: ObservedContainer, template: ReleaseTemplate): Promise<void> {
    if (c.unknown) return; // its node does not answer: removed when it does

    await removeContainer(await this.o.hosts.docker(c.node), c.id, template.terminationGracePeriodSeconds ?? 30);
    this.health.forget(c.id);
    ctx.log.info({ node: c.node, container: c.name }, 'container removed');
  }

  private async removeReleaseContainers(ctx: Ctx, release: string): Promise<void> {
    for (const c of ctx.world.containers) {
      if (c.release !== release || this.isLost(c.node) || ctx.world.unreachable.has(c.node)) continue;
      await removeContainer(await this.o.hosts.docker(c.node), c.id, 5);
      this.health.forget(c.id);
    }
  }

  private async stopReleaseContainers(ctx: Ctx, release: string, grace: number): Promise<void> {
    for (const c of ctx.world.containers) {
      if (c.release !== release || !c.running || ctx.world.unreachable.has(c.node)) continue;
      await stopContainer(await this.o.hosts.docker(c.node), c.id, grace);
      c.running = false;
    }
  }

  /** Removes containers of releases that are neither active, rolling out, nor kept warm, and prunes old Releases. */
  private async cleanupOldReleases(ctx: Ctx, active: RO<Release> | undefined, candidate: RO<Release> | undefined, previous: string | null | undefined): Promise<void> {
    const keep = new Set([active?.metadata.name, candidate?.metadata.name].filter(Boolean));
    const byName = new Map(ctx.releases.map((r) => [r.metadata.name, r]));
    for (const c of ctx.world.containers) {
      if (keep.has(c.release) || c.role === 'run' || ctx.world.unreachable.has(c.node)) continue;
      const release = ctx.latest.get(c.release) ?? byName.get(c.release);
      const warmUntil = release?.status?.keepWarmUntil ? Date.parse(release.status.keepWarmUntil) : 0;
      if (release && c.release === previous && warmUntil > Date.now()) {
        ctx.requeue = Math.min(ctx.requeue, warmUntil - Date.now() + 50);
        continue;
      }
      if (c.role === 'migrate' && release && !TERMINAL_PHASES.has(release.status?.phase ?? 'Queued')) continue;
      await removeContainer(await this.o.hosts.docker(c.node), c.id, 10);
      this.health.forget(c.id);
      ctx.log.info({ node: c.node, container: c.name }, 'removed container of an inactive release');
    }
    const limit = ctx.svc.spec?.revisionHistoryLimit ?? 10;
    const protectedNames = new Set([...keep, previous ?? undefined]);
    const prunable = ctx.releases.filter((r) => !protectedNames.has(r.metadata.name) && TERMINAL_PHASES.has(r.status?.phase ?? 'Queued'));
    const excess = ctx.releases.length - Math.max(limit, protectedNames.size);
    for (const release of prunable.slice(0, Math.max(0, excess))) {
      if (ctx.world.containers.some((c) => c.release === release.metadata.name)) continue;
      try {
        await this.o.client.delete(`${API}/namespaces/${ctx.namespace}/releases/${release.metadata.name}`);
      } catch (err) {
        if (!(err instanceof ApiRequestError && err.code === 404)) throw err;
      }
      if (release.spec.source) await this.o.buildLogs.remove(release.metadata.uid!);
    }
  }

  private async removeEverything(ctx: ReconcileContext, namespace: string, name: string, nodes: string[]): Promise<void> {
    this.o.builder.cancelOwner(`${namespace}/${name}`, 'the Service was deleted');
    const world = await observeService(this.o.hosts, nodes, namespace, name, () => undefined);
    for (const c of world.containers) {
      await removeContainer(await this.o.hosts.docker(c.node), c.id, 10);
      this.health.forget(c.id);
    }
    if (world.containers.length) ctx.log.info({ removed: world.containers.length }, 'removed the containers of a deleted service');
  }

  // ---------------------------------------------------------------- nodes

  private nodeCandidates(ctx: Ctx, mine: ObservedContainer[]): NodeCandidate[] {
    return this.o.nodes.list().map((node) => {
      const ready = getCondition(node.status?.conditions as Condition[], 'Ready')?.status === 'True' && !ctx.world.unreachable.has(node.metadata.name);
      const capacity = node.spec.capacity ?? {};
      const memory = capacity.memory !== undefined ? parseBytes(capacity.memory) : node.status?.capacity?.memoryBytes;
      return {
        name: node.metadata.name,
        labels: node.metadata.labels ?? {},
        ready,
        unschedulable: !!node.spec.unschedulable,
        ...(capacity.cpus ?? node.status?.capacity?.cpus) !== undefined ? { cpus: capacity.cpus ?? node.status!.capacity!.cpus! } : {},
        ...(memory !== undefined ? { memoryBytes: memory } : {}),
        allocatedCpus: node.status?.allocated?.cpus ?? 0,
        allocatedMemoryBytes: node.status?.allocated?.memoryBytes ?? 0,
        replicasOfService: mine.filter((c) => c.node === node.metadata.name && !this.isLost(c.node)).length,
      };
    });
  }

  /** NotReady for longer than the grace period: its replicas are replaced elsewhere. */
  private isLost(nodeName: string): boolean {
    const node = this.o.nodes.get(nodeName);
    if (!node) return true;
    const ready = getCondition(node.status?.conditions as Condition[], 'Ready');
    if (!ready || ready.status === 'True') return false;
    const since = Date.parse(ready.lastTransitionTime ?? '');
    return !Number.isFinite(since) || Date.now() - since > this.o.nodeLossGraceMs;
  }

  /** Ready nodes, those the template's selector accepts first. */
  private readyNodesFor(ctx: Ctx, template: ReleaseTemplate): string[] {
    const ready = this.nodeCandidates(ctx, []).filter((n) => n.ready);
    const { eligible } = eligibleNodes(ready, template.nodeSelector, { cpus: 0, memoryBytes: 0 });
    return [...new Set([...eligible, ...ready].map((n) => n.name))];
  }

  /**
   * Where a node gets the release's image: the Service's image reference and pull secret; for a
   * build pushed to a registry, the repository at the recorded digest with the registry secret;
   * for a build without one, only other nodes (the reference is the image ID itself).
   */
  private async artifactSource(ctx: Ctx, given: RO<Release>, imageId: string): Promise<{ ref: string; auth?: object }> {
    // The digest may have been recorded earlier in this reconcile.
    const release = ctx.latest.get(given.metadata.name) ?? given;
    const template = (release.spec?.template ?? {}) as ReleaseTemplate;
    const registry = template.build?.registry;
    if (template.build && registry && release.spec.imageDigest && release.spec.imageDigest !== imageId) {
      const ref = `${registry.repository}@${release.spec.imageDigest}`;
      const auth = registry.secretRef ? await registryAuth(this.o.client, ctx.namespace, { image: ref, imagePullSecretRef: registry.secretRef }) : undefined;
      return { ref, ...(auth ? { auth } : {}) };
    }
    if (!template.image) return { ref: imageId };
    const auth = await registryAuth(this.o.client, ctx.namespace, template);
    return { ref: template.image, ...(auth ? { auth } : {}) };
  }

  private async imageSources(ctx: Ctx, except: string): Promise<Docker[]> {
    const sources: Docker[] = [];
    for (const node of this.o.nodes.list()) {
      const n = node.metadata.name;
      if (n === except || ctx.world.unreachable.has(n) || getCondition(node.status?.conditions as Condition[], 'Ready')?.status !== 'True') continue;
      try {
        sources.push(await this.o.hosts.docker(n));
      } catch {
        /* an unreachable node cannot be a source */
      }
    }
    return sources;
  }

  // ---------------------------------------------------------------- scheduled runs

  /** Starts the run due now (if any), records finished runs and prunes old run containers. */
  private async runSchedule(ctx: Ctx, active: RO<Release>): Promise<ScheduleStatus> {
    const spec = ctx.svc.spec!.schedule!;
    const previous = (ctx.svc.status?.schedule ?? {}) as ScheduleStatus;
    const now = new Date(this.o.clock?.() ?? Date.now());
    const decision = decide(spec, previous.lastScheduleTime, ctx.svc.metadata.creationTimestamp ?? nowIso(), now);
    const runs = ctx.world.containers.filter((c) => c.role === 'run' && !ctx.world.unreachable.has(c.node));
    const observed: Run[] = [];
    for (const c of runs) observed.push(await observeRun(await this.o.hosts.docker(c.node), c));
    let lastScheduleTime = previous.lastScheduleTime;
    if (decision.due) {
      const running = observed.filter((r) => r.result === 'Running');
      const policy = spec.concurrencyPolicy ?? 'Forbid';
      const slot = nowIso(decision.due.getTime());
      const name = runContainerName(ctx.namespace, ctx.name, decision.due);
      if (runs.some((c) => c.name === name)) {
        // This slot already has its run (an earlier reconcile started it): never run a slot twice.
      } else if (running.length && policy === 'Forbid') {
        observed.push({ startTime: slot, result: 'Skipped', release: active.metadata.name });
        void this.o.events.record(ctx.svc as Service, 'Warning', 'RunSkipped', `Skipped the run at ${slot}: the previous run is still running (concurrencyPolicy Forbid)`);
      } else {
        if (policy === 'Replace') for (const c of runs.filter((c) => running.some((r) => r.containerName === c.name))) await removeContainer(await this.o.hosts.docker(c.node), c.id, 10);
        const template = (active.spec.template ?? {}) as ReleaseTemplate;
        const node = this.readyNodesFor(ctx, template)[0];
        if (!node) throw new Error(`no Ready node can run the scheduled run at ${slot}`);
        const imageId = stepOf(active, 'Artifact')?.message?.match(/sha256:[a-f0-9]{64}/)?.[0] ?? active.spec.imageDigest ?? '';
        const docker = await this.o.hosts.docker(node);
        const source = await this.artifactSource(ctx, active, imageId);
        await ensureImageOnNode(docker, imageId, source.ref, await this.imageSources(ctx, node), source.auth);
        const plan = { ...(await this.plan(ctx, active, template, imageId, node, 'run')), scheduledTime: slot };
        await ensureContainer(docker, buildContainerOptions(name, plan));
        observed.push({ containerName: name, node, release: active.metadata.name, startTime: slot, result: 'Running' });
        ctx.log.info({ node, container: name, slot }, 'scheduled run started');
      }
      lastScheduleTime = slot;
    }
    const limit = spec.historyLimit ?? 5;
    const merged = mergeRuns((previous.runs ?? []) as Run[], observed, limit);
    // Finished run containers beyond the history are removed, oldest first.
    const kept = new Set(merged.map((r) => r.containerName));
    for (const c of runs) {
      const run = observed.find((r) => r.containerName === c.name);
      if (!kept.has(c.name) && run?.result !== 'Running') await removeContainer(await this.o.hosts.docker(c.node), c.id, 0);
    }
    if (merged.some((r) => r.result === 'Running')) ctx.requeue = Math.min(ctx.requeue, 1000);
    ctx.requeue = Math.min(ctx.requeue, Math.max(50, decision.next.getTime() - now.getTime() + 50));
    const lastSuccess = merged.filter((r) => r.result === 'Succeeded').at(-1)?.completionTime ?? previous.lastSuccessfulTime;
    return {
      ...(lastScheduleTime ? { lastScheduleTime } : {}),
      ...(lastSuccess ? { lastSuccessfulTime: lastSuccess } : {}),
      nextScheduleTime: nowIso(decision.next.getTime()),
      runs: merged,
    };
  }

  // ---------------------------------------------------------------- status

  private async writeSteadyStatus(ctx: Ctx, active: RO<Release> | undefined, candidate: RO<Release> | undefined, desired: RO<Release> | undefined, state: ReplicaState | undefined, shiftedFrom: string | null | undefined, schedule: ScheduleStatus | undefined): Promise<void> {
    const svc = ctx.svc;
    const replicas = desiredReplicas(svc);
    const latest = candidate ? ctx.latest.get(candidate.metadata.name) ?? candidate : undefined;
    const latestDesired = desired ? ctx.latest.get(desired.metadata.name) ?? desired : undefined;
    const failed = latestDesired && latestDesired.metadata.name !== active?.metadata.name && latestDesired.status?.phase === 'Failed' ? latestDesired : undefined;
    let conditions = svc.status?.conditions as Condition[] | undefined;
    const generation = svc.metadata.generation;
    const ready = state?.ready ?? 0;
    if (latest) {
      const running = (latest.status?.steps ?? []).find((s) => s.result === 'Running');
      conditions = setCondition(conditions, { type: 'Progressing', status: 'True', reason: 'RolloutInProgress', message: `rolling out ${latest.metadata.name}${running ? `: ${running.name}${running.message ? ` (${running.message})` : ''}` : ''}`, observedGeneration: generation });
    } else if (ctx.sourceProblem) {
      conditions = setCondition(conditions, { type: 'Progressing', status: 'False', reason: 'SourceUnavailable', message: ctx.sourceProblem.slice(0, 4000), observedGeneration: generation });
    } else if (failed) {
      conditions = setCondition(conditions, { type: 'Progressing', status: 'False', reason: 'RolloutFailed', message: `release ${failed.metadata.name} failed: ${failed.status?.message ?? failed.status?.reason ?? ''}`.slice(0, 4000), observedGeneration: generation });
    } else if (svc.spec?.paused) {
      conditions = setCondition(conditions, { type: 'Progressing', status: 'Unknown', reason: 'Paused', message: 'rollouts are paused', observedGeneration: generation });
    } else {
      conditions = setCondition(conditions, { type: 'Progressing', status: 'True', reason: 'RolloutComplete', message: active ? `release ${active.metadata.name} is active` : 'nothing to roll out', observedGeneration: generation });
    }
    const lastRun = schedule?.runs?.filter((r) => r.result === 'Succeeded' || r.result === 'Failed').at(-1);
    if (svc.spec?.schedule) {
      conditions = setCondition(conditions, active
        ? { type: 'Available', status: 'True', reason: 'ScheduleActive', message: `runs on "${svc.spec.schedule.cron}" (${svc.spec.schedule.timeZone ?? 'UTC'}); next at ${schedule?.nextScheduleTime ?? 'unknown'}`, observedGeneration: generation }
        : { type: 'Available', status: 'False', reason: 'NoActiveRelease', message: 'no release has been rolled out yet', observedGeneration: generation });
    }
    conditions = svc.spec?.schedule ? conditions : setCondition(conditions, active && ready >= replicas
      ? { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: `${ready}/${replicas} replicas ready`, observedGeneration: generation }
      : { type: 'Available', status: 'False', reason: active ? 'MinimumReplicasUnavailable' : 'NoActiveRelease', message: active ? `${ready}/${replicas} replicas ready${state?.placementIssue ? `; ${state.placementIssue}` : ''}` : 'no release has been rolled out yet', observedGeneration: generation });
    if (failed) conditions = setCondition(conditions, { type: 'Degraded', status: 'True', reason: 'RolloutFailed', message: `release ${failed.metadata.name} failed and was rolled back: ${failed.status?.message ?? ''}`.slice(0, 4000), observedGeneration: generation });
    else if (lastRun?.result === 'Failed') conditions = setCondition(conditions, { type: 'Degraded', status: 'True', reason: 'LastRunFailed', message: `run ${lastRun.containerName} exited with code ${lastRun.exitCode}`, observedGeneration: generation });
    else if (active && ready < replicas) conditions = setCondition(conditions, { type: 'Degraded', status: 'True', reason: 'ReplicasUnavailable', message: `${ready}/${replicas} replicas ready${state?.lastProblem ? `; ${state.lastProblem}` : ''}${state?.placementIssue ? `; ${state.placementIssue}` : ''}`.slice(0, 4000), observedGeneration: generation });
    else conditions = setCondition(conditions, { type: 'Degraded', status: 'False', reason: 'AsExpected', observedGeneration: generation });

    const next: Record<string, unknown> = {
      observedGeneration: generation,
      conditions,
      replicas: state?.placed ?? 0,
      readyReplicas: ready,
      endpoints: state?.endpoints ?? [],
      activeRelease: active?.metadata.name ?? null,
      candidateRelease: latest?.metadata.name ?? null,
      ...(shiftedFrom !== undefined ? { previousRelease: shiftedFrom } : {}),
      ...(schedule ? { schedule } : {}),
      // The annotation describes the change being rolled out now; later Releases must not inherit it.
      ...(svc.metadata.annotations?.[CHANGE_CAUSE_ANNOTATION] ? { consumedChangeCause: svc.metadata.annotations[CHANGE_CAUSE_ANNOTATION] } : {}),
    };
    await this.writeServiceStatus(ctx, next);
  }

  /** Writes only the fields that differ from the cached status. */
  private async writeServiceStatus(ctx: Ctx, fields: Record<string, unknown>): Promise<void> {
    const current = (ctx.svc.status ?? {}) as Record<string, unknown>;
    const patch: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(fields)) {
      const now = current[k];
      if (v === null ? now !== undefined && now !== null : JSON.stringify(now) !== JSON.stringify(v)) patch[k] = v;
    }
    if (Object.keys(patch).length) await this.patchServiceStatus(ctx, patch);
  }

  private async patchServiceStatus(ctx: Ctx, fields: Record<string, unknown>): Promise<void> {
    try {
      await this.o.client.patch(`${API}/namespaces/${ctx.namespace}/services/${ctx.name}/status`, { status: fields });
    } catch (err) {
      // Deleted meanwhile: the next reconcile removes its containers.
      if (!(err instanceof ApiRequestError && err.code === 404)) throw err;
    }
  }

  private async patchReleaseStatus(ctx: Ctx, release: RO<Release>, fields: Record<string, unknown>): Promise<void> {
    const written = await this.o.client.patch<Stored<Release>>(`${API}/namespaces/${ctx.namespace}/releases/${release.metadata.name}/status`, { status: fields });
    ctx.latest.set(written.metadata.name, written);
  }
}

type ScheduleStatus = NonNullable<NonNullable<Service['status']>['schedule']>;

/** Long-running replicas wanted: none for a scheduled Service, whose runs are one-shot containers. */
const desiredReplicas = (svc: RO<Service>) => (svc.spec?.schedule ? 0 : (svc.spec?.replicas ?? 1));

/**
 * Replicas on nodes that could not be asked are not gone: carry them over from the last status
 * (not ready), so they are replaced only once the node counts as lost, not at the first timeout.
 */
function rememberUnreachable(world: ServiceWorld, endpoints: ReadonlyArray<{ node: string; containerName?: string; port: number }>, namespace: string, service: string): void {
  const pattern = new RegExp(`^${namespace.replace(/[.]/g, '\\.')}\\.(${service}-(\\d+))-(\\d+)$`);
  for (const e of endpoints) {
    if (!world.unreachable.has(e.node) || !e.containerName) continue;
    const m = pattern.exec(e.containerName);
    if (!m) continue;
    world.containers.push({ node: e.node, id: '', name: e.containerName, release: m[1]!, role: 'replica', replica: Number(m[3]), state: 'unknown', running: false, created: 0, hostPort: e.port, labels: {}, unknown: true });
  }
}

interface ReplicaState {
  placed: number;
  ready: number;
  endpoints: Array<{ node: string; containerName: string; host: string; port: number; ready: boolean }>;
  nodes: string[];
  probeIntervalMs: number;
  failing?: string;
  lastProblem?: string;
  placementIssue?: string;
}

const TERMINAL_PHASE_FAILED = (r: RO<Release>) => r.status?.phase === 'Failed' || r.status?.phase === 'RolledBack';

/** The first step that has not finished, if the rollout is past its first step. */
function STEP_NAMES_PENDING(steps: readonly Step[] | undefined, built: boolean): StepName | undefined {
  const running = steps?.find((s) => s.result === 'Running');
  return (running?.name as StepName | undefined) ?? (steps?.length ? undefined : built ? 'Build' : 'Artifact');
}

export function nodeAddress(node: RO<Node> | undefined): string {
  return node?.spec.internalAddress ?? node?.spec.docker.ssh?.host ?? '127.0.0.1';
}

function requestOf(template: ReleaseTemplate) {
  return {
    cpus: template.resources?.cpus !== undefined ? parseCpus(template.resources.cpus) : 0,
    memoryBytes: template.resources?.memory !== undefined ? parseBytes(template.resources.memory) : 0,
  };
}

/** `10m`, `1h30m`, `45s`, `500ms` to milliseconds. */
export function parseDuration(text: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  const re = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;
  let match: RegExpExecArray | null;
  let consumed = 0;
  while ((match = re.exec(text))) {
    total += Number(match[1]) * units[match[2]!]!;
    consumed += match[0].length;
  }
  if (consumed !== text.length || !text) throw new Error(`invalid duration ${JSON.stringify(text)}`);
  return total;
}

