import { useHarness } from './support/harness';
import { exited, startCrashWorker } from './support/processes';

/**
 * Crash safety of top-ups: a worker process is SIGKILLed in the middle of a top-up and a second worker finishes
 * it. Whatever the crash point, the result is exactly one card charge, one grant and one ledger entry.
 */
// Short activity timeouts (database steps and payment calls alike) so the surviving worker retries the dead
// worker's activity within seconds.
const h = useHarness({
  worker: false,
  settings: { activity_timeout_ms: 2_000, payment_activity_timeout_ms: 2_000 },
  update_wait_timeout_ms: 45_000,
});

test.each(['before_grant', 'after_charge'])(
  'a worker killed %s leaves exactly one charge and one grant once another worker takes over',
  async (crashAt) => {
    const customer = `cus_crash_${crashAt}`;
    const child = await startCrashWorker(h, crashAt);
    const died = exited(child);
    await h.customer(customer, 'pm_card_visa');

    const topUpResponse = h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '42.00' });
    expect(await died).toBe('SIGKILL');

    // The card was charged before the crash, and no credit exists yet: the dangerous window.
    expect(await h.db('simulated_charges').where({ customer_ref: customer })).toHaveLength(1);
    expect(await h.db('credit_grants').where({ customer_id: customer })).toHaveLength(0);

    await h.startWorker();
    const topUp = await topUpResponse;
    expect(topUp.status).toBe(201);
    expect(topUp.body.status).toBe('succeeded');

    const charges = await h.db('simulated_charges').where({ customer_ref: customer });
    const grants = await h.db('credit_grants').where({ customer_id: customer });
    const entries = await h.db('ledger_entries').where({ customer_id: customer, kind: 'top_up' });
    expect(charges).toHaveLength(1);
    expect(grants).toHaveLength(1);
    expect(entries).toHaveLength(1);
    expect(grants[0].amount_nanos).toBe(42_000_000_000n);
    const balance = await h.call('GET', `/v1/customers/${customer}/balance`);
    expect(balance.body.available_usd).toBe('42.000000000');
    await h.stopWorker();
  },
);
