import type { GatewayRecord, TimeWindow } from '../billing/reconciliation';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';
import { createApp } from '../api/app';
import { listen } from '../api/server';
import type { Db } from '../db/connection';
import type {
  ChargeOutcome,
  ChargeRequest,
  PaymentGateway,
  RefundOutcome,
  RefundRequest,
} from '../payments/payment-gateway';
import { SimulatedGateway } from '../payments/simulated-gateway';
import { recordRefund } from '../db/refunds';
import { waitFor } from './support/eventually';
import { testAppDeps, useHarness } from './support/harness';

/**
 * Inbound Stripe webhooks end to end (real PostgreSQL and Temporal, the API over HTTP): signatures made by the
 * `stripe` package's `generateTestHeaderString` (valid, forged, stale, missing), every event stored once by its id
 * (a replay answers 200 and changes nothing, an unknown type is stored and ignored), and SCA made real: a top-up whose
 * PaymentIntent needs the customer stays `pending` (202), and `payment_intent.succeeded` / `payment_failed` finish it
 * through the account workflow exactly once, also when the webhook arrives before the workflow's own charge call
 * returns.
 */

const SECRET = 'whsec_test_stripehooks_secret';
/** The card this file's gateway answers `requires_action` for (an SCA card, as Stripe's test card 4000 0027 6000 3184). */
const SCA_CARD = 'pm_card_authenticationRequired';

/**
 * A gateway named `stripe` that answers like Stripe would for an SCA card: a PaymentIntent `requires_action`, i.e. a
 * `pending` charge whose id derives from the operation key (Stripe's idempotency key makes a retry return the same
 * intent). Other cards go to the simulated gateway. `holdNextCharge` keeps the next SCA charge call from returning
 * until released, so a test can deliver the webhook while the call is out.
 */
class ScaGateway implements PaymentGateway {
  readonly name = 'stripe';
  private readonly simulated: SimulatedGateway;
  private hold: { entered: () => void; release: Promise<void> } | undefined;

  constructor(db: Db) {
    this.simulated = new SimulatedGateway(db);
  }

  acceptsPaymentMethod(payment_method: string): boolean {
    return payment_method === SCA_CARD || this.simulated.acceptsPaymentMethod(payment_method);
  }

  async charge(request: ChargeRequest): Promise<ChargeOutcome> {
    if (request.payment_method !== SCA_CARD) return this.simulated.charge(request);
    const hold = this.hold;
    this.hold = undefined;
    if (hold) {
      hold.entered();
      await hold.release;
    }
    return { status: 'pending', charge_id: intentIdOf(request.idempotency_key) };
  }

  refund(request: RefundRequest): Promise<RefundOutcome> {
    return this.simulated.refund(request);
  }

  listCharges(window: TimeWindow, max: number): Promise<GatewayRecord[]> {
    return this.simulated.listCharges(window, max);
  }

  listRefunds(window: TimeWindow, max: number): Promise<GatewayRecord[]> {
    return this.simulated.listRefunds(window, max);
  }

  /** The next SCA charge waits for `release`; resolves `entered` once that call has reached the gateway. */
  holdNextCharge(): { entered: Promise<void>; release: () => void } {
    let release!: () => void;
    let entered!: () => void;
    const enteredPromise = new Promise<void>((resolve) => (entered = resolve));
    this.hold = { entered, release: new Promise<void>((resolve) => (release = resolve)) };
    return { entered: enteredPromise, release };
  }
}

const intentIdOf = (operation_key: string) => `pi_${operation_key.replace(/[^A-Za-z0-9]/g, '_')}`;

// The API and the worker each build their own gateway; the worker's is the one that charges.
const gateways: ScaGateway[] = [];
const h = useHarness({
  gateway: (db) => {
    const gateway = new ScaGateway(db);
    gateways.push(gateway);
    return gateway;
  },
  stripe_webhook: { secret: SECRET, tolerance_s: 300 },
  update_wait_timeout_ms: 3_000,
});
const chargingGateway = () => gateways.at(-1)!;

let eventSeq = 0;
/** A Stripe event as Stripe sends it, with a fresh id unless given. */
function stripeEvent(
  type: string,
  object: Record<string, unknown>,
  id = `evt_sh_${++eventSeq}_${Date.now()}`,
) {
  return {
    id,
    object: 'event',
    api_version: '2025-01-01',
    created: Math.floor(Date.now() / 1000),
    type,
    data: { object },
  };
}

/** POSTs a raw payload with the given Stripe-Signature header (none when undefined), no API key. */
async function deliver(payload: string, signature: string | undefined) {
  const response = await fetch(`${h.baseUrl}/v1/webhooks/stripe`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(signature === undefined ? {} : { 'stripe-signature': signature }),
    },
    body: payload,
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON bodies
  return { status: response.status, body: (await response.json()) as any };
}

/** Signs the event as Stripe would (now, with the endpoint's secret) and delivers it. */
async function send(event: unknown, options: { secret?: string; timestamp?: number } = {}) {
  const payload = JSON.stringify(event);
  const signature = Stripe.webhooks.generateTestHeaderString({
    payload,
    secret: options.secret ?? SECRET,
    ...(options.timestamp === undefined ? {} : { timestamp: options.timestamp }),
  });
  return deliver(payload, signature);
}

async function storedEvents(): Promise<number> {
  const result = await h.db.raw('SELECT count(*)::int AS n FROM stripe_events');
  return (result.rows[0] as { n: number }).n;
}

async function topUpEntries(top_up_id: string): Promise<number> {
  const result = await h.db.raw(
    `SELECT count(*)::int AS n FROM ledger_entries WHERE kind = 'top_up' AND ref = ?`,
    [top_up_id],
  );
  return (result.rows[0] as { n: number }).n;
}

async function payment(top_up_id: string): Promise<{ status: string; gateway_charge_id: string | null }> {
  const result = await h.db.raw(`SELECT status, gateway_charge_id FROM payments WHERE idempotency_key = ?`, [
    `top_up:${top_up_id}`,
  ]);
  return result.rows[0] as { status: string; gateway_charge_id: string | null };
}

/** The PaymentIntent of a top-up's charge as Stripe's events carry it (our metadata included). */
function intentOf(
  customer_id: string,
  top_up_id: string,
  status: string,
  extra: Record<string, unknown> = {},
) {
  const key = `top_up:${top_up_id}`;
  return {
    id: intentIdOf(key),
    object: 'payment_intent',
    status,
    amount: 2500,
    currency: 'usd',
    metadata: { customer_id, idempotency_key: key },
    ...extra,
  };
}

async function available(customer: string): Promise<string> {
  const response = await h.call('GET', `/v1/customers/${customer}/balance`);
  return response.body.available_usd as string;
}

async function startScaTopUp(customer: string) {
  await h.customer(customer, SCA_CARD);
  const created = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '25.00' });
  return created;
}

describe('signature verification', () => {
  test('a valid signature is 200 and the event is stored once; a replay of it is 200, a duplicate, and changes nothing', async () => {
    const event = stripeEvent('customer.created', { id: 'cus_stripe_sh_1', object: 'customer' });
    const before = await storedEvents();
    const first = await send(event);
    expect(first).toEqual({ status: 200, body: { received: true, id: event.id, duplicate: false } });
    expect(await storedEvents()).toBe(before + 1);
    const money = await h.moneySnapshot();
    // Stripe redelivers with a new signature (a new timestamp), same event id.
    const replay = await send(event);
    expect(replay).toEqual({ status: 200, body: { received: true, id: event.id, duplicate: true } });
    expect(await storedEvents()).toBe(before + 1);
    expect(await h.moneySnapshot()).toBe(money);
    const stored = await h.db.raw(
      `SELECT type, processed_at, payload->>'id' AS payload_id FROM stripe_events WHERE id = ?`,
      [event.id],
    );
    expect(stored.rows[0]).toMatchObject({ type: 'customer.created', payload_id: event.id });
    expect(stored.rows[0].processed_at).not.toBeNull();
  });

  test('forged (another secret), tampered, stale (outside the tolerance) and missing signatures are 400 naming the header, and store nothing', async () => {
    const event = stripeEvent('payment_intent.succeeded', { id: 'pi_forged', object: 'payment_intent' });
    const before = await storedEvents();
    const forged = await send(event, { secret: 'whsec_someone_else' });
    expect(forged.status).toBe(400);
    expect(forged.body.error).toMatchObject({
      type: 'invalid_request',
      code: 'invalid_signature',
      param: 'Stripe-Signature',
    });
    const payload = JSON.stringify(event);
    const signature = Stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET });
    const tampered = await deliver(payload.replace('pi_forged', 'pi_tampered'), signature);
    expect(tampered.status).toBe(400);
    expect(tampered.body.error.code).toBe('invalid_signature');
    // Signed correctly, but an hour ago: a captured request replayed later.
    const stale = await send(event, { timestamp: Math.floor(Date.now() / 1000) - 3600 });
    expect(stale.status).toBe(400);
    expect(stale.body.error).toMatchObject({ code: 'invalid_signature', param: 'Stripe-Signature' });
    expect(stale.body.error.message).toMatch(/tolerance/i);
    const missing = await deliver(payload, undefined);
    expect(missing.status).toBe(400);
    expect(missing.body.error).toMatchObject({ code: 'missing_signature', param: 'Stripe-Signature' });
    expect(await storedEvents()).toBe(before);
  });

  test('the route needs no API key, takes JSON only (415 otherwise) and answers POST only (405)', async () => {
    const response = await fetch(`${h.baseUrl}/v1/webhooks/stripe`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', 'stripe-signature': 't=1,v1=x' },
      body: 'hello',
    });
    expect(response.status).toBe(415);
    const get = await fetch(`${h.baseUrl}/v1/webhooks/stripe`);
    expect(get.status).toBe(405);
  });

  test('without STRIPE_WEBHOOK_SECRET the route is 404 stripe_webhooks_not_configured, even for a signed event', async () => {
    const api = createApp(
      testAppDeps({
        db: h.db,
        hotPath: h.hotPath,
        temporal: h.temporal,
        task_queue: h.taskQueue,
        settings: h.settings,
      }),
    );
    const server = await listen(api.app, 0, '127.0.0.1');
    try {
      const payload = JSON.stringify(stripeEvent('customer.created', { id: 'cus_unconfigured' }));
      const response = await fetch(
        `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/webhooks/stripe`,
        {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET }),
          },
          body: payload,
        },
      );
      expect(response.status).toBe(404);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
        'stripe_webhooks_not_configured',
      );
    } finally {
      await api.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
  });

  test('an unknown event type is 200, stored and ignored', async () => {
    const money = await h.moneySnapshot();
    const event = stripeEvent('radar.early_fraud_warning.created', {
      id: 'issfr_1',
      object: 'radar.early_fraud_warning',
    });
    expect((await send(event)).status).toBe(200);
    const stored = await h.db.raw(`SELECT type, object_id, processed_at FROM stripe_events WHERE id = ?`, [
      event.id,
    ]);
    expect(stored.rows[0]).toMatchObject({ type: 'radar.early_fraud_warning.created', object_id: 'issfr_1' });
    expect(await h.moneySnapshot()).toBe(money);
  });
});

describe('a top-up whose PaymentIntent needs the customer (SCA)', () => {
  test('stays pending (202) without a grant, then payment_intent.succeeded grants it exactly once, however often it arrives', async () => {
    const customer = 'cus_sh_sca_ok';
    const created = await startScaTopUp(customer);
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ status: 'pending', amount_usd: '25.000000000', grant_id: null });
    const top_up_id = created.body.id as string;
    expect(await payment(top_up_id)).toEqual({
      status: 'pending',
      gateway_charge_id: intentIdOf(`top_up:${top_up_id}`),
    });
    expect(await topUpEntries(top_up_id)).toBe(0);
    expect(await available(customer)).toBe('0.000000000');

    const succeeded = stripeEvent('payment_intent.succeeded', intentOf(customer, top_up_id, 'succeeded'));
    expect((await send(succeeded)).status).toBe(200);
    await waitFor('the top-up succeeded', async () => {
      const row = await h.call('GET', `/v1/top-ups/${top_up_id}`);
      return row.body.status === 'succeeded';
    });
    expect(await payment(top_up_id)).toMatchObject({ status: 'succeeded' });
    expect(await available(customer)).toBe('25.000000000');

    // The same event again, and another event for the same PaymentIntent: stored, nothing granted again.
    expect((await send(succeeded)).body.duplicate).toBe(true);
    expect(
      (await send(stripeEvent('payment_intent.succeeded', intentOf(customer, top_up_id, 'succeeded'))))
        .status,
    ).toBe(200);
    // A retry of the POST with nothing new answers the outcome.
    const row = await h.call('GET', `/v1/top-ups/${top_up_id}`);
    expect(row.body).toMatchObject({ status: 'succeeded', grant_id: `gr_${top_up_id}` });
    expect(await topUpEntries(top_up_id)).toBe(1);
    expect(await available(customer)).toBe('25.000000000');
  });

  test('payment_intent.payment_failed fails the pending top-up with the card error, and nothing is granted', async () => {
    const customer = 'cus_sh_sca_fail';
    const created = await startScaTopUp(customer);
    expect(created.status).toBe(202);
    const top_up_id = created.body.id as string;
    const failed = stripeEvent(
      'payment_intent.payment_failed',
      intentOf(customer, top_up_id, 'requires_payment_method', {
        last_payment_error: {
          code: 'authentication_required',
          message: 'The customer did not authenticate.',
        },
      }),
    );
    expect((await send(failed)).status).toBe(200);
    await waitFor('the top-up failed', async () => {
      const row = await h.call('GET', `/v1/top-ups/${top_up_id}`);
      return row.body.status === 'failed';
    });
    const row = await h.call('GET', `/v1/top-ups/${top_up_id}`);
    expect(row.body).toMatchObject({
      status: 'failed',
      failure_code: 'authentication_required',
      grant_id: null,
    });
    expect(await payment(top_up_id)).toMatchObject({ status: 'failed' });
    expect(await topUpEntries(top_up_id)).toBe(0);
    expect(await available(customer)).toBe('0.000000000');
  });

  test('a webhook that arrives before the charge call returns is stored first, and the charge step finishes the top-up once from it', async () => {
    const customer = 'cus_sh_sca_early';
    await h.customer(customer, SCA_CARD);
    const held = chargingGateway().holdNextCharge();
    const post = h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '25.00' });
    await held.entered;
    // The charge call is out; no payment is recorded yet. Stripe already says how it ended.
    const pending = await h.db.raw(`SELECT id FROM top_ups WHERE customer_id = ?`, [customer]);
    const top_up_id = pending.rows[0].id as string;
    expect(await payment(top_up_id)).toBeUndefined();
    const early = stripeEvent('payment_intent.succeeded', intentOf(customer, top_up_id, 'succeeded'));
    expect((await send(early)).status).toBe(200);
    expect(await topUpEntries(top_up_id)).toBe(0);
    held.release();
    const answered = await post;
    expect([201, 202]).toContain(answered.status);
    await waitFor('the top-up succeeded', async () => {
      const row = await h.call('GET', `/v1/top-ups/${top_up_id}`);
      return row.body.status === 'succeeded';
    });
    expect(await payment(top_up_id)).toMatchObject({ status: 'succeeded' });
    expect(await topUpEntries(top_up_id)).toBe(1);
    expect(await available(customer)).toBe('25.000000000');
  });

  test('a PaymentIntent that is not ours is stored and changes nothing', async () => {
    const money = await h.moneySnapshot();
    const foreign = stripeEvent('payment_intent.succeeded', {
      id: 'pi_someone_else',
      object: 'payment_intent',
      status: 'succeeded',
      metadata: {},
    });
    expect((await send(foreign)).body).toMatchObject({ received: true, duplicate: false });
    expect(await h.moneySnapshot()).toBe(money);
  });
});

/** A succeeded top-up on a card that needs no authentication, and the PaymentIntent id its payment records. */
async function paidTopUp(
  customer: string,
  amount_usd: string,
): Promise<{ top_up_id: string; intent: string }> {
  await h.customer(customer, 'pm_card_visa');
  const created = await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd });
  expect(created.status).toBe(201);
  const top_up_id = created.body.id as string;
  return { top_up_id, intent: (await payment(top_up_id)).gateway_charge_id! };
}

async function entries(customer: string, kind: string): Promise<string[]> {
  const result = await h.db.raw(
    `SELECT amount_nanos::text AS a FROM ledger_entries WHERE customer_id = ? AND kind = ? ORDER BY id`,
    [customer, kind],
  );
  return (result.rows as { a: string }[]).map((r) => r.a);
}

describe('charge.refunded made in the Stripe dashboard', () => {
  test('claws back the credit like our own refunds, once per new refund, without calling the gateway', async () => {
    const customer = 'cus_sh_dash_refund';
    const { top_up_id, intent } = await paidTopUp(customer, '25.00');
    const charge = (amount_refunded: number, refund_id: string) => ({
      id: `ch_${top_up_id}`,
      object: 'charge',
      payment_intent: intent,
      amount: 2500,
      amount_refunded,
      refunds: { object: 'list', data: [{ id: refund_id, amount: 1000, status: 'succeeded', metadata: {} }] },
    });
    const first = stripeEvent('charge.refunded', charge(1000, 're_dash_1'));
    expect((await send(first)).status).toBe(200);
    await waitFor('the $10 claw-back settled', async () => {
      const settled = await h.call('GET', '/v1/refunds/re_stripe_re_dash_1');
      return settled.body?.status === 'succeeded';
    });
    expect(await available(customer)).toBe('15.000000000');
    const refund = await h.call('GET', '/v1/refunds/re_stripe_re_dash_1');
    expect(refund.body).toMatchObject({ status: 'succeeded', amount_usd: '10.000000000' });
    // Stripe's own refund id, never one the (simulated) gateway would have made: it was not asked.
    const stored = await h.db.raw(
      `SELECT gateway_refund_id, allow_negative FROM refunds WHERE id = 're_stripe_re_dash_1'`,
    );
    expect(stored.rows[0]).toEqual({ gateway_refund_id: 're_dash_1', allow_negative: true });
    // Redelivered: nothing more.
    expect((await send(first)).body.duplicate).toBe(true);
    // A second dashboard refund: the charge's total is now 25.00, of which 10.00 is known.
    expect((await send(stripeEvent('charge.refunded', charge(2500, 're_dash_2')))).status).toBe(200);
    await waitFor('the rest clawed back', async () => {
      const settled = await h.call('GET', '/v1/refunds/re_stripe_re_dash_2');
      return settled.body?.status === 'succeeded';
    });
    expect(await available(customer)).toBe('0.000000000');
    expect(await entries(customer, 'refund')).toEqual(['-10000000000', '-15000000000']);
    expect((await h.call('GET', `/v1/top-ups/${top_up_id}`)).body.status).toBe('succeeded');
  });

  test('our own refund announced by charge.refunded records nothing more', async () => {
    const customer = 'cus_sh_own_refund';
    const { top_up_id, intent } = await paidTopUp(customer, '20.00');
    const own = await h.call('POST', `/v1/top-ups/${top_up_id}/refunds`, { amount_usd: '5.00' });
    expect(own.status).toBe(201);
    const refunded = stripeEvent('charge.refunded', {
      id: `ch_${top_up_id}`,
      object: 'charge',
      payment_intent: intent,
      amount: 2000,
      amount_refunded: 500,
    });
    expect((await send(refunded)).status).toBe(200);
    // The webhook records an outside refund in its own request: one row here means it recorded none.
    expect(await h.db('refunds').where({ customer_id: customer })).toHaveLength(1);
    expect(await entries(customer, 'refund')).toEqual(['-5000000000']);
    expect(await available(customer)).toBe('15.000000000');
  });

  test('a refund of ours still waiting in the queue does not hide a dashboard refund of the same money', async () => {
    const customer = 'cus_sh_queued_refund';
    const { top_up_id, intent } = await paidTopUp(customer, '20.00');
    // Ours, recorded but not run yet (its claim comes first, before any gateway call): it has taken nothing.
    const [top] = await h.db('top_ups').where({ id: top_up_id });
    await recordRefund(h.db, {
      id: 're_sh_queued',
      customer_id: customer,
      payment_id: top.payment_id,
      top_up_id,
      recharge_id: null,
      grant_id: top.grant_id,
      amount_nanos: 20_000_000_000n,
      allow_negative: false,
    });
    const dashboard = stripeEvent('charge.refunded', {
      id: `ch_${top_up_id}`,
      object: 'charge',
      payment_intent: intent,
      amount: 2000,
      amount_refunded: 2000,
      refunds: {
        object: 'list',
        data: [{ id: 're_dash_q', amount: 2000, status: 'succeeded', metadata: {} }],
      },
    });
    expect((await send(dashboard)).status).toBe(200);
    await waitFor('the dashboard refund clawed back', async () => {
      const settled = await h.call('GET', '/v1/refunds/re_stripe_re_dash_q');
      return settled.body?.status === 'succeeded';
    });
    expect(await available(customer)).toBe('0.000000000');
    expect(await entries(customer, 'refund')).toEqual(['-20000000000']);
  });
});

describe('card disputes', () => {
  const dispute = (id: string, intent: string, status: string) => ({
    id,
    object: 'dispute',
    amount: 2000,
    currency: 'usd',
    payment_intent: intent,
    status,
    reason: 'fraudulent',
  });

  test('charge.dispute.created freezes the disputed credit (not spendable), once; closed won releases it', async () => {
    const customer = 'cus_sh_dispute_won';
    const { intent } = await paidTopUp(customer, '20.00');
    const created = stripeEvent('charge.dispute.created', dispute('du_sh_won', intent, 'needs_response'));
    expect((await send(created)).status).toBe(200);
    expect(await available(customer)).toBe('0.000000000');
    // Frozen means not spendable: an authorization is refused.
    const held = await h.call('POST', '/v1/authorizations', {
      customer_id: customer,
      model: 'gpt-5.4-nano',
      estimated_usage: { input_tokens: 1000 },
    });
    expect(held.status).toBe(402);
    // Another event id for the same dispute (Stripe's dispute.updated-style redelivery) freezes nothing more.
    expect(
      (await send(stripeEvent('charge.dispute.created', dispute('du_sh_won', intent, 'needs_response'))))
        .status,
    ).toBe(200);
    expect(await entries(customer, 'dispute')).toEqual(['-20000000000']);
    const closed = stripeEvent('charge.dispute.closed', dispute('du_sh_won', intent, 'won'));
    expect((await send(closed)).status).toBe(200);
    expect(await available(customer)).toBe('20.000000000');
    expect(
      (await send(stripeEvent('charge.dispute.closed', dispute('du_sh_won', intent, 'won')))).status,
    ).toBe(200);
    expect(await available(customer)).toBe('20.000000000');
    expect(await entries(customer, 'dispute_won')).toEqual(['20000000000']);
    const row = await h.db.raw(`SELECT status, closed_at FROM disputes WHERE id = 'du_sh_won'`);
    expect(row.rows[0].status).toBe('won');
  });

  test('a lost dispute writes the frozen credit off; a close heard before the open freezes then closes once', async () => {
    const customer = 'cus_sh_dispute_lost';
    const { intent } = await paidTopUp(customer, '20.00');
    expect(
      (await send(stripeEvent('charge.dispute.created', dispute('du_sh_lost', intent, 'needs_response'))))
        .status,
    ).toBe(200);
    expect(
      (await send(stripeEvent('charge.dispute.closed', dispute('du_sh_lost', intent, 'lost')))).status,
    ).toBe(200);
    expect(await available(customer)).toBe('0.000000000');
    expect(await entries(customer, 'dispute_lost')).toEqual(['0']);

    const early = 'cus_sh_dispute_early';
    const paid = await paidTopUp(early, '20.00');
    expect(
      (await send(stripeEvent('charge.dispute.closed', dispute('du_sh_early', paid.intent, 'lost')))).status,
    ).toBe(200);
    expect(
      (
        await send(
          stripeEvent('charge.dispute.created', dispute('du_sh_early', paid.intent, 'needs_response')),
        )
      ).status,
    ).toBe(200);
    expect(await available(early)).toBe('0.000000000');
    expect(await entries(early, 'dispute')).toEqual(['-20000000000']);
  });
});

test('an event whose text holds a NUL character is stored and acknowledged (200), never a 500 that Stripe retries for days', async () => {
  const response = await send({
    id: 'evt_nul_text',
    object: 'event',
    type: 'customer.updated',
    created: Math.floor(Date.now() / 1000),
    data: { object: { id: 'cus_stripe_nul', object: 'customer', name: 'Ada\u0000Lovelace' } },
  });
  expect(response.status).toBe(200);
  const [row] = (await h.db.raw(`SELECT payload FROM stripe_events WHERE id = 'evt_nul_text'`)).rows;
  expect(row.payload.data.object.name).toBe('Ada\ufffdLovelace');
});
