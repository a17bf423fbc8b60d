// Cron schedules (5-field expressions or @hourly-style macros, in an IANA time zone), for scheduled
// Services and, later, backups: validation with a readable error, and the slots around a time.

import { CronExpressionParser } from 'cron-parser';

export interface Schedule {
  cron: string;
  timeZone?: string;
}

function parse(schedule: Schedule, at: Date) {
  return CronExpressionParser.parse(schedule.cron, { currentDate: at, tz: schedule.timeZone ?? 'UTC', strict: false });
}

/** Why the schedule is unusable, or undefined when it is fine. */
export function scheduleError(schedule: Schedule): { field: 'cron' | 'timeZone'; message: string } | undefined {
  const tz = schedule.timeZone ?? 'UTC';
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    return { field: 'timeZone', message: `unknown time zone ${JSON.stringify(tz)}: expected an IANA name such as Europe/Berlin` };
  }
  if (!schedule.cron.startsWith('@') && schedule.cron.trim().split(/\s+/).length !== 5) {
    return { field: 'cron', message: `${JSON.stringify(schedule.cron)} is not a 5-field cron expression (minute hour day-of-month month day-of-week)` };
  }
  try {
    parse(schedule, new Date()).next();
    return undefined;
  } catch (err) {
    return { field: 'cron', message: `invalid cron expression ${JSON.stringify(schedule.cron)}: ${(err as Error).message}` };
  }
}

/** The latest slot at or before `at`. */
export function previousSlot(schedule: Schedule, at: Date): Date {
  return parse(schedule, new Date(at.getTime() + 1)).prev().toDate();
}

/** The first slot after `at`. */
export function nextSlot(schedule: Schedule, at: Date): Date {
  return parse(schedule, at).next().toDate();
}
