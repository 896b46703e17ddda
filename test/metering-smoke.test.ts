import { useHarness } from './support/harness';

/** The hot path end to end through HTTP: authorize, capture, void, ingest, aggregate. */
const h = useHarness();
beforeAll(async () => {
  await h.customer('cus_meter', 'pm_card_visa');
  await h.call('POST', '/v1/customers/cus_meter/top-ups', { amount_usd: '1.00' });
});

test('authorize holds the estimate, capture charges the actual cost and releases the rest', async () => {
  const auth = await h.call('POST', '/v1/authorizations', {
    customer_id: 'cus_meter',
    model: 'gpt-5.4',
    estimated_usage: { input_tokens: 1500, output_tokens: 1600 },
  });
  expect(auth.status).toBe(201);
  expect(auth.body.hold_usd).toBe('0.027750000'); // 1500 * 2.50/1M + 1600 * 15.00/1M
  let balance = await h.call('GET', '/v1/customers/cus_meter/balance');
  expect(balance.body).toMatchObject({ available_usd: '0.972250000', held_usd: '0.027750000' });

  const capture = await h.call('POST', `/v1/authorizations/${auth.body.id}/capture`, {
    usage: { input_tokens: 1500, output_tokens: 800 },
  });
  expect(capture.status).toBe(200);
  expect(capture.body).toMatchObject({
    status: 'captured',
    cost_usd: '0.015750000',
    released_usd: '0.012000000',
  });
  balance = await h.call('GET', '/v1/customers/cus_meter/balance');
  expect(balance.body).toMatchObject({ available_usd: '0.984250000', held_usd: '0.000000000' });
});

test('ingestion accepts, deduplicates and rejects per event, and usage aggregates to the ledger', async () => {
  const events = [
    { event_id: 'e1', customer_id: 'cus_meter', model: 'gpt-5.4-nano', cached_input_tokens: 100 },
    { event_id: 'e1', customer_id: 'cus_meter', model: 'gpt-5.4-nano', cached_input_tokens: 100 },
    { event_id: 'e2', customer_id: 'cus_meter', model: 'nope', input_tokens: 1 },
    { event_id: 'e3', customer_id: 'cus_meter', model: 'gpt-4o', input_tokens: -1 },
    { event_id: 'e4', customer_id: 'cus_ghost', model: 'gpt-4o', input_tokens: 1 },
  ];
  const first = await h.call('POST', '/v1/usage-events', { events });
  expect(first.status).toBe(200);
  expect(first.body.data.map((r: { status: string }) => r.status)).toEqual([
    'accepted',
    'duplicate',
    'rejected',
    'rejected',
    'rejected',
  ]);
  expect(first.body.data[0].cost_usd).toBe('0.000002000');
  const again = await h.call('POST', '/v1/usage-events', { events: [events[0]] });
  expect(again.body.data[0].status).toBe('duplicate');

  const usage = await h.call('GET', '/v1/customers/cus_meter/usage?group_by=model,dimension');
  expect(usage.status).toBe(200);
  expect(usage.body.total_cost_usd).toBe('0.015752000');
});

test('void releases the hold', async () => {
  const auth = await h.call('POST', '/v1/authorizations', {
    customer_id: 'cus_meter',
    model: 'gpt-4o-mini',
    estimated_usage: { output_tokens: 1000 },
  });
  const voided = await h.call('POST', `/v1/authorizations/${auth.body.id}/void`);
  expect(voided.body).toMatchObject({ status: 'voided', released_usd: '0.000600000' });
});
