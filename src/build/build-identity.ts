// The identity of a built image: a hash of the commit and everything that shapes the build
// (context, Dockerfile, build args, target). The image carries it as a label and in its tag, so
// an image already built for the same commit and configuration is found on any node and reused.

import { createHash } from 'node:crypto';
import { stableJson } from '../api/stable-json.js';

export const BUILD_KEY_LABEL = 'slipway.dev/build-key';
export const BUILD_COMMIT_LABEL = 'slipway.dev/git-commit';

/**
 * Docker adds build labels as one LABEL step each, in key order, so while a build runs (or after
 * it failed) there are layer images with only the first of them. The commit label sorts last: only
 * a finished build's image has it. Look builds up with this label too, or a build can be reused,
 * or collected, half-way.
 */
export const FINISHED_BUILD_LABEL = BUILD_COMMIT_LABEL;

export interface BuildConfig {
  git: string;
  commit: string;
  context?: string;
  dockerfile?: string;
  buildArgs?: Record<string, string>;
  target?: string;
}

export function buildKey(config: BuildConfig): string {
  const identity = {
    git: config.git,
    commit: config.commit,
    context: normalizeContext(config.context),
    dockerfile: config.dockerfile ?? 'Dockerfile',
    buildArgs: config.buildArgs ?? {},
    target: config.target ?? '',
  };
  return createHash('sha256').update(stableJson(identity)).digest('hex').slice(0, 32);
}

/**
 * Tag of the built image: `<registry repository>:<commit12>-<key12>` when it is pushed, else the
 * local `slipway-build/<namespace>.<service>:<commit12>-<key12>`.
 */
export function buildTag(namespace: string, service: string, commit: string, key: string, repository?: string): string {
  return `${repository ?? `slipway-build/${namespace}.${service}`}:${commit.slice(0, 12)}-${key.slice(0, 12)}`;
}

/** `.`, `app/`, `./app` → `.` or `app`; refuses paths leaving the repository. */
export function normalizeContext(context: string | undefined): string {
  const parts = (context ?? '.').split('/').filter((p) => p && p !== '.');
  if (parts.includes('..') || (context ?? '').startsWith('/')) throw new Error(`spec.build.context ${JSON.stringify(context)} must be a relative path inside the repository`);
  return parts.length ? parts.join('/') : '.';
}
