// Real Docker for tests: makes sure the machine's dockerd runs, starts a second dockerd reached
// over a real sshd (a "remote" node on loopback), and builds a tiny busybox HTTP test image
// without a registry. Safe to call from test files running at the same time: shared state is
// created under mkdir locks and reused.

import { execFile, spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { appendFile, chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import type { NodeDockerSpec } from '../../src/docker/docker-host.js';
import { freePort } from './ports.js';
import { findProcesses, keyPair, killTree, processAlive, processIdentity, removeStalePidFiles, sshdPids, waitForSshBanner } from './processes.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const DOCKER_SOCKET = '/var/run/docker.sock';
const DOCKERD_LOG = '/tmp/slipway-dockerd.log';
const NODE2_DIR = '/tmp/slw-node2';
const NODE2_BRIDGE = 'slw-br1';
const NODE2_BRIDGE_CIDR = '172.31.0.1/24';

// ---------------------------------------------------------------- locks and processes

/**
 * Runs fn while holding a lock directory shared by all processes on the machine. A lock whose
 * owner process is gone is taken over.
 */
async function withLock<T>(lockDir: string, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(join(lockDir, 'owner'), processIdentity());
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = (await readFile(join(lockDir, 'owner'), 'utf8').catch(() => '')).trim();
      // Written as "pid starttime": a pid reused after a reboot or snapshot restore is not the owner.
      if (owner && processIdentity(Number(owner.split(' ')[0])) !== owner) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${lockDir} (held by ${owner || '?'})`);
      await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

/** Starts a long-lived daemon detached from this process, its output appended to logFile. */
function spawnDaemon(command: string, args: string[], logFile: string): number {
  const log = openSync(logFile, 'a');
  try {
    const child = spawn(command, args, { detached: true, stdio: ['ignore', log, log] });
    child.unref();
    if (child.pid === undefined) throw new Error(`cannot start ${command}`);
    return child.pid;
  } finally {
    closeSync(log);
  }
}

// ---------------------------------------------------------------- dockerd

/** True if a Docker Engine answers GET /_ping on the socket. */
export function dockerAnswers(socketPath: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

async function waitForDocker(socketPath: string, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await dockerAnswers(socketPath))) {
    if (Date.now() > deadline) {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      throw new Error(`dockerd on ${socketPath} did not answer within ${timeoutMs} ms; log ${logFile}:\n${log.slice(-2000)}`);
    }
    await sleep(200);
  }
}

/** Makes sure the machine's dockerd answers on /var/run/docker.sock (starting it if needed). */
export async function ensureDockerd(): Promise<string> {
  if (await dockerAnswers(DOCKER_SOCKET)) return DOCKER_SOCKET;
  await withLock('/tmp/slipway-dockerd.lock', async () => {
    if (await dockerAnswers(DOCKER_SOCKET)) return;
    await removeStalePidFiles([
      { file: '/var/run/docker.pid', command: 'dockerd' },
      { file: '/var/run/docker/containerd/containerd.pid', command: 'containerd' },
    ]);
    spawnDaemon('dockerd', [], DOCKERD_LOG);
    await waitForDocker(DOCKER_SOCKET, 30_000, DOCKERD_LOG);
  });
  return DOCKER_SOCKET;
}

// ---------------------------------------------------------------- second node (dockerd + sshd)

export interface SecondNode {
  /** The second dockerd's socket (also the remote dockerSocket to reach over SSH). */
  socketPath: string;
  sshHost: '127.0.0.1';
  sshPort: number;
  user: 'root';
  /** Client private key (OpenSSH format) authorized for root on this sshd. */
  privateKey: string;
  /** The sshd's host key, `ssh-ed25519 AAAA... comment`. */
  hostKey: string;
  /** A different valid ed25519 public key, for host key mismatch tests. */
  otherHostKey: string;
  /** Node.spec.docker for this node (ssh, with hostKey and dockerSocket filled in). */
  dockerSpec: NodeDockerSpec;
  /** dockerode on the local socket of the second dockerd, for test assertions. */
  docker: Docker;
  /** Kills this sshd and its open connections (existing SSH sessions drop). */
  stopSshd(): Promise<void>;
  /** Starts this sshd again on the same port. */
  startSshd(): Promise<void>;
  /** SIGSTOPs this sshd and its sessions: the peer looks dead (TCP open, no answers). */
  pauseSshd(): void;
  /** SIGCONTs them again. */
  resumeSshd(): void;
  /** Stops this sshd. The second dockerd keeps running for other tests. */
  stop(): Promise<void>;
}


async function ensureBridge(): Promise<void> {
  const exists = await run('ip', ['link', 'show', NODE2_BRIDGE]).then(
    () => true,
    () => false,
  );
  if (!exists) {
    await run('ip', ['link', 'add', NODE2_BRIDGE, 'type', 'bridge']).catch(async (err) => {
      // Another process may have created it in between.
      if (!(await run('ip', ['link', 'show', NODE2_BRIDGE]).then(() => true, () => false))) throw err;
    });
  }
  await run('ip', ['addr', 'replace', NODE2_BRIDGE_CIDR, 'dev', NODE2_BRIDGE]);
  await run('ip', ['link', 'set', NODE2_BRIDGE, 'up']);
}

async function ensureSecondDockerd(socketPath: string): Promise<void> {
  if (await dockerAnswers(socketPath)) return;
  await ensureBridge();
  const logFile = join(NODE2_DIR, 'dockerd.log');
  const pidFile = join(NODE2_DIR, 'docker.pid');
  // A second dockerd still starting (or hung) from an earlier run: give it time, then replace it.
  const running = findProcesses((line) => line.startsWith('dockerd ') && line.includes(`--pidfile ${pidFile}`));
  if (running.length > 0) {
    try {
      await waitForDocker(socketPath, 30_000, logFile);
      return;
    } catch {
      for (const pid of running) killTree(pid);
      await sleep(500);
    }
  }
  await removeStalePidFiles([
    { file: pidFile, command: 'dockerd' },
    { file: join(NODE2_DIR, 'exec', 'containerd', 'containerd.pid'), command: 'containerd' },
  ]);
  // Never --bridge=none: it deletes the host's docker0 and breaks the first daemon's networking.
  spawnDaemon(
    'dockerd',
    [
      '-H', `unix://${socketPath}`,
      '--data-root', join(NODE2_DIR, 'data'),
      '--exec-root', join(NODE2_DIR, 'exec'),
      '--pidfile', pidFile,
      '--bridge', NODE2_BRIDGE,
      '--iptables=false',
      '--ip-masq=false',
      '--cgroup-parent', '/slipway-node2',
      '--containerd-namespace', 'slw-node2',
      '--containerd-plugins-namespace', 'slw-node2-plugins',
    ],
    logFile,
  );
  await waitForDocker(socketPath, 60_000, logFile);
}

interface SshKeys {
  hostKeyFile: string;
  hostKey: string;
  otherHostKey: string;
  privateKey: string;
  authorizedKeysFile: string;
}


async function ensureSshKeys(): Promise<SshKeys> {
  const dir = join(NODE2_DIR, 'ssh');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const hostKeyFile = join(dir, 'host_ed25519');
  const hostKey = await keyPair(hostKeyFile, 'slw-node2-host');
  const otherHostKey = await keyPair(join(dir, 'other_host_ed25519'), 'slw-node2-other-host');
  const clientPublic = await keyPair(join(dir, 'client_ed25519'), 'slipway-test-client');
  const authorizedKeysFile = join(dir, 'authorized_keys');
  await writeFile(authorizedKeysFile, `${clientPublic}\n`, { mode: 0o600 });
  const privateKey = await readFile(join(dir, 'client_ed25519'), 'utf8');
  return { hostKeyFile, hostKey, otherHostKey, privateKey, authorizedKeysFile };
}


/**
 * Starts (or reuses) the second dockerd and starts an sshd of its own for this caller on a free
 * loopback port: key-only root login, Unix socket forwarding allowed.
 */
export async function startSecondNode(): Promise<SecondNode> {
  const socketPath = join(NODE2_DIR, 'docker.sock');
  await mkdir(NODE2_DIR, { recursive: true });
  const keys = await withLock(`${NODE2_DIR}.lock`, async () => {
    await ensureSecondDockerd(socketPath);
    return ensureSshKeys();
  });

  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(tmpdir(), 'slw-sshd-'));
  const sshPort = await freePort();
  const configFile = join(dir, 'sshd_config');
  const logFile = join(dir, 'sshd.log');
  await writeFile(
    configFile,
    [
      `Port ${sshPort}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${keys.hostKeyFile}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${keys.authorizedKeysFile}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'AllowStreamLocalForwarding yes',
      // The key files live under /tmp, which StrictModes would reject as world-writable.
      'StrictModes no',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );

  let sshdPid: number | undefined;
  const startSshd = async () => {
    if (sshdPid !== undefined) throw new Error('sshd is already running');
    // sshd must be started by absolute path (it re-executes itself per connection); -D -e: foreground, log to stderr.
    const pid = spawnDaemon('/usr/sbin/sshd', ['-D', '-e', '-f', configFile], logFile);
    sshdPid = pid;
    sshdPids.add(pid);
    await waitForSshBanner(sshPort, 10_000, logFile);
  };
  const stopSshd = async () => {
    if (sshdPid === undefined) return;
    const pid = sshdPid;
    sshdPid = undefined;
    sshdPids.delete(pid);
    // Each connection is served by a child in its own session: kill the whole tree so sessions drop.
    killTree(pid);
    const deadline = Date.now() + 5000;
    while (processAlive(pid) && Date.now() < deadline) await sleep(20);
  };
  const signalSshd = (signal: NodeJS.Signals) => {
    if (sshdPid === undefined) throw new Error('sshd is not running');
    killTree(sshdPid, signal);
  };
  await startSshd();

  return {
    socketPath,
    sshHost: '127.0.0.1',
    sshPort,
    user: 'root',
    privateKey: keys.privateKey,
    hostKey: keys.hostKey,
    otherHostKey: keys.otherHostKey,
    dockerSpec: {
      ssh: { host: '127.0.0.1', port: sshPort, user: 'root', hostKey: keys.hostKey, dockerSocket: socketPath },
    },
    docker: new Docker({ socketPath }),
    stopSshd,
    startSshd,
    pauseSshd: () => signalSshd('SIGSTOP'),
    resumeSshd: () => signalSshd('SIGCONT'),
    async stop() {
      if (sshdPid !== undefined) signalSshd('SIGCONT');
      await stopSshd();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- test image

/** Bump when the image contents below change, so cached images are rebuilt. */
export const TEST_IMAGE_VERSION = '2';
export const TEST_IMAGE = 'slipway-test-app:1';
export const IMAGE_VERSION_LABEL = 'slipway.test.image-version';

const START_SCRIPT = `#!/bin/sh
# Entry point of the Slipway test app: logs a start line, serves HTTP with busybox httpd and
# exits at once on SIGTERM (so docker stop does not wait out the grace period).
port="\${PORT:-3000}"
echo "app starting version=\${APP_VERSION}"
trap 'echo "app stopping version=\${APP_VERSION}"; kill "$pid" 2>/dev/null; exit 0' TERM INT
# -vv logs every request (to stderr; folded into stdout here).
httpd -f -vv -p "$port" -h /www 2>&1 &
pid=$!
wait "$pid"
`;

// busybox httpd runs cgi-bin/index.cgi for "/" when there is no index.html.
const INDEX_CGI = `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\nversion=%s\\n' "$APP_VERSION"
`;

// A CGI script that prints its own status line sets the HTTP status.
const HEALTH_CGI = `#!/bin/sh
if [ "$HEALTH" = fail ] || [ -e /tmp/unhealthy ]; then
  echo "health check: unhealthy" >&2
  printf 'HTTP/1.1 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\nunhealthy\\n'
else
  printf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'
fi
`;

// Answers after a second without reading the request body: a proxy in front has read all of a
// small body long before this app answers (the edge's body-limit test relies on that).
const SLOW_CGI = `#!/bin/sh
sleep 1
printf 'Content-Type: text/plain\\r\\n\\r\\nslow\\n'
`;

const DOCKERFILE = `FROM scratch
COPY rootfs/ /
ENV PATH=/bin PORT=3000
LABEL ${IMAGE_VERSION_LABEL}="${TEST_IMAGE_VERSION}"
EXPOSE 3000
CMD ["/app/start"]
`;

/** Writes the test app's build context (rootfs/ with busybox, and a Dockerfile) into `dir`. */
export async function writeBuildContext(dir: string): Promise<void> {
  const root = join(dir, 'rootfs');
  for (const d of ['bin', 'usr', 'etc', 'app', 'www/cgi-bin', 'tmp', 'data', 'root']) await mkdir(join(root, d), { recursive: true });
  await chmod(join(root, 'tmp'), 0o1777);
  await copyFile('/bin/busybox', join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  const { stdout } = await run('/bin/busybox', ['--list']);
  for (const applet of stdout.split('\n').filter((a) => a && a !== 'busybox')) {
    await symlink('busybox', join(root, 'bin', applet));
  }
  await symlink('../bin', join(root, 'usr/bin'));
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  await writeFile(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeFile(join(root, 'app/start'), START_SCRIPT, { mode: 0o755 });
  await writeFile(join(root, 'www/cgi-bin/index.cgi'), INDEX_CGI, { mode: 0o755 });
  await writeFile(join(root, 'www/cgi-bin/health'), HEALTH_CGI, { mode: 0o755 });
  await writeFile(join(root, 'www/cgi-bin/slow'), SLOW_CGI, { mode: 0o755 });
  await writeFile(join(dir, 'Dockerfile'), DOCKERFILE);
}

/** The id of image `tag` when its version label is `version`, else undefined. */
export async function cachedImageId(docker: Docker, tag: string, version = TEST_IMAGE_VERSION): Promise<string | undefined> {
  try {
    const info = await docker.getImage(tag).inspect();
    return info.Config?.Labels?.[IMAGE_VERSION_LABEL] === version ? info.Id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Builds the test app image on `docker` (no registry needed) unless a current one exists:
 * busybox httpd on $PORT (default 3000); `GET /` answers `version=$APP_VERSION`;
 * `GET /cgi-bin/health` answers 200 `ok`, or 500 when HEALTH=fail or /tmp/unhealthy exists;
 * `/cgi-bin/slow` answers `slow` after a second.
 * Logs `app starting version=...` at start and one line per request. Returns the image id.
 */
export async function buildTestImage(docker: Docker, tag = TEST_IMAGE): Promise<string> {
  const cached = await cachedImageId(docker, tag);
  if (cached) return cached;
  const dynamic = await run('ldd', ['/bin/busybox']).then(() => true, () => false);
  if (dynamic) throw new Error('/bin/busybox is dynamically linked: install busybox-static for the test image');
  return buildImageFromContext(docker, tag, TEST_IMAGE_VERSION, writeBuildContext);
}

/**
 * The test app under `tag` with extra image labels, so its ID differs from the shared test image's
 * (a test may remove it, or give it labels Slipway reads, without touching other tests' images).
 */
export function buildLabelledTestImage(docker: Docker, tag: string, labels: Record<string, string>): Promise<string> {
  return buildImageFromContext(docker, tag, TEST_IMAGE_VERSION, async (dir) => {
    await writeBuildContext(dir);
    const line = Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
    await appendFile(join(dir, 'Dockerfile'), `LABEL ${line}\n`);
  });
}

/**
 * Builds image `tag` from a context `write` fills in a temp dir (its Dockerfile must set the
 * `slipway.test.image-version` label to `version`); returns the image id.
 */
export async function buildImageFromContext(docker: Docker, tag: string, version: string, write: (dir: string) => Promise<void>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'slw-image-'));
  try {
    await write(dir);
    const tar = spawn('tar', ['-C', dir, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const stream = await docker.buildImage(tar.stdout as unknown as NodeJS.ReadableStream, { t: tag, rm: true, forcerm: true });
    const output = await new Promise<Array<{ error?: string; stream?: string }>>((resolve, reject) =>
      docker.modem.followProgress(stream, (err: Error | null, res: Array<{ error?: string }>) => (err ? reject(err) : resolve(res))),
    );
    const failure = output.find((o) => o.error);
    if (failure) throw new Error(`building ${tag} failed: ${failure.error}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const id = await cachedImageId(docker, tag, version);
  if (!id) throw new Error(`building ${tag} finished but the image is missing or unlabelled`);
  return id;
}
