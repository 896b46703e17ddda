import type { GatewayRecord, TimeWindow } from '../billing/reconciliation';
import Stripe from 'stripe';
import type { Db } from '../db/connection';
import type {
  ChargeOutcome,
  ChargeRequest,
  PaymentGateway,
  RefundOutcome,
  RefundRequest,
} from '../payments/payment-gateway';
import { SimulatedGateway } from '../payments/simulated-gateway';
import { waitFor } from './support/eventually';
import { useHarness } from './support/harness';

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
