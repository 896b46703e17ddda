/**
 * The wallet floor over HTTP (WALLET_FLOOR_USD, here 0.05): usage events that would take a wallet further below
 * zero are rejected one by one with `wallet_floor_reached` in the per-event results, and a capture whose cost
 * beyond its hold would pass the floor is a 402 with the same code that records and moves nothing.
 */
import { usd } from '../billing/money';
import { useHarness } from './support/harness';

const h = useHarness({ wallet_floor_usd: '0.05' });

/** gpt-5.4: 1,000 input (0.0025) + 1,000 output (0.015) tokens = 0.0175. */
const USAGE = { input_tokens: 1000, output_tokens: 1000 };

test('usage events past the floor are rejected individually with wallet_floor_reached; the rest are charged', async () => {
  await h.customer('cus_wf_events');
  await h.fund('cus_wf_events', '0.01'); // room above the floor: 0.01 + 0.05 = 0.06
  const events = ['e1', 'e2', 'e3', 'e4', 'e5'].map((event_id) => ({
    event_id,
    customer_id: 'cus_wf_events',
    model: 'gpt-5.4',
    ...USAGE,
  }));
  // Running totals 0.0175, 0.035, 0.0525 fit; 0.07 does not, nor does anything after it.
  const response = await h.call('POST', '/v1/usage-events', { events });
  expect(response.status).toBe(200);
  expect(response.body).toMatchObject({ accepted: 3, duplicate: 0, rejected: 2 });
  expect(response.body.data[2]).toEqual({ event_id: 'e3', status: 'accepted', cost_usd: '0.017500000' });
  expect(response.body.data[3]).toEqual({
    event_id: 'e4',
    status: 'rejected',
    error: {
      code: 'wallet_floor_reached',
      message: expect.stringContaining('-0.050000000') as unknown,
      param: 'events[3]',
    },
  });
  expect(response.body.data[4].error.code).toBe('wallet_floor_reached');
  const balance = await h.call('GET', '/v1/customers/cus_wf_events/balance');
  expect(balance.body.available_usd).toBe('-0.042500000');

  // Sent again: the charged ones are duplicates, the refused ones are still refused.
  const again = await h.call('POST', '/v1/usage-events', { events });
  expect(again.body).toMatchObject({ accepted: 0, duplicate: 3, rejected: 2 });
});

test('a capture past the floor is 402 wallet_floor_reached and moves nothing; the same hold captured within it succeeds', async () => {
  await h.customer('cus_wf_capture');
  await h.fund('cus_wf_capture', '0.02');
  const held = await h.call('POST', '/v1/authorizations', {
    customer_id: 'cus_wf_capture',
    model: 'gpt-5.4',
    estimated_usage: USAGE,
  });
  expect(held.status).toBe(201); // available 0.0025, held 0.0175
  const before = await h.moneySnapshot();
  // 100,000 input tokens cost 0.25: 0.0025 + 0.0175 - 0.25 = -0.23, past -0.05.
  const refused = await h.call('POST', `/v1/authorizations/${held.body.id}/capture`, {
    usage: { input_tokens: 100_000 },
  });
  expect(refused.status).toBe(402);
  expect(refused.body.error).toMatchObject({
    type: 'insufficient_balance',
    code: 'wallet_floor_reached',
    floor_usd: '-0.050000000',
    required_usd: '0.250000000',
  });
  expect(await h.moneySnapshot()).toBe(before);
  expect(await h.usageEventCount()).toBe(3);
  expect((await h.call('GET', `/v1/authorizations/${held.body.id}`)).body.status).toBe('held');

  // 0.06 of usage: 0.0025 + 0.0175 - 0.06 = -0.04, within the floor.
  const captured = await h.call('POST', `/v1/authorizations/${held.body.id}/capture`, {
    usage: { input_tokens: 24_000 },
  });
  expect(captured.status).toBe(200);
  expect(captured.body).toMatchObject({ status: 'captured', cost_usd: '0.060000000' });
  const balance = await h.call('GET', '/v1/customers/cus_wf_capture/balance');
  expect(balance.body.available_usd).toBe('-0.040000000');
  expect(usd(balance.body.held_usd)).toBe(0n);
});
