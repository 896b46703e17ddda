import {
  addCalendarMonths,
  addDuration,
  fixedDurationMs,
  parseIsoDuration,
  startOfNextUtcMonth,
  startOfUtcMonth,
} from '../../billing/durations';

const parse = (text: string) => {
  const duration = parseIsoDuration(text);
  if (!duration) throw new Error(`${text} did not parse`);
  return duration;
};

describe('parseIsoDuration', () => {
  it.each([
    ['P1D', { days: 1 }],
    ['PT12S', { seconds: 12 }],
    ['PT0.5S', { seconds: 0.5 }],
    ['P1Y', { years: 1 }],
    ['P1Y2M3W4DT5H6M7S', { years: 1, months: 2, weeks: 3, days: 4, hours: 5, minutes: 6, seconds: 7 }],
    ['PT0S', {}],
  ])('reads %s', (text, parts) => {
    expect(parse(text)).toEqual({
      years: 0,
      months: 0,
      weeks: 0,
      days: 0,
      hours: 0,
      minutes: 0,
      seconds: 0,
      ...parts,
    });
  });

  it.each(['', 'P', 'PT', '1D', 'P1', 'P-1D', 'PT1.2345S', 'P1DT', 'p1d', 'P1.5D', 'P1D ', 'PT1H1D'])(
    'refuses %j',
    (text) => expect(parseIsoDuration(text)).toBeNull(),
  );
});

describe('fixedDurationMs', () => {
  it('adds up every fixed part', () => {
    expect(fixedDurationMs(parse('P1D'))).toBe(86_400_000);
    expect(fixedDurationMs(parse('PT12S'))).toBe(12_000);
    expect(fixedDurationMs(parse('P1W1DT1H1M1.5S'))).toBe(691_200_000 + 3_600_000 + 60_000 + 1_500);
  });

  it('refuses years and months, which have no fixed length', () => {
    expect(() => fixedDurationMs(parse('P1M'))).toThrow(/fixed length/);
    expect(() => fixedDurationMs(parse('P1Y'))).toThrow(/fixed length/);
  });
});

describe('calendar arithmetic in UTC', () => {
  const at = (iso: string) => new Date(iso);

  it('keeps the day of month, or the last day of a shorter month', () => {
    expect(addCalendarMonths(at('2026-01-31T10:00:00Z'), 1).toISOString()).toBe('2026-02-28T10:00:00.000Z');
    expect(addCalendarMonths(at('2028-01-31T10:00:00Z'), 1).toISOString()).toBe('2028-02-29T10:00:00.000Z');
    expect(addCalendarMonths(at('2026-01-31T00:00:00Z'), 2).toISOString()).toBe('2026-03-31T00:00:00.000Z');
    expect(addCalendarMonths(at('2026-11-30T23:59:59.999Z'), 3).toISOString()).toBe(
      '2027-02-28T23:59:59.999Z',
    );
  });

  it('moves a leap day a year later to the 28th', () => {
    expect(addDuration(at('2028-02-29T12:00:00Z'), parse('P1Y')).toISOString()).toBe(
      '2029-02-28T12:00:00.000Z',
    );
    expect(addDuration(at('2028-02-29T12:00:00Z'), parse('P4Y')).toISOString()).toBe(
      '2032-02-29T12:00:00.000Z',
    );
  });

  it('adds calendar parts first, then fixed ones', () => {
    expect(addDuration(at('2026-01-31T00:00:00Z'), parse('P1M1D')).toISOString()).toBe(
      '2026-03-01T00:00:00.000Z',
    );
    expect(addDuration(at('2026-11-30T18:00:00Z'), parse('PT30S')).toISOString()).toBe(
      '2026-11-30T18:00:30.000Z',
    );
  });

  it('walks every month end of four years without drifting', () => {
    for (let months = 0; months < 48; months++) {
      const next = addCalendarMonths(at('2026-01-31T00:00:00Z'), months);
      const lastDay = new Date(Date.UTC(next.getUTCFullYear(), next.getUTCMonth() + 1, 0)).getUTCDate();
      expect(next.getUTCDate()).toBe(lastDay);
      expect(next.getUTCMonth()).toBe((0 + months) % 12);
    }
  });

  it('finds the month an instant belongs to and the next one', () => {
    expect(startOfUtcMonth(at('2026-12-31T23:59:59.999Z')).toISOString()).toBe('2026-12-01T00:00:00.000Z');
    expect(startOfNextUtcMonth(at('2026-12-31T23:59:59.999Z')).toISOString()).toBe(
      '2027-01-01T00:00:00.000Z',
    );
    expect(startOfNextUtcMonth(at('2027-01-01T00:00:00Z')).toISOString()).toBe('2027-02-01T00:00:00.000Z');
  });
});
