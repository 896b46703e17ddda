import { useHarness } from './support/harness';
import { waitFor } from './support/eventually';

/**
 * Credit expiry end to end: the account workflow sleeps until a grant's expiry, then writes off what is left of
 * it (an `expiry` ledger entry to breakage) and closes the grant; other grants are untouched.
 */
const h = useHarness();

test('an expiring promotion is written off at its expiry by the workflow timer, leaving paid credit alone', async () => {
  const customer = 'cus_expiry';
  await h.customer(customer, 'pm_card_visa');
  expect((await h.call('POST', `/v1/customers/${customer}/top-ups`, { amount_usd: '10.00' })).status).toBe(
    201,
  );
  // Soon enough to wait for, late enough that the API (which refuses a past expiry) accepts it on a busy machine.
  const expires_at = new Date(Date.now() + 5_000).toISOString();
  const grant = await h.call('POST', `/v1/customers/${customer}/credit-grants`, {
    amount_usd: '2.500000001',
    reason: 'trial credit',
    expires_at,
  });
  expect(grant.status).toBe(201);
  // The grant was credited before it expired: the ledger says so, whenever this line runs (no race with the timer).
  const credited = await h.call('GET', `/v1/customers/${customer}/ledger`);
  expect(credited.body.data).toContainEqual(
    expect.objectContaining({ kind: 'credit_grant', ref: grant.body.id, balance_after_usd: '12.500000001' }),
  );

  // No one calls the API: the workflow's own timer fires at expires_at. Waited for as a condition with a deadline.
  await waitFor(
    'the expiry write-off',
    async () =>
      (await h.call('GET', `/v1/customers/${customer}/balance`)).body.available_usd === '10.000000000',
    30_000,
  );
  const balance = await h.call('GET', `/v1/customers/${customer}/balance`);
  expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(expires_at));
  const expired = balance.body.grants.find((g: { id: string }) => g.id === grant.body.id);
  expect(expired).toMatchObject({
    status: 'expired',
    remaining_usd: '0.000000000',
    amount_usd: '2.500000001',
  });
  const paid = balance.body.grants.find((g: { source: string }) => g.source === 'top_up');
  expect(paid).toMatchObject({ status: 'active', remaining_usd: '10.000000000' });

  const ledger = await h.call('GET', `/v1/customers/${customer}/ledger`);
  expect(ledger.body.data[0]).toMatchObject({
    kind: 'expiry',
    ref: grant.body.id,
    amount_usd: '-2.500000001',
    balance_after_usd: '10.000000000',
  });
  const breakage = await h
    .db('ledger_postings')
    .where({ account: 'breakage' })
    .sum<{ sum: string }[]>('amount_nanos');
  expect(BigInt(breakage[0]!.sum)).toBe(2_500_000_001n);
});
