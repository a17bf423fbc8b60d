// `slipway-controller-manager`: the controllers' process. Options come from flags or environment.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { option, parseFlags } from '../util/flags.js';
import { startControllerManager } from './manager.js';
import { EDGE_USAGE, edgeOptionsFromFlags } from './edge.js';
import { DOMAIN_USAGE, domainOptionsFromFlags } from '../domains/settings.js';

const USAGE = `Usage: slipway-controller-manager [options]
  --server URL                  API server (SLIPWAY_SERVER, default http://127.0.0.1:6440)
  --ca-file FILE                PEM CA an https API server must be signed by (SLIPWAY_CA_FILE)
  --token-file FILE             file holding this manager's bearer token (SLIPWAY_TOKEN_FILE; or the token in SLIPWAY_TOKEN)
  --bind-address ADDR           address of the manager's own endpoints (SLIPWAY_MANAGER_BIND_ADDRESS, default 127.0.0.1)
  --port PORT                   port of /healthz, /metrics, logs and exec (SLIPWAY_MANAGER_PORT, default 6441)
  --heartbeat-interval SECONDS  node heartbeat period (SLIPWAY_HEARTBEAT_INTERVAL, default 10)
  --node-loss-grace SECONDS     NotReady time before a node's replicas move (SLIPWAY_NODE_LOSS_GRACE, default 60)
  --resync SECONDS              re-check period of settled services (SLIPWAY_RESYNC, default 15)
  --alert-interval SECONDS      how often alert rules are evaluated (SLIPWAY_ALERT_INTERVAL, default 30)
  --lease-duration SECONDS      leader lease duration (SLIPWAY_LEASE_DURATION, default 15)
  --renew-deadline SECONDS      give up leadership when not renewed within this (SLIPWAY_RENEW_DEADLINE, default 10)
  --retry-period SECONDS        lease acquire/renew period (SLIPWAY_RETRY_PERIOD, default 2)
  --data-dir DIR                 directory of build logs (SLIPWAY_MANAGER_DATA_DIR, default ~/.slipway/controller-manager)
  --log-level LEVEL             pino log level (SLIPWAY_LOG_LEVEL, default info)
${EDGE_USAGE}
${DOMAIN_USAGE}`;

/** The PEM text of --ca-file, if given; a clear error when it cannot be read. */
function readCaFile(path: string): { ca: string } | Record<string, never> {
  if (!path) return {};
  try {
    const ca = readFileSync(path, 'utf8');
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new Error('not a PEM certificate');
    return { ca };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`cannot use --ca-file ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
}

/** The bearer token: the --token-file's content, else SLIPWAY_TOKEN. Never logged. */
function readToken(path: string): { token: string } | Record<string, never> {
  if (!path) return process.env.SLIPWAY_TOKEN ? { token: process.env.SLIPWAY_TOKEN } : {};
  try {
    const token = readFileSync(path, 'utf8').trim();
    if (!token) throw new Error('the file is empty');
    return { token };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`cannot use --token-file ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
}

function seconds(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`invalid --${flag} ${JSON.stringify(value)}: expected a positive number of seconds`);
  return n * 1000;
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  if (flags.has('help')) {
    console.log(USAGE);
    return;
  }
  const port = Number(option(flags, 'port', 'SLIPWAY_MANAGER_PORT', '6441'));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${port}`);
  const manager = await startControllerManager({
    server: option(flags, 'server', 'SLIPWAY_SERVER', 'http://127.0.0.1:6440'),
    ...readCaFile(option(flags, 'ca-file', 'SLIPWAY_CA_FILE', '')),
    ...readToken(option(flags, 'token-file', 'SLIPWAY_TOKEN_FILE', '')),
    bindAddress: option(flags, 'bind-address', 'SLIPWAY_MANAGER_BIND_ADDRESS', '127.0.0.1'),
    port,
    heartbeatIntervalMs: seconds(option(flags, 'heartbeat-interval', 'SLIPWAY_HEARTBEAT_INTERVAL', '10'), 'heartbeat-interval'),
    nodeLossGraceMs: seconds(option(flags, 'node-loss-grace', 'SLIPWAY_NODE_LOSS_GRACE', '60'), 'node-loss-grace'),
    resyncMs: seconds(option(flags, 'resync', 'SLIPWAY_RESYNC', '15'), 'resync'),
    alertIntervalMs: seconds(option(flags, 'alert-interval', 'SLIPWAY_ALERT_INTERVAL', '30'), 'alert-interval'),
    leaseDurationMs: seconds(option(flags, 'lease-duration', 'SLIPWAY_LEASE_DURATION', '15'), 'lease-duration'),
    renewDeadlineMs: seconds(option(flags, 'renew-deadline', 'SLIPWAY_RENEW_DEADLINE', '10'), 'renew-deadline'),
    retryPeriodMs: seconds(option(flags, 'retry-period', 'SLIPWAY_RETRY_PERIOD', '2'), 'retry-period'),
    logLevel: option(flags, 'log-level', 'SLIPWAY_LOG_LEVEL', 'info'),
    edge: edgeOptionsFromFlags(flags),
    domains: domainOptionsFromFlags(flags),
    dataDir: option(flags, 'data-dir', 'SLIPWAY_MANAGER_DATA_DIR', join(homedir(), '.slipway', 'controller-manager')),
  });
  const shutdown = async (signal: string) => {
    manager.log.info({ signal }, 'shutting down');
    await manager.stop().catch(() => {});
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err) => {
  console.error(`slipway-controller-manager: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
