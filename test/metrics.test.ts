import { eventually } from './support/eventually';
import { useHarness } from './support/harness';

/**
 * GET /metrics serves Prometheus text with this app's own registry: after some traffic, the HTTP series carry route
 * templates (never ids) and status codes, the hot-path counters count exactly what happened, workflow-facing
 * counters and the pending-crossings gauge are there, pools are reported, and default process metrics are included.
 */
const h = useHarness();

async function scrape(): Promise<{ status: number; contentType: string | null; text: string }> {
  // No Authorization header: /metrics is public, like /healthz.
  const response = await fetch(`${h.baseUrl}/metrics`);
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    text: await response.text(),
  };
}

/** The value of one series, `name{labels}` exactly as exposed (labels in declaration order), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const search = { tool_calls: { web_search: 1 } }; // 0.01 per call with gpt-5.4-nano

test('after traffic, /metrics counts requests by route template and status, and hot-path outcomes exactly', async () => {
  const before = await scrape();
  expect(before.status).toBe(200);
  expect(before.contentType).toMatch(/^text\/plain; version=0\.0\.4/);

  await h.customer('cus_mx_1');
  await h.fund('cus_mx_1', '0.02'); // room for exactly two holds of 0.01
  await h.call('PUT', '/v1/customers/cus_mx_1/balance-threshold', { threshold_usd: '0.015' });
  const held = [];
  for (let i = 0; i < 3; i++) {
    held.push(
      await h.call('POST', '/v1/authorizations', {
        customer_id: 'cus_mx_1',
        model: 'gpt-5.4-nano',
        estimated_usage: search,
      }),
    );
  }
  expect(held.map((r) => r.status)).toEqual([201, 201, 402]);
  const ghost = await h.call('POST', '/v1/authorizations', {
    customer_id: 'cus_mx_ghost',
    model: 'gpt-5.4-nano',
    estimated_usage: search,
  });
  expect(ghost.status).toBe(404);
  const captured = await h.call('POST', `/v1/authorizations/${held[0]!.body.id}/capture`, { usage: search });
  expect(captured.status).toBe(200);
  const events = await h.call('POST', '/v1/usage-events', {
    events: [
      { event_id: 'mx-1', customer_id: 'cus_mx_1', model: 'gpt-5.4-nano', input_tokens: 10 },
      { event_id: 'mx-1', customer_id: 'cus_mx_1', model: 'gpt-5.4-nano', input_tokens: 10 },
      { event_id: 'mx-2', customer_id: 'cus_mx_1', model: 'no-such-model', input_tokens: 10 },
    ],
  });
  expect(events.body).toMatchObject({ accepted: 1, duplicate: 1, rejected: 1 });
  const unauthenticated = await fetch(`${h.baseUrl}/v1/customers/cus_mx_1/balance`);
  expect(unauthenticated.status).toBe(401);
  expect((await h.call('GET', '/v1/no-such-route')).status).toBe(404);

  // The crossings (0.02 -> 0.01 below 0.015, then 0.01 -> 0.00: depleted) reach the workflow; the notifier counts
  // each once delivered.
  const text = await eventually(
    async () => (await scrape()).text,
    (scraped) => sample(scraped, 'billing_threshold_crossings_delivered_total') === 2,
  );
  expect(sample(text, 'billing_threshold_crossings_delivered_total')).toBe(2);
  expect(sample(text, 'billing_threshold_crossings_pending')).toBe(0);

  // HTTP series by route template, never the id in the path.
  expect(
    sample(text, 'billing_http_requests_total{method="POST",route="/v1/authorizations",status="201"}'),
  ).toBe(2);
  expect(
    sample(text, 'billing_http_requests_total{method="POST",route="/v1/authorizations",status="402"}'),
  ).toBe(1);
  expect(
    sample(
      text,
      'billing_http_requests_total{method="POST",route="/v1/authorizations/:id/capture",status="200"}',
    ),
  ).toBe(1);
  // Refused before the router ran, yet counted under its route's template; a path no route knows is `unmatched`.
  expect(
    sample(text, 'billing_http_requests_total{method="GET",route="/v1/customers/:id/balance",status="401"}'),
  ).toBe(1);
  expect(sample(text, 'billing_http_requests_total{method="GET",route="unmatched",status="404"}')).toBe(1);
  expect(
    sample(
      text,
      'billing_http_request_duration_seconds_count{method="POST",route="/v1/authorizations",status="201"}',
    ),
  ).toBe(2);
  expect(text).toContain(
    'billing_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/v1/usage-events",status="200"} 1',
  );
  expect(text).not.toMatch(/route="[^"]*cus_mx|route="[^"]*auth_/);

  // Hot-path outcomes.
  expect(sample(text, 'billing_authorizations_total')).toBe(2);
  expect(sample(text, 'billing_authorization_refusals_total{reason="insufficient_balance"}')).toBe(1);
  expect(sample(text, 'billing_authorization_refusals_total{reason="unknown_customer"}')).toBe(1);
  expect(sample(text, 'billing_captures_total')).toBe(1);
  expect(sample(text, 'billing_usage_events_total{status="accepted"}')).toBe(1);
  expect(sample(text, 'billing_usage_events_total{status="duplicate"}')).toBe(1);
  expect(sample(text, 'billing_usage_events_total{status="rejected"}')).toBe(1);

  // Workflow-facing: the funding grant was recorded and signalled to the workflow once, and settled in time.
  expect(sample(text, 'billing_money_requests_total{kind="credit_grant",answer="settled"}')).toBe(1);

  // Pools, by state; the hot path's pool has been used, so it has connections open.
  for (const pool of ['knex', 'hot_path']) {
    expect(sample(text, `billing_db_pool_max_connections{pool="${pool}"}`)).toBeGreaterThan(0);
    expect(sample(text, `billing_db_pool_waiting_requests{pool="${pool}"}`)).toBe(0);
    expect(sample(text, `billing_db_pool_connections{pool="${pool}",state="idle"}`)).toEqual(
      expect.any(Number),
    );
  }
  const hotPathOpen =
    sample(text, 'billing_db_pool_connections{pool="hot_path",state="idle"}')! +
    sample(text, 'billing_db_pool_connections{pool="hot_path",state="used"}')!;
  expect(hotPathOpen).toBeGreaterThan(0);

  // Default process metrics, and every series documented as a counter ends in _total.
  expect(text).toMatch(/^process_cpu_seconds_total \d/m);
  expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
  for (const [, name] of text.matchAll(/^# TYPE (billing_\S+) counter$/gm)) expect(name).toMatch(/_total$/);
});

test('a pending crossing is counted from the database while it waits', async () => {
  await h.customer('cus_mx_pending');
  // A crossing recorded by hand and leased far into the future: no notifier will deliver it during this test.
  await h.db.raw(
    `INSERT INTO threshold_crossings (customer_id, threshold_nanos, balance_after_nanos, claimed_until)
     VALUES ('cus_mx_pending', 1, 0, now() + interval '1 hour')`,
  );
  expect(sample((await scrape()).text, 'billing_threshold_crossings_pending')).toBe(1);
  await h
    .db('threshold_crossings')
    .where({ customer_id: 'cus_mx_pending' })
    .update({ signaled_at: new Date() });
  expect(sample((await scrape()).text, 'billing_threshold_crossings_pending')).toBe(0);
});
