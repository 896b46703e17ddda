import Stripe from 'stripe';
import { usd } from '../billing/money';
import { PermanentError } from '../db/errors';
import { chargeCardOnce } from '../activities/charge-card';
import type { ChargeOutcome, ChargeRequest, PaymentGateway } from '../payments/payment-gateway';
import {
  centsOf,
  chargeOutcomeOfError,
  chargeOutcomeOfIntent,
  intentBookStatus,
  refundBookStatus,
  createStripeClient,
  refundOutcomeOfError,
  StripeGateway,
  stripeEndpointOf,
} from '../payments/stripe-gateway';
import { ConfigError, loadConfig } from '../wiring/config';
import { createGateway } from '../wiring/runtime';
import { useHarness } from './support/harness';
import { startStripeMock, type StripeMock } from './support/stripe-mock';

/**
 * The Stripe gateway against stripe-mock (Stripe's own mock server, which validates every request against Stripe's
 * API specification): the requests it sends (one Stripe customer per billing customer, the card attached, an
 * off-session PaymentIntent with our idempotency key, refunds), its refusal of amounts that are not whole cents, the
 * mapping of Stripe's errors (as pure functions on errors built by the `stripe` package, because stripe-mock
 * answers every card with success), and a top-up through the HTTP API with the worker charging through Stripe.
 */

let mock: StripeMock;
beforeAll(async () => {
  mock = await startStripeMock();
});
afterAll(async () => {
  await mock?.stop();
});

const h = useHarness({
  gateway: (db) => new StripeGateway(db, createStripeClient({ secret_key: 'sk_test_x', api_base: mock.url })),
});

interface SentRequest {
  method: string;
  path: string;
  idempotency_key: string | undefined;
  body: Record<string, unknown> | undefined;
}

/** A gateway on the file's database whose client records every request it sends, with its parameters. */
function recordingGateway(): { gateway: StripeGateway; sent: SentRequest[] } {
  const stripe = createStripeClient({ secret_key: 'sk_test_x', api_base: mock.url, emit_event_bodies: true });
  const sent: SentRequest[] = [];
  stripe.on('request', (event: Stripe.RequestEvent & { body?: Record<string, unknown> }) => {
    sent.push({
      method: event.method,
      path: event.path,
      idempotency_key: event.idempotency_key,
      body: event.body,
    });
  });
  return { gateway: new StripeGateway(h.db, stripe), sent };
}

/** A charge of `amount_usd` on pm_card_visa. */
function visaCharge(customer_id: string, idempotency_key: string, amount_usd: string): ChargeRequest {
  const description = `Charge ${idempotency_key}`;
  return {
    idempotency_key,
    customer_id,
    payment_method: 'pm_card_visa',
    amount_nanos: usd(amount_usd),
    description,
  };
}

const posts = (sent: SentRequest[], path: string) =>
  sent.filter((r) => r.method === 'POST' && r.path === path);

describe('requests sent to Stripe (stripe-mock)', () => {
  test('two charges of one customer create its Stripe customer once, attach the card and confirm off-session PaymentIntents keyed by our operation keys', async () => {
    await h.customer('cus_stg_shape', 'pm_card_visa');
    const { gateway, sent } = recordingGateway();
    const first = await gateway.charge(visaCharge('cus_stg_shape', 'top_up:tu_stg_1', '12.34'));
    const second = await gateway.charge(visaCharge('cus_stg_shape', 'top_up:tu_stg_2', '12.34'));
    expect(first).toEqual({ status: 'succeeded', charge_id: expect.stringMatching(/^pi_/) });
    expect(second).toEqual({ status: 'succeeded', charge_id: expect.stringMatching(/^pi_/) });

    // One Stripe customer, created with the key derived from our id and recorded.
    const customers = posts(sent, '/v1/customers');
    expect(customers).toHaveLength(1);
    expect(customers[0]).toMatchObject({
      idempotency_key: 'customer:cus_stg_shape',
      body: { metadata: { customer_id: 'cus_stg_shape' } },
    });
    const recorded = await h.db('stripe_customers').where({ customer_id: 'cus_stg_shape' });
    expect(recorded).toHaveLength(1);
    const stripeCustomer = recorded[0].stripe_customer_id as string;
    expect(stripeCustomer).toMatch(/^cus_/);

    // The card is looked at, then attached to that customer (stripe-mock never remembers an attachment).
    expect(posts(sent, '/v1/payment_methods/pm_card_visa/attach')[0]).toMatchObject({
      idempotency_key: 'pm:cus_stg_shape:pm_card_visa',
      body: { customer: stripeCustomer },
    });

    // Each charge: one off-session PaymentIntent confirmed on the card, in cents, keyed by our operation key.
    const intents = posts(sent, '/v1/payment_intents');
    expect(intents.map((r) => r.idempotency_key)).toEqual(['pi:top_up:tu_stg_1', 'pi:top_up:tu_stg_2']);
    expect(intents[0]!.body).toEqual({
      amount: 1234,
      currency: 'usd',
      customer: stripeCustomer,
      payment_method: 'pm_card_visa',
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
      confirm: true,
      off_session: true,
      description: 'Charge top_up:tu_stg_1',
      metadata: { customer_id: 'cus_stg_shape', idempotency_key: 'top_up:tu_stg_1' },
    });
  });

  test('a retried charge sends the same Stripe idempotency key as the first (stripe-mock does not replay it, Stripe does)', async () => {
    await h.customer('cus_stg_retry', 'pm_card_visa');
    const { gateway, sent } = recordingGateway();
    const request = visaCharge('cus_stg_retry', 'auto_recharge:cus_stg_retry:1', '5.00');
    await gateway.charge(request);
    await gateway.charge(request);
    const keys = posts(sent, '/v1/payment_intents').map((r) => r.idempotency_key);
    expect(keys).toEqual(['pi:auto_recharge:cus_stg_retry:1', 'pi:auto_recharge:cus_stg_retry:1']);
    expect(posts(sent, '/v1/customers')).toHaveLength(1);
  });

  test('amounts that are not a positive whole number of cents are refused before anything is sent', async () => {
    await h.customer('cus_stg_cents', 'pm_card_visa');
    const { gateway, sent } = recordingGateway();
    const charge = gateway.charge(visaCharge('cus_stg_cents', 'top_up:tu_stg_cents', '10.005'));
    await expect(charge).rejects.toBeInstanceOf(PermanentError);
    await expect(charge).rejects.toMatchObject({ type: 'invalid_amount' });
    const refund = gateway.refund({
      idempotency_key: 'refund:x',
      charge_id: 'pi_123',
      amount_nanos: usd('0.001'),
      reason: null,
    });
    await expect(refund).rejects.toMatchObject({ type: 'invalid_amount' });
    expect(sent).toEqual([]);
    expect(() => centsOf(0n)).toThrow(PermanentError);
    expect(centsOf(usd('10000.00'))).toBe(1_000_000);
  });

  test('a refund names the PaymentIntent, in cents, keyed re:<our key>; only Stripe reasons go as the reason', async () => {
    const { gateway, sent } = recordingGateway();
    const outcome = await gateway.refund({
      idempotency_key: 'refund:rf_stg_1',
      charge_id: 'pi_stg_refunded',
      amount_nanos: usd('2.50'),
      reason: 'requested_by_customer',
    });
    expect(outcome).toEqual({ status: 'succeeded', refund_id: expect.stringMatching(/^re_/) });
    await gateway.refund({
      idempotency_key: 'refund:rf_stg_2',
      charge_id: 'pi_stg_refunded',
      amount_nanos: usd('1.00'),
      reason: 'customer was billed twice by our bug',
    });
    const refunds = posts(sent, '/v1/refunds');
    expect(refunds.map((r) => [r.idempotency_key, r.body])).toEqual([
      [
        're:refund:rf_stg_1',
        {
          payment_intent: 'pi_stg_refunded',
          amount: 250,
          reason: 'requested_by_customer',
          metadata: { idempotency_key: 'refund:rf_stg_1', reason: 'requested_by_customer' },
        },
      ],
      [
        're:refund:rf_stg_2',
        {
          payment_intent: 'pi_stg_refunded',
          amount: 100,
          metadata: { idempotency_key: 'refund:rf_stg_2', reason: 'customer was billed twice by our bug' },
        },
      ],
    ]);
  });

  test('a charge left waiting for a customer who is not there is withdrawn: the PaymentIntent canceled, keyed cancel:<our key>', async () => {
    const { gateway, sent } = recordingGateway();
    const outcome = await gateway.withdraw('pi_stg_waiting', 'auto_recharge:cus_x:7');
    expect(outcome).toEqual({ status: 'pending', charge_id: 'pi_stg_waiting' });
    const cancels = posts(sent, '/v1/payment_intents/pi_stg_waiting/cancel');
    expect(cancels.map((r) => [r.idempotency_key, r.body])).toEqual([
      ['cancel:auto_recharge:cus_x:7', { cancellation_reason: 'abandoned' }],
    ]);
  });

  test('charges and refunds of a window can be listed for reconciliation', async () => {
    const { gateway } = recordingGateway();
    const window = { from: new Date(Date.now() - 86_400_000), to: new Date() };
    const charges = await gateway.listCharges(window, 5);
    const refunds = await gateway.listRefunds(window, 5);
    expect(charges.length).toBeGreaterThan(0);
    // As reconciliation compares them (README "Reconciliation"): Stripe's statuses mapped to ours, seconds to dates.
    const bookStatus = expect.stringMatching(/^(succeeded|failed|pending)$/);
    expect(charges[0]).toMatchObject({
      id: expect.stringMatching(/^pi_/),
      amount_cents: expect.any(Number),
      status: bookStatus,
      created_at: expect.any(Date),
    });
    expect(refunds.length).toBeGreaterThan(0);
    expect(refunds[0]).toMatchObject({
      id: expect.stringMatching(/^re_/),
      status: bookStatus,
      created_at: expect.any(Date),
      charge_id: expect.stringMatching(/^(pi|ch)_/),
    });
  });

  test('only Stripe PaymentMethod ids are accepted as cards', () => {
    const { gateway } = recordingGateway();
    expect(gateway.acceptsPaymentMethod('pm_card_visa')).toBe(true);
    expect(gateway.acceptsPaymentMethod('pm_1PgafyB7WZ01zgkW')).toBe(true);
    for (const bad of ['card_123', 'pm_', 'tok_visa', 'pm_x y', '']) {
      expect(gateway.acceptsPaymentMethod(bad)).toBe(false);
    }
  });
});

describe('Stripe errors mapped to ours', () => {
  const cardError = (raw: Record<string, unknown>) =>
    new Stripe.errors.StripeCardError({ type: 'card_error', ...raw } as never);

  test.each([
    ['card_declined', 'generic_decline', 'Your card was declined.'],
    ['card_declined', 'insufficient_funds', 'Your card has insufficient funds.'],
    ['expired_card', null, 'Your card has expired.'],
    ['incorrect_cvc', null, "Your card's security code is incorrect."],
    ['processing_error', null, 'An error occurred while processing your card.'],
  ])('a card error %s (%s) is a failed charge with its codes', (code, decline_code, message) => {
    const error = cardError({
      code,
      message,
      ...(decline_code === null ? {} : { decline_code }),
      payment_intent: { id: 'pi_declined' },
    });
    expect(chargeOutcomeOfError(error)).toEqual({
      status: 'failed',
      charge_id: 'pi_declined',
      failure_code: code,
      decline_code,
      message,
    });
  });

  test('SCA: authentication_required naming its PaymentIntent, or a requires_action PaymentIntent, is a pending charge; without an intent it is a failed charge', () => {
    const sca = {
      code: 'authentication_required',
      decline_code: 'authentication_required',
      message: 'This payment requires authentication.',
    };
    expect(chargeOutcomeOfError(cardError({ ...sca, payment_intent: { id: 'pi_sca_err' } }))).toEqual({
      status: 'pending',
      charge_id: 'pi_sca_err',
    });
    // Nothing to wait for without a PaymentIntent: no webhook will ever name this charge.
    expect(chargeOutcomeOfError(cardError(sca))).toMatchObject({
      status: 'failed',
      charge_id: null,
      failure_code: 'authentication_required',
    });
    const intent = {
      id: 'pi_sca',
      status: 'requires_action',
      last_payment_error: null,
    } as Stripe.PaymentIntent;
    expect(chargeOutcomeOfIntent(intent)).toEqual({ status: 'pending', charge_id: 'pi_sca' });
  });

  test('a PaymentIntent returned declined carries its last payment error; a succeeded one is the charge', () => {
    const declined = {
      id: 'pi_no',
      status: 'requires_payment_method',
      last_payment_error: { code: 'card_declined', decline_code: 'fraudulent', message: 'Declined.' },
    } as Stripe.PaymentIntent;
    expect(chargeOutcomeOfIntent(declined)).toEqual({
      status: 'failed',
      charge_id: 'pi_no',
      failure_code: 'card_declined',
      decline_code: 'fraudulent',
      message: 'Declined.',
    });
    const succeeded = { id: 'pi_ok', status: 'succeeded' } as Stripe.PaymentIntent;
    expect(chargeOutcomeOfIntent(succeeded)).toEqual({ status: 'succeeded', charge_id: 'pi_ok' });
  });

  test('invalid requests are permanent (payment_refused), a reused key with other parameters a conflict', () => {
    const invalid = new Stripe.errors.StripeInvalidRequestError({
      type: 'invalid_request_error',
      message: 'No such customer',
    } as never);
    expect(() => chargeOutcomeOfError(invalid)).toThrow(
      expect.objectContaining({ name: 'PermanentError', type: 'payment_refused' }),
    );
    const idempotency = new Stripe.errors.StripeIdempotencyError({
      type: 'idempotency_error',
      message: 'Keys for idempotent requests can only be used with the same parameters',
    } as never);
    expect(() => chargeOutcomeOfError(idempotency)).toThrow(
      expect.objectContaining({ name: 'PermanentError', type: 'conflict' }),
    );
    expect(() => refundOutcomeOfError(idempotency)).toThrow(expect.objectContaining({ type: 'conflict' }));
  });

  test('connection, rate-limit, API and non-Stripe errors are thrown as they are, for the activity to retry', () => {
    const retryable = [
      new Stripe.errors.StripeConnectionError({ message: 'socket hang up' } as never),
      new Stripe.errors.StripeRateLimitError({
        type: 'rate_limit_error',
        message: 'Too many requests',
      } as never),
      new Stripe.errors.StripeAPIError({ type: 'api_error', message: 'Internal error' } as never),
      new Error('ECONNREFUSED'),
    ];
    for (const error of retryable) {
      expect(() => chargeOutcomeOfError(error)).toThrow(error);
      expect(() => refundOutcomeOfError(error)).toThrow(error);
    }
  });

  test('a refund Stripe refuses is a failed refund in the simulated gateway words', () => {
    const refused = (code: string) =>
      refundOutcomeOfError(
        new Stripe.errors.StripeInvalidRequestError({
          type: 'invalid_request_error',
          code,
          message: code,
        } as never),
      );
    expect(refused('resource_missing')).toMatchObject({ status: 'failed', failure_code: 'charge_not_found' });
    expect(refused('charge_already_refunded')).toMatchObject({ failure_code: 'amount_too_large' });
    expect(refused('charge_disputed')).toMatchObject({ failure_code: 'charge_disputed' });
  });
});

describe('configuration', () => {
  test('STRIPE_SECRET_KEY chooses Stripe at STRIPE_API_BASE; without it the simulated gateway', () => {
    const stripe = createGateway(
      loadConfig({ STRIPE_SECRET_KEY: 'sk_test_x', STRIPE_API_BASE: mock.url }),
      h.db,
    );
    expect(stripe.name).toBe('stripe');
    expect(createGateway(loadConfig({}), h.db).name).toBe('simulated');
    // Empty is unset, as docker-compose passes an unset `${STRIPE_SECRET_KEY:-}`.
    expect(createGateway(loadConfig({ STRIPE_SECRET_KEY: '' }), h.db).name).toBe('simulated');
    expect(stripeEndpointOf('http://127.0.0.1:12111')).toEqual({
      host: '127.0.0.1',
      port: 12111,
      protocol: 'http',
    });
    expect(stripeEndpointOf('https://api.stripe.com')).toEqual({
      host: 'api.stripe.com',
      port: 443,
      protocol: 'https',
    });
  });

  test.each([
    ['STRIPE_SECRET_KEY', 'pk_test_public'],
    ['STRIPE_API_BASE', 'ftp://127.0.0.1:12111'],
    ['STRIPE_API_BASE', 'not a url'],
    ['STRIPE_WEBHOOK_SECRET', 'secret'],
  ])('%s=%s stops startup naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });

  test('the webhook secret is kept for the inbound webhooks', () => {
    expect(loadConfig({ STRIPE_WEBHOOK_SECRET: 'whsec_abc123' }).STRIPE_WEBHOOK_SECRET).toBe('whsec_abc123');
  });
});

test('a top-up through the API, with the worker charging through Stripe (stripe-mock), succeeds and grants once', async () => {
  await h.customer('cus_stg_e2e', 'pm_card_visa');
  const topUp = await h.call('POST', '/v1/customers/cus_stg_e2e/top-ups', { amount_usd: '20.00' });
  expect(topUp.status).toBe(201);
  expect(topUp.body).toMatchObject({ status: 'succeeded', amount_usd: '20.000000000' });

  const payments = await h.db('payments').where({ customer_id: 'cus_stg_e2e' });
  expect(payments).toEqual([
    expect.objectContaining({
      gateway: 'stripe',
      idempotency_key: `top_up:${topUp.body.id}`,
      gateway_charge_id: expect.stringMatching(/^pi_/),
      status: 'succeeded',
      amount_nanos: usd('20.00'),
    }),
  ]);
  expect(await h.db('stripe_customers').where({ customer_id: 'cus_stg_e2e' })).toHaveLength(1);
  expect(await h.db('simulated_charges').where({ customer_ref: 'cus_stg_e2e' })).toHaveLength(0);
  const balance = await h.call('GET', '/v1/customers/cus_stg_e2e/balance');
  expect(balance.body.available_usd).toBe('20.000000000');
});

test("reconciliation reads Stripe's statuses as money moved, not moved, or undecided", () => {
  expect(intentBookStatus('succeeded')).toBe('succeeded');
  for (const declined of ['requires_payment_method', 'canceled'] as const)
    expect(intentBookStatus(declined)).toBe('failed');
  for (const open of ['processing', 'requires_action', 'requires_confirmation', 'requires_capture'] as const)
    expect(intentBookStatus(open)).toBe('pending');
  // A pending refund has been accepted and counts as made, as refundOutcomeOf answers it.
  expect(refundBookStatus('pending')).toBe('succeeded');
  expect(refundBookStatus('succeeded')).toBe('succeeded');
  expect(refundBookStatus('failed')).toBe('failed');
  expect(refundBookStatus('canceled')).toBe('failed');
  expect(refundBookStatus('requires_action')).toBe('pending');
});

test('an auto-recharge or invoice charge that needs the customer is withdrawn at the gateway, then recorded failed', async () => {
  await h.customer('cus_stg_withdraw', 'pm_card_visa');
  const withdrawn: string[] = [];
  const waiting: PaymentGateway = {
    name: 'simulated',
    acceptsPaymentMethod: () => true,
    charge: (): Promise<ChargeOutcome> => Promise.resolve({ status: 'pending', charge_id: 'pi_waits' }),
    refund: () => Promise.reject(new Error('not used')),
    listCharges: () => Promise.resolve([]),
    listRefunds: () => Promise.resolve([]),
    withdraw: (charge_id: string, key: string): Promise<ChargeOutcome> => {
      withdrawn.push(`${charge_id} ${key}`);
      return Promise.resolve({ status: 'pending', charge_id });
    },
  };
  const result = await chargeCardOnce(
    { db: h.db, gateway: waiting },
    {
      idempotency_key: 'invoice:in_stg:1',
      payment_id: 'pay_stg_withdraw',
      customer_id: 'cus_stg_withdraw',
      amount_nanos: usd('20.00'),
      description: 'test',
    },
  );
  expect(result).toMatchObject({ status: 'failed', failure_code: 'authentication_required' });
  expect(withdrawn).toEqual(['pi_waits invoice:in_stg:1']);
});
