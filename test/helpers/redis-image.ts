// A real Redis container image for tests, built without a registry: FROM scratch with the host's
// redis-server, the shared libraries `ldd` lists and the dynamic loader, plus static busybox for a
// start script. Runs as nobody (65534), keeps its data in /data, and takes its password from
// $REDIS_PASSWORD through a config on stdin, so it is never on a command line.

import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, realpath, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { buildImageFromContext, cachedImageId, IMAGE_VERSION_LABEL } from './docker.js';

const run = promisify(execFile);

/** Bump when the image contents below change, so cached images are rebuilt. */
export const REDIS_IMAGE_VERSION = '1';
export const REDIS_IMAGE = 'slipway-test-redis:1';
export const REDIS_PORT = 6379;

// printf is a shell builtin: the password goes from the environment to redis-server's stdin only.
// Diskless replication without delay makes `redis-cli --rdb` answer at once.
const START_SCRIPT = `#!/bin/sh
{ if [ -n "$REDIS_PASSWORD" ]; then printf 'requirepass "%s"\\n' "$REDIS_PASSWORD"; fi; } |
  exec /usr/bin/redis-server - --port "\${PORT:-${REDIS_PORT}}" --dir /data --save '' --appendonly no \\
    --protected-mode no --repl-diskless-sync yes --repl-diskless-sync-delay 0
`;

const DOCKERFILE = `FROM scratch
COPY rootfs/ /
COPY --chown=65534:65534 data/ /data/
ENV PATH=/bin:/usr/bin
USER 65534:65534
LABEL ${IMAGE_VERSION_LABEL}="${REDIS_IMAGE_VERSION}"
EXPOSE ${REDIS_PORT}
CMD ["/app/start"]
`;

/** Absolute paths of the shared libraries and loader `ldd` lists for `binary`. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await run('ldd', [binary]);
  return [...stdout.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]!);
}

/** Copies `path` (following symlinks) to the same path under `root`. */
async function copyInto(root: string, path: string, as = path): Promise<void> {
  await mkdir(join(root, dirname(as)), { recursive: true });
  await copyFile(await realpath(path), join(root, as));
}

async function writeRedisContext(dir: string): Promise<void> {
  const root = join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'app', 'tmp']) await mkdir(join(root, d), { recursive: true });
  await mkdir(join(dir, 'data'));
  await chmod(join(root, 'tmp'), 0o1777);
  await copyFile('/bin/busybox', join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  await symlink('busybox', join(root, 'bin/sh'));
  const server = '/usr/bin/redis-server';
  await copyInto(root, server);
  await chmod(join(root, server), 0o755);
  for (const lib of await sharedLibraries(server)) await copyInto(root, lib);
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/data:/bin/false\n');
  await writeFile(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeFile(join(root, 'app/start'), START_SCRIPT, { mode: 0o755 });
  await writeFile(join(dir, 'Dockerfile'), DOCKERFILE);
}

/** Builds the Redis test image on `docker` unless a current one exists; returns its id. */
export async function buildRedisImage(docker: Docker): Promise<string> {
  return (await cachedImageId(docker, REDIS_IMAGE, REDIS_IMAGE_VERSION)) ?? buildImageFromContext(docker, REDIS_IMAGE, REDIS_IMAGE_VERSION, writeRedisContext);
}
