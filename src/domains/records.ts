// What a customer must put in DNS for a Domain: the verification token (derived, so it survives
// restarts without being remembered), the TXT record name, and the expected records per method.
// Pure functions; the domain controller stores their result in status.expectedRecords.

import { createHmac } from 'node:crypto';
import type { Domain, DomainSpec } from '../api/generated/crd-types.js';

/** Prefix of the TXT record that proves ownership: `_slipway-challenge.<hostname>`. */
export const CHALLENGE_LABEL = '_slipway-challenge';

export type VerificationMethod = 'TXT' | 'CNAME' | 'A';
export type ExpectedRecord = NonNullable<NonNullable<Domain['status']>['expectedRecords']>[number];

/** Where customers point their hostnames: the edge's DNS name (CNAME) and IPv4 address (A). */
export interface EdgeTargets {
  cnameTarget?: string;
  aTarget?: string;
}

/**
 * The TXT value for one Domain: an HMAC of its uid keyed by the cluster id, so the same Domain
 * always gets the same token (no state to lose) and a recreated Domain gets a new one.
 */
export function verificationToken(clusterId: string, domainUid: string): string {
  return `slipway-verify-${createHmac('sha256', clusterId).update(domainUid).digest('hex').slice(0, 40)}`;
}

export const challengeName = (hostname: string) => `${CHALLENGE_LABEL}.${hostname}`;

/** A DNS name compared as DNS does: case-insensitive, trailing dot ignored. */
export const normalizeName = (name: string) => name.toLowerCase().replace(/\.$/, '');

export interface RecordPlan {
  /** Every record the customer should create (shown by `slipctl describe domain`). */
  records: ExpectedRecord[];
  /** How many leading entries of `records` must be observed for ownership to count as proven. */
  required: number;
  /** Why the plan cannot be followed (a CNAME/A method without a target), if it cannot. */
  error?: string;
}

/**
 * The records for a Domain's verification method. TXT proves ownership with the token; the
 * routing record (CNAME to the edge name, else A to the edge address) is listed when the edge's
 * name or address is known, and only required when it is itself the verification method.
 */
export function expectedRecords(spec: Pick<DomainSpec, 'hostname' | 'verification'>, token: string, edge: EdgeTargets): RecordPlan {
  const method: VerificationMethod = spec.verification?.method ?? 'TXT';
  const target = spec.verification?.target;
  const host = spec.hostname;
  if (method === 'CNAME') {
    const value = target ?? edge.cnameTarget;
    if (!value) return { records: [], required: 0, error: 'verification method CNAME needs a target: set spec.verification.target (the controller has no default edge name)' };
    return { records: [{ type: 'CNAME', name: host, value: normalizeName(value) }], required: 1 };
  }
  if (method === 'A') {
    const value = target ?? edge.aTarget;
    if (!value) return { records: [], required: 0, error: 'verification method A needs a target: set spec.verification.target (the controller has no default edge address)' };
    return { records: [{ type: 'A', name: host, value }], required: 1 };
  }
  const records: ExpectedRecord[] = [{ type: 'TXT', name: challengeName(host), value: token }];
  if (edge.cnameTarget) records.push({ type: 'CNAME', name: host, value: normalizeName(edge.cnameTarget) });
  else if (edge.aTarget) records.push({ type: 'A', name: host, value: edge.aTarget });
  return { records, required: 1 };
}
