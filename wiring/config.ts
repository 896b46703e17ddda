import path from 'node:path';
import { z } from 'zod';
import { fixedDurationMs, isFixedLength, parseIsoDuration } from '../billing/durations';
import { parseBillingPeriod } from '../billing/periods';
import { DEFAULT_BILLING_PERIOD, DEFAULT_DUNNING_RETRY_DAYS } from '../billing/account';
import { usd } from '../billing/money';

/**
 * The whole configuration, parsed once from the environment. Every variable is listed in the README's
 * configuration table with the same default. A bad value stops startup with a message naming the variable.
 */
const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^[0-9]+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const optionalUrl = z
  .string()
  .min(1)
  .optional()
  .transform((v) => (v === '' ? undefined : v));

/** An ISO-8601 duration longer than zero (`P0D`, `PT0.000S` are not). */
function isPositiveDuration(text: string): boolean {
  const duration = parseIsoDuration(text);
  return duration !== null && Object.values(duration).some((part) => part > 0);
}

/** An ISO-8601 duration without years or months (`P1D`, `PT12S`), as milliseconds. */
const fixedDuration = (what: string) =>
  z.string().transform((text, ctx) => {
    const duration = parseIsoDuration(text);
    if (!duration || !isFixedLength(duration)) {
      ctx.addIssue({
        code: 'custom',
        message: `${what}: an ISO-8601 duration without years or months, e.g. "P1D"`,
      });
      return z.NEVER;
    }
    return fixedDurationMs(duration);
  });

/** A comma list of fixed ISO-8601 durations (each may be zero), as milliseconds. */
const durationList = z.string().transform((text, ctx) => {
  const parts = text.split(',').map((p) => p.trim());
  const delays_ms: number[] = [];
  for (const part of parts) {
    const duration = parseIsoDuration(part);
    if (!duration || !isFixedLength(duration)) {
      ctx.addIssue({
        code: 'custom',
        message: `"${part}" is not an ISO-8601 duration without years or months`,
      });
      return z.NEVER;
    }
    delays_ms.push(fixedDurationMs(duration));
  }
  return delays_ms;
});

/** A comma list of billing-day counts, strictly increasing from 0 (a dunning schedule), at most 20. */
const dayList = z.string().transform((text, ctx) => {
  const days: number[] = [];
  for (const part of text.split(',').map((p) => p.trim())) {
    if (!/^[0-9]{1,5}$/.test(part)) {
      ctx.addIssue({ code: 'custom', message: `"${part}" is not a whole number of billing days` });
      return z.NEVER;
    }
    const day = Number(part);
    if (days.length > 0 && day <= days[days.length - 1]!) {
      ctx.addIssue({ code: 'custom', message: 'must be strictly increasing, e.g. "1,3,5,7"' });
      return z.NEVER;
    }
    days.push(day);
  }
  return days;
});

/** An optional variable where empty means unset (docker-compose passes `${VAR:-}` through as ''). */
const unsetWhenEmpty = (schema: z.ZodString) =>
  z
    .string()
    .optional()
    .transform((v) => (v === '' ? undefined : v))
    .pipe(schema.optional());

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/** The largest wallet floor: 1e9 USD, so that balances and batch totals stay far from the bigint limit. */
const WALLET_FLOOR_MAX_NANOS = usd('1000000000');
const USD_DECIMAL = /^[0-9]+(\.[0-9]{1,9})?$/;

const configSchema = z.object({
  PORT: integer(1, 65535).default(3000),
  API_KEYS: z
    .string()
    .default('sk_dev_admin')
    .transform((v) => v.split(',').map((k) => k.trim()))
    .pipe(z.array(z.string().min(8, 'each key needs at least 8 characters')).min(1)),
  DATABASE_URL: optionalUrl.pipe(
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
      .optional(),
  ),
  DATABASE_POOL_MAX: integer(1, 500).default(20),
  DATA_DIR: z.string().min(1).default(path.resolve('.data')),
  EMBEDDED_POSTGRES_PORT: integer(1, 65535).default(5488),
  TEMPORAL_ADDRESS: optionalUrl,
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('billing'),
  TEMPORAL_CLI_PATH: optionalUrl,
  TEMPORAL_DEV_PORT: integer(1, 65535).default(7233),
  TEMPORAL_UI_PORT: integer(1, 65535).default(8233),
  BODY_LIMIT_BYTES: integer(1024, 50 * 1024 * 1024).default(1024 * 1024),
  TOP_UP_MIN_USD: z
    .string()
    .regex(/^[0-9]+(\.[0-9]{1,2})?$/, 'must be whole cents, e.g. "5.00"')
    .default('1.00'),
  TOP_UP_MAX_USD: z
    .string()
    .regex(/^[0-9]+(\.[0-9]{1,2})?$/, 'must be whole cents, e.g. "5000.00"')
    .default('10000.00'),
  CREDIT_GRANT_MAX_USD: z
    .string()
    .regex(/^[0-9]+(\.[0-9]{1,9})?$/, 'must be a USD decimal, e.g. "100000.00"')
    .default('100000.00'),
  // How far below zero usage recorded without a balance check may take a wallet; past it, events are rejected.
  // Bounded so that no balance or batch total can come near the bigint limit (about 9.2e9 USD in nanos).
  WALLET_FLOOR_USD: z
    .string()
    .regex(USD_DECIMAL, 'must be a USD decimal, e.g. "1000.00" (how far below zero)')
    .refine((v) => !USD_DECIMAL.test(v) || usd(v) <= WALLET_FLOOR_MAX_NANOS, 'must be at most 1000000000.00')
    .default('1000.00'),
  HOT_PATH_POOL_MAX: integer(1, 500).default(20),
  HOLD_TTL_SECONDS: integer(1, 86_400).default(600),
  HOLD_SWEEP_INTERVAL_MS: integer(1000, 3_600_000).default(30_000),
  CROSSING_SWEEP_INTERVAL_MS: integer(100, 3_600_000).default(2_000),
  PRICE_BOOK_PATH: optionalUrl,
  ACTIVITY_TIMEOUT_MS: integer(100, 3_600_000).default(30_000),
  PAYMENT_ACTIVITY_TIMEOUT_MS: integer(100, 3_600_000).default(60_000),
  UPDATE_WAIT_TIMEOUT_MS: integer(100, 600_000).default(30_000),
  SHUTDOWN_GRACE_MS: integer(0, 600_000).default(10_000),
  // The lifecycle's unit of days (tier age rules, dunning delays, grace periods); tests use seconds.
  BILLING_DAY: fixedDuration('BILLING_DAY')
    .pipe(z.number().min(1, 'must be longer than zero'))
    .default(86_400_000),
  // The Standard Webhooks schedule: the delay before each attempt, the first included.
  WEBHOOK_RETRY_SCHEDULE: durationList
    .pipe(z.array(z.number()).min(1).max(20, 'at most 20 attempts'))
    .default([0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]),
  // How long one webhook attempt may take (connect, send, answer) before it counts as failed.
  WEBHOOK_TIMEOUT_MS: integer(100, 60_000).default(10_000),
  // How often the worker's webhook dispatcher sweeps the events outbox (it is also woken at once by a notification).
  WEBHOOK_SWEEP_INTERVAL_MS: integer(100, 3_600_000).default(2_000),
  // How long bought credit (top-ups, auto-recharges) stays spendable: an ISO-8601 duration, or `none`.
  TOP_UP_CREDIT_VALIDITY: z
    .string()
    .refine((v) => v === 'none' || isPositiveDuration(v), {
      message: 'must be a positive ISO-8601 duration such as "P1Y" or "PT30S", or "none"',
    })
    .transform((v) => (v === 'none' ? null : v))
    .default('P1Y'),
  TIERS_PATH: optionalUrl,
  // A subscription's period: calendar months (`P1M`, the default; `P1Y`) or a fixed length (`PT12S` in tests).
  BILLING_PERIOD: z
    .string()
    .refine((v) => parseBillingPeriod(v) !== null, {
      message:
        'must be an ISO-8601 duration of whole months or years ("P1M", "P1Y") or one without them ("PT12S"), longer than zero',
    })
    .default(DEFAULT_BILLING_PERIOD),
  // Retries of a failed renewal, in billing days after the failure (each a BILLING_DAY).
  DUNNING_RETRY_SCHEDULE: dayList
    .pipe(z.array(z.number()).min(1).max(20, 'at most 20 retries'))
    .default([...DEFAULT_DUNNING_RETRY_DAYS]),
  // The subscription plan catalog replacing the bundled billing/plans/default.json (validated at startup).
  PLANS_PATH: optionalUrl,

  // Stripe (README "Stripe"): a secret key switches card payments from the simulated gateway to Stripe.
  STRIPE_SECRET_KEY: unsetWhenEmpty(
    z.string().regex(/^(sk|rk)_[A-Za-z0-9_]+$/, 'must be a Stripe secret or restricted key (sk_… or rk_…)'),
  ),
  // Where the Stripe client sends its requests instead of api.stripe.com (stripe-mock in tests).
  STRIPE_API_BASE: unsetWhenEmpty(
    z.string().refine(isHttpUrl, 'must be an http:// or https:// URL, e.g. "http://127.0.0.1:12111"'),
  ),
  // Verifies the signatures of Stripe's inbound webhooks.
  STRIPE_WEBHOOK_SECRET: unsetWhenEmpty(
    z.string().regex(/^whsec_[A-Za-z0-9_]+$/, 'must be a Stripe webhook signing secret (whsec_…)'),
  ),
  // How old the timestamp of an inbound Stripe event's signature may be (replays of older captures are refused).
  STRIPE_WEBHOOK_TOLERANCE_S: integer(1, 86_400).default(300),
  // Reconciliation (README "Reconciliation"): how often the `reconciliation` Schedule runs, and how far before the
  // interval each run's window reaches, so consecutive windows overlap by it.
  RECONCILIATION_INTERVAL: fixedDuration('RECONCILIATION_INTERVAL')
    .pipe(
      z
        .number()
        .min(1_000, 'must be at least a second')
        .max(31 * 86_400_000, 'must be at most P31D'),
    )
    .default(86_400_000),
  // The periodic sweep's wakes (README "Nothing waits for the customer's next call"): how late an account's work may
  // be before the sweep wakes it, and the longest wait before it wakes an account whose work stays overdue again.
  ACCOUNT_WAKE_AFTER: fixedDuration('ACCOUNT_WAKE_AFTER')
    .pipe(z.number().min(0).max(86_400_000, 'must be at most P1D'))
    .default(60_000),
  ACCOUNT_WAKE_MAX_BACKOFF: fixedDuration('ACCOUNT_WAKE_MAX_BACKOFF')
    .pipe(
      z
        .number()
        .min(1_000, 'must be at least a second')
        .max(7 * 86_400_000, 'must be at most P7D'),
    )
    .default(3_600_000),
  RECONCILIATION_WINDOW_MARGIN: fixedDuration('RECONCILIATION_WINDOW_MARGIN')
    .pipe(z.number().min(0).max(86_400_000, 'must be at most P1D'))
    .default(3_600_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {}

/** Parses the environment; throws ConfigError whose message names each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const relevant = Object.fromEntries(
    Object.keys(configSchema.shape).flatMap((key) => (env[key] === undefined ? [] : [[key, env[key]]])),
  );
  const parsed = configSchema.safeParse(relevant);
  if (!parsed.success) {
    const lines = parsed.error.issues.map(
      (issue) => `  ${issue.path.join('.') || '(env)'}: ${issue.message}`,
    );
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}
