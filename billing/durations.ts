/**
 * ISO-8601 durations as the configuration writes them (`P1D`, `PT12S`, `P1Y`, `PT0.5S`), and the two ways the
 * lifecycle uses them:
 * - a fixed length in milliseconds (`fixedDurationMs`), for units of time that never vary: the billing day, webhook
 *   retry delays. Years and months have no fixed length, so they are refused there;
 * - a calendar step (`addDuration`), for validity periods such as "a year after the purchase": years and months move
 *   the UTC calendar date (clamped to the month's last day: Jan 31 + P1M = Feb 28/29), then days, hours, minutes
 *   and seconds add their fixed lengths.
 *
 * Temporal's own duration strings have no month unit (`'1M'` is a minute), so the lifecycle computes calendar
 * instants here and sleeps until them.
 */

export interface IsoDuration {
  years: number;
  months: number;
  weeks: number;
  days: number;
  hours: number;
  minutes: number;
  /** May be fractional, to the millisecond (`PT0.25S`). */
  seconds: number;
}

const DURATION =
  /^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d{1,3})?)S)?)?$/;

/** Milliseconds in a UTC day (days have a fixed length here: UTC has no daylight saving). */
export const MS_PER_DAY = 86_400_000;

const MS = { week: 604_800_000, day: MS_PER_DAY, hour: 3_600_000, minute: 60_000, second: 1_000 } as const;

/** Parses an ISO-8601 duration; null when it is not one (empty parts such as `P` or `PT` included). */
export function parseIsoDuration(text: string): IsoDuration | null {
  const match = DURATION.exec(text);
  if (!match || text === 'P' || text.endsWith('T')) return null;
  const [, years, months, weeks, days, hours, minutes, seconds] = match;
  const n = (part: string | undefined) => (part === undefined ? 0 : Number(part));
  return {
    years: n(years),
    months: n(months),
    weeks: n(weeks),
    days: n(days),
    hours: n(hours),
    minutes: n(minutes),
    seconds: n(seconds),
  };
}

/** Whether the duration has a fixed length (no years or months). */
export function isFixedLength(duration: IsoDuration): boolean {
  return duration.years === 0 && duration.months === 0;
}

/** The length in milliseconds of a duration without years or months; throws for one with them. */
export function fixedDurationMs(duration: IsoDuration): number {
  if (!isFixedLength(duration)) throw new Error('years and months have no fixed length');
  return Math.round(
    duration.weeks * MS.week +
      duration.days * MS.day +
      duration.hours * MS.hour +
      duration.minutes * MS.minute +
      duration.seconds * MS.second,
  );
}

/**
 * `at` moved forward by the duration: years and months on the UTC calendar (the day of month kept, or the month's
 * last day when it has fewer), then the fixed-length parts.
 */
export function addDuration(at: Date, duration: IsoDuration): Date {
  const totalMonths = duration.years * 12 + duration.months;
  let ms = at.getTime();
  if (totalMonths !== 0) ms = addCalendarMonths(at, totalMonths).getTime();
  return new Date(ms + fixedDurationMs({ ...duration, years: 0, months: 0 }));
}

/** `at` plus whole calendar months in UTC, the day clamped to the target month's length; time of day kept. */
export function addCalendarMonths(at: Date, months: number): Date {
  const year = at.getUTCFullYear();
  const month = at.getUTCMonth() + months;
  const targetYear = year + Math.floor(month / 12);
  const targetMonth = ((month % 12) + 12) % 12;
  const lastDay = new Date(Date.UTC(targetYear, targetMonth + 1, 0)).getUTCDate();
  const day = Math.min(at.getUTCDate(), lastDay);
  return new Date(
    Date.UTC(
      targetYear,
      targetMonth,
      day,
      at.getUTCHours(),
      at.getUTCMinutes(),
      at.getUTCSeconds(),
      at.getUTCMilliseconds(),
    ),
  );
}

/** The first instant of the UTC calendar month that contains `at`. */
export function startOfUtcMonth(at: Date): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
}

/** The first instant of the next UTC calendar month after the one containing `at`. */
export function startOfNextUtcMonth(at: Date): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1));
}
