// The domain controller's configuration (manager option `domains`), with every default in one place,
// and its command-line flags.

import { readFileSync } from 'node:fs';
import { option } from '../util/flags.js';

export interface DomainOptions {
  /** `ip[:port]` DNS servers verification lookups go to. Defaults to the system's resolvers. */
  resolvers?: string[];
  /** `host:port` of the edge's HTTPS listener, probed with SNI = hostname. Defaults to `127.0.0.1:<edge.httpsPort>`, else `127.0.0.1:443`. */
  edgeProbeAddress?: string;
  /** The edge's DNS name customers point a CNAME at (default for `verification.method: CNAME`, listed for TXT). Defaults to none. */
  cnameTarget?: string;
  /** The edge's IPv4 address customers point an A record at (default for `verification.method: A`). Defaults to none. */
  aTarget?: string;
  /** PEM roots a served certificate must chain to. Defaults to the system's roots (right for Let's Encrypt). */
  trustedRootsPem?: string;
  /** First delay between DNS checks of a pending Domain; doubles per check. Defaults to 5 s. */
  dnsCheckBaseMs?: number;
  /** Longest delay between DNS checks. Defaults to 5 min. */
  dnsCheckMaxMs?: number;
  /** How long "no such record" answers are reused. Defaults to 2 s. */
  negativeCacheMs?: number;
  /** How long one issuance attempt may take before it counts as failed. Defaults to 60 s. */
  issuanceTimeoutMs?: number;
  /** Delay after the first failed issuance in an hour; doubles per failure (at most 5 per hour). Defaults to 60 s. */
  issuanceBackoffBaseMs?: number;
  /** Longest delay after a failed issuance. Defaults to 30 min. */
  issuanceBackoffMaxMs?: number;
  /** Pause between TLS probes while the edge does not yet serve the hostname. Defaults to 1 s. */
  probeIntervalMs?: number;
  /** How often a Ready Domain's certificate is probed again (renewal, expiry). Defaults to 1 h. */
  certificateRecheckMs?: number;
  /** A certificate expiring within this many days raises CertificateExpiringSoon. Defaults to 14. */
  expiryWarningDays?: number;
  /** Longest wait for the edge to drop a deleted Domain's route before the finalizer is removed anyway. Defaults to 2 min. */
  finalizerTimeoutMs?: number;
}

export type DomainSettings = Required<Omit<DomainOptions, 'cnameTarget' | 'aTarget' | 'trustedRootsPem' | 'resolvers'>> & Pick<DomainOptions, 'cnameTarget' | 'aTarget' | 'trustedRootsPem' | 'resolvers'>;

export function domainSettings(o: DomainOptions = {}): DomainSettings {
  return {
    ...o,
    edgeProbeAddress: o.edgeProbeAddress ?? '127.0.0.1:443',
    dnsCheckBaseMs: o.dnsCheckBaseMs ?? 5_000,
    dnsCheckMaxMs: o.dnsCheckMaxMs ?? 300_000,
    negativeCacheMs: o.negativeCacheMs ?? 2_000,
    issuanceTimeoutMs: o.issuanceTimeoutMs ?? 60_000,
    issuanceBackoffBaseMs: o.issuanceBackoffBaseMs ?? 60_000,
    issuanceBackoffMaxMs: o.issuanceBackoffMaxMs ?? 1_800_000,
    probeIntervalMs: o.probeIntervalMs ?? 1_000,
    certificateRecheckMs: o.certificateRecheckMs ?? 3_600_000,
    expiryWarningDays: o.expiryWarningDays ?? 14,
    finalizerTimeoutMs: o.finalizerTimeoutMs ?? 120_000,
  };
}

export const DOMAIN_USAGE = `  --domain-resolvers ADDRS      comma-separated ip[:port] DNS servers for domain verification (SLIPWAY_DOMAIN_RESOLVERS, default the system's)
  --domain-edge-probe ADDR      host:port of the edge's HTTPS listener probed for certificates (SLIPWAY_DOMAIN_EDGE_PROBE, default 127.0.0.1:<edge https port>)
  --domain-cname-target NAME    edge hostname customers point a CNAME at (SLIPWAY_DOMAIN_CNAME_TARGET)
  --domain-a-target IPV4        edge address customers point an A record at (SLIPWAY_DOMAIN_A_TARGET)
  --domain-trusted-roots FILE   PEM roots served certificates must chain to (SLIPWAY_DOMAIN_TRUSTED_ROOTS, default the system's)`;

/** The `domains` manager option from `--domain-*` flags or their environment variables. */
export function domainOptionsFromFlags(flags: Map<string, string>): DomainOptions {
  const resolvers = option(flags, 'domain-resolvers', 'SLIPWAY_DOMAIN_RESOLVERS', '').split(',').map((s) => s.trim()).filter(Boolean);
  const httpsPort = option(flags, 'edge-https-port', 'SLIPWAY_EDGE_HTTPS_PORT', '443');
  const cnameTarget = option(flags, 'domain-cname-target', 'SLIPWAY_DOMAIN_CNAME_TARGET', '');
  const aTarget = option(flags, 'domain-a-target', 'SLIPWAY_DOMAIN_A_TARGET', '');
  const rootsFile = option(flags, 'domain-trusted-roots', 'SLIPWAY_DOMAIN_TRUSTED_ROOTS', '');
  let trustedRootsPem: string | undefined;
  if (rootsFile) {
    try {
      trustedRootsPem = readFileSync(rootsFile, 'utf8');
    } catch (err) {
      throw new Error(`cannot use --domain-trusted-roots ${rootsFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!trustedRootsPem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`cannot use --domain-trusted-roots ${rootsFile}: not a PEM certificate`);
  }
  return {
    ...(resolvers.length ? { resolvers } : {}),
    edgeProbeAddress: option(flags, 'domain-edge-probe', 'SLIPWAY_DOMAIN_EDGE_PROBE', `127.0.0.1:${httpsPort}`),
    ...(cnameTarget ? { cnameTarget } : {}),
    ...(aTarget ? { aTarget } : {}),
    ...(trustedRootsPem ? { trustedRootsPem } : {}),
  };
}
