// Runs slipctl as a subprocess, the way users run it: `node <compiled cli/main.js> ...args`, with
// SLIPWAY_CONFIG pointing at a temp config file naming the test's API server (or with --server),
// optional stdin, and the exit code and both output streams captured.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The CLI compiled next to this helper (`<outDir>/test/helpers` → `<outDir>/cli/main.js`). */
export const CLI_MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  stdin?: string;
  /** Extra environment (SLIPWAY_CONFIG and SLIPWAY_SERVER default to the test's config). */
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/** A running slipctl (e.g. `get -w`) whose output can be awaited. */
export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout matches `pattern`; rejects after `timeoutMs` with what was printed. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves when the process exits by itself. */
  exited(): Promise<CliResult>;
  /** Interrupts the process (SIGTERM) unless it already exited. */
  stop(): Promise<CliResult>;
}

export interface Cli {
  /** The config file the runs use (`server: <url>`). */
  configPath: string;
  run(args: string[], options?: RunOptions): Promise<CliResult>;
  start(args: string[], options?: RunOptions): CliProcess;
  cleanup(): void;
}

function baseEnv(configPath: string, extra: RunOptions['env']): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SLIPWAY_CONFIG: configPath };
  delete env.SLIPWAY_SERVER;
  delete env.SLIPWAY_DEBUG;
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function launch(args: string[], configPath: string, options: RunOptions) {
  const child = spawn(process.execPath, [CLI_MAIN, ...args], { env: baseEnv(configPath, options.env), stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  if (options.stdin !== undefined) child.stdin!.end(options.stdin);
  else child.stdin!.end();
  const done = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr })));
  return { child, done, out: () => stdout, err: () => stderr };
}

/** Writes a config naming `server` and returns a runner using it. */
export function createCli(server: string, config: Record<string, string> = {}): Cli {
  const dir = mkdtempSync(join(tmpdir(), 'slipctl-test-'));
  const configPath = join(dir, 'config');
  writeFileSync(configPath, Object.entries({ server, ...config }).map(([k, v]) => `${k}: ${JSON.stringify(v)}\n`).join(''));
  return {
    configPath,
    async run(args, options = {}) {
      const p = launch(args, configPath, options);
      const timer = setTimeout(() => p.child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
      const result = await p.done;
      clearTimeout(timer);
      return result;
    },
    start(args, options = {}) {
      const p = launch(args, configPath, options);
      return {
        child: p.child,
        stdout: p.out,
        stderr: p.err,
        async waitForOutput(pattern, timeoutMs = 10_000) {
          const deadline = Date.now() + timeoutMs;
          while (!pattern.test(p.out())) {
            if (Date.now() > deadline || p.child.exitCode !== null) {
              throw new Error(`slipctl ${args.join(' ')}: no output matching ${pattern} (stdout: ${JSON.stringify(p.out())}, stderr: ${JSON.stringify(p.err())})`);
            }
            await new Promise((r) => setTimeout(r, 25));
          }
          return p.out();
        },
        exited() {
          return p.done;
        },
        async stop() {
          if (p.child.exitCode === null) p.child.kill('SIGTERM');
          return p.done;
        },
      };
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function openWatches(api: { url: string; adminToken: string }, resource: string): Promise<number> {
  const text = await (await fetch(`${api.url}/metrics`, { headers: { authorization: `Bearer ${api.adminToken}` } })).text();
  const m = new RegExp(`^slipway_apiserver_open_watches\\{resource="${resource}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/**
 * Runs `start`, then resolves once the server has one more open watch on `resource` than before,
 * so a test can change an object knowing the CLI is already watching (not merely polling once).
 */
export async function whileWatching<T>(api: { url: string; adminToken: string }, resource: string, start: () => T, timeoutMs = 10_000): Promise<T> {
  const before = await openWatches(api, resource);
  const started = start();
  const deadline = Date.now() + timeoutMs;
  while ((await openWatches(api, resource)) <= before) {
    if (Date.now() > deadline) throw new Error(`no new watch on ${resource} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return started;
}
