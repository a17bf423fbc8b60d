// Where slipctl finds the API server: `~/.slipway/config` (YAML with `server`, optional `token` (or SLIPWAY_TOKEN),
// optional `certificate-authority` and optional default `namespace`; path overridable with
// SLIPWAY_CONFIG), with the server overridable by `--server` and SLIPWAY_SERVER and the CA by
// `--certificate-authority`. `make up` writes the file.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { X509Certificate } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { CliError } from './errors.js';

export interface CliConfig {
  server: string;
  token?: string;
  /** Absolute path of the PEM CA bundle an https server must be signed by (the only CAs trusted). */
  certificateAuthority?: string;
  /** Where certificateAuthority came from, for messages. */
  certificateAuthoritySource?: string;
  /** The default namespace: the config file's `namespace`, else `default`. */
  namespace: string;
}

export interface ConfigSources {
  serverFlag?: string;
  /** --certificate-authority (relative to the working directory). */
  caFlag?: string;
  env: NodeJS.ProcessEnv;
}

export const configPath = (env: NodeJS.ProcessEnv): string => env.SLIPWAY_CONFIG || join(homedir(), '.slipway', 'config');

interface FileConfig {
  server?: string;
  token?: string;
  namespace?: string;
  'certificate-authority'?: string;
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
  for (const key of ['server', 'token', 'namespace', 'certificate-authority'] as const) {
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
  // The flag is relative to the working directory, the config key to the config file's directory.
  const ca = sources.caFlag
    ? { certificateAuthority: resolve(sources.caFlag), certificateAuthoritySource: '--certificate-authority' }
    : file?.['certificate-authority']
      ? { certificateAuthority: resolve(dirname(path), file['certificate-authority']), certificateAuthoritySource: `certificate-authority in ${path}` }
      : {};
  // SLIPWAY_TOKEN (e.g. from a CI secret) wins over the config file's token.
  const token = sources.env.SLIPWAY_TOKEN || file?.token;
  return { server, ...(token ? { token } : {}), ...ca, namespace: file?.namespace || 'default' };
}

/** The PEM text of the configured CA bundle, or undefined when none is configured. */
export function readCertificateAuthority(config: CliConfig): string | undefined {
  const path = config.certificateAuthority;
  if (!path) return undefined;
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new CliError(`cannot read the certificate authority ${path} (${config.certificateAuthoritySource}): ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  try {
    new X509Certificate(pem);
  } catch {
    throw new CliError(`the certificate authority ${path} (${config.certificateAuthoritySource}) is not a PEM certificate`);
  }
  return pem;
}
