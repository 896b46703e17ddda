import Stripe from 'stripe';
import { isWholeCents, formatUsd, nanosToCents } from '../billing/money';
import type { BookStatus, GatewayRecord, TimeWindow } from '../billing/reconciliation';
import type { Db } from '../db/connection';
import { PermanentError } from '../db/errors';
import { findStripeCustomerId, recordStripeCustomer } from '../db/stripe-customers';
import type {
  ChargeOutcome,
  ChargeRequest,
  PaymentGateway,
  RefundOutcome,
  RefundRequest,
} from './payment-gateway';

/**
 * Card payments through Stripe (README "Stripe"), chosen when `STRIPE_SECRET_KEY` is set.
 *
 * - One Stripe customer per billing customer, created at its first charge with the idempotency key
 *   `customer:<customer id>` and recorded in `stripe_customers`; the card is attached to it before each charge
 *   (a card attached already is left as it is).
 * - Every charge is one off-session PaymentIntent confirmed on that card, with the idempotency key
 *   `pi:<our operation key>`, so a retried charge returns the first PaymentIntent instead of making a second.
 *   `payments.gateway_charge_id` holds the PaymentIntent's id (`pi_…`): refunds name it, and the inbound webhooks
 *   (`payment_intent.*`) carry it.
 * - Amounts are never rounded here: callers round up to the cent before charging (the one rounding boundary), and a
 *   charge or refund that is not a whole number of cents is refused as a permanent `invalid_amount`.
 * - Declines are values; what a retry can fix (network, rate limit, Stripe's 5xx, a payment still processing) is
 *   thrown, and Temporal retries the activity with the same idempotency key; a request Stripe calls invalid is a
 *   permanent failure (`payment_refused`), never retried. The client itself retries network failures twice
 *   (`maxNetworkRetries`), reusing the idempotency key, before the activity sees the error.
 */

/** Stripe PaymentMethod ids; test tokens such as `pm_card_visa` included. */
const PAYMENT_METHOD_ID = /^pm_[A-Za-z0-9_]{1,200}$/;

/** Stripe's own retries of one request (network failures, 409, `Stripe-Should-Retry`), each with the same key. */
export const STRIPE_MAX_NETWORK_RETRIES = 2;

/** The refund reasons Stripe accepts; any other reason travels in the refund's metadata only. */
const STRIPE_REFUND_REASONS: ReadonlySet<string> = new Set([
  'duplicate',
  'fraudulent',
  'requested_by_customer',
]);

/** Stripe's limit on a metadata value. */
const METADATA_VALUE_MAX = 500;

export interface StripeClientOptions {
  secret_key: string;
  /** Another API base (stripe-mock in tests), e.g. `http://127.0.0.1:12111`; unset: api.stripe.com. */
  api_base?: string;
  /** Per-request timeout; Stripe's default is 80 s, more than a payment activity's start-to-close timeout. */
  timeout_ms?: number;
  /** Emit request bodies in the client's `request` events (tests read what was sent). */
  emit_event_bodies?: boolean;
}

/** Where the Stripe client sends its requests: host, port and protocol of an API base URL. */
export function stripeEndpointOf(api_base: string): {
  host: string;
  port: number;
  protocol: 'http' | 'https';
} {
  const url = new URL(api_base);
  const protocol = url.protocol === 'http:' ? 'http' : url.protocol === 'https:' ? 'https' : null;
  if (protocol === null) throw new Error(`STRIPE_API_BASE must be an http or https URL, not ${api_base}`);
  const port = url.port === '' ? (protocol === 'http' ? 80 : 443) : Number(url.port);
  return { host: url.hostname, port, protocol };
}

export function createStripeClient(options: StripeClientOptions): Stripe {
  return new Stripe(options.secret_key, {
    maxNetworkRetries: STRIPE_MAX_NETWORK_RETRIES,
    timeout: options.timeout_ms ?? 30_000,
    telemetry: false,
    ...(options.emit_event_bodies ? { emitEventBodies: true } : {}),
    ...(options.api_base === undefined ? {} : stripeEndpointOf(options.api_base)),
  });
}

/** Whole cents of an amount in nanos, or a permanent `invalid_amount`: a card is never charged a rounded amount. */
export function centsOf(amount_nanos: bigint): number {
  if (amount_nanos <= 0n || !isWholeCents(amount_nanos)) {
    throw new PermanentError(
      'invalid_amount',
      `a card amount must be a positive whole number of cents, not ${formatUsd(amount_nanos)} USD`,
    );
  }
  return nanosToCents(amount_nanos);
}

export class StripeGateway implements PaymentGateway {
  readonly name = 'stripe';

  constructor(
    private readonly db: Db,
    readonly stripe: Stripe,
  ) {}

  acceptsPaymentMethod(payment_method: string): boolean {
    return PAYMENT_METHOD_ID.test(payment_method);
  }

  async charge(request: ChargeRequest): Promise<ChargeOutcome> {
    const amount = centsOf(request.amount_nanos);
    try {
      const customer = await this.stripeCustomerOf(request.customer_id);
      const payment_method = await this.attachedPaymentMethod(
        request.customer_id,
        customer,
        request.payment_method,
      );
      const created = await this.stripe.paymentIntents.create(
        {
          amount,
          currency: 'usd',
          customer,
          payment_method,
          // Off-session: only methods that never send the customer to a redirect (no return_url to give).
          automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
          confirm: true,
          off_session: true,
          description: request.description.slice(0, 1000),
          metadata: { customer_id: request.customer_id, idempotency_key: request.idempotency_key },
        },
        { idempotencyKey: `pi:${request.idempotency_key}` },
      );
      return chargeOutcomeOfIntent(await this.settled(created));
    } catch (error) {
      return chargeOutcomeOfError(error);
    }
  }

  async withdraw(charge_id: string, idempotency_key: string): Promise<ChargeOutcome> {
    try {
      await this.stripe.paymentIntents.cancel(
        charge_id,
        { cancellation_reason: 'abandoned' },
        { idempotencyKey: `cancel:${idempotency_key}` },
      );
      return { status: 'pending', charge_id };
    } catch (error) {
      // Not cancelable any more (the customer authenticated meanwhile): its own state decides. Only an intent that can
      // no longer take money (canceled, or back to needing a payment method) is withdrawn; one still moving
      // (`processing`, or anything else) is thrown for the activity to ask again, never recorded failed while it may
      // still succeed.
      if (!(error instanceof Stripe.errors.StripeInvalidRequestError)) throw error;
      const intent = await this.stripe.paymentIntents.retrieve(charge_id);
      if (intent.status === 'succeeded') return chargeOutcomeOfIntent(intent);
      if (intent.status === 'canceled' || intent.status === 'requires_payment_method') {
        return { status: 'pending', charge_id };
      }
      throw new Error(`payment intent ${charge_id} could not be withdrawn: it is ${intent.status}`);
    }
  }

  async refund(request: RefundRequest): Promise<RefundOutcome> {
    const amount = centsOf(request.amount_nanos);
    const reason =
      request.reason !== null && STRIPE_REFUND_REASONS.has(request.reason) ? request.reason : null;
    try {
      const refund = await this.stripe.refunds.create(
        {
          // Our payments name PaymentIntents; a plain charge id (`ch_…`) is accepted too.
          ...(request.charge_id.startsWith('ch_')
            ? { charge: request.charge_id }
            : { payment_intent: request.charge_id }),
          amount,
          ...(reason === null ? {} : { reason: reason as Stripe.RefundCreateParams.Reason }),
          metadata: {
            idempotency_key: request.idempotency_key,
            ...(request.reason === null ? {} : { reason: request.reason.slice(0, METADATA_VALUE_MAX) }),
          },
        },
        { idempotencyKey: `re:${request.idempotency_key}` },
      );
      return refundOutcomeOf(refund);
    } catch (error) {
      return refundOutcomeOfError(error);
    }
  }

  /**
   * The PaymentIntents created in [from, to), newest first, at most `max` (for reconciliation): our payments'
   * `gateway_charge_id`s, amounts in cents and status, with the operation key we sent in the metadata.
   */
  async listCharges(window: TimeWindow, max = 10_000): Promise<GatewayRecord[]> {
    const listed = await this.stripe.paymentIntents
      .list({ created: createdRange(window), limit: 100 })
      .autoPagingToArray({ limit: max });
    return listed.map((intent) => ({
      id: intent.id,
      idempotency_key: intent.metadata?.idempotency_key ?? null,
      amount_cents: intent.amount,
      status: intentBookStatus(intent.status),
      created_at: new Date(intent.created * 1000),
    }));
  }

  /** The refunds created in [from, to), newest first, at most `max` (for reconciliation). */
  async listRefunds(window: TimeWindow, max = 10_000): Promise<GatewayRecord[]> {
    const listed = await this.stripe.refunds
      .list({ created: createdRange(window), limit: 100 })
      .autoPagingToArray({ limit: max });
    return listed.map((refund) => ({
      id: refund.id,
      idempotency_key: refund.metadata?.idempotency_key ?? null,
      amount_cents: refund.amount,
      status: refundBookStatus(refund.status),
      created_at: new Date(refund.created * 1000),
      // Our refunds name PaymentIntents (or a plain charge, when that is what the payment recorded).
      charge_id: idOf(refund.payment_intent) ?? idOf(refund.charge),
    }));
  }

  /**
   * The billing customer's Stripe customer, created on first use. Our record decides once it exists; before that,
   * the idempotency key makes a retried creation (a crash before the record) return the same Stripe customer for as
   * long as Stripe keeps keys (about 24 h); two creations racing both use the first one recorded.
   */
  private async stripeCustomerOf(customer_id: string): Promise<string> {
    const known = await findStripeCustomerId(this.db, customer_id);
    if (known !== null) return known;
    const created = await this.stripe.customers.create(
      { metadata: { customer_id } },
      { idempotencyKey: `customer:${customer_id}` },
    );
    return recordStripeCustomer(this.db, { customer_id, stripe_customer_id: created.id });
  }

  /**
   * The card, attached to the Stripe customer: a card attached to it already is used as it is, a free one is
   * attached (idempotently), and one that belongs to another Stripe customer is refused (`payment_refused`), because
   * charging it would charge someone else's card. Returns the attached method's id: attaching one of Stripe's test
   * tokens (`pm_card_visa`) makes a new method, and the charge must name that one.
   */
  private async attachedPaymentMethod(
    customer_id: string,
    stripe_customer: string,
    payment_method: string,
  ): Promise<string> {
    const method = await this.stripe.paymentMethods.retrieve(payment_method);
    const owner = idOf(method.customer);
    if (owner === stripe_customer) return method.id;
    if (owner !== null) {
      throw new PermanentError(
        'payment_refused',
        `payment method ${payment_method} belongs to another Stripe customer`,
      );
    }
    const attached = await this.stripe.paymentMethods.attach(
      payment_method,
      { customer: stripe_customer },
      { idempotencyKey: `pm:${customer_id}:${payment_method}` },
    );
    return attached.id;
  }

  /**
   * A PaymentIntent that is `processing` has no outcome yet. A retried create with the same key would only replay
   * that first answer, so the intent is read again; still processing, the call throws and the activity retries.
   */
  private async settled(intent: Stripe.PaymentIntent): Promise<Stripe.PaymentIntent> {
    if (intent.status !== 'processing') return intent;
    const fresh = await this.stripe.paymentIntents.retrieve(intent.id);
    if (fresh.status === 'processing') throw new Error(`payment intent ${intent.id} is still processing`);
    return fresh;
  }
}

/**
 * What a confirmed PaymentIntent means for us. `requires_action` (the bank wants the customer to authenticate, SCA)
 * is a `pending` charge: the inbound webhooks finish it when the customer has answered
 * (`payment_intent.succeeded` / `payment_intent.payment_failed`, README "Inbound Stripe webhooks").
 */
export function chargeOutcomeOfIntent(intent: Stripe.PaymentIntent): ChargeOutcome {
  switch (intent.status) {
    case 'succeeded':
      return { status: 'succeeded', charge_id: intent.id };
    case 'requires_action':
      return { status: 'pending', charge_id: intent.id };
    default: {
      // requires_payment_method (declined), canceled, or a state an automatic, confirmed intent should not be in.
      const error = intent.last_payment_error;
      return {
        status: 'failed',
        charge_id: intent.id,
        failure_code:
          error?.code ?? (intent.status === 'requires_payment_method' ? 'card_declined' : intent.status),
        decline_code: error?.decline_code ?? null,
        message: error?.message ?? `the payment ended ${intent.status}`,
      };
    }
  }
}

/**
 * A Stripe error as our outcome, or thrown again:
 * - a card error `authentication_required` that names its PaymentIntent is a `pending` charge (SCA: the webhook
 *   finishes it); any other card error (declined, expired, incorrect CVC, insufficient funds, the card's
 *   `processing_error`) is a failed charge with Stripe's `code` and `decline_code`: Stripe stores it under the
 *   idempotency key, so retrying would only replay it;
 * - an idempotency error (the key was used with other parameters) is a permanent `conflict`;
 * - an invalid request (a missing customer or method, an amount Stripe refuses) is a permanent `payment_refused`;
 * - everything else (connection, rate limit, Stripe's 5xx, authentication, any non-Stripe error) is thrown again
 *   as it is, and the activity retries it with the same idempotency key.
 */
export function chargeOutcomeOfError(error: unknown): ChargeOutcome {
  if (!(error instanceof Stripe.errors.StripeError)) throw error;
  switch (error.type) {
    case 'StripeCardError':
      // SCA: the PaymentIntent exists and waits for the customer, so its webhook will say how it ended.
      if (error.code === 'authentication_required' && error.payment_intent?.id) {
        return { status: 'pending', charge_id: error.payment_intent.id };
      }
      return {
        status: 'failed',
        charge_id: error.payment_intent?.id ?? null,
        failure_code: error.code ?? 'card_declined',
        // The package fills a missing decline_code with ''.
        decline_code: error.decline_code || null,
        message: error.message,
      };
    case 'StripeIdempotencyError':
      throw new PermanentError('conflict', `stripe: ${error.message}`);
    case 'StripeInvalidRequestError':
      throw new PermanentError('payment_refused', `stripe: ${error.message}`);
    default:
      throw error;
  }
}

/** A refund as our outcome: a pending refund has been accepted (it only settles later) and counts as made. */
export function refundOutcomeOf(refund: Stripe.Refund): RefundOutcome {
  if (refund.status === 'succeeded' || refund.status === 'pending') {
    return { status: 'succeeded', refund_id: refund.id };
  }
  return {
    status: 'failed',
    refund_id: refund.id,
    failure_code: refund.failure_reason ?? 'refund_failed',
    message: `the refund ended ${refund.status ?? 'without a status'}`,
  };
}

/**
 * A Stripe error on a refund as our outcome, or thrown again. A refund Stripe refuses as invalid is a failed refund
 * in the simulated gateway's words where they exist (`charge_not_found`, `amount_too_large`), else with Stripe's
 * code; idempotency errors are a permanent `conflict`; everything else is thrown and retried, as for charges.
 */
export function refundOutcomeOfError(error: unknown): RefundOutcome {
  if (!(error instanceof Stripe.errors.StripeError)) throw error;
  if (error.type === 'StripeIdempotencyError')
    throw new PermanentError('conflict', `stripe: ${error.message}`);
  if (error.type !== 'StripeInvalidRequestError') throw error;
  const failure_code =
    error.code === 'resource_missing'
      ? 'charge_not_found'
      : error.code === 'charge_already_refunded'
        ? 'amount_too_large'
        : (error.code ?? 'refund_refused');
  return { status: 'failed', refund_id: null, failure_code, message: `stripe: ${error.message}` };
}

/**
 * A PaymentIntent's status as reconciliation compares it: money taken, not taken (declined, canceled), or still
 * undecided (processing, waiting for the customer to authenticate).
 */
export function intentBookStatus(status: Stripe.PaymentIntent.Status): BookStatus {
  if (status === 'succeeded') return 'succeeded';
  return status === 'requires_payment_method' || status === 'canceled' ? 'failed' : 'pending';
}

/** A refund's status as reconciliation compares it: a pending refund counts as made, as `refundOutcomeOf` says. */
export function refundBookStatus(status: string | null): BookStatus {
  if (status === 'succeeded' || status === 'pending') return 'succeeded';
  return status === 'failed' || status === 'canceled' ? 'failed' : 'pending';
}

/** The id of a Stripe field that is an id, an expanded object or nothing. */
function idOf(value: string | { id: string } | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? value : value.id;
}

/** Stripe's `created` filter for [from, to), in its unit (whole seconds). */
function createdRange(window: TimeWindow): { gte: number; lt: number } {
  return { gte: Math.floor(window.from.getTime() / 1000), lt: Math.ceil(window.to.getTime() / 1000) };
}
