// Git sources with the git CLI: resolve a ref (branch, tag or full SHA) to a commit with
// `git ls-remote`, fetch one commit (shallow; a local repository is read in place), and stream a
// directory of it as a tar (`git archive`), which is the build context. ssh:// URLs use
// a deploy key written to a 0600 temp file and a pinned host key in a temp known_hosts
// (StrictHostKeyChecking=yes); neither ever appears on a command line or in an error.

import { execFile, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface GitCredentials {
  /** OpenSSH private key for ssh:// URLs. */
  sshPrivateKey?: string;
  /** Pinned host key, `ssh-ed25519 AAAA...`. */
  hostKey?: string;
}

export const isFullSha = (ref: string) => /^([0-9a-f]{40}|[0-9a-f]{64})$/.test(ref);
/** `ssh://…` or scp-like `user@host:path`. */
const isSsh = (url: string) => /^ssh:\/\//i.test(url) || /^[^/:]+@[^/:]+:/.test(url);
/** A path or file://: read in place. */
const isLocal = (url: string) => url.startsWith('file://') || (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !isSsh(url));
const localPath = (url: string) => (url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url);

/** The URL with any user:password part removed, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1');
}

/** Environment for git: no prompts, and for ssh:// the key and pinned host key. Call cleanup after. */
export async function gitEnvironment(url: string, credentials: GitCredentials): Promise<{ env: NodeJS.ProcessEnv; cleanup: () => Promise<void> }> {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '/bin/false', GIT_CONFIG_NOSYSTEM: '1' };
  if (!isSsh(url)) return { env, cleanup: async () => {} };
  if (!credentials.hostKey) throw new Error('ssh repositories need spec.build.hostKey (the git server\'s pinned host key)');
  const dir = await mkdtemp(join(tmpdir(), 'slw-git-ssh-'));
  const knownHosts = join(dir, 'known_hosts');
  // A known_hosts entry for any host: the pinned key is the only one accepted.
  await writeFile(knownHosts, `* ${credentials.hostKey.trim()}\n`, { mode: 0o600 });
  const identity = join(dir, 'id');
  if (credentials.sshPrivateKey) await writeFile(identity, credentials.sshPrivateKey.endsWith('\n') ? credentials.sshPrivateKey : `${credentials.sshPrivateKey}\n`, { mode: 0o600 });
  env.GIT_SSH_COMMAND = [
    'ssh',
    '-F', '/dev/null',
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${knownHosts}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'ConnectTimeout=15',
    ...(credentials.sshPrivateKey ? ['-i', identity] : []),
  ].join(' ');
  return { env, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function git(args: string[], options: { env: NodeJS.ProcessEnv; cwd?: string; signal?: AbortSignal; timeoutMs?: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { env: options.env, cwd: options.cwd, signal: options.signal, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const detail = (stderr || (err as Error).message).trim().split('\n').slice(-5).join('\n');
        reject(new Error(`git ${args[0]} failed: ${detail}`));
      } else resolve(stdout);
    });
  });
}

/** The commit `ref` names in the repository at `url` (a full SHA is taken as it is). */
export async function resolveRef(url: string, ref: string, credentials: GitCredentials, signal?: AbortSignal): Promise<string> {
  if (isFullSha(ref)) return ref;
  const { env, cleanup } = await gitEnvironment(url, credentials);
  try {
    const out = await git(['ls-remote', '--', url], { env, ...(signal ? { signal } : {}), timeoutMs: 60_000 });
    const refs = new Map<string, string>();
    for (const line of out.split('\n')) {
      const [sha, name] = line.split('\t');
      if (sha && name) refs.set(name, sha);
    }
    const candidates = [`refs/heads/${ref}`, `refs/tags/${ref}^{}`, `refs/tags/${ref}`, ref];
    for (const name of candidates) if (refs.has(name)) return refs.get(name)!;
    throw new Error(`ref ${JSON.stringify(ref)} does not exist in ${redactUrl(url)} (no such branch or tag)`);
  } catch (err) {
    throw new Error((err as Error).message.split(url).join(redactUrl(url)));
  } finally {
    await cleanup();
  }
}


/**
 * A git directory holding `commit`: a local repository (a path or file://) is read in place (the
 * caller checks the commit is there, see objectTypes); anything else is fetched (shallow, that
 * one commit) into a temporary bare repository.
 */
export async function fetchCommit(url: string, commit: string, credentials: GitCredentials, signal?: AbortSignal): Promise<{ gitDir: string; cleanup: () => Promise<void> }> {
  if (isLocal(url)) return { gitDir: localPath(url), cleanup: async () => {} };
  const { env, cleanup: cleanupSsh } = await gitEnvironment(url, credentials);
  const gitDir = await mkdtemp(join(tmpdir(), 'slw-git-'));
  const cleanup = async () => {
    await cleanupSsh();
    await rm(gitDir, { recursive: true, force: true });
  };
  const opts = { env, cwd: gitDir, ...(signal ? { signal } : {}), timeoutMs: 600_000 };
  try {
    await git(['init', '-q', '--bare', '.'], opts);
    try {
      await git(['fetch', '-q', '--no-tags', '--depth', '1', '--', url, commit], opts);
    } catch {
      // A server that refuses to serve a commit by SHA: fetch its branches and tags instead.
      await git(['fetch', '-q', '--tags', '--', url, '+refs/heads/*:refs/heads/*'], opts);
    }
    return { gitDir, cleanup };
  } catch (err) {
    await cleanup();
    throw new Error((err as Error).message.split(url).join(redactUrl(url)));
  }
}

/**
 * The type (`commit`, `tree`, `blob`) of each object named (`<commit>^{commit}`,
 * `<commit>:<path>`), or `missing`, with one `git cat-file --batch-check`.
 */
export function objectTypes(gitDir: string, names: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = execFile('git', ['-c', `safe.directory=${gitDir}`, '-C', gitDir, 'cat-file', '--batch-check'], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`cannot read ${gitDir} with git: ${(stderr || err.message).trim().split('\n').at(-1)}`));
      resolve(stdout.split('\n').filter(Boolean).map((line) => (line.endsWith(' missing') ? 'missing' : line.split(' ')[1] ?? 'missing')));
    });
    child.stdin!.end(`${names.join('\n')}\n`);
  });
}

/**
 * A tar stream of directory `context` of `commit` (its contents at the archive's root): the build
 * context. Destroy the stream (or abort `signal`) when not reading it to the end, or git waits.
 */
export function archiveContext(gitDir: string, commit: string, context: string, signal?: AbortSignal): Readable {
  const tree = context === '.' ? commit : `${commit}:${context}`;
  const child = spawn('git', ['-c', `safe.directory=${gitDir}`, '-C', gitDir, 'archive', '--format=tar', tree], { stdio: ['ignore', 'pipe', 'pipe'], ...(signal ? { signal } : {}) });
  child.on('error', () => {}); // an abort kills it; the build reports the cancellation
  let err = '';
  child.stderr!.on('data', (d) => (err += d.toString()));
  child.on('exit', (code) => {
    if (code) child.stdout!.destroy(new Error(`git archive of the build context failed: ${err.trim()}`));
  });
  return child.stdout!;
}
