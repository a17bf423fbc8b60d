// Looks up the records a Domain expects, through one configurable resolver (node's dns.Resolver,
// pointed at given servers or the system's), with a short negative cache so that many reconciles
// of hostnames that are not set up yet do not hammer DNS.

import { Resolver } from 'node:dns/promises';
import { normalizeName, type ExpectedRecord } from './records.js';

export interface DnsCheckOptions {
  /** `ip[:port]` DNS servers; the system's resolvers when empty. */
  servers?: readonly string[];
  /** How long a "no such record" answer is reused. Defaults to 2 s. */
  negativeCacheMs?: number;
  /** Per-query timeout. Defaults to 2 s. */
  timeoutMs?: number;
  clock?: () => number;
}

/** What one lookup found: the values, `[]` when the name has no such record, or the failure. */
export interface Lookup {
  values: string[];
  /** A resolver failure (timeout, SERVFAIL, refused): not the same as "no record". */
  error?: string;
}

export interface RecordCheck {
  records: ExpectedRecord[];
  /** The first `required` records were all observed. */
  verified: boolean;
  /** Why not, in words a customer can act on. */
  problem?: string;
}

/** dns error codes that mean "the name or the record does not exist" (cacheable, not a failure). */
const ABSENT = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN', 'ENONAME']);

export class DnsChecker {
  private readonly resolver: Resolver;
  private readonly negative = new Map<string, number>();
  private readonly negativeCacheMs: number;
  private readonly clock: () => number;

  constructor(options: DnsCheckOptions = {}) {
    this.resolver = new Resolver({ timeout: options.timeoutMs ?? 2_000, tries: 2 });
    if (options.servers?.length) this.resolver.setServers([...options.servers]);
    this.negativeCacheMs = options.negativeCacheMs ?? 2_000;
    this.clock = options.clock ?? Date.now;
  }

  /** One lookup; `fresh` skips the negative cache (an operator asked to check now). */
  async lookup(type: ExpectedRecord['type'], name: string, fresh = false): Promise<Lookup> {
    const key = `${type} ${normalizeName(name)}`;
    const until = this.negative.get(key);
    if (until !== undefined && !fresh) {
      if (until > this.clock()) return { values: [] };
      this.negative.delete(key);
    }
    try {
      const values =
        type === 'TXT' ? (await this.resolver.resolveTxt(name)).map((chunks) => chunks.join(''))
        : type === 'CNAME' ? (await this.resolver.resolveCname(name)).map(normalizeName)
        : type === 'A' ? await this.resolver.resolve4(name)
        : await this.resolver.resolve6(name);
      if (!values.length) this.remember(key);
      return { values };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (ABSENT.has(code)) {
        this.remember(key);
        return { values: [] };
      }
      return { values: [], error: `${type} lookup of ${name} failed: ${code || (err as Error).message}` };
    }
  }

  /** Looks up every expected record; ownership is proven when the first `required` are all there. */
  async check(expected: readonly ExpectedRecord[], required: number, fresh = false): Promise<RecordCheck> {
    const lookups = await Promise.all(expected.map((r) => this.lookup(r.type, r.name, fresh)));
    const records = expected.map((r, i) => {
      const want = r.type === 'CNAME' ? normalizeName(r.value) : r.value;
      return { ...r, observed: lookups[i]!.values.includes(want) };
    });
    const missing = records.slice(0, required).map((r, i) => ({ r, l: lookups[i]! })).filter(({ r }) => !r.observed);
    if (!missing.length) return { records, verified: true };
    const problem = missing
      .map(({ r, l }) => l.error ?? (l.values.length ? `${r.type} ${r.name} is ${l.values.map((v) => JSON.stringify(v)).join(', ')}, expected ${JSON.stringify(r.value)}` : `no ${r.type} record ${r.name} (expected ${JSON.stringify(r.value)})`))
      .join('; ');
    return { records, verified: false, problem };
  }

  private remember(key: string): void {
    if (this.negativeCacheMs > 0) this.negative.set(key, this.clock() + this.negativeCacheMs);
    if (this.negative.size > 10_000) this.negative.clear();
  }
}
