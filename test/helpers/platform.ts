// A whole Slipway for runtime tests: etcd, an API server, the local Docker registered as Node
// `local`, and controller managers either in-process or as real child processes (to SIGKILL them).

import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import type { Event as SlipwayEvent } from '../../src/api/generated/crd-types.js';
import type { ApiClient } from '../../src/client/api-client.js';
import { startControllerManager, type ControllerManager, type ManagerOptions } from '../../src/controllers/manager.js';
import { CHECKOUT, startApi, type TestApi } from './apiserver.js';
import { DOCKER_SOCKET, ensureDockerd } from './docker.js';

export const API = '/apis/slipway.dev/v1alpha1';
export const nsPath = (ns: string, plural: string, name?: string) => `${API}/namespaces/${ns}/${plural}${name ? `/${name}` : ''}`;

export interface Platform {
  api: TestApi;
  client: ApiClient;
  stop(): Promise<void>;
}

/** Timings short enough for tests; the defaults are for production. */
export const FAST: Partial<ManagerOptions> = { heartbeatIntervalMs: 1000, nodeLossGraceMs: 4000, resyncMs: 3000, leaseDurationMs: 4000, renewDeadlineMs: 3000, retryPeriodMs: 500 };

export async function startPlatform(): Promise<Platform> {
  await ensureDockerd();
  const api = await startApi();
  return {
    api,
    client: api.client,
    stop: () => api.stop(),
  };
}

export async function startManager(api: TestApi, options: Partial<ManagerOptions> = {}): Promise<ControllerManager> {
  return startControllerManager({ server: api.url, token: api.managerToken, port: 0, logLevel: process.env.SLIPWAY_TEST_LOG ?? 'silent', ...FAST, onLostLeadership: () => {}, ...options });
}

export interface ManagerProcess {
  child: ChildProcess;
  output: () => string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** A controller manager as a real process (so a test can SIGKILL it), with the FAST timings. */
export function spawnManager(api: { url: string; managerToken: string }, extraEnv: Record<string, string> = {}): ManagerProcess {
  const apiUrl = api.url;
  const child = spawn(process.execPath, [resolve(CHECKOUT, 'dist/src/controllers/main.js'), '--server', apiUrl, '--port', '0', '--heartbeat-interval', '1', '--node-loss-grace', '4', '--resync', '3'], {
    env: { ...process.env, SLIPWAY_TOKEN: api.managerToken, SLIPWAY_LOG_LEVEL: process.env.SLIPWAY_TEST_LOG ?? 'info', SLIPWAY_LEASE_DURATION: '4', SLIPWAY_RENEW_DEADLINE: '3', SLIPWAY_RETRY_PERIOD: '0.5', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out = (out + d.toString()).slice(-200_000)));
  child.stderr!.on('data', (d) => (out = (out + d.toString()).slice(-200_000)));
  return {
    child,
    output: () => out,
    kill: (signal: NodeJS.Signals = 'SIGKILL') =>
      new Promise((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once('exit', () => done());
        child.kill(signal);
      }),
  };
}

export async function registerNode(client: ApiClient, name: string, docker: Record<string, unknown> = { socket: DOCKER_SOCKET }, labels: Record<string, string> = {}, extraSpec: Record<string, unknown> = {}): Promise<void> {
  await client.create(`${API}/nodes`, { apiVersion: 'slipway.dev/v1alpha1', kind: 'Node', metadata: { name, labels }, spec: { docker, ...extraSpec } });
}

/** Polls `check` until it returns a truthy value; fails with `what` and the last value after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false | null> | T | undefined | false | null, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}


/**
 * Waits for an Event in `namespace` matching `match` (controllers record Events after the status
 * write a test usually waits for) and returns it.
 */
export function waitForEvent(client: ApiClient, namespace: string, what: string, match: (e: SlipwayEvent) => boolean, timeoutMs = 10_000, fieldSelector?: string): Promise<SlipwayEvent> {
  return waitFor(`${what} Event`, async () => (await client.list<SlipwayEvent>(nsPath(namespace, 'events'), fieldSelector ? { fieldSelector } : {})).items.find(match), timeoutMs);
}

/** GET over plain HTTP, returning status and body text (status 0 when the connection fails). */
export async function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, body: await res.text() };
  } catch {
    return { status: 0, body: '' };
  }
}
