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
