import { chargeRefundOf, disputeOf, paymentIntentOutcome } from '../../billing/stripe-events';

/** The pure reading of Stripe's events: what settles a PaymentIntent, and what a refund or dispute event carries. */

const succeeded = { type: 'payment_intent.succeeded', payload: {} };
const failed = (code?: string) => ({
  type: 'payment_intent.payment_failed',
  payload: { data: { object: { last_payment_error: code === undefined ? null : { code, message: 'no' } } } },
});

test('a PaymentIntent with no deciding event has no outcome; a success wins over any failure, in any order', () => {
  expect(paymentIntentOutcome([])).toBeNull();
  expect(paymentIntentOutcome([{ type: 'payment_intent.created', payload: {} }])).toBeNull();
  expect(paymentIntentOutcome([failed('authentication_required'), succeeded])).toEqual({
    status: 'succeeded',
  });
  expect(paymentIntentOutcome([succeeded, failed('card_declined')])).toEqual({ status: 'succeeded' });
  expect(paymentIntentOutcome([failed('card_declined'), failed('authentication_required')])).toEqual({
    status: 'failed',
    failure_code: 'authentication_required',
    message: 'no',
  });
  expect(paymentIntentOutcome([failed()])).toMatchObject({ status: 'failed', failure_code: 'card_declined' });
});

test('charge.refunded is keyed by Stripe newest refund when listed, else by the charge and its cumulative total', () => {
  const charge = { id: 'ch_1', payment_intent: 'pi_1', amount_refunded: 1500 };
  expect(chargeRefundOf({ ...charge, refunds: { data: [{ id: 're_new' }, { id: 're_old' }] } })).toEqual({
    payment_intent_id: 'pi_1',
    amount_refunded_cents: 1500,
    gateway_refund_id: 're_new',
    refund_id: 're_stripe_re_new',
  });
  expect(chargeRefundOf(charge)).toMatchObject({
    gateway_refund_id: 'ch_1:1500',
    refund_id: 're_stripe_ch_1_1500',
  });
  expect(chargeRefundOf({ ...charge, payment_intent: { id: 'pi_x' } })?.payment_intent_id).toBe('pi_x');
  for (const bad of [
    null,
    { ...charge, payment_intent: null },
    { ...charge, amount_refunded: 0 },
    { ...charge, amount_refunded: 1.5 },
  ]) {
    expect(chargeRefundOf(bad)).toBeNull();
  }
});

test('a dispute closed lost writes off; any other closing status gives back; malformed disputes are ignored', () => {
  const dispute = { id: 'du_1', payment_intent: 'pi_1', amount: 2000 };
  expect(disputeOf({ ...dispute, status: 'lost' })).toEqual({
    dispute_id: 'du_1',
    payment_intent_id: 'pi_1',
    amount_cents: 2000,
    outcome: 'lost',
  });
  expect(disputeOf({ ...dispute, status: 'won' })?.outcome).toBe('won');
  expect(disputeOf({ ...dispute, status: 'warning_closed' })?.outcome).toBe('won');
  for (const bad of [{}, { ...dispute, amount: -1 }, { ...dispute, payment_intent: null }])
    expect(disputeOf(bad)).toBeNull();
});

test('a PaymentIntent canceled at Stripe settles as failed (canceled), unless it succeeded', () => {
  const canceled = { type: 'payment_intent.canceled', payload: {} };
  expect(paymentIntentOutcome([canceled])).toMatchObject({ status: 'failed', failure_code: 'canceled' });
  expect(paymentIntentOutcome([canceled, succeeded])).toEqual({ status: 'succeeded' });
});
