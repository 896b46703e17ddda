import Stripe from 'stripe';
import type { Logger } from 'pino';
import { centsToNanos, formatCents } from '../../billing/money';
import {
  CHARGE_REFUNDED,
  chargeRefundOf,
  DISPUTE_CLOSED,
  DISPUTE_CREATED,
  disputeOf,
  field,
  PAYMENT_INTENT_OUTCOMES,
} from '../../billing/stripe-events';
import { closeDispute, openDispute } from '../../db/disputes';
import type { Db } from '../../db/connection';
import type { PaymentRecord } from '../../db/payments';
import { markStripeEventProcessed, recordOutsideRefund, storeStripeEvent } from '../../db/stripe-events';
import { topUpOfPayment } from '../../db/top-ups';
import { paymentSettledSignal, refundRequestedSignal } from '../../workflows/messages';
import type { AccountWorkflows } from '../accounts';
import { ApiError, invalid } from '../errors';
import { parse, type RouteTable } from '../http';
import { StripeEventEnvelope, StripeWebhookReceipt } from '../schemas';

/**
 * `POST /v1/webhooks/stripe` (README "Inbound Stripe webhooks"): Stripe's events, signed by Stripe. No admin key (it
 * is mounted with the public routes) and no JSON parser: the signature is over the raw bytes, which `createApp` hands
 * over through `express.raw` for this path only.
 *
 * Verify, store once by event id, act, mark processed, answer 200. A replay of a processed event answers 200 and
 * changes nothing; an event stored but not processed (this process died, or Temporal was unreachable: 503, which
 * Stripe retries) is acted on again when it comes back, and every action is idempotent.
 */
export const STRIPE_WEBHOOK_PATH = '/v1/webhooks/stripe';

export interface StripeWebhookSettings {
  /** `STRIPE_WEBHOOK_SECRET` (`whsec_…`). */
  secret: string;
  /** `STRIPE_WEBHOOK_TOLERANCE_S`: how old a signature's timestamp may be. */
  tolerance_s: number;
}

interface Deps {
  db: Db;
  accounts: AccountWorkflows;
  logger: Logger;
  /** Absent without `STRIPE_WEBHOOK_SECRET`: the route answers 404 (nothing here can verify an event). */
  settings: StripeWebhookSettings | undefined;
}

type StripeEvent = ReturnType<typeof StripeEventEnvelope.parse>;

export function stripeWebhookRoutes(routes: RouteTable, deps: Deps): void {
  routes.add({
    method: 'post',
    path: STRIPE_WEBHOOK_PATH,
    tag: 'Webhooks',
    summary:
      'Stripe events, verified by the Stripe-Signature header over the raw body (no API key). 400 for a missing, ' +
      'forged or stale signature; 404 when STRIPE_WEBHOOK_SECRET is not configured. A replayed event id answers 200 ' +
      'and changes nothing; unknown types are stored and ignored.',
    public: true,
    raw_body: true,
    body: StripeEventEnvelope,
    responses: { 200: { description: 'Received', schema: StripeWebhookReceipt } },
    handler: async ({ raw }) => {
      if (!deps.settings) {
        throw new ApiError('not_found', 'Stripe webhooks are not configured here (STRIPE_WEBHOOK_SECRET)', {
          code: 'stripe_webhooks_not_configured',
        });
      }
      const event = verifiedEvent(raw!, deps.settings);
      return { status: 200, body: await processStripeEvent(deps, event) };
    },
  });
}

/** The event, if its signature verifies over the raw body within the tolerance; a 400 naming the header otherwise. */
function verifiedEvent(
  raw: { body: Buffer; header(name: string): string | undefined },
  settings: StripeWebhookSettings,
): StripeEvent {
  const signature = raw.header('Stripe-Signature');
  if (signature === undefined || signature === '') {
    throw invalid('Stripe-Signature', 'the Stripe-Signature header is missing', 'missing_signature');
  }
  let event: unknown;
  try {
    event = Stripe.webhooks.constructEvent(raw.body, signature, settings.secret, settings.tolerance_s);
  } catch (error) {
    if (error instanceof Stripe.errors.StripeSignatureVerificationError) {
      // Stripe's message says which: no valid signature, or a timestamp outside the tolerance (a stale replay).
      throw invalid(
        'Stripe-Signature',
        `the signature does not verify: ${error.message}`,
        'invalid_signature',
      );
    }
    // Signed, but not JSON (only Stripe's secret could have signed it, so this is not expected).
    throw invalid(undefined, 'the request body is not valid JSON', 'invalid_json');
  }
  return parse(StripeEventEnvelope, event, 'body');
}

/** Stores the event once, acts on it unless it was acted on already, and marks it processed. */
export async function processStripeEvent(
  deps: Pick<Deps, 'db' | 'accounts' | 'logger'>,
  event: StripeEvent,
): Promise<ReturnType<typeof StripeWebhookReceipt.parse>> {
  const object = event.data.object;
  const object_id = typeof object.id === 'string' ? object.id : null;
  const settlesIntent = PAYMENT_INTENT_OUTCOMES.includes(event.type) && object_id !== null;
  const key = field(object.metadata, 'idempotency_key');
  const stored = await storeStripeEvent(
    deps.db,
    { id: event.id, type: event.type, object_id, payload: event },
    settlesIntent ? { id: object_id, idempotency_key: typeof key === 'string' ? key : null } : undefined,
  );
  if (stored.processed) return { received: true, id: event.id, duplicate: true };
  if (settlesIntent) await finishPaymentOperation(deps, stored.payment);
  else if (event.type === CHARGE_REFUNDED) await clawBackOutsideRefund(deps, object);
  else if (event.type === DISPUTE_CREATED || event.type === DISPUTE_CLOSED) {
    const dispute = disputeOf(object);
    if (dispute) {
      const input = { ...dispute, amount_nanos: centsToNanos(dispute.amount_cents) };
      await (event.type === DISPUTE_CREATED ? openDispute(deps.db, input) : closeDispute(deps.db, input));
    }
  } else deps.logger.debug({ event_id: event.id, type: event.type }, 'stripe event stored, nothing to do');
  await markStripeEventProcessed(deps.db, event.id);
  return { received: true, id: event.id, duplicate: !stored.fresh };
}

/**
 * A PaymentIntent's event settled our payment (or found it settled): the operation it paid for finishes through the
 * account workflow, which runs the same completion steps as its own path, keyed by the operation. Covered: top-ups.
 * Auto-recharges and invoices never wait for the customer (their charge needing one is recorded as failed), so
 * their events only settle nothing. A payment we do not know (another integration's PaymentIntent) is ignored.
 */
async function finishPaymentOperation(
  deps: Pick<Deps, 'db' | 'accounts' | 'logger'>,
  payment: PaymentRecord | undefined,
): Promise<void> {
  if (!payment || payment.status === 'pending') return;
  const topUp = await topUpOfPayment(deps.db, payment);
  if (!topUp || topUp.status !== 'pending') return;
  await deps.accounts.signal(topUp.customer_id, paymentSettledSignal, {
    top_up_id: topUp.id,
    amount_usd: formatCents(topUp.amount_nanos),
  });
}

/**
 * A refund made at Stripe (the dashboard): what is new beyond the refunds we know is recorded as a refund of the
 * top-up or auto-recharge with the gateway's refund id already set, and the account workflow runs it like our own
 * refunds (the same reversing claim, `allow_negative`), never asking the gateway to refund again.
 */
async function clawBackOutsideRefund(deps: Pick<Deps, 'db' | 'accounts'>, charge: unknown): Promise<void> {
  const refund = chargeRefundOf(charge);
  if (!refund) return;
  const row = await recordOutsideRefund(deps.db, {
    payment_intent_id: refund.payment_intent_id,
    amount_refunded_nanos: centsToNanos(refund.amount_refunded_cents),
    refund_id: refund.refund_id,
    gateway_refund_id: refund.gateway_refund_id,
  });
  // Ours but not finished (the payment's own event or the credit still on its way): answered 503, not marked
  // processed, so Stripe delivers it again and the refund is counted then.
  if (row === 'retry_later') {
    throw new ApiError(
      'unavailable',
      'the refunded payment is not settled here yet; deliver the event again later',
      {
        code: 'payment_not_settled',
      },
    );
  }
  if (row?.status === 'pending') {
    await deps.accounts.signal(row.customer_id, refundRequestedSignal, { refund_id: row.id });
  }
}
