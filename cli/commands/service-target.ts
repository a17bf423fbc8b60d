// The object arguments of rollout, logs and exec (`service/NAME`, `svc/NAME` or a plain `NAME`)
// and nodes (`NODE`), with the REST paths and annotation names these commands use.

import { API_VERSION, GROUP } from '../../src/api/types.js';
import { CliError } from '../errors.js';
import type { Session } from '../session.js';

export const SERVICE_LABEL = 'slipway.dev/service';
export { CHANGE_CAUSE_ANNOTATION as CHANGE_CAUSE, RESTARTED_AT_ANNOTATION as RESTARTED_AT, DRAIN_ANNOTATION as DRAIN } from '../../src/api/service-contract.js';

const enc = encodeURIComponent;
const BASE = `/apis/${API_VERSION}`;

export const servicePath = (ns?: string, name?: string): string => `${BASE}${ns ? `/namespaces/${enc(ns)}` : ''}/services${name !== undefined ? `/${enc(name)}` : ''}`;
export const releasePath = (ns: string, name?: string): string => `${BASE}/namespaces/${enc(ns)}/releases${name !== undefined ? `/${enc(name)}` : ''}`;
export const nodePath = (name?: string): string => `${BASE}/nodes${name !== undefined ? `/${enc(name)}` : ''}`;

/** Seconds-precision RFC 3339, as Kubernetes writes timestamps. */
export const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * The Service named by `service/NAME`, `svc/NAME` (any name of the kind) or a plain `NAME`.
 * `what` names the command in errors, e.g. `rollout status`.
 */
export async function serviceName(session: Session, arg: string | undefined, what: string): Promise<string> {
  if (arg === undefined || arg === '') throw new CliError(`${what} needs a service: service/NAME or NAME`);
  const slash = arg.indexOf('/');
  if (slash < 0) return checkName(arg, what);
  const kind = arg.slice(0, slash);
  const name = arg.slice(slash + 1);
  const resource = await session.resolve(kind);
  if (resource.group !== GROUP || resource.kind !== 'Service') throw new CliError(`${what} works with services only (got ${resource.plural} "${name}")`);
  return checkName(name, what);
}

/** A node name argument: exactly one. */
export function nodeName(positional: readonly string[], what: string): string {
  if (positional.length !== 1) throw new CliError(`${what} needs exactly one node name (got ${positional.length})`);
  const arg = positional[0]!;
  const name = arg.startsWith('node/') || arg.startsWith('nodes/') ? arg.slice(arg.indexOf('/') + 1) : arg;
  return checkName(name, what);
}

function checkName(name: string, what: string): string {
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) throw new CliError(`${what}: invalid name ${JSON.stringify(name)} (expected lower-case letters, digits, '-' and '.')`);
  return name;
}

/** Parses a non-negative integer flag value. */
export function intFlag(text: string | undefined, flag: string, min = 0): number | undefined {
  if (text === undefined) return undefined;
  if (!/^-?\d{1,9}$/.test(text) || Number(text) < min) throw new CliError(`invalid value ${JSON.stringify(text)} for --${flag}: expected an integer >= ${min}`);
  return Number(text);
}
