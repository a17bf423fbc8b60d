// Where slipctl finds the API server: `~/.slipway/config` (YAML with `server`, optional `token`
// and optional default `namespace`; path overridable with SLIPWAY_CONFIG), with the server
// overridable by `--server` and SLIPWAY_SERVER. `make up` writes the file.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CliError } from './errors.js';

export interface CliConfig {
  server: string;
  token?: string;
  /** The default namespace: the config file's `namespace`, else `default`. */
  namespace: string;
}

export interface ConfigSources {
  serverFlag?: string;
  env: NodeJS.ProcessEnv;
}

export const configPath = (env: NodeJS.ProcessEnv): string => env.SLIPWAY_CONFIG || join(homedir(), '.slipway', 'config');

interface FileConfig {
  server?: string;
  token?: string;
  namespace?: string;
}

function readConfigFile(path: string): FileConfig | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CliError(`cannot read the slipctl config ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = parse(text);
  } catch (err) {
    throw new CliError(`the slipctl config ${path} is not valid YAML: ${(err as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new CliError(`the slipctl config ${path} must be a YAML mapping (server: URL)`);
  const cfg = parsed as Record<string, unknown>;
  for (const key of ['server', 'token', 'namespace'] as const) {
    if (cfg[key] !== undefined && typeof cfg[key] !== 'string') throw new CliError(`the slipctl config ${path}: "${key}" must be a string`);
  }
  return cfg as FileConfig;
}

/** Resolves the effective configuration; throws a CliError telling what to do when there is no server. */
export function loadConfig(sources: ConfigSources): CliConfig {
  const path = configPath(sources.env);
  const file = readConfigFile(path);
  const server = sources.serverFlag || sources.env.SLIPWAY_SERVER || file?.server;
  if (!server) {
    throw new CliError(
      file
        ? `the slipctl config ${path} names no server: add "server: http://127.0.0.1:PORT", run \`make up\`, or pass --server URL`
        : `no Slipway API server configured (${path} does not exist): run \`make up\` to start one and write the config, or pass --server URL (or set SLIPWAY_SERVER)`,
    );
  }
  if (!/^https?:\/\//.test(server)) throw new CliError(`invalid server ${JSON.stringify(server)}: expected an http:// or https:// URL`);
  return { server, ...(file?.token ? { token: file.token } : {}), namespace: file?.namespace || 'default' };
}
