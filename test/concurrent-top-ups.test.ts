import { randomUUID } from 'node:crypto';
import { useHarness } from './support/harness';
import { waitFor } from './support/eventually';

/**
 * Any number of concurrent money requests on one account. Temporal admits at most 10 Updates in flight per
 * workflow, so requests are recorded in PostgreSQL and signalled instead; each answer is the outcome the database
 * shows within the wait timeout, or 202 pending (never a 5xx for something that ran). Afterwards the books agree
 * exactly: charges = top-up grants = top-ups reported succeeded, and every grant request was applied once.
 */
const WAIT_TIMEOUT_MS = 5_000;
const h = useHarness({ update_wait_timeout_ms: WAIT_TIMEOUT_MS });

const TOP_UPS = 200;
const GRANTS = 20;

test(`${TOP_UPS} concurrent top-ups and ${GRANTS} grants on one customer: every answer 201 or 202 pending, each charged and granted once`, async () => {
  const customer = 'cus_conc_200';
  await h.customer(customer, 'pm_card_visa');
  const started_ms = Date.now();
  const [topUps, grants] = await Promise.all([
    Promise.all(
      Array.from({ length: TOP_UPS }, () =>
        h.call(
          'POST',
          `/v1/customers/${customer}/top-ups`,
          { amount_usd: '1.00' },
          { 'Idempotency-Key': randomUUID() },
        ),
      ),
    ),
    Promise.all(
      Array.from({ length: GRANTS }, (_, i) =>
        h.call(
          'POST',
          `/v1/customers/${customer}/credit-grants`,
          { amount_usd: '0.10', reason: `concurrent ${i}` },
          { 'Idempotency-Key': randomUUID() },
        ),
      ),
    ),
  ]);
  const answered_ms = Date.now() - started_ms;

  const statuses = (rs: { status: number }[]) =>
    rs.reduce<Record<number, number>>((acc, r) => ({ ...acc, [r.status]: (acc[r.status] ?? 0) + 1 }), {});
  console.log(
    `answers in ${answered_ms} ms: top-ups ${JSON.stringify(statuses(topUps))}, grants ${JSON.stringify(statuses(grants))}`,
  );
  for (const r of topUps) {
    expect([201, 202]).toContain(r.status);
    expect(r.body.status).toBe(r.status === 201 ? 'succeeded' : 'pending');
  }
  for (const r of grants) {
    expect([201, 202]).toContain(r.status);
    if (r.status === 202) expect(r.body.status).toBe('pending');
  }
  const ids: string[] = topUps.map((r) => r.body.id);
  expect(new Set(ids).size).toBe(TOP_UPS);

  // Every pending one settles: GET /v1/top-ups/:id shows the outcome.
  await waitFor(
    'every top-up to settle',
    async () => {
      const pending = await h
        .db('top_ups')
        .where({ customer_id: customer, status: 'pending' })
        .count<{ count: string }[]>('* as count');
      return Number(pending[0]!.count) === 0;
    },
    180_000,
  );
  for (const r of topUps.filter((t) => t.status === 202).slice(0, 5)) {
    expect((await h.call('GET', `/v1/top-ups/${r.body.id}`)).body.status).toBe('succeeded');
  }
  await waitFor('every grant to be applied', async () => {
    const pending = await h.db('credit_grant_requests').where({ customer_id: customer, status: 'pending' });
    return pending.length === 0;
  });

  const succeeded = await h.db('top_ups').where({ customer_id: customer, status: 'succeeded' });
  const charges = await h.db('simulated_charges').where({ customer_ref: customer, status: 'succeeded' });
  const topUpGrants = await h.db('credit_grants').where({ customer_id: customer, source: 'top_up' });
  const promotions = await h.db('credit_grants').where({ customer_id: customer, source: 'promotion' });
  expect(succeeded).toHaveLength(TOP_UPS);
  expect(charges).toHaveLength(TOP_UPS);
  expect(topUpGrants).toHaveLength(TOP_UPS);
  expect(new Set(topUpGrants.map((g: { id: string }) => g.id))).toEqual(new Set(ids.map((id) => `gr_${id}`)));
  expect(promotions).toHaveLength(GRANTS);
  const balance = await h.call('GET', `/v1/customers/${customer}/balance`);
  expect(balance.body.available_usd).toBe('202.000000000'); // 200 x 1.00 + 20 x 0.10
}, 300_000);
