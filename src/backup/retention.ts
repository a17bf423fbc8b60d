// Grandfather-father-son retention of backups. Pure: decides from a list of backups, a policy, a
// clock and a time zone; deletes nothing itself.
//
// Rules, precisely:
// - Only VERIFIED backups take part. Unverified (failed, unchecked) backups are neither counted,
//   kept nor pruned: they appear in neither `keep` nor `prune`; the caller deals with them.
// - Each backup's time is placed in calendar periods of the given IANA time zone (default UTC):
//   its local day (y-m-d from Intl.DateTimeFormat), its ISO week (Monday to Sunday, containing
//   that local day) and its local month.
// - Daily: for each of the `daily` most recent local calendar days, counting the day of `now` as
//   the first (so today and the daily-1 days before it), the newest verified backup of that day
//   is kept. Days without a backup are not made up for by older days.
// - Weekly: likewise for the `weekly` most recent ISO weeks, the week of `now` first.
// - Monthly: likewise for the `monthly` most recent months, the month of `now` first.
// - A backup kept by several rules is kept once. A count of 0 disables that rule.
// - The newest verified backup (by time) is ALWAYS kept, even if it is older than every window.
// - Verified backups dated after `now` (clock skew) are always kept.
// - Everything else that is verified is pruned; `prune` lists it oldest first.
// - Ties (same time) are broken by name, the greater name counting as newer.
// Defaults: 14 daily, 8 weekly, 6 monthly.

export interface RetentionPolicy {
  daily: number;
  weekly: number;
  monthly: number;
}

export interface BackupRecord {
  name: string;
  time: Date;
  verified: boolean;
}

export const DEFAULT_RETENTION: RetentionPolicy = { daily: 14, weekly: 8, monthly: 6 };

const MS_PER_DAY = 86_400_000;
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric' });
    } catch (err) {
      throw new Error(`invalid time zone ${JSON.stringify(timeZone)}: use an IANA name such as Europe/Berlin (${(err as Error).message})`);
    }
    formatters.set(timeZone, f);
  }
  return f;
}

interface LocalPeriods {
  /** Days since 1970-01-01 of the local calendar date. */
  day: number;
  /** Day number of the Monday starting the ISO week. */
  week: number;
  /** year * 12 + month index. */
  month: number;
}

function periods(time: Date, timeZone: string): LocalPeriods {
  const parts = formatter(timeZone).formatToParts(time);
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const year = get('year');
  const month = get('month');
  const dayOfMonth = get('day');
  const day = Math.round(Date.UTC(year, month - 1, dayOfMonth) / MS_PER_DAY);
  const weekday = new Date(day * MS_PER_DAY).getUTCDay(); // 0 = Sunday
  const week = day - ((weekday + 6) % 7);
  return { day, week, month: year * 12 + (month - 1) };
}

function checkCount(policy: RetentionPolicy, key: keyof RetentionPolicy): number {
  const n = policy[key];
  if (!Number.isInteger(n) || n < 0) throw new Error(`retention ${key} must be a whole number ≥ 0, got ${String(n)}`);
  return n;
}

const newer = (a: BackupRecord, b: BackupRecord) =>
  a.time.getTime() !== b.time.getTime() ? a.time.getTime() > b.time.getTime() : a.name > b.name;

export function selectRetained(
  backups: BackupRecord[],
  policy: Partial<RetentionPolicy> = DEFAULT_RETENTION,
  now: Date,
  timeZone = 'UTC',
): { keep: Set<string>; prune: string[] } {
  const full: RetentionPolicy = { ...DEFAULT_RETENTION, ...policy };
  const daily = checkCount(full, 'daily');
  const weekly = checkCount(full, 'weekly');
  const monthly = checkCount(full, 'monthly');
  if (Number.isNaN(now.getTime())) throw new Error('retention: now is an invalid date');

  const names = new Set<string>();
  for (const b of backups) {
    if (names.has(b.name)) throw new Error(`retention: backup name ${b.name} appears twice`);
    names.add(b.name);
    if (!(b.time instanceof Date) || Number.isNaN(b.time.getTime())) throw new Error(`retention: backup ${b.name} has an invalid time`);
  }

  const verified = backups.filter((b) => b.verified);
  const today = periods(now, timeZone);
  const keep = new Set<string>();

  // Newest verified backup per period key, for each rule.
  const rules: Array<{ count: number; key: (p: LocalPeriods) => number; inWindow: (k: number) => boolean }> = [
    { count: daily, key: (p) => p.day, inWindow: (k) => k <= today.day && k > today.day - daily },
    { count: weekly, key: (p) => p.week, inWindow: (k) => k <= today.week && k > today.week - 7 * weekly },
    { count: monthly, key: (p) => p.month, inWindow: (k) => k <= today.month && k > today.month - monthly },
  ];
  const local = new Map(verified.map((b) => [b.name, periods(b.time, timeZone)]));
  for (const rule of rules) {
    if (rule.count === 0) continue;
    const best = new Map<number, BackupRecord>();
    for (const b of verified) {
      const k = rule.key(local.get(b.name)!);
      if (!rule.inWindow(k)) continue;
      const current = best.get(k);
      if (!current || newer(b, current)) best.set(k, b);
    }
    for (const b of best.values()) keep.add(b.name);
  }

  let newest: BackupRecord | undefined;
  for (const b of verified) {
    if (!newest || newer(b, newest)) newest = b;
    if (b.time.getTime() > now.getTime()) keep.add(b.name);
  }
  if (newest) keep.add(newest.name);

  const prune = verified
    .filter((b) => !keep.has(b.name))
    .sort((a, b) => (newer(a, b) ? 1 : newer(b, a) ? -1 : 0))
    .map((b) => b.name);
  return { keep, prune };
}
