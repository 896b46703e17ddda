import { Harness } from './support/harness';
let h: Harness;
beforeAll(async () => { h = await Harness.start({ update_wait_timeout_ms: 4000 }); });
afterAll(async () => { await h.stop(); });
test('probe', async () => {
  await h.customer('cus_sum', 'pm_card_visa');
  const a = await h.call('POST', '/v1/customers/cus_sum/credit-grants', { amount_usd: '5000000000.00', reason: 'a' });
  console.log('A', a.status);
  const b = await h.call('POST', '/v1/customers/cus_sum/credit-grants', { amount_usd: '5000000000.00', reason: 'b' });
  console.log('B', b.status, JSON.stringify(b.body));
  const t = await h.call('POST', '/v1/customers/cus_sum/top-ups', { amount_usd: '5.00' });
  console.log('T', t.status, JSON.stringify(t.body));
});
