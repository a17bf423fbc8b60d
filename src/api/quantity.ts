// Resource quantities as written in specs: memory like `512Mi`, `1.5G` or a plain byte count, and
// CPUs as a number or numeric string.

const SUFFIX: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
};

/** Bytes for a memory quantity; throws on anything that is not one. */
export function parseBytes(value: number | string): number {
  if (typeof value === 'number') return Math.round(value);
  const match = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$/.exec(value.trim());
  if (!match) throw new Error(`invalid quantity ${JSON.stringify(value)}: expected a number with an optional suffix such as Mi or G`);
  return Math.round(Number(match[1]) * SUFFIX[match[2] ?? '']!);
}

export function parseCpus(value: number | string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`invalid CPU count ${JSON.stringify(value)}`);
  return n;
}
