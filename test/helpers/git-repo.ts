// Real git repositories for build tests: a repository holding the busybox test app (rootfs/ and a
// Dockerfile FROM scratch whose APP_VERSION is baked in), commits that change the Dockerfile, the
// commit a branch points at, and removal of the images Slipway built from a repository's commits.

import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { BUILD_COMMIT_LABEL } from '../../src/build/build-identity.js';
import { writeBuildContext } from './docker.js';

const run = promisify(execFile);
const ENV = { ...process.env, GIT_AUTHOR_NAME: 'Slipway Test', GIT_AUTHOR_EMAIL: 'test@slipway.invalid', GIT_COMMITTER_NAME: 'Slipway Test', GIT_COMMITTER_EMAIL: 'test@slipway.invalid' };

export const git = async (dir: string, ...args: string[]) => (await run('git', args, { cwd: dir, env: ENV })).stdout.trim();

/** A Dockerfile of the test app answering `version=<version>` on GET /. */
export function appDockerfile(version: string, extra = ''): string {
  return `FROM scratch
COPY rootfs/ /
ENV PATH=/bin PORT=3000 APP_VERSION=${version}
${extra}
EXPOSE 3000
CMD ["/app/start"]
`;
}

export interface TestRepo {
  dir: string;
  /** Writes the Dockerfile (and other files), commits on main, returns the commit SHA. */
  commit(dockerfile: string, message: string, files?: Record<string, string>): Promise<string>;
  head(branch?: string): Promise<string>;
}

/** A repository on branch main with the test app at version `version` (one commit). */
export async function createAppRepo(version: string): Promise<TestRepo> {
  const dir = await mkdtemp(join(tmpdir(), 'slw-repo-'));
  await git(dir, 'init', '-q', '-b', 'main');
  await writeBuildContext(dir);
  const repo: TestRepo = {
    dir,
    async commit(dockerfile, message, files = {}) {
      await writeFile(join(dir, 'Dockerfile'), dockerfile);
      for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
      await git(dir, 'add', '-A');
      await git(dir, 'commit', '-q', '--allow-empty', '-m', message);
      return git(dir, 'rev-parse', 'HEAD');
    },
    head: (branch = 'main') => git(dir, 'rev-parse', branch),
  };
  // The directory's random name in the message makes the SHA unique: two repositories made in the
  // same second would otherwise share commits, and one test's image cleanup would take the other's.
  await repo.commit(appDockerfile(version), `app ${version} (${basename(dir)})`);
  return repo;
}

/** Removes the images built from any commit of `repo` (labelled slipway.dev/git-commit) on `docker`. */
export async function removeBuiltImages(docker: Docker, repo: TestRepo): Promise<void> {
  const commits = new Set((await git(repo.dir, 'rev-list', '--all')).split('\n'));
  for (const image of await docker.listImages({ filters: { label: [BUILD_COMMIT_LABEL] } } as Docker.ListImagesOptions)) {
    if (commits.has(image.Labels?.[BUILD_COMMIT_LABEL] ?? '')) await docker.getImage(image.Id).remove({ force: true }).catch(() => {});
  }
}
