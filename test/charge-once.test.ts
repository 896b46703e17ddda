import { topUpActivities } from '../activities/top-up-credits';
import { usd } from '../billing/money';
import { recordTopUp } from '../db/top-ups';
import { SimulatedGateway } from '../payments/simulated-gateway';
import { useHarness } from './support/harness';

/**
 * A top-up whose run stopped after the card was charged (a terminate, a killed worker) may resume days later, when
 * the gateway has forgotten its idempotency key (Stripe keeps keys about 24 h). The charge step must then find our
 * own record of the charge and not charge again. The gateway's forgetting is its books losing the charge.
 */
const h = useHarness({ worker: false });

test('a charge step run again after the gateway forgot its key charges nothing and answers the first charge', async () => {
  const customer = 'cus_once_1';
  await h.customer(customer, 'pm_card_visa');
  await recordTopUp(h.db, { id: 'tu_once_1', customer_id: customer, amount_nanos: usd('5.00') });
  const steps = topUpActivities({ db: h.db, gateway: new SimulatedGateway(h.db) });
  const input = { top_up_id: 'tu_once_1', customer_id: customer, amount_usd: '5.00' };

  const first = await steps.chargeTopUp(input);
  expect(first).toEqual({ status: 'succeeded', payment_id: 'pay_tu_once_1' });
  expect(await h.db('simulated_charges').where({ customer_ref: customer })).toHaveLength(1);

  // The gateway forgets the key; the run resumes and runs the charge step again.
  await h.db('simulated_charges').where({ customer_ref: customer }).delete();
  const again = await steps.chargeTopUp(input);
  expect(again).toEqual(first);
  expect(await h.db('simulated_charges').where({ customer_ref: customer })).toHaveLength(0);
  expect(await h.db('payments').where({ customer_id: customer })).toHaveLength(1);

  // The top-up then completes once, and the books agree (checked after the file by the harness).
  const done = await steps.completeTopUp({
    ...input,
    payment_id: first.status === 'succeeded' ? first.payment_id : '',
  });
  expect(done).toMatchObject({ status: 'succeeded', amount_usd: '5.000000000' });
});
