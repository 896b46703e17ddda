import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { parseUsd } from '../billing/money';
import { IMAGE_QUALITY, IMAGE_SIZE } from '../billing/price-book';
import { MAX_IMAGE_ENTRIES, parseStorageGbDays } from '../billing/rating';

// Every request and response shape of the API: validation at the edge and the OpenAPI document both come from
// these schemas, so the document cannot drift from what the server accepts.
extendZodWithOpenApi(z);

/** A USD amount as an exact decimal string (never a JSON number), at most 9 decimals, not negative. */
export const MoneyInput = z
  .string({ error: 'must be a decimal string of USD such as "20.00", not a JSON number' })
  .superRefine((text, ctx) => {
    const parsed = parseUsd(text);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
  })
  // The same grammar as parseUsd (no sign, exponent or leading zeros, at most 9 decimals); the range (at most
  // MAX_NANOS) is checked by parseUsd and cannot be expressed by a pattern.
  .openapi({ type: 'string', pattern: '^(0|[1-9][0-9]{0,9})(\\.[0-9]{1,9})?$', example: '20.00' });

/** A positive USD amount. */
export const PositiveMoneyInput = MoneyInput.refine((text) => {
  const parsed = parseUsd(text);
  return parsed.ok && parsed.nanos > 0n;
}, 'must be greater than zero');

export const MoneyOutput = z
  .string()
  .openapi({ example: '20.000000000', description: 'USD, exact, 9 decimals' });

export const CustomerId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, "_" or "-"')
  .openapi({ example: 'cus_acme' });

export const Metadata = z
  .record(z.string().max(40, 'metadata keys are at most 40 characters'), z.string().max(500))
  .refine((m) => Object.keys(m).length <= 50, 'at most 50 metadata keys')
  .openapi({ example: { plan: 'startup' } });

export const Timestamp = z.string().openapi({ format: 'date-time', example: '2026-11-25T12:00:00.000Z' });

export const ListQuery = z
  .object({
    limit: z
      .string()
      .regex(/^[0-9]{1,3}$/, 'must be a whole number from 1 to 100')
      .transform(Number)
      .pipe(z.number().int().min(1, 'must be at least 1').max(100, 'must be at most 100'))
      .optional(),
    starting_after: z.string().max(100).optional(),
  })
  .strict();

export const ErrorResponse = z
  .object({
    error: z.object({
      type: z.string(),
      code: z.string(),
      message: z.string(),
      param: z.string().optional(),
    }),
  })
  .openapi('Error');

export const CustomerCreate = z
  .object({
    id: CustomerId.optional(),
    email: z.email().max(320).optional(),
    name: z.string().min(1).max(200).optional(),
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

export const TopUpCreate = z.object({ amount_usd: PositiveMoneyInput }).strict();

export const CreditGrantCreate = z
  .object({
    amount_usd: PositiveMoneyInput,
    reason: z.string().min(1).max(500),
    source: z.enum(['promotion', 'goodwill']).optional(),
    expires_at: z.iso.datetime({ offset: true }).nullable().optional(),
  })
  .strict();

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
    auto_recharge: z.null(),
    budget: z.null(),
    created_at: Timestamp,
  })
  .openapi('Customer');

export const TopUp = z
  .object({
    id: z.string(),
    object: z.literal('top_up'),
    customer_id: z.string(),
    status: z.enum(['pending', 'succeeded', 'failed']),
    amount_usd: MoneyOutput,
    failure_code: z.string().nullable(),
    grant_id: z.string().nullable(),
    created_at: Timestamp,
  })
  .openapi('TopUp');

export const CreditGrant = Balance.shape.grants.element
  .extend({ customer_id: z.string() })
  .openapi('CreditGrant');

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
export const UsageFields = {
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
    .record(z.string().min(1).max(64), wholeCount('calls'))
    .refine((calls) => Object.keys(calls).length <= 20, 'at most 20 tools')
    .optional(),
  processing: z.enum(['standard', 'batch', 'flex']).optional(),
  feature: z.string().min(1).max(100).optional(),
};

export const Usage = z.object(UsageFields).strict().openapi('Usage');

export const ModelName = z.string().min(1).max(100).openapi({ example: 'gpt-5.4' });

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

export const EventId = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

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

export const UsageEventsCreate = z
  .object({
    events: z
      .array(z.unknown())
      .min(1, 'send at least one event')
      .max(1000, 'send at most 1000 events per request')
      .openapi({ items: { $ref: '#/components/schemas/UsageEvent' } }),
  })
  .strict();

export const UsageEventResult = z.object({
  event_id: z.string().nullable(),
  status: z.enum(['accepted', 'duplicate', 'rejected']),
  cost_usd: MoneyOutput.optional(),
  error: z.object({ code: z.string(), message: z.string(), param: z.string().optional() }).optional(),
});

export const UsageQuery = z
  .object({
    from: z.iso.datetime({ offset: true }).optional(),
    to: z.iso.datetime({ offset: true }).optional(),
    group_by: z
      .string()
      .regex(
        /^(model|dimension|feature|day)(,(model|dimension|feature|day))*$/,
        'a comma list of model, dimension, feature, day',
      )
      .optional(),
  })
  .strict();
