import { formatUsd, usd } from '../billing/money';
import { useHarness } from './support/harness';
import { waitFor } from './support/eventually';
import { type ApiChild, callApi, type Child, startApi, startWorker } from './support/processes';

/**
 * Two `npm run api` and two `npm run worker` processes on one PostgreSQL and one Temporal server, as in production:
 * 200 concurrent authorizations split over both APIs on a customer funded for exactly 8 holds yield exactly 8 holds
 * and 192 refusals, and the wallet ends at zero available, never below. Then every process stops on a double
 * signal with exit code 0.
 */
const h = useHarness({ worker: false });

const ESTIMATE = { tool_calls: { web_search: 1 } }; // 0.01 with gpt-5.4-nano
const HOLD = usd('0.01');

let apis: ApiChild[] = [];
let workers: Child[] = [];

afterAll(async () => {
  for (const child of [...apis, ...workers])
    if (child.process.exitCode === null) child.process.kill('SIGKILL');
  await Promise.all([...apis, ...workers].map((c) => c.exited));
});

test('200 authorizations over two API processes, with two workers, take exactly the 8 holds that fit', async () => {
  [apis, workers] = await Promise.all([
    Promise.all([startApi(h), startApi(h)]),
    Promise.all([startWorker(h), startWorker(h)]),
  ]);
  const [a, b] = apis as [ApiChild, ApiChild];

  // The customer through one API, its funding through the other (served by either worker).
  expect((await callApi(a.baseUrl, 'POST', '/v1/customers', { id: 'cus_so_1' })).status).toBe(201);
  const funded = await callApi(b.baseUrl, 'POST', '/v1/customers/cus_so_1/credit-grants', {
    amount_usd: formatUsd(8n * HOLD),
    reason: 'exactly eight holds',
  });
  expect(funded.status).toBe(201);

  const responses = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      callApi(i % 2 === 0 ? a.baseUrl : b.baseUrl, 'POST', '/v1/authorizations', {
        customer_id: 'cus_so_1',
        model: 'gpt-5.4-nano',
        estimated_usage: ESTIMATE,
      }),
    ),
  );
  const held = responses.filter((r) => r.status === 201);
  const refused = responses.filter((r) => r.status === 402);
  expect(held).toHaveLength(8);
  expect(refused).toHaveLength(192);
  for (const r of refused) expect(r.body.error.code).toBe('insufficient_balance');
  // Each process answered its 100, by its own /metrics.
  for (const api of apis) {
    const text = await fetch(`${api.baseUrl}/metrics`).then((r) => r.text());
    const answered = [
      ...text.matchAll(
        /^billing_http_requests_total\{method="POST",route="\/v1\/authorizations",status="\d+"\} (\d+)$/gm,
      ),
    ];
    expect(answered.reduce((sum, m) => sum + Number(m[1]), 0)).toBe(100);
  }
  const [wallet] = await h.db('wallets').where({ customer_id: 'cus_so_1' });
  expect(wallet.available_nanos).toBe(0n);
  expect(wallet.held_nanos).toBe(8n * HOLD);
  expect(await h.db('authorizations').where({ customer_id: 'cus_so_1', status: 'held' })).toHaveLength(8);

  // A top-up served through the other API by whichever worker picks it up: the workflow side works on both.
  const card = await callApi(a.baseUrl, 'PUT', '/v1/customers/cus_so_1/payment-method', {
    payment_method: 'pm_card_visa',
  });
  expect(card.status).toBe(200);
  const topUp = await callApi(b.baseUrl, 'POST', '/v1/customers/cus_so_1/top-ups', { amount_usd: '5.00' });
  expect(topUp.status).toBe(201);
  expect(topUp.body.status).toBe('succeeded');

  // Every process stops on a double signal (as npm forwards one) and exits 0.
  for (const child of [...apis, ...workers]) child.process.kill('SIGTERM');
  await waitFor('every process to handle its first signal', () =>
    [...apis, ...workers].every((c) => c.output().includes('SIGTERM received: stopping')),
  );
  for (const child of [...apis, ...workers]) child.process.kill('SIGTERM');
  const exits = await Promise.all([...apis, ...workers].map((c) => c.exited));
  expect(exits).toEqual(Array.from({ length: 4 }, () => ({ code: 0, signal: null })));
});
