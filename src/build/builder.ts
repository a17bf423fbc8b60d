// Runs builds in the background for the service controller: fetch of one commit, `docker build`
// of its context (a `git archive` stream) on the chosen node, output into the Release's build log. One build per
// Release (keyed by its uid); a build ends on success, failure, its timeout, or cancellation by a
// newer release. Only progress lives here: a manager that restarts finds no build and no image,
// and builds again.

import type Docker from 'dockerode';
import { BUILD_COMMIT_LABEL, BUILD_KEY_LABEL, normalizeContext, type BuildConfig } from './build-identity.js';
import { tailLines, type BuildLogs } from './build-log.js';
import { dockerBuild } from './docker-build.js';
import { pushImage } from './registry-push.js';
import { archiveContext, fetchCommit, objectTypes, redactUrl, type GitCredentials } from './git.js';

export interface BuildRequest extends BuildConfig {
  /** Release uid: names the build and its log. */
  id: string;
  /** `namespace/service`, to cancel every build of a Service. */
  owner: string;
  node: string;
  docker: Docker;
  credentials: GitCredentials;
  key: string;
  tag: string;
  timeoutMs: number;
  /** More labels for the image (the installation id, so only its own builds are reused and collected). */
  labels?: Record<string, string>;
  /** Push the image (as `tag`) to its registry after the build, with these credentials. */
  push?: { auth?: object };
  /** Called once when the build ends, however it ends. */
  onDone: () => void;
}

export type BuildState =
  | { state: 'running'; node: string }
  | { state: 'succeeded'; node: string; imageId: string; digest?: string }
  | { state: 'failed'; node: string; reason: 'BuildFailed' | 'BuildTimeout' | 'BuildCancelled'; message: string };

/** Lines of the build log carried in a failed Release's message. */
export const LOG_TAIL_LINES = 25;

export class Builder {
  private readonly jobs = new Map<string, { owner: string; key: string; abort: AbortController; state: BuildState }>();

  constructor(private readonly logs: BuildLogs) {}

  state(id: string): BuildState | undefined {
    return this.jobs.get(id)?.state;
  }

  /** Forgets a finished build (its outcome is recorded in the Release). */
  forget(id: string): void {
    if (this.jobs.get(id)?.state.state !== 'running') this.jobs.delete(id);
  }

  /** Whether a build of this build key runs (for another Release): wait for it instead of building again. */
  building(key: string): boolean {
    return [...this.jobs.values()].some((j) => j.key === key && j.state.state === 'running');
  }

  cancel(id: string, why: string): void {
    const job = this.jobs.get(id);
    if (job?.state.state === 'running') job.abort.abort(new Error(why));
  }

  cancelOwner(owner: string, why: string): void {
    for (const [id, job] of this.jobs) if (job.owner === owner) this.cancel(id, why);
  }

  cancelAll(): void {
    for (const id of this.jobs.keys()) this.cancel(id, 'the controller manager is stopping');
  }

  start(req: BuildRequest): void {
    if (this.jobs.get(req.id)?.state.state === 'running') return;
    const abort = new AbortController();
    const job = { owner: req.owner, key: req.key, abort, state: { state: 'running', node: req.node } as BuildState };
    this.jobs.set(req.id, job);
    void this.run(req, abort)
      .catch((err: Error): BuildState => ({ state: 'failed', node: req.node, reason: 'BuildFailed', message: err.message }))
      .then((state) => {
        job.state = state;
        // A cancelled build's Release is already settled: nothing will ask for its outcome.
        if (state.state === 'failed' && state.reason === 'BuildCancelled' && this.jobs.get(req.id) === job) this.jobs.delete(req.id);
        req.onDone();
      });
  }

  private async run(req: BuildRequest, abort: AbortController): Promise<BuildState> {
    const timer = setTimeout(() => abort.abort(new Error(`the build did not finish within ${req.timeoutMs / 1000}s`)), req.timeoutMs);
    const started = Date.now();
    const log = await this.logs.create(req.id);
    const write = (text: string) => void log.write(text);
    let cleanup = async () => {};
    try {
      write(`# building ${redactUrl(req.git)} at ${req.commit} on node ${req.node}\n`);
      const fetched = await fetchCommit(req.git, req.commit, req.credentials, abort.signal);
      cleanup = fetched.cleanup;
      const context = normalizeContext(req.context);
      const dockerfile = req.dockerfile ?? 'Dockerfile';
      const [commitType, contextType, dockerfileType] = await objectTypes(fetched.gitDir, [`${req.commit}^{commit}`, context === '.' ? `${req.commit}^{tree}` : `${req.commit}:${context}`, `${req.commit}:${context === '.' ? '' : `${context}/`}${dockerfile}`]);
      if (commitType !== 'commit') throw new Error(`commit ${req.commit} is not in ${redactUrl(req.git)}`);
      if (contextType !== 'tree') throw new Error(`the build context ${JSON.stringify(req.context)} is not a directory at ${req.commit}`);
      if (dockerfileType !== 'blob') throw new Error(`there is no ${dockerfile} in the build context ${JSON.stringify(req.context ?? '.')} at ${req.commit}`);
      write(`# docker build -f ${dockerfile} -t ${req.tag} (context ${context} of ${req.commit.slice(0, 12)})\n`);
      const archive = archiveContext(fetched.gitDir, req.commit, context, abort.signal);
      const imageId = await dockerBuild(req.docker, {
        context: archive,
        dockerfile,
        tag: req.tag,
        ...(req.buildArgs ? { buildArgs: req.buildArgs } : {}),
        ...(req.target ? { target: req.target } : {}),
        labels: { ...req.labels, [BUILD_KEY_LABEL]: req.key, [BUILD_COMMIT_LABEL]: req.commit },
        signal: abort.signal,
        onOutput: write,
      }).finally(() => archive.destroy());
      write(`# built ${req.tag} = ${imageId} in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
      if (!req.push) return { state: 'succeeded', node: req.node, imageId };
      write(`# pushing ${req.tag}\n`);
      const digest = await pushImage(req.docker, imageId, req.tag, req.push.auth, write);
      write(`# pushed ${req.tag} as ${digest}\n`);
      return { state: 'succeeded', node: req.node, imageId, digest };
    } catch (err) {
      const message = abort.signal.aborted ? String((abort.signal.reason as Error)?.message ?? abort.signal.reason) : (err as Error).message;
      write(`# build failed: ${message}\n`);
      const reason = !abort.signal.aborted ? 'BuildFailed' : /did not finish within/.test(message) ? 'BuildTimeout' : 'BuildCancelled';
      await new Promise<void>((r) => log.end(r));
      const tail = await this.logs.tail(req.id, LOG_TAIL_LINES);
      return { state: 'failed', node: req.node, reason, message: `${message}\n--- last lines of the build log ---\n${tailLines(tail, LOG_TAIL_LINES)}` };
    } finally {
      clearTimeout(timer);
      if (!log.closed) await new Promise<void>((r) => log.end(r));
      await cleanup();
    }
  }
}
