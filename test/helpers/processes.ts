// Process helpers for tests that run daemons (dockerd, sshd): liveness, the whole process tree, and
// killing it; ed25519 key pairs made with ssh-keygen; and waiting for an sshd to answer.

import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** sshd processes the test helpers started; killed (with their sessions) when the test process exits. */
export const sshdPids = new Set<number>();
process.on('exit', () => {
  for (const pid of sshdPids) killTree(pid);
});


/** The command line of a live process, arguments joined by spaces ('' when it is gone). */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Live processes whose command line satisfies `match`. */
export function findProcesses(match: (commandLine: string) => boolean): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const line = commandLine(Number(entry));
    if (line && match(line)) found.push(Number(entry));
  }
  return found;
}

/**
 * Removes pid files left by daemons that are gone. A machine restored from a snapshot keeps /tmp and
 * /var/run, and the pid in an old file may now belong to an unrelated process: dockerd then refuses
 * to start ("pid file found") and waits for a containerd that is not there. A file is stale unless
 * its pid is a live process whose command line contains `command`.
 */
export async function removeStalePidFiles(files: Array<{ file: string; command: string }>): Promise<void> {
  for (const { file, command } of files) {
    const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (pid > 0 && commandLine(pid).includes(command)) continue;
    await rm(file, { force: true });
  }
}

/**
 * `pid` and its start time (in clock ticks since boot), which tells a live owner from a later
 * process that reused its pid.
 */
export function processIdentity(pid: number = process.pid): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return `${pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  } catch {
    return `${pid} gone`;
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** pid and all its descendants (from /proc), children first. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // the process exited while we looked
    }
  }
  const collect = (p: number): number[] => [...(children.get(p) ?? []).flatMap(collect), p];
  return collect(pid);
}

export function killTree(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const p of processTree(pid)) {
    try {
      process.kill(p, signal);
    } catch {
      // already gone
    }
  }
}

/** An ed25519 key pair at `file` (kept when it exists); returns the public key line. */
export async function keyPair(file: string, comment: string): Promise<string> {
  if (!existsSync(file)) {
    await rm(`${file}.pub`, { force: true });
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  }
  return (await readFile(`${file}.pub`, 'utf8')).trim();
}

/** Waits until something on the port sends an SSH banner. */
export async function waitForSshBanner(port: number, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.setTimeout(1000, () => socket.destroy());
      socket.once('data', (d) => {
        socket.destroy();
        resolve(d.toString().startsWith('SSH-'));
      });
      socket.once('error', () => resolve(false));
      socket.once('close', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      throw new Error(`sshd on 127.0.0.1:${port} did not start within ${timeoutMs} ms; log ${logFile}:\n${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
