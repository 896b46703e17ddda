import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { EVENT_TYPES } from '../billing/events';
import { tierTableProblem, USAGE_DIMENSION } from '../billing/contracts';
import { formatCents, formatUsd, NANOS_PER_CENT, NANOS_PER_USD, parseUsd } from '../billing/money';
import { ALL_EVENTS } from '../billing/webhooks';
import { IMAGE_QUALITY, IMAGE_SIZE } from '../billing/price-book';
import { MAX_IMAGE_ENTRIES, parseStorageGbDays } from '../billing/rating';
import { MAX_LIMIT_NANOS, MAX_RATE_PER_MINUTE } from '../billing/tiers';

// Every request and response shape of the API: validation at the edge and the OpenAPI document both come from
// these schemas, so the document cannot drift from what the server accepts.
extendZodWithOpenApi(z);

// ---- Text and identifiers ----
//
// The rule for every string the API accepts (bodies, path ids, query values, header values). Control characters
// have no business in ids or labels, and PostgreSQL refuses NUL in text outright, so one of them reaching a
// statement used to turn a request into a 500, or wedge the activity that wrote it. The edge refuses them:
// - identifiers (customer ids, event ids, path ids, cursors, Idempotency-Key, payment methods) are printable ASCII;
// - single-line text (names, metadata, `feature`, model and tool names) is any Unicode but control characters:
//   C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F);
// - multi-line free text (a credit grant's `reason`) additionally allows tab (U+0009) and line feed (U+000A);
// - and no text may hold a lone UTF-16 surrogate (it is not Unicode; PostgreSQL would store U+FFFD instead).

const CONTROL_CHARACTERS = '\\u0000-\\u001f\\u007f-\\u009f';
/** Single-line text: no control characters. Also the pattern published in the OpenAPI document. */
const SINGLE_LINE_TEXT = new RegExp(`^[^${CONTROL_CHARACTERS}]*$`);
/** Multi-line text: no control characters but tab and line feed. */
const MULTI_LINE_TEXT = new RegExp('^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$');
/** Printable ASCII without spaces: the alphabet of every identifier the API hands out or accepts. */
export const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;
const LONE_SURROGATE = /\p{Cs}/u;

/** A text field of 0..max (or min..max) characters under the rule above; `multiline` also allows tab and LF. */
export function text(options: { max: number; min?: number; multiline?: boolean; description?: string }) {
  const pattern = options.multiline ? MULTI_LINE_TEXT : SINGLE_LINE_TEXT;
  const allowed = options.multiline ? ' other than tab and line feed' : '';
  return z
    .string()
    .min(
      options.min ?? 0,
      options.min === 1 ? 'must not be empty' : `must be at least ${options.min} characters`,
    )
    .max(options.max, `must be at most ${options.max} characters`)
    .regex(pattern, `must not contain control characters${allowed}`)
    .refine((value) => !LONE_SURROGATE.test(value), 'must be well-formed Unicode (no lone surrogates)')
    .openapi({
      description: [
        options.description,
        `No control characters${allowed} (U+0000-U+001F, U+007F-U+009F) and no lone surrogates.`,
      ]
        .filter(Boolean)
        .join(' '),
    });
}

/** JSON Schema's `propertyNames` for a record keyed by single-line text (the generator passes it on untyped). */
function propertyNames(max: number): object {
  return {
    propertyNames: { type: 'string', minLength: 1, maxLength: max, pattern: SINGLE_LINE_TEXT.source },
  };
}

/** An identifier: 1..max printable ASCII characters without spaces. */
export function identifier(max: number, description?: string) {
  return z
    .string()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`)
    .regex(PRINTABLE_ASCII, 'must be printable ASCII without spaces or control characters')
    .openapi({ description: description ?? `1 to ${max} printable ASCII characters, no spaces.` });
}

/** The id of a top-up, authorization, grant and the like in a path: never a control character (400 otherwise). */
export const ResourceId = identifier(200);

// ---- Money ----

const MONEY_PATTERN = '^(0|[1-9][0-9]{0,9})(\\.[0-9]{1,9})?$';
/** MONEY_PATTERN above zero: a whole part from 1, or "0." with a non-zero digit within 9 decimals. */
const POSITIVE_MONEY_PATTERN = `^([1-9][0-9]{0,9}(\\.[0-9]{1,9})?|0\\.(${Array.from(
  { length: 9 },
  (_, zeros) => `${'0'.repeat(zeros)}[1-9][0-9]{0,${8 - zeros}}`,
).join('|')}))$`;
/** POSITIVE_MONEY_PATTERN in whole cents: at most 2 significant decimals (trailing zeros up to 9 decimals). */
const POSITIVE_CENTS_PATTERN = '^([1-9][0-9]{0,9}(\\.[0-9]{1,2}0{0,7})?|0\\.([1-9][0-9]?|0[1-9])0{0,7})$';

/** A USD amount as an exact decimal string (never a JSON number), at most 9 decimals, not negative. */
export const MoneyInput = z
  .string({ error: 'must be a decimal string of USD such as "20.00", not a JSON number' })
  .superRefine((text, ctx) => {
    const parsed = parseUsd(text);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
  })
  // The same grammar as parseUsd (no sign, exponent or leading zeros, at most 9 decimals); the range (at most
  // MAX_NANOS) is checked by parseUsd and cannot be expressed by a pattern.
  .openapi({
    type: 'string',
    pattern: MONEY_PATTERN,
    example: '20.00',
    description: 'USD as a decimal string, at most 9 decimals, at most 9223372036.854775807.',
  });

/**
 * A positive USD amount of at most `max_nanos`, and, with `cents`, in whole cents from `min_nanos` (a card is
 * charged in cents). The limits are configuration, so the schema is built from them and the published document
 * states this server's values.
 */
export function boundedMoneyInput(limits: { min_nanos?: bigint; max_nanos: bigint; cents?: boolean }) {
  const min_nanos = limits.min_nanos ?? 1n;
  const show = limits.cents ? formatCents : formatUsd;
  const range =
    limits.min_nanos === undefined
      ? `at most ${show(limits.max_nanos)} USD`
      : `between ${show(min_nanos)} and ${show(limits.max_nanos)} USD`;
  return MoneyInput.superRefine((text, ctx) => {
    const parsed = parseUsd(text);
    if (!parsed.ok) return; // MoneyInput has said why
    if (parsed.nanos <= 0n) ctx.addIssue({ code: 'custom', message: 'must be greater than zero' });
    else if (limits.cents && parsed.nanos % 10_000_000n !== 0n) {
      ctx.addIssue({
        code: 'custom',
        message: 'is charged to a card, so it must be whole cents (e.g. "20.00")',
      });
    } else if (parsed.nanos < min_nanos || parsed.nanos > limits.max_nanos) {
      ctx.addIssue({ code: 'custom', message: `must be ${range}` });
    }
  }).openapi({
    pattern: limits.cents ? POSITIVE_CENTS_PATTERN : POSITIVE_MONEY_PATTERN,
    description: `USD as a decimal string${limits.cents ? ' in whole cents' : ''}, ${range}.`,
    'x-minimum-usd': show(min_nanos),
    'x-maximum-usd': show(limits.max_nanos),
  });
}

const MoneyOutput = z.string().openapi({ example: '20.000000000', description: 'USD, exact, 9 decimals' });

export const CustomerId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, "_" or "-"')
  .openapi({ example: 'cus_acme', description: '1 to 64 letters, digits, "_" or "-".' });

const Metadata = z
  .record(text({ min: 1, max: 40 }), text({ max: 500 }))
  .refine((m) => Object.keys(m).length <= 50, 'at most 50 metadata keys')
  .openapi({
    example: { plan: 'startup' },
    description: 'At most 50 keys of 1..40 characters; values of 0..500 characters.',
    maxProperties: 50,
    ...propertyNames(40),
  });

const Timestamp = z.string().openapi({ format: 'date-time', example: '2026-11-25T12:00:00.000Z' });

export const ListQuery = z
  .object({
    // A query value is a string on the wire; the document describes what it must spell.
    limit: z
      .string()
      .regex(/^[0-9]{1,3}$/, 'must be a whole number from 1 to 100')
      .transform(Number)
      .pipe(z.number().int().min(1, 'must be at least 1').max(100, 'must be at most 100'))
      .optional()
      .openapi({
        type: 'integer',
        minimum: 1,
        maximum: 100,
        default: 20,
        description: 'Page size, 1 to 100.',
      }),
    starting_after: identifier(100, 'The id of the last item of the previous page.').optional(),
  })
  .strict();

export const ErrorResponse = z
  .object({
    error: z
      .object({
        type: z.string(),
        code: z.string(),
        message: z.string(),
        param: z.string().optional(),
        decline_code: z.string().optional(),
      })
      .catchall(z.unknown()),
  })
  .openapi('Error', {
    description:
      'Every error. The HTTP status follows `type` (API.md); `param` names the offending field, path or query ' +
      'parameter or header. 405 method_not_allowed carries an `Allow` header.',
  });

export const CustomerCreate = z
  .object({
    id: CustomerId.optional(),
    email: z.email().max(320).optional(),
    name: text({ min: 1, max: 200 }).optional(),
    metadata: Metadata.optional(),
  })
  .strict();

export const PaymentMethodPut = z
  .object({
    payment_method: z
      .string()
      .regex(/^pm_[A-Za-z0-9_]{1,200}$/, 'must be a payment method id such as "pm_card_visa"'),
  })
  .strict();

/** A top-up: whole cents within the configured TOP_UP_MIN_USD..TOP_UP_MAX_USD. */
export const topUpCreate = (limits: { top_up_min_nanos: bigint; top_up_max_nanos: bigint }) =>
  z
    .object({
      amount_usd: boundedMoneyInput({
        min_nanos: limits.top_up_min_nanos,
        max_nanos: limits.top_up_max_nanos,
        cents: true,
      }),
    })
    .strict();

/** An operator grant: above zero and at most CREDIT_GRANT_MAX_USD. */
export const creditGrantCreate = (limits: { credit_grant_max_nanos: bigint }) =>
  z
    .object({
      amount_usd: boundedMoneyInput({ max_nanos: limits.credit_grant_max_nanos }),
      reason: text({ min: 1, max: 500, multiline: true, description: 'Why the credit is given.' }),
      source: z.enum(['promotion', 'goodwill']).optional(),
      expires_at: z.iso
        .datetime({ offset: true })
        .nullable()
        .optional()
        .openapi({ description: 'Must be in the future; null or absent never expires.' }),
    })
    .strict();

/** The largest target balance or monthly recharge limit accepted: far below the ledger's bigint limit. */
const AUTO_RECHARGE_MAX_NANOS = 1_000_000_000n * 1_000_000_000n;

/**
 * Auto-recharge settings: a threshold (exact USD), and exactly one of a fixed `amount_usd` per recharge (whole cents
 * within TOP_UP_MIN_USD..TOP_UP_MAX_USD) or a `target_balance_usd` above the threshold (whole cents; each charge is
 * the shortfall, kept within the same range); an optional monthly cap (whole cents, null or absent: none) that is
 * at least one charge.
 */
export const autoRechargePut = (limits: { top_up_min_nanos: bigint; top_up_max_nanos: bigint }) => {
  const cents = (min_nanos: bigint, max_nanos: bigint) =>
    boundedMoneyInput({ min_nanos, max_nanos, cents: true });
  return z
    .object({
      enabled: z.boolean().openapi({ description: 'false keeps the settings and stops recharging.' }),
      threshold_usd: MoneyInput.openapi({
        description: 'Recharge when a debit takes the available balance below this (USD decimal string).',
      }),
      amount_usd: cents(limits.top_up_min_nanos, limits.top_up_max_nanos).optional(),
      target_balance_usd: cents(NANOS_PER_CENT, AUTO_RECHARGE_MAX_NANOS).optional(),
      monthly_limit_usd: cents(NANOS_PER_CENT, AUTO_RECHARGE_MAX_NANOS).nullable().optional(),
    })
    .strict()
    .superRefine((body, ctx) => {
      if ((body.amount_usd === undefined) === (body.target_balance_usd === undefined)) {
        ctx.addIssue({
          code: 'custom',
          path: [body.amount_usd === undefined ? 'amount_usd' : 'target_balance_usd'],
          message: 'give exactly one of amount_usd (a fixed charge) and target_balance_usd (refill up to it)',
        });
        return;
      }
      const threshold = parseUsd(body.threshold_usd);
      const target = body.target_balance_usd === undefined ? undefined : parseUsd(body.target_balance_usd);
      if (threshold.ok && target?.ok && target.nanos <= threshold.nanos) {
        ctx.addIssue({
          code: 'custom',
          path: ['target_balance_usd'],
          message: 'must be greater than threshold_usd',
        });
      }
      const amount = body.amount_usd === undefined ? undefined : parseUsd(body.amount_usd);
      const limit = body.monthly_limit_usd == null ? undefined : parseUsd(body.monthly_limit_usd);
      const smallest_charge_nanos = amount?.ok ? amount.nanos : limits.top_up_min_nanos;
      if (limit?.ok && limit.nanos < smallest_charge_nanos) {
        ctx.addIssue({
          code: 'custom',
          path: ['monthly_limit_usd'],
          message: `must be at least one recharge (${formatCents(smallest_charge_nanos)} USD), or null for no limit`,
        });
      }
    });
};

export const AutoRecharge = z
  .object({
    enabled: z.boolean(),
    threshold_usd: MoneyOutput,
    amount_usd: MoneyOutput.nullable(),
    target_balance_usd: MoneyOutput.nullable(),
    monthly_limit_usd: MoneyOutput.nullable(),
    recharged_this_month_usd: MoneyOutput.openapi({
      description: 'Succeeded recharges in the current UTC calendar month.',
    }),
    disabled_reason: z.string().nullable().openapi({
      description:
        'Why auto-recharge switched itself off (e.g. "card_declined: generic_decline"); null otherwise.',
    }),
  })
  .openapi('AutoRecharge');

export const Balance = z
  .object({
    customer_id: z.string(),
    available_usd: MoneyOutput,
    held_usd: MoneyOutput,
    grants: z.array(
      z.object({
        id: z.string(),
        source: z.string(),
        reason: z.string().nullable(),
        status: z.enum(['active', 'depleted', 'expired', 'voided']),
        amount_usd: MoneyOutput,
        remaining_usd: MoneyOutput,
        granted_at: Timestamp,
        expires_at: Timestamp.nullable(),
      }),
    ),
  })
  .openapi('Balance');

export const CustomerBudget = z
  .object({
    monthly_alert_usd: MoneyOutput.nullable(),
    monthly_limit_usd: MoneyOutput.nullable(),
    spent_this_month_usd: MoneyOutput,
  })
  .openapi('CustomerBudget');

/** The largest budget: 1e9 USD, far from the bigint limit whatever is added to it. */
const BUDGET_MAX_NANOS = 1_000_000_000n * 1_000_000_000n;
const BudgetAmount = MoneyInput.refine((v) => {
  const parsed = parseUsd(v);
  return !parsed.ok || (parsed.nanos > 0n && parsed.nanos <= BUDGET_MAX_NANOS);
}, 'must be more than 0 and at most 1000000000.00');

export const BudgetPut = z
  .object({
    monthly_alert_usd: BudgetAmount.nullable().optional(),
    monthly_limit_usd: BudgetAmount.nullable().optional(),
  })
  .strict();

export const Budget = CustomerBudget.extend({
  object: z.literal('budget'),
  customer_id: z.string(),
  held_usd: MoneyOutput.openapi({
    description: 'Open holds, which count against the limit as they are made.',
  }),
  month: z.string().openapi({ example: '2026-11', description: 'The UTC calendar month the spend is of.' }),
  resets_at: Timestamp.openapi({
    description: 'When the next UTC month starts and the spend starts again at zero.',
  }),
}).openapi('Budget');

export const Customer = z
  .object({
    id: z.string(),
    object: z.literal('customer'),
    email: z.string().nullable(),
    name: z.string().nullable(),
    metadata: z.record(z.string(), z.string()),
    payment_method: z.string().nullable(),
    status: z.string(),
    balance: z.object({ available_usd: MoneyOutput, held_usd: MoneyOutput }),
    tier: z.string().nullable(),
    subscription: z.null(),
    auto_recharge: AutoRecharge.nullable(),
    budget: CustomerBudget,
    created_at: Timestamp,
  })
  .openapi('Customer');

/** Rates per minute up to 10^12; null means no limit. */
const RateLimit = z.number().int().min(1).nullable();
const LimitsOutput = z.object({
  rpm: RateLimit.openapi({ description: 'Requests per minute; null is no limit.' }),
  tpm: RateLimit.openapi({ description: 'Estimated tokens per minute; null is no limit.' }),
  monthly_usage_limit_usd: MoneyOutput.nullable().openapi({
    description: 'Usage per UTC calendar month, enforced like a budget; null is no limit.',
  }),
});

/** A customer's spend tier, what it has paid, the limits in effect and what the next tier requires. */
export const CustomerTier = z
  .object({
    object: z.literal('customer_tier'),
    customer_id: z.string(),
    tier: z.string().nullable().openapi({
      description: 'null only for a customer created before tiers, until its account reviews it.',
    }),
    tier_name: z.string().nullable(),
    tier_since: Timestamp.nullable(),
    lifetime_paid_usd: MoneyOutput,
    first_payment_at: Timestamp.nullable(),
    limits: LimitsOutput.openapi({ description: "In effect: each operator override, else the tier's." }),
    tier_limits: LimitsOutput.openapi({ description: "The tier's, as the account last wrote them." }),
    overrides: LimitsOutput.openapi({
      description: "The operator's (PUT .../limits); null falls back to the tier's.",
    }),
    model_limits: z.record(z.string(), z.object({ rpm: RateLimit, tpm: RateLimit })).openapi({
      description:
        'Per-model rate limits the tier table states for this tier. Informational: the engine enforces the customer-wide limits.',
    }),
    next_tier: z
      .object({
        tier: z.string(),
        tier_name: z.string(),
        requires: z.object({
          lifetime_paid_usd: MoneyOutput,
          days_since_first_payment: z.number().int(),
        }),
        lifetime_paid_missing_usd: MoneyOutput,
        days_rule_met_at: Timestamp.nullable().openapi({
          description:
            'When the days rule is (or was) met, counted in BILLING_DAY from the first payment; null when the tier has no days rule or nothing was paid yet.',
        }),
      })
      .nullable(),
  })
  .openapi('CustomerTier');

/** An operator's per-customer limits: a value overrides the tier's, null goes back to the tier's, absent is unchanged. */
export const LimitsPut = z
  .object({
    rpm: z.number().int().min(1).max(MAX_RATE_PER_MINUTE).nullable().optional(),
    tpm: z.number().int().min(1).max(MAX_RATE_PER_MINUTE).nullable().optional(),
    monthly_usage_limit_usd: boundedMoneyInput({ max_nanos: MAX_LIMIT_NANOS }).nullable().optional(),
  })
  .strict();

export const TopUp = z
  .object({
    id: z.string(),
    object: z.literal('top_up'),
    customer_id: z.string(),
    status: z.enum(['pending', 'succeeded', 'failed']),
    amount_usd: MoneyOutput,
    failure_code: z.string().nullable(),
    /** Why the card network declined it (Stripe's decline_code), when it did. */
    decline_code: z.string().nullable(),
    failure_message: z.string().nullable(),
    grant_id: z.string().nullable(),
    refunded_usd: MoneyOutput.openapi({
      description: 'What its succeeded refunds returned to the card (POST /v1/top-ups/{id}/refunds).',
    }),
    created_at: Timestamp,
  })
  .openapi('TopUp');

/**
 * A refund of a top-up's or an auto-recharge's payment: all of what is left to refund (no amount), or part of it in
 * whole cents; `allow_negative` lets it take credit that was spent already off the available balance.
 */
export const RefundCreate = z
  .object({
    // The largest amount the schema takes is far above any payment; the real bound is what is left to refund.
    amount_usd: boundedMoneyInput({
      min_nanos: NANOS_PER_CENT,
      max_nanos: AUTO_RECHARGE_MAX_NANOS,
      cents: true,
    })
      .optional()
      .openapi({
        description:
          'Whole cents above zero, at most what is left to refund of the payment (400 otherwise); absent: all of it.',
      }),
    allow_negative: z
      .boolean()
      .optional()
      .openapi({
        description:
          'Refund even when the credit was spent (or is held by open authorizations): the grant gives what it has ' +
          'left and the rest comes off the available balance, which may go below zero. Default false: 409 ' +
          'credit_already_spent instead.',
      }),
  })
  .strict();

export const Refund = z
  .object({
    id: z.string(),
    object: z.literal('refund'),
    customer_id: z.string(),
    top_up_id: z.string().nullable(),
    recharge_id: z
      .string()
      .nullable()
      .openapi({ description: 'The auto-recharge refunded (ar_...), if it is one.' }),
    payment_id: z.string(),
    grant_id: z.string(),
    status: z.enum(['pending', 'succeeded', 'failed']),
    amount_usd: MoneyOutput,
    allow_negative: z.boolean(),
    from_grant_usd: MoneyOutput.nullable().openapi({
      description:
        "How much came off the payment's grant (the rest off the available balance alone); null until claimed.",
    }),
    gateway_refund_id: z.string().nullable(),
    failure_code: z.string().nullable(),
    failure_message: z.string().nullable(),
    created_at: Timestamp,
    settled_at: Timestamp.nullable(),
  })
  .openapi('Refund');

export const CreditGrant = Balance.shape.grants.element
  .extend({ customer_id: z.string() })
  .openapi('CreditGrant');

/** A grant in the customer's grant statement: paid (top-up, auto-recharge) or promotional credit, and when it retired. */
export const CustomerCreditGrant = CreditGrant.extend({
  funding: z.enum(['paid', 'promotional']).openapi({
    description:
      'paid: bought with a card (top_up, auto_recharge); promotional: free credit (promotion, goodwill, ...)',
  }),
  retired_at: Timestamp.nullable().openapi({
    description:
      'When it expired or was voided (null while active or depleted). A retired grant keeps as remaining_usd what ' +
      'holds open at that instant may still capture; the rest was written off then.',
  }),
}).openapi('CustomerCreditGrant');

/** One debit that consumed a grant, and how much of the grant it took. */
export const GrantDebit = z
  .object({
    entry_id: z
      .string()
      .openapi({ description: 'The ledger entry (le_...), as in GET /v1/customers/{id}/ledger.' }),
    kind: z.string().openapi({ description: 'capture, usage, expiry or void' }),
    ref: z.string(),
    amount_usd: MoneyOutput.openapi({ description: 'What this entry took from this grant.' }),
    created_at: Timestamp,
  })
  .openapi('GrantDebit');

export const CreditGrantStatement = CustomerCreditGrant.extend({
  debits: z.object({ data: z.array(GrantDebit), has_more: z.boolean() }).openapi({
    description:
      'The debits that consumed the grant, newest first, paged by limit and starting_after (an entry id).',
  }),
}).openapi('CreditGrantStatement');

/** A grant the account has accepted but not applied within the wait timeout (answered 202); it shows in the balance once applied. */
export const CreditGrantPending = z
  .object({
    id: z.string(),
    customer_id: z.string(),
    status: z.literal('pending'),
    source: z.enum(['promotion', 'goodwill']),
    reason: z.string().nullable(),
    amount_usd: MoneyOutput,
    expires_at: Timestamp.nullable(),
    requested_at: Timestamp,
  })
  .openapi('CreditGrantPending');

/**
 * An operator grant request as the account settled it (GET /v1/credit-grants/:id): `pending` until the account
 * applies it, then `granted` with the grant as it stands now, or `refused` with why.
 */
export const CreditGrantRequest = CreditGrantPending.extend({
  status: z.enum(['pending', 'granted', 'refused']),
  failure_code: z.string().nullable(),
  failure_message: z.string().nullable(),
  grant: CreditGrant.nullable(),
}).openapi('CreditGrantRequest');

export const LedgerEntry = z
  .object({
    id: z.string(),
    kind: z.string(),
    amount_usd: MoneyOutput,
    balance_after_usd: MoneyOutput.nullable(),
    created_at: Timestamp,
    ref: z.string(),
  })
  .openapi('LedgerEntry');

export const listOf = <T extends z.ZodType>(item: T) =>
  z.object({ data: z.array(item), has_more: z.boolean() });

// ---- Metering ----

/** A whole count of `unit`s (tokens, calls, images, seconds) from 0 to 1e12, as a JSON integer. */
const wholeCount = (unit: string) =>
  z
    .number({ error: `must be a whole number of ${unit}` })
    .int('must be a whole number')
    .min(0, 'must not be negative')
    .max(1e12, 'must be at most 1e12');

const TokenCount = wholeCount('tokens');

/** Images generated at one size and quality, priced per image by the model's `images.<size>.<quality>` price. */
export const ImageUsage = z
  .object({
    size: z.string().regex(IMAGE_SIZE, 'must be an image size such as "1024x1024"'),
    quality: z.string().regex(IMAGE_QUALITY, 'must be an image quality such as "high"'),
    count: wholeCount('images'),
  })
  .strict()
  .openapi('ImageUsage', { example: { size: '1024x1024', quality: 'high', count: 1 } });

/** GB-days of storage as an exact decimal string; the grammar is `parseStorageGbDays`'s. */
const StorageGbDays = z
  .string({ error: 'must be a decimal string of GB-days such as "1.5", not a JSON number' })
  .superRefine((text, ctx) => {
    const parsed = parseStorageGbDays(text);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
  })
  .openapi({
    type: 'string',
    pattern: '^(0|[1-9][0-9]{0,11})(\\.[0-9]{1,9})?$',
    example: '1.5',
    description: 'GB-days of storage, exact, at most 9 decimals; priced per GB-day',
  });

/**
 * Quantities per dimension, processing mode and a cost-attribution tag, as in API.md. Every quantity stays exact:
 * whole JSON integers for counts, a decimal string for GB-days.
 */
const UsageFields = {
  input_tokens: TokenCount.optional(),
  cached_input_tokens: TokenCount.optional(),
  output_tokens: TokenCount.optional(),
  image_input_tokens: TokenCount.optional(),
  image_output_tokens: TokenCount.optional(),
  audio_input_tokens: TokenCount.optional(),
  audio_output_tokens: TokenCount.optional(),
  embedding_tokens: TokenCount.optional().openapi({
    description: 'Input tokens of an embedding model; priced per 1M tokens',
  }),
  images: z
    .array(ImageUsage)
    .max(MAX_IMAGE_ENTRIES, `at most ${MAX_IMAGE_ENTRIES} (size, quality) entries`)
    .superRefine((images, ctx) => {
      const seen = new Set<string>();
      images.forEach(({ size, quality }, index) => {
        const key = `${size} ${quality}`;
        if (seen.has(key)) {
          ctx.addIssue({
            code: 'custom',
            path: [index],
            message: `repeats size ${size} at quality ${quality}`,
          });
        }
        seen.add(key);
      });
    })
    .optional()
    .openapi({ description: 'Generated images, one entry per (size, quality); priced per image' }),
  audio_seconds: wholeCount('seconds')
    .optional()
    .openapi({ description: 'Whole seconds of transcribed audio; priced per audio minute' }),
  storage_gb_days: StorageGbDays.optional(),
  tool_calls: z
    .record(text({ min: 1, max: 64 }), wholeCount('calls'))
    .refine((calls) => Object.keys(calls).length <= 20, 'at most 20 tools')
    .optional()
    .openapi({
      description: 'Calls per tool of the price book (e.g. {"web_search": 2}); an unknown tool is a 400.',
      maxProperties: 20,
      ...propertyNames(64),
    }),
  processing: z.enum(['standard', 'batch', 'flex']).optional(),
  feature: text({ min: 1, max: 100, description: 'A cost-attribution tag.' }).optional(),
};

export const Usage = z.object(UsageFields).strict().openapi('Usage');

/**
 * A model of the price book. Which models exist is the configured book's business: the published document lists
 * them as an enum (see api/openapi.ts), and rating refuses any other with a 400 `unknown_model`.
 */
export const ModelName = text({ min: 1, max: 100 }).openapi('ModelName', {
  example: 'gpt-5.4',
  description:
    'A model priced by the price book in force at the usage time (GET /v1/prices); else 400 unknown_model.',
});

export const QuoteCreate = z.object({ model: ModelName, usage: Usage }).strict();

export const Quote = z
  .object({
    object: z.literal('quote'),
    model: z.string(),
    price_version: z.string(),
    processing: z.string(),
    cost_usd: MoneyOutput,
    lines: z.array(
      z.object({
        dimension: z.string(),
        quantity: z.union([z.number().int(), z.string()]).openapi({
          description:
            'a whole count (tokens, images, seconds, calls), or for storage_gb_days an exact decimal string',
        }),
        amount_usd: MoneyOutput,
      }),
    ),
  })
  .openapi('Quote');

export const AuthorizationCreate = z
  .object({
    customer_id: CustomerId,
    model: ModelName,
    estimated_usage: Usage,
    ttl_seconds: z.number().int().min(1).max(86_400).optional(),
  })
  .strict();

const EventId = identifier(200, 'Deduplicates the event forever per customer; printable ASCII, no spaces.');

export const CaptureCreate = z.object({ event_id: EventId.optional(), usage: Usage }).strict();

export const Authorization = z
  .object({
    id: z.string(),
    object: z.literal('authorization'),
    customer_id: z.string(),
    model: z.string(),
    status: z.enum(['held', 'captured', 'voided', 'expired']),
    hold_usd: MoneyOutput,
    cost_usd: MoneyOutput.nullable(),
    released_usd: MoneyOutput.nullable(),
    event_id: z.string().nullable(),
    created_at: Timestamp,
    expires_at: Timestamp,
  })
  .openapi('Authorization');

export const UsageEvent = z
  .object({
    event_id: EventId,
    customer_id: CustomerId,
    model: ModelName,
    timestamp: z.iso.datetime({ offset: true }).optional(),
    ...UsageFields,
  })
  .strict()
  .openapi('UsageEvent');

/**
 * The batch's events are validated one by one (UsageEvent, in the usage-events route), so that a bad event is
 * rejected alone; the batch itself only has to be an array of 1..1000. The document says what each item must be
 * by referring to the UsageEvent component, which the API registers (api/openapi.ts).
 */
export const UsageEventsCreate = z
  .object({
    events: z
      .array(z.unknown())
      .min(1, 'send at least one event')
      .max(1000, 'send at most 1000 events per request')
      .openapi({
        items: { $ref: '#/components/schemas/UsageEvent' },
        description:
          'Each event is validated on its own: a bad event is rejected in its result, not the batch.',
      }),
  })
  .strict();

export const UsageEventResult = z
  .object({
    event_id: z.string().nullable(),
    status: z.enum(['accepted', 'duplicate', 'rejected']),
    cost_usd: MoneyOutput.optional(),
    error: z
      .object({
        code: z.string(),
        message: z.string(),
        param: z.string().optional().openapi({ description: 'e.g. `events[3].feature`' }),
      })
      .optional(),
  })
  .openapi('UsageEventResult');

export const UsageQuery = z
  .object({
    from: z.iso
      .datetime({ offset: true })
      .optional()
      .openapi({ description: 'Inclusive start by event time. Default: the start of this UTC month.' }),
    to: z.iso.datetime({ offset: true }).optional().openapi({
      description: 'Exclusive end; must be after `from` (400 otherwise). Default: next UTC month.',
    }),
    group_by: z
      .string()
      .regex(
        /^(model|dimension|feature|day)(,(model|dimension|feature|day))*$/,
        'a comma list of model, dimension, feature, day',
      )
      .optional(),
  })
  .strict();

// ---- Webhooks ----

/**
 * An endpoint's URL: http or https, at most 2048 characters, no spaces or control characters (the pattern, also
 * published), and one that parses as a URL with a host.
 */
const WEBHOOK_URL_PATTERN = '^https?://[^\\u0000-\\u0020\\u007f-\\u009f]+$';
const WebhookUrl = z
  .string({ error: 'must be an http:// or https:// URL' })
  .max(2048, 'must be at most 2048 characters')
  .regex(
    new RegExp(WEBHOOK_URL_PATTERN),
    'must be an http:// or https:// URL (no spaces or control characters)',
  )
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
    } catch {
      return false;
    }
  }, 'must be an http:// or https:// URL with a host')
  .openapi({ example: 'https://example.com/billing-webhooks', description: 'Where deliveries are POSTed.' });

const SubscribableEvent = z
  .enum([...EVENT_TYPES, ALL_EVENTS], {
    error: `must be one of ${EVENT_TYPES.join(', ')}, or "${ALL_EVENTS}" for every type`,
  })
  .openapi('WebhookEventType');

export const WebhookEndpointCreate = z
  .object({
    url: WebhookUrl,
    events: z
      .array(SubscribableEvent)
      .min(1, 'subscribe to at least one event type (or "*" for all)')
      .max(50, 'at most 50 entries')
      .refine(
        (events) => !events.includes(ALL_EVENTS) || events.every((e) => e === ALL_EVENTS),
        `"${ALL_EVENTS}" already means every type: send it alone`,
      )
      .openapi({
        description: `Event types to receive, each once or more (kept once); or ["${ALL_EVENTS}"] for every type, also types added later.`,
      }),
  })
  .strict();

/** A body that must be empty (or `{}`): the action is in the path. */
export const NoBody = z.object({}).strict();

export const WebhookEndpoint = z
  .object({
    id: z.string(),
    object: z.literal('webhook_endpoint'),
    url: z.string(),
    events: z.array(z.string()),
    status: z.enum(['enabled', 'disabled']),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .openapi('WebhookEndpoint');

export const WebhookEndpointCreated = WebhookEndpoint.extend({
  secret: z.string().openapi({
    description:
      'The Standard Webhooks signing secret (whsec_ and base64). Shown only in this response: store it.',
  }),
}).openapi('WebhookEndpointCreated');

export const WebhookEndpointDeleted = z
  .object({ id: z.string(), object: z.literal('webhook_endpoint'), deleted: z.literal(true) })
  .openapi('WebhookEndpointDeleted');

export const WebhookDelivery = z
  .object({
    id: z.string(),
    object: z.literal('webhook_delivery'),
    endpoint_id: z.string(),
    event_id: z.string().openapi({ description: 'Also the webhook-id header of every attempt.' }),
    event_type: z.string(),
    status: z.enum(['pending', 'delivered', 'failed', 'canceled']),
    attempt_count: z.number().int(),
    next_attempt_at: Timestamp.nullable(),
    created_at: Timestamp,
    completed_at: Timestamp.nullable(),
    attempts: z.array(
      z.object({
        attempt: z.number().int().openapi({ description: '1 for the first request, in order.' }),
        attempted_at: Timestamp,
        duration_ms: z.number().int(),
        status_code: z.number().int().nullable().openapi({ description: 'null when no answer came' }),
        error: z.string().nullable().openapi({ description: 'why no 2xx came: network error, timeout' }),
        response_body: z.string().nullable().openapi({ description: 'the first 4 KB of the answer' }),
      }),
    ),
  })
  .openapi('WebhookDelivery');

export const WebhookDeliveriesQuery = ListQuery.extend({
  status: z
    .enum(['pending', 'delivered', 'failed', 'canceled'])
    .optional()
    .openapi({ description: 'Only deliveries in this state.' }),
}).strict();

// ---- Plans ----

/** One soft cap of a plan: past `limit` requests per `window`, requests for `models` are served by `downgrade_to`. */
export const PlanAllowance = z
  .object({
    models: z.array(z.string()).openapi({ description: 'The models this allowance counts.' }),
    limit: z.number().int().min(0).openapi({ description: 'Requests per window (0: always downgraded).' }),
    window: z.string().openapi({
      description:
        'An ISO-8601 duration without years or months (e.g. "PT3H", "P1D"), or "period": reset at each renewal.',
      example: 'PT3H',
    }),
    downgrade_to: z
      .string()
      .openapi({ description: 'The model served past the allowance (never an error).' }),
  })
  .openapi('PlanAllowance');

/** A subscription plan of the catalog (`PLANS_PATH`). */
export const Plan = z
  .object({
    id: z.string(),
    name: z.string(),
    price_usd: MoneyOutput.nullable().openapi({
      description:
        'One period, per seat for per-seat plans; null when set per customer (enterprise contracts).',
    }),
    interval: z.enum(['month', 'year']),
    per_seat: z.boolean(),
    allowances: z.array(PlanAllowance),
  })
  .openapi('Plan');

export const PlanList = listOf(Plan).openapi('PlanList');

// ---- subscriptions and invoices ----------------------------------------------------------------------------------

export const SubscriptionPut = z
  .object({
    plan: identifier(64, 'A plan id from GET /v1/plans.'),
    seats: z
      .number()
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(100_000, 'must be at most 100000')
      .optional()
      .openapi({ description: 'Per-seat plans only (default 1); refused for flat plans.' }),
  })
  .strict();

export const SubscriptionDeleteQuery = z
  .object({
    at_period_end: z
      .enum(['true', 'false'], { error: 'must be true or false' })
      .optional()
      .openapi({ description: 'false cancels now (no refund); default true: at the end of the period.' }),
  })
  .strict();

// ---- Soft caps (README "Soft caps") ----

export const RouteCreate = z.object({ model: ModelName }).strict();

export const RouteDecision = z
  .object({
    object: z.literal('route'),
    customer_id: z.string(),
    model: z.string().openapi({ description: 'The model this request may use.' }),
    requested_model: z.string(),
    downgraded: z.boolean().openapi({ description: 'Whether `model` differs from `requested_model`.' }),
    reason: z
      .enum(['allowance_exhausted', 'all_allowances_exhausted'])
      .nullable()
      .openapi({
        description:
          'null: served within its allowance (or no allowance covers it). `allowance_exhausted`: past the ' +
          "requested model's allowance, served as its downgrade. `all_allowances_exhausted`: every allowance of " +
          'the downgrade chain is used up; served as the last model of the chain, counted nowhere.',
      }),
    remaining: z.number().int().nullable().openapi({
      description: 'What is left of the allowance counted, after this request; null: unlimited.',
    }),
    resets_at: Timestamp.nullable().openapi({
      description: "When that allowance's window resets; null: unlimited.",
    }),
    plan: z.string().openapi({ description: 'The plan whose allowances applied (`free` while past due).' }),
  })
  .openapi('RouteDecision');

/** One allowance with its count in the current window (the subscription's `usage_this_period`). */
export const AllowanceUsage = z
  .object({
    models: z.array(z.string()),
    limit: z.number().int(),
    used: z.number().int(),
    remaining: z.number().int(),
    window: z
      .string()
      .openapi({ description: 'An ISO-8601 duration aligned to the epoch in UTC, or `period`.' }),
    downgrade_to: z.string(),
    window_start: Timestamp,
    resets_at: Timestamp,
  })
  .openapi('AllowanceUsage');

export const Subscription = z
  .object({
    object: z.literal('subscription'),
    id: z.string().nullable().openapi({ description: 'null when the customer never subscribed (on Free).' }),
    customer_id: z.string(),
    plan: z.string(),
    seats: z.number().int(),
    status: z.enum(['active', 'past_due', 'canceled']),
    current_period_start: Timestamp.nullable(),
    current_period_end: Timestamp.nullable(),
    cancel_at_period_end: z.boolean(),
    canceled_at: Timestamp.nullable(),
    pending_change: z
      .object({ plan: z.string(), seats: z.number().int(), at: Timestamp })
      .nullable()
      .openapi({ description: 'A downgrade or seat decrease that applies at the period end.' }),
    seat_price_usd: MoneyOutput.optional(),
    usage_this_period: z.array(AllowanceUsage),
  })
  .openapi('Subscription');

export const SubscriptionPending = z
  .object({
    object: z.literal('subscription_change'),
    id: z.string(),
    status: z.literal('pending'),
  })
  .openapi('SubscriptionChangePending');

export const Invoice = z
  .object({
    object: z.literal('invoice'),
    id: z.string(),
    customer_id: z.string(),
    subscription_id: z.string().nullable(),
    status: z.enum(['open', 'paid', 'uncollectible', 'void']),
    collection: z.enum(['charge', 'net_terms']).openapi({
      description: 'charge: paid by card at once; net_terms: sent, due at due_at (enterprise, net 30).',
    }),
    total_usd: MoneyOutput,
    lines: z.array(
      z.object({
        description: z.string(),
        amount_usd: MoneyOutput,
        quantity: z.string().openapi({ description: 'Exact decimal: seats, a fraction of a period, units.' }),
        period: z.object({ start: Timestamp, end: Timestamp }),
      }),
    ),
    period_start: Timestamp,
    period_end: Timestamp,
    due_at: Timestamp,
    paid_at: Timestamp.nullable(),
    payment_id: z.string().nullable(),
    attempts: z.number().int(),
    created_at: Timestamp,
  })
  .openapi('Invoice');

// ---- Enterprise contracts ----

/** The most a contract may price one unit (or one seat): $1,000,000, far from the ledger's bigint limit. */
const CONTRACT_PRICE_MAX_NANOS = 1_000_000n * NANOS_PER_USD;
const CONTRACT_PRICE_UNITS =
  'per 1M tokens for a token dimension (input_tokens, cached_input_tokens, output_tokens, ...), per image for ' +
  'images.<size>.<quality>, per audio minute for audio_seconds, per GB-day for storage_gb_days, per 1,000 calls for ' +
  'tool_calls.<tool>: the price book’s unit';

const ContractUnitPrice = MoneyInput.refine(
  (v) => {
    const parsed = parseUsd(v);
    return !parsed.ok || parsed.nanos <= CONTRACT_PRICE_MAX_NANOS;
  },
  `must be at most ${formatUsd(CONTRACT_PRICE_MAX_NANOS)}`,
).openapi({
  description: `USD per price unit of the dimension (${CONTRACT_PRICE_UNITS}); exact decimal string, at most 9 decimals, 0 allowed.`,
});

const UsageDimensionName = z
  .string()
  .max(200, 'must be at most 200 characters')
  .regex(
    USAGE_DIMENSION,
    'must be a usage dimension: a token dimension such as "input_tokens", "images.<size>.<quality>", ' +
      '"audio_seconds", "storage_gb_days" or "tool_calls.<tool>"',
  )
  .openapi({
    example: 'input_tokens',
    description:
      'A usage dimension as GET /v1/customers/{id}/usage?group_by=dimension names it; the model must price it.',
  });

const ContractTierInput = z
  .object({
    up_to: z
      .number({ error: 'must be a whole number of units, or null for the last tier' })
      .int('must be a whole number of units')
      .min(1, 'must be at least 1')
      .max(Number.MAX_SAFE_INTEGER, `must be at most ${Number.MAX_SAFE_INTEGER}`)
      .nullable()
      .openapi({
        description:
          "The last unit of the period's quantity this tier prices (tokens, images, seconds, whole GB-days, calls), " +
          'counted from the first; null for the last tier, which prices every further unit.',
      }),
    unit_price_usd: ContractUnitPrice,
  })
  .strict();

const MAX_CONTRACT_ENTRIES = 200;
const MAX_TIERS = 20;

export const ContractPut = z
  .object({
    seat_price_usd: MoneyInput.refine((v) => {
      const parsed = parseUsd(v);
      return !parsed.ok || parsed.nanos % NANOS_PER_CENT === 0n;
    }, 'must be whole cents (e.g. "45.00")')
      .refine(
        (v) => {
          const parsed = parseUsd(v);
          return !parsed.ok || parsed.nanos <= CONTRACT_PRICE_MAX_NANOS;
        },
        `must be at most ${formatUsd(CONTRACT_PRICE_MAX_NANOS)}`,
      )
      .openapi({ description: "USD per seat per period of the customer's enterprise plan, whole cents." }),
    price_overrides: z
      .array(
        z
          .object({
            model: ModelName,
            dimension: UsageDimensionName,
            unit_price_usd: ContractUnitPrice,
          })
          .strict(),
      )
      .max(MAX_CONTRACT_ENTRIES, `at most ${MAX_CONTRACT_ENTRIES} overrides`)
      .optional()
      .openapi({ description: 'A flat price for every unit of one model and dimension in the period.' }),
    volume_tiers: z
      .array(
        z
          .object({
            model: ModelName,
            dimension: UsageDimensionName,
            tiers: z
              .array(ContractTierInput)
              .min(1, 'must list at least one tier')
              .max(MAX_TIERS, `at most ${MAX_TIERS} tiers`)
              .openapi({
                description:
                  'Graduated: each unit at the price of the tier its position falls in; up_to strictly increasing, the last null.',
              }),
          })
          .strict(),
      )
      .max(MAX_CONTRACT_ENTRIES, `at most ${MAX_CONTRACT_ENTRIES} tier tables`)
      .optional(),
  })
  .strict()
  .superRefine((body, ctx) => {
    const seen = new Map<string, string>();
    const claim = (model: string, dimension: string, path: (string | number)[]) => {
      const key = `${model}\u0000${dimension}`;
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [...path, 'dimension'],
          message: `${model} ${dimension} is already priced by ${earlier}`,
        });
      }
      seen.set(key, path.join('.'));
    };
    for (const [i, override] of (body.price_overrides ?? []).entries()) {
      claim(override.model, override.dimension, ['price_overrides', i]);
    }
    for (const [i, table] of (body.volume_tiers ?? []).entries()) {
      claim(table.model, table.dimension, ['volume_tiers', i]);
      const problem = tierTableProblem(
        table.tiers.map((tier) => ({
          up_to: tier.up_to === null ? null : BigInt(tier.up_to),
          unit_price_nanos: 0n,
        })),
      );
      if (problem) {
        const at = problem.index < 0 ? [] : [problem.index, 'up_to'];
        ctx.addIssue({ code: 'custom', path: ['volume_tiers', i, 'tiers', ...at], message: problem.message });
      }
    }
  });

const PriceUnit = z.string().openapi({ example: '1M tokens', description: 'What one unit price is for.' });

export const CustomerContract = z
  .object({
    object: z.literal('customer_contract'),
    customer_id: z.string(),
    seat_price_usd: MoneyOutput,
    price_overrides: z.array(
      z.object({
        model: z.string(),
        dimension: z.string(),
        price_unit: PriceUnit,
        unit_price_usd: MoneyOutput,
      }),
    ),
    volume_tiers: z.array(
      z.object({
        model: z.string(),
        dimension: z.string(),
        price_unit: PriceUnit,
        tiers: z.array(z.object({ up_to: z.number().int().nullable(), unit_price_usd: MoneyOutput })),
      }),
    ),
    version: z.number().int().openapi({ description: '1 for the first save, one more for each later one.' }),
    updated_at: Timestamp,
  })
  .openapi('CustomerContract');

// ---- Inbound Stripe webhooks ----

/**
 * What the engine reads of a Stripe event (README "Inbound Stripe webhooks"); the rest of it is stored as sent.
 * Only parsed after its signature verified, over the raw bytes.
 */
export const StripeEventEnvelope = z
  .looseObject({
    id: identifier(255, "Stripe's event id (`evt_…`): events are stored and deduplicated by it."),
    type: identifier(
      255,
      'The event type, e.g. `payment_intent.succeeded`; unknown types are stored and ignored.',
    ),
    data: z.looseObject({
      object: z.looseObject({ id: identifier(255, 'The id of the object the event is about.').optional() }),
    }),
  })
  .openapi('StripeEvent', {
    description:
      'A Stripe event, signed by Stripe in the `Stripe-Signature` header over the raw body with the endpoint\u2019s ' +
      'secret (`STRIPE_WEBHOOK_SECRET`).',
  });

export const StripeWebhookReceipt = z
  .object({
    received: z.literal(true),
    id: z.string(),
    /** true when the event id was acted on before: a replay, which changes nothing. */
    duplicate: z.boolean(),
  })
  .openapi('StripeWebhookReceipt');
// ---- Reconciliation ----

export const ReconciliationMismatch = z
  .object({
    subject: z.enum(['charge', 'refund']),
    kind: z
      .enum([
        'missing_ours',
        'missing_at_gateway',
        'amount_mismatch',
        'status_mismatch',
        'charge_mismatch',
        'listing_truncated',
      ])
      .openapi({
        description:
          'missing_ours: the gateway moved money we have no record of; missing_at_gateway: we recorded money moved ' +
          'that the gateway does not have; amount_mismatch, status_mismatch (one side says succeeded, the other ' +
          'failed); charge_mismatch: a refund of another charge than ours names; listing_truncated: the run read the ' +
          'most items it reads and compared no further.',
      }),
    id: z.string().nullable().openapi({ description: 'Our payment or refund id; null when we have none.' }),
    gateway_id: z.string().nullable(),
    idempotency_key: z.string().nullable(),
    customer_id: z.string().nullable(),
    amount_usd: MoneyOutput.nullable().openapi({ description: 'Our amount.' }),
    gateway_amount_usd: MoneyOutput.nullable(),
    status: z.enum(['succeeded', 'failed', 'pending']).nullable().openapi({ description: 'Our status.' }),
    gateway_status: z.enum(['succeeded', 'failed', 'pending']).nullable(),
    created_at: Timestamp.nullable(),
    detail: z.string(),
  })
  .openapi('ReconciliationMismatch');

export const ReconciliationRun = z
  .object({
    object: z.literal('reconciliation_run'),
    id: z.string(),
    workflow_id: z
      .string()
      .openapi({ description: 'The Temporal workflow that ran it (see it in the Temporal UI).' }),
    status: z.enum(['ok', 'mismatches']).openapi({ description: 'ok: no mismatch and no ledger violation.' }),
    gateway: z.string(),
    window_from: Timestamp,
    window_to: Timestamp.openapi({ description: 'Items created in [window_from, window_to) were compared.' }),
    started_at: Timestamp,
    finished_at: Timestamp,
    payments_checked: z.number().int(),
    refunds_checked: z.number().int(),
    mismatches: z.array(ReconciliationMismatch),
    ledger_violations: z.array(
      z.object({ invariant: z.string(), subject: z.string(), detail: z.string() }).openapi({
        description: 'A ledger invariant that does not hold (`npm run ledger:check` reports the same).',
      }),
    ),
  })
  .openapi('ReconciliationRun');

export const ReconciliationRunCreate = z
  .object({
    window_from: z.iso.datetime({ offset: true }).optional(),
    window_to: z.iso
      .datetime({ offset: true })
      .optional()
      .openapi({
        description:
          'Items created in [window_from, window_to) are compared; at most 93 days, not in the future. Default: the ' +
          'RECONCILIATION_INTERVAL plus RECONCILIATION_WINDOW_MARGIN before now.',
      }),
  })
  .strict();

export const ReconciliationRunPending = z
  .object({
    object: z.literal('reconciliation_run'),
    status: z.literal('running'),
    workflow_id: z.string(),
    window_from: Timestamp,
    window_to: Timestamp,
  })
  .openapi('ReconciliationRunPending');
