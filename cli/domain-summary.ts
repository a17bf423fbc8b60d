// The Domain part of `slipctl describe domain`: what the customer must put in DNS (and whether it
// was seen), the phase, the served certificate, the last error and when the next check is due,
// ahead of the generic field dump. Pure.

import type { KubeObject } from '../src/api/types.js';
import { formatRows, humanDuration } from './printers.js';

type DomainStatus = {
  phase?: string;
  expectedRecords?: Array<{ type: string; name: string; value: string; observed?: boolean }>;
  certificate?: { issuer?: string; notAfter?: string; serialNumber?: string };
  lastError?: string;
  nextCheckTime?: string;
  issuanceFailures?: number;
};

const when = (iso: string | undefined, now: number) => {
  const t = Date.parse(iso ?? '');
  if (!Number.isFinite(t)) return '<none>';
  return `${iso} (${t >= now ? `in ${humanDuration(t - now)}` : `${humanDuration(now - t)} ago`})`;
};

export function renderDomainSummary(obj: KubeObject, now: number): string[] {
  const s = (obj.status ?? {}) as DomainStatus;
  const lines = [`Phase:        ${s.phase ?? '<none>'}`];
  const records = s.expectedRecords ?? [];
  if (records.length) {
    const rows = [['Type', 'Name', 'Value', 'Found'], ...records.map((r) => [r.type, r.name, r.value, r.observed === undefined ? 'not checked' : r.observed ? 'yes' : 'no'])];
    const dashes = rows[0]!.map((h) => '-'.repeat(h.length));
    lines.push('DNS records:', ...formatRows([rows[0]!, dashes, ...rows.slice(1)]).trimEnd().split('\n').map((l) => `  ${l.trimEnd()}`));
  }
  const c = s.certificate;
  lines.push(`Certificate:  ${c?.notAfter ? `${c.issuer ?? '?'}, serial ${c.serialNumber ?? '?'}, expires ${when(c.notAfter, now)}` : '<none>'}`);
  if (s.issuanceFailures) lines.push(`Failed issuances (last hour): ${s.issuanceFailures} of at most 5`);
  lines.push(`Last error:   ${s.lastError ?? '<none>'}`, `Next check:   ${when(s.nextCheckTime, now)}`);
  return lines;
}
