// A real OpenSSH sftp server for tests: starts `sshd` on a free loopback port with
// `Subsystem sftp internal-sftp`, its own generated ed25519 host key and key-only root login
// with a generated ed25519 client key. Each call gets its own temp folder (config, keys and a
// `root` data folder for artifacts). sshd can be stopped and started again on the same port.

import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { keyPair, killTree, processAlive, sshdPids, waitForSshBanner } from './processes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface SftpServer {
  host: string;
  port: number;
  user: string;
  /** Client private key (OpenSSH format) authorized for `user`. */
  privateKey: string;
  /** The server's host key, `ssh-ed25519 AAAA... comment`. */
  hostKey: string;
  /** A different valid ed25519 public key, for host key mismatch tests. */
  otherHostKey: string;
  /** An empty folder (absolute path) to use as the remote base path. */
  root: string;
  /** Kills sshd and its sessions (open connections drop). */
  stopSshd(): Promise<void>;
  /** Starts sshd again on the same port with the same keys. */
  startSshd(): Promise<void>;
  /** Stops sshd and removes the temp folder. */
  stop(): Promise<void>;
}



export async function startSftpServer(): Promise<SftpServer> {
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(tmpdir(), 'slw-sftp-'));
  const keyDir = join(dir, 'keys');
  const root = join(dir, 'root');
  await mkdir(keyDir, { mode: 0o700 });
  await mkdir(root, { mode: 0o700 });
  const hostKeyFile = join(keyDir, 'host_ed25519');
  const [hostKey, otherHostKey, clientPublic] = await Promise.all([
    keyPair(hostKeyFile, 'slw-sftp-host'),
    keyPair(join(keyDir, 'other_host_ed25519'), 'slw-sftp-other-host'),
    keyPair(join(keyDir, 'client_ed25519'), 'slw-sftp-client'),
  ]);
  const authorizedKeysFile = join(keyDir, 'authorized_keys');
  await writeFile(authorizedKeysFile, `${clientPublic}\n`, { mode: 0o600 });
  const privateKey = await readFile(join(keyDir, 'client_ed25519'), 'utf8');

  const port = await freePort();
  const configFile = join(dir, 'sshd_config');
  const logFile = join(dir, 'sshd.log');
  await writeFile(
    configFile,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKeyFile}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeysFile}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'AllowTcpForwarding no',
      'AllowStreamLocalForwarding no',
      'X11Forwarding no',
      'Subsystem sftp internal-sftp',
      // The key files live under /tmp, which StrictModes would reject as world-writable.
      'StrictModes no',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );

  let pid: number | undefined;
  const startSshd = async () => {
    if (pid !== undefined) throw new Error('sshd is already running');
    const log = openSync(logFile, 'a');
    try {
      // By absolute path: sshd re-executes itself per connection. -D -e: foreground, log to stderr.
      const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', configFile], { detached: true, stdio: ['ignore', log, log] });
      child.unref();
      if (child.pid === undefined) throw new Error('cannot start /usr/sbin/sshd');
      pid = child.pid;
      sshdPids.add(pid);
    } finally {
      closeSync(log);
    }
    await waitForSshBanner(port, 10_000, logFile);
  };
  const stopSshd = async () => {
    if (pid === undefined) return;
    const p = pid;
    pid = undefined;
    sshdPids.delete(p);
    // Each connection is served by a child: kill the whole tree so sessions drop.
    killTree(p);
    const deadline = Date.now() + 5000;
    while (processAlive(p) && Date.now() < deadline) await sleep(20);
  };
  await startSshd();

  return {
    host: '127.0.0.1',
    port,
    user: 'root',
    privateKey,
    hostKey,
    otherHostKey,
    root,
    stopSshd,
    startSshd,
    async stop() {
      await stopSshd();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
