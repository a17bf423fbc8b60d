// A real Caddy for tests: `caddy run` on free loopback ports with its own temporary data and config
// directories (certificates, autosave), started with only an admin listener so the edge controller
// loads the rest. It can be killed and started again on the same ports and directories.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../src/util/free-port.js';
import { request } from 'undici';
import type { Node } from '../../src/api/generated/crd-types.js';
import type { ApiClient } from '../../src/client/api-client.js';
import { API, waitFor } from './platform.js';

export interface TestCaddy {
  readonly adminAddress: string;
  readonly httpPort: number;
  readonly httpsPort: number;
  /** Holds `data/` (certificates, Caddy's local CA under data/caddy/pki) and `caddy.log`. */
  readonly dir: string;
  pid(): number | undefined;
  /** The running config, as Caddy reports it. */
  config(): Promise<unknown>;
  /** Starts Caddy again (after kill) with only its admin listener. */
  start(): Promise<void>;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  log(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface CaddyOptions {
  /** Extra environment (e.g. SSL_CERT_FILE for a test CA). */
  env?: Record<string, string>;
}

/**
 * Caddy 2.6 on Linux gives each config its own SO_REUSEPORT listener and closes the old one after a
 * load: connections still in the old socket's accept queue are reset. With tcp_migrate_req (Linux
 * 5.14+) the kernel hands them to the new listener instead. `make up` sets it on the edge node too.
 * Returns the value in effect ('' where the kernel has no such setting).
 */
export function enableTcpMigrateReq(): string {
  const file = '/proc/sys/net/ipv4/tcp_migrate_req';
  try {
    writeFileSync(file, '1');
  } catch {
    // not root, or an older kernel: reported by the value read below
  }
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

export async function startCaddy(options: CaddyOptions = {}): Promise<TestCaddy> {
  enableTcpMigrateReq();
  const dir = mkdtempSync(join(tmpdir(), 'slipway-caddy-'));
  const adminAddress = `127.0.0.1:${await freeLoopbackPort()}`;
  const httpPort = await freeLoopbackPort();
  const httpsPort = await freeLoopbackPort();
  const bootFile = join(dir, 'boot.json');
  writeFileSync(bootFile, JSON.stringify({ admin: { listen: adminAddress } }));
  let child: ChildProcess | undefined;

  const start = async () => {
    const env = { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config'), ...options.env };
    const out = join(dir, 'caddy.log');
    const fd = openSync(out, 'a');
    const c = spawn('caddy', ['run', '--config', bootFile], { env, stdio: ['ignore', fd, fd] });
    child = c;
    running.add(c);
    c.once('exit', () => running.delete(c));
    await waitFor(`Caddy admin API at ${adminAddress}`, async () => c.exitCode === null && (await fetch(`http://${adminAddress}/config/`)).ok, 15_000, 50);
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((done) => {
      c.once('exit', () => done());
      c.kill('SIGKILL');
    });
  };
  await start();
  return {
    adminAddress,
    httpPort,
    httpsPort,
    dir,
    pid: () => child?.pid,
    config: async () => (await fetch(`http://${adminAddress}/config/`)).json(),
    start,
    kill,
    log: () => {
      try {
        return readFileSync(join(dir, 'caddy.log'), 'utf8');
      } catch {
        return '';
      }
    },
    stop: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A Node's `status.edge.configLoads` once it has not changed for `quietMs` (the edge controller has settled). */
export async function settledConfigLoads(client: ApiClient, node: string, quietMs = 2500): Promise<number> {
  const loads = async () => (await client.get<Node>(`${API}/nodes/${node}`)).status?.edge?.configLoads ?? 0;
  let last = await loads();
  let since = Date.now();
  await waitFor(`edge config loads of ${node} to settle`, async () => {
    const now = await loads();
    if (now !== last) [last, since] = [now, Date.now()];
    return Date.now() - since >= quietMs;
  }, 60_000, 200);
  return last;
}

/** GET `/` through Caddy's HTTP port with a Host header (status 0 when the connection fails). */
export async function getViaEdge(port: number, host: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  // Like curl and browsers, a GET that fails because the server closed the idle keep-alive
  // connection it was written to (Caddy closes idle connections on every config load) is sent
  // once more (RFC 9112 9.3.1). Any other failure, or a second one, is status 0 with the error.
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await request(`http://127.0.0.1:${port}/`, { headers: { host, ...headers }, headersTimeout: 5000, bodyTimeout: 5000 });
      return { status: res.statusCode, body: (await res.body.text()).trim(), headers: res.headers };
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (attempt === 0 && STALE_CONNECTION.has(code)) continue;
      return { status: 0, body: `${code} ${(err as Error).message}`.trim(), headers: {} };
    }
  }
}

/** undici's errors for a request written to a connection the server had just closed. */
export const STALE_CONNECTION = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);
