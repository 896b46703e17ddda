import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { EVENT_TYPES, type EventType } from '../billing/events';
import { recordEvent } from '../db/events';
import { fanOutEvents, listenForEvents } from '../db/webhooks';
import { useHarness } from './support/harness';
import { eventually, waitFor } from './support/eventually';
import { type Child, startWorker } from './support/processes';

/**
 * Outbound webhooks on real PostgreSQL and Temporal: endpoints (the secret shown once, list, disable, delete) and
 * their bad input; deliveries to a real HTTP server in this process, signed so that the `standardwebhooks`
 * package's verifier accepts them, retried on a short schedule (0, 200, 400 ms) with every attempt listed; and
 * across a worker killed mid-delivery, every event delivered with one delivery row per (event, endpoint), the
 * receiver seeing a repeat only as a redelivery of the same webhook-id.
 */
// A 3 s attempt timeout: short enough for the timeout test, long enough that a busy machine (receiver, API and
// worker share this process) does not turn a slow answer into a timeout.
const TIMEOUT_MS = 3_000;
const h = useHarness({ webhook_retry_schedule_ms: [0, 200, 400], webhook_timeout_ms: TIMEOUT_MS });

/** Deletes every endpoint, so that one test's endpoints do not receive the next test's events. */
async function deleteAllEndpoints(): Promise<void> {
  for (;;) {
    const page = await h.call('GET', '/v1/webhook-endpoints?limit=100');
    for (const endpoint of page.body.data as { id: string }[]) {
      await h.call('DELETE', `/v1/webhook-endpoints/${endpoint.id}`);
    }
    if (!page.body.has_more) return;
  }
}

afterEach(deleteAllEndpoints);

describe('webhook endpoints', () => {
  test('creating one answers its whsec_ secret once; reads, lists and deletes never show it again', async () => {
    const created = await h.call('POST', '/v1/webhook-endpoints', {
      url: 'https://example.com/hooks',
      events: ['credit.granted', 'top_up.succeeded', 'credit.granted'],
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      object: 'webhook_endpoint',
      url: 'https://example.com/hooks',
      events: ['credit.granted', 'top_up.succeeded'],
      status: 'enabled',
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]+=*$/),
    });
    const id = created.body.id as string;
    expect(id).toMatch(/^we_/);

    const read = await h.call('GET', `/v1/webhook-endpoints/${id}`);
    expect(read.status).toBe(200);
    expect(read.body).not.toHaveProperty('secret');
    expect(read.body).toEqual({ ...created.body, secret: undefined });

    const list = await h.call('GET', '/v1/webhook-endpoints?limit=100');
    expect(list.status).toBe(200);
    expect(list.body.has_more).toBe(false);
    const listed = (list.body.data as { id: string }[]).find((e) => e.id === id);
    expect(listed).toBeDefined();
    expect(listed).not.toHaveProperty('secret');
    expect(JSON.stringify(list.body)).not.toContain(created.body.secret);

    const deleted = await h.call('DELETE', `/v1/webhook-endpoints/${id}`);
    expect(deleted).toMatchObject({ status: 200, body: { id, object: 'webhook_endpoint', deleted: true } });
    expect((await h.call('GET', `/v1/webhook-endpoints/${id}`)).status).toBe(404);
    expect((await h.call('GET', `/v1/webhook-endpoints/${id}/deliveries`)).status).toBe(404);
    expect((await h.call('DELETE', `/v1/webhook-endpoints/${id}`)).status).toBe(404);
    const after = await h.call('GET', '/v1/webhook-endpoints?limit=100');
    expect((after.body.data as { id: string }[]).map((e) => e.id)).not.toContain(id);
  });

  test('"*" subscribes to every type; the same Idempotency-Key answers the same endpoint and secret', async () => {
    const headers = { 'Idempotency-Key': 'wh-create-1' };
    const body = { url: 'http://127.0.0.1:9/x', events: ['*'] };
    const first = await h.call('POST', '/v1/webhook-endpoints', body, headers);
    const again = await h.call('POST', '/v1/webhook-endpoints', body, headers);
    expect(first.status).toBe(201);
    expect(first.body.events).toEqual(['*']);
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotency-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
  });

  test('a key reused after its endpoint was deleted (and the key expired) is a 409, not a second endpoint', async () => {
    const headers = { 'Idempotency-Key': 'wh-deleted-1' };
    const body = { url: 'https://example.com/deleted', events: ['tier.promoted'] };
    const first = await h.call('POST', '/v1/webhook-endpoints', body, headers);
    expect(first.status).toBe(201);
    expect((await h.call('DELETE', `/v1/webhook-endpoints/${first.body.id}`)).status).toBe(200);
    await h.db('idempotency_keys').where({ key: 'wh-deleted-1' }).delete(); // as after its 24 h
    const again = await h.call('POST', '/v1/webhook-endpoints', body, headers);
    expect(again).toMatchObject({ status: 409, body: { error: { code: 'webhook_endpoint_deleted' } } });
  });

  test('disable and enable are idempotent and show in reads', async () => {
    const { body: endpoint } = await h.call('POST', '/v1/webhook-endpoints', {
      url: 'https://example.com/toggle',
      events: ['credit.expired'],
    });
    for (const [action, status] of [
      ['disable', 'disabled'],
      ['disable', 'disabled'],
      ['enable', 'enabled'],
      ['enable', 'enabled'],
    ]) {
      const answer = await h.call('POST', `/v1/webhook-endpoints/${endpoint.id}/${action}`);
      expect(answer).toMatchObject({ status: 200, body: { id: endpoint.id, status } });
      expect((await h.call('GET', `/v1/webhook-endpoints/${endpoint.id}`)).body.status).toBe(status);
    }
    expect((await h.call('POST', '/v1/webhook-endpoints/we_missing/disable')).status).toBe(404);
    const extra = await h.call('POST', `/v1/webhook-endpoints/${endpoint.id}/disable`, { now: true });
    expect(extra).toMatchObject({ status: 400, body: { error: { param: 'now' } } });
  });

  test('the list pages newest first with limit and starting_after', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const created = await h.call('POST', '/v1/webhook-endpoints', {
        url: `https://example.com/page/${i}`,
        events: ['tier.promoted'],
      });
      ids.push(created.body.id as string);
    }
    const first = await h.call('GET', '/v1/webhook-endpoints?limit=2');
    expect(first.body.data.map((e: { id: string }) => e.id)).toEqual([ids[2], ids[1]]);
    expect(first.body.has_more).toBe(true);
    const second = await h.call('GET', `/v1/webhook-endpoints?limit=1&starting_after=${ids[1]}`);
    expect(second.body.data.map((e: { id: string }) => e.id)).toEqual([ids[0]]);
    const unknown = await h.call('GET', '/v1/webhook-endpoints?starting_after=we_nope');
    expect(unknown).toMatchObject({ status: 400, body: { error: { param: 'starting_after' } } });
  });

  test.each([
    [{ url: 'ftp://example.com/x', events: ['credit.granted'] }, 'url'],
    [{ url: 'javascript:alert(1)', events: ['credit.granted'] }, 'url'],
    [{ url: 'example.com/x', events: ['credit.granted'] }, 'url'],
    [{ url: 'https://exa mple.com/', events: ['credit.granted'] }, 'url'],
    [{ url: 'https://example.com/\u0000', events: ['credit.granted'] }, 'url'],
    [{ url: 42, events: ['credit.granted'] }, 'url'],
    [{ events: ['credit.granted'] }, 'url'],
    [{ url: 'https://example.com/x', events: [] }, 'events'],
    [{ url: 'https://example.com/x' }, 'events'],
    [{ url: 'https://example.com/x', events: 'credit.granted' }, 'events'],
    [{ url: 'https://example.com/x', events: ['credit.granted', 'credit.stolen'] }, 'events.1'],
    [{ url: 'https://example.com/x', events: ['*', 'credit.granted'] }, 'events'],
    [{ url: 'https://example.com/x', events: ['credit.granted'], secret: 'whsec_mine' }, 'secret'],
    [{ url: 'https://example.com/x', events: ['credit.granted'], enabled: true }, 'enabled'],
  ])('%j is refused with a 400 naming %s, and creates nothing', async (body, param) => {
    const before = await h.db('webhook_endpoints').count<{ count: string }[]>('* as count');
    const answer = await h.call('POST', '/v1/webhook-endpoints', body);
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({ type: 'invalid_request', param });
    const after = await h.db('webhook_endpoints').count<{ count: string }[]>('* as count');
    expect(after).toEqual(before);
  });

  test('/metrics counts pending deliveries and events not yet fanned out, from the database', async () => {
    const backlog = async () => {
      const text = await fetch(`${h.baseUrl}/metrics`).then((r) => r.text());
      const value = (kind: string) =>
        Number(new RegExp(`^billing_webhook_backlog\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text)?.[1]);
      return { deliveries_pending: value('deliveries_pending'), events_unfanned: value('events_unfanned') };
    };
    // No delivery exists yet in this file: a pending one is inserted as if its workflow ran (so none sends it).
    const { id: event_id } = await recordEvent(h.db, {
      customer_id: null,
      type: 'tier.promoted',
      data: {},
      occurrence_key: 'test:webhooks:metrics',
    });
    await waitFannedOut(event_id);
    const { body: endpoint } = await h.call('POST', '/v1/webhook-endpoints', {
      url: 'https://example.com/metrics',
      events: ['tier.promoted'],
    });
    expect(await backlog()).toEqual({ deliveries_pending: 0, events_unfanned: 0 });
    await h.db('webhook_deliveries').insert({
      id: 'whd_metrics',
      event_id,
      endpoint_id: endpoint.id,
      workflow_started_at: new Date(),
    });
    expect((await backlog()).deliveries_pending).toBe(1);
    await h.db('webhook_deliveries').where({ id: 'whd_metrics' }).update({ status: 'canceled' });
    expect((await backlog()).deliveries_pending).toBe(0);
  });

  test('every known event type can be subscribed to', async () => {
    const created = await h.call('POST', '/v1/webhook-endpoints', {
      url: 'https://example.com/all-listed',
      events: [...EVENT_TYPES],
    });
    expect(created.status).toBe(201);
    expect(created.body.events).toEqual([...EVENT_TYPES].sort());
  });
});

// ---- Deliveries ----

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  at_ms: number;
}

interface Receiver {
  url: string;
  received: Received[];
  close(): Promise<void>;
}

/**
 * A real HTTP endpoint on 127.0.0.1. `answer` decides each response from the request and how many came before
 * (it may also hold the response open by never calling `res.end`).
 */
async function receiver(
  answer: (request: Received, index: number, res: ServerResponse) => void | Promise<void>,
): Promise<Receiver> {
  const received: Received[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request = {
        path: req.url ?? '',
        headers: Object.fromEntries(
          Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : (v ?? '')]),
        ),
        body: Buffer.concat(chunks).toString('utf8'),
        at_ms: Date.now(),
      };
      received.push(request);
      void Promise.resolve(answer(request, received.length - 1, res)).catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const reply = (res: ServerResponse, status: number, body = '') => {
  res.statusCode = status;
  res.end(body);
};

async function createEndpoint(url: string, events: string[]): Promise<{ id: string; secret: string }> {
  const created = await h.call('POST', '/v1/webhook-endpoints', { url, events });
  expect(created.status).toBe(201);
  return { id: created.body.id as string, secret: created.body.secret as string };
}

let occurrence = 0;
/** Records an event in the outbox, as the emitters do, and returns its id. */
async function record(customer_id: string, type: EventType, data: Record<string, unknown>): Promise<string> {
  const { id } = await recordEvent(h.db, {
    customer_id,
    type,
    data,
    occurrence_key: `test:webhooks:${customer_id}:${++occurrence}`,
  });
  return id;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- API bodies
async function deliveriesOf(endpoint_id: string): Promise<any[]> {
  const page = await h.call('GET', `/v1/webhook-endpoints/${endpoint_id}/deliveries?limit=100`);
  expect(page.status).toBe(200);
  return page.body.data;
}

/** Waits until the event was fanned out (its deliveries, if any, exist). */
async function waitFannedOut(event_id: string): Promise<void> {
  await waitFor(`event ${event_id} fanned out`, async () => {
    const [row] = await h.db('events').where({ id: event_id }).select('fanned_out_at');
    return row?.fanned_out_at != null;
  });
}

describe('webhook deliveries', () => {
  const receivers: Receiver[] = [];
  afterAll(() => Promise.all(receivers.map((r) => r.close())));
  const open = async (answer: Parameters<typeof receiver>[0]) => {
    const r = await receiver(answer);
    receivers.push(r);
    return r;
  };

  beforeAll(async () => {
    for (const id of [
      'cus_wh_sig',
      'cus_wh_retry',
      'cus_wh_fail',
      'cus_wh_stop',
      'cus_wh_race',
      'cus_wh_kill',
    ]) {
      await h.customer(id);
    }
  });

  test('a delivery is signed per Standard Webhooks: standardwebhooks verifies it with the secret from creation', async () => {
    const endpoint_receiver = await open((_request, _index, res) => reply(res, 200, 'ok'));
    const endpoint = await createEndpoint(endpoint_receiver.url, ['credit.granted']);
    const event_id = await record('cus_wh_sig', 'credit.granted', {
      grant_id: 'gr_1',
      amount_usd: '5.000000000',
    });
    const other_type = await record('cus_wh_sig', 'tier.promoted', { tier: 'tier_1' });

    await waitFor('the delivery', () => endpoint_receiver.received.length >= 1);
    const [request] = endpoint_receiver.received;
    expect(request!.headers['webhook-id']).toBe(event_id);
    expect(request!.headers['content-type']).toMatch(/^application\/json/);
    expect(request!.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    const payload = new Webhook(endpoint.secret).verify(request!.body, request!.headers);
    const [event] = await h.db('events').where({ id: event_id });
    expect(payload).toEqual({
      type: 'credit.granted',
      timestamp: (event.created_at as Date).toISOString(),
      data: { customer_id: 'cus_wh_sig', grant_id: 'gr_1', amount_usd: '5.000000000' },
    });
    // The signature covers the body and the key: a changed body, or another endpoint's secret, fails.
    expect(() =>
      new Webhook(endpoint.secret).verify(
        request!.body.replace('5.000000000', '50.000000000'),
        request!.headers,
      ),
    ).toThrow();
    const other = await createEndpoint('https://example.com/other', ['budget.alert']);
    expect(() => new Webhook(other.secret).verify(request!.body, request!.headers)).toThrow();

    const deliveries = await eventually(
      () => deliveriesOf(endpoint.id),
      (d) => d[0]?.status === 'delivered',
    );
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]).toMatchObject({
      object: 'webhook_delivery',
      endpoint_id: endpoint.id,
      event_id,
      event_type: 'credit.granted',
      status: 'delivered',
      attempt_count: 1,
      next_attempt_at: null,
      completed_at: expect.any(String),
      attempts: [{ attempt: 1, status_code: 200, error: null, response_body: 'ok' }],
    });
    // An event type the endpoint did not subscribe to is not delivered to it.
    await waitFannedOut(other_type);
    expect(
      await h.db('webhook_deliveries').where({ event_id: other_type, endpoint_id: endpoint.id }),
    ).toEqual([]);
    expect(endpoint_receiver.received).toHaveLength(1);
  });

  test('an endpoint answering 500 twice is retried on the schedule and then delivered, every attempt listed', async () => {
    const big = 'x'.repeat(10_000);
    const flaky = await open((_request, index, res) => (index < 2 ? reply(res, 500, big) : reply(res, 204)));
    const endpoint = await createEndpoint(flaky.url, ['top_up.failed']);
    const event_id = await record('cus_wh_retry', 'top_up.failed', {
      top_up_id: 'tu_1',
      reason: 'card_declined',
    });

    const [delivery] = await eventually(
      () => deliveriesOf(endpoint.id),
      (d) => d[0]?.status === 'delivered',
    );
    expect(delivery).toMatchObject({ event_id, status: 'delivered', attempt_count: 3 });
    const attempts = delivery.attempts as {
      status_code: number;
      attempted_at: string;
      duration_ms: number;
      response_body: string;
    }[];
    expect(attempts.map((a) => a.status_code)).toEqual([500, 500, 204]);
    for (const attempt of attempts) expect(attempt.duration_ms).toEqual(expect.any(Number));
    // At most 4 KB of an answer is kept.
    expect(attempts[0]!.response_body).toBe(big.slice(0, 4096));
    expect(attempts[2]!.response_body).toBe('');
    // The schedule's delays separate the attempts (200 ms, then 400 ms), measured at the receiver.
    const at = flaky.received.map((r) => r.at_ms);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(190);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(390);
    // Every attempt carries the same webhook-id and body, each signed at its own time, each verifiable.
    expect(new Set(flaky.received.map((r) => r.headers['webhook-id']))).toEqual(new Set([event_id]));
    expect(new Set(flaky.received.map((r) => r.body)).size).toBe(1);
    for (const r of flaky.received)
      expect(() => new Webhook(endpoint.secret).verify(r.body, r.headers)).not.toThrow();
  });

  test('an endpoint that never answers 2xx fails after the last attempt: refused connections, redirects, timeouts', async () => {
    const closed = await open(() => undefined);
    await closed.close(); // nothing listens on its port any more
    const redirecting = await open((_request, _index, res) => {
      res.setHeader('Location', 'https://example.com/elsewhere');
      reply(res, 302);
    });
    const silent = await open(() => undefined); // never answers: each attempt times out (TIMEOUT_MS)
    const endpoints = await Promise.all(
      [closed, redirecting, silent].map((r) => createEndpoint(r.url, ['credit.depleted'])),
    );
    const event_id = await record('cus_wh_fail', 'credit.depleted', { balance_usd: '0.000000000' });

    const settled = await Promise.all(
      endpoints.map((e) =>
        eventually(
          () => deliveriesOf(e.id),
          (d) => d[0]?.status === 'failed',
          30_000,
        ),
      ),
    );
    const [refused, redirected, timedOut] = settled.map((d) => d[0]);
    for (const delivery of [refused, redirected, timedOut]) {
      expect(delivery).toMatchObject({ event_id, status: 'failed', attempt_count: 3, next_attempt_at: null });
      expect(delivery.completed_at).toEqual(expect.any(String));
    }
    // The list filters by status.
    const failedOnly = await h.call(
      'GET',
      `/v1/webhook-endpoints/${endpoints[0]!.id}/deliveries?status=failed`,
    );
    expect(failedOnly.body.data.map((d: { id: string }) => d.id)).toEqual([refused.id]);
    const deliveredOnly = await h.call(
      'GET',
      `/v1/webhook-endpoints/${endpoints[0]!.id}/deliveries?status=delivered`,
    );
    expect(deliveredOnly.body).toEqual({ data: [], has_more: false });
    const badStatus = await h.call('GET', `/v1/webhook-endpoints/${endpoints[0]!.id}/deliveries?status=lost`);
    expect(badStatus).toMatchObject({ status: 400, body: { error: { param: 'status' } } });
    for (const attempt of refused.attempts) {
      expect(attempt).toMatchObject({ status_code: null, error: expect.stringMatching(/ECONNREFUSED/) });
    }
    // A redirect is an answer that is not 2xx: recorded, never followed.
    expect(redirected.attempts.map((a: { status_code: number }) => a.status_code)).toEqual([302, 302, 302]);
    expect(redirecting.received).toHaveLength(3);
    for (const attempt of timedOut.attempts) {
      expect(attempt).toMatchObject({ status_code: null, error: expect.stringMatching(/^timeout/) });
      expect(attempt.duration_ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 10);
    }
  });

  test.each(['disable', 'delete'])(
    'an endpoint that is %sd stops receiving: its pending delivery is canceled at the next attempt',
    async (action) => {
      let endpoint_id = '';
      const stopping = await open(async (_request, index, res) => {
        // The endpoint's owner turns it off while the first attempt is in flight, then that attempt fails.
        if (index === 0) {
          const answer =
            action === 'disable'
              ? await h.call('POST', `/v1/webhook-endpoints/${endpoint_id}/disable`)
              : await h.call('DELETE', `/v1/webhook-endpoints/${endpoint_id}`);
          expect(answer.status).toBe(200);
        }
        reply(res, 503);
      });
      endpoint_id = (await createEndpoint(stopping.url, ['budget.alert'])).id;
      const event_id = await record('cus_wh_stop', 'budget.alert', { month: '2026-11' });

      const canceled = await eventually(
        () => h.db('webhook_deliveries').where({ event_id, endpoint_id }),
        (rows) => rows[0]?.status === 'canceled',
      );
      expect(canceled).toMatchObject([{ status: 'canceled', attempt_count: 1, next_attempt_at: null }]);
      expect(stopping.received).toHaveLength(1);

      // Events recorded while it is off are not fanned out to it.
      const while_off = await record('cus_wh_stop', 'budget.alert', { month: '2026-12' });
      await waitFannedOut(while_off);
      expect(await h.db('webhook_deliveries').where({ event_id: while_off, endpoint_id })).toEqual([]);

      if (action === 'disable') {
        const deliveries = await deliveriesOf(endpoint_id);
        expect(deliveries.map((d: { status: string }) => d.status)).toEqual(['canceled']);
        // Enabled again, it receives the events recorded from then on.
        expect((await h.call('POST', `/v1/webhook-endpoints/${endpoint_id}/enable`)).status).toBe(200);
        const after = await record('cus_wh_stop', 'budget.alert', { month: '2027-01' });
        await waitFor('the delivery after enabling', () =>
          stopping.received.some((r) => r.headers['webhook-id'] === after),
        );
      } else {
        expect((await h.call('GET', `/v1/webhook-endpoints/${endpoint_id}/deliveries`)).status).toBe(404);
      }
    },
  );

  test('a committed event notifies listeners at once (the dispatcher does not wait for its sweep)', async () => {
    let notified = 0;
    const listener = await listenForEvents(h.db, { onEvent: () => (notified += 1), onLost: () => undefined });
    try {
      await h.db.transaction(async (trx) => {
        await recordEvent(trx, {
          customer_id: null,
          type: 'tier.promoted',
          data: {},
          occurrence_key: 'test:webhooks:notify',
        });
        // Not before the commit: the notification is part of the transaction.
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(notified).toBe(0);
      });
      await waitFor('the notification', () => notified >= 1, 5_000);
    } finally {
      await listener.close();
    }
  });

  test('fan-outs racing each other make exactly one delivery per (event, endpoint)', async () => {
    const sink = await open((_request, _index, res) => reply(res, 200));
    const endpoints = [
      await createEndpoint(sink.url, ['credit.expired']),
      await createEndpoint(`${sink.url}/2`, ['*']),
    ];
    const events = await h.db.transaction(async (trx) => {
      const ids: string[] = [];
      for (let n = 0; n < 20; n++) {
        const { id } = await recordEvent(trx, {
          customer_id: 'cus_wh_race',
          type: 'credit.expired',
          data: { n },
          occurrence_key: `test:webhooks:race:${n}`,
        });
        ids.push(id);
      }
      return ids;
    });
    // Four fan-outs at once, in small batches, besides the harness's own dispatcher.
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while ((await fanOutEvents(h.db, 5)) > 0);
      }),
    );
    // A batch the harness's dispatcher holds is skipped by the others: wait for its commit too.
    await waitFor(
      'every event fanned out',
      async () => (await h.db('events').whereIn('id', events).whereNull('fanned_out_at')).length === 0,
    );
    const rows = await h
      .db('webhook_deliveries')
      .whereIn('event_id', events)
      .select('event_id', 'endpoint_id');
    expect(rows).toHaveLength(events.length * endpoints.length);
    const pairs = new Set(rows.map((r) => `${r.event_id} ${r.endpoint_id}`));
    expect(pairs.size).toBe(rows.length);
    await waitFor(
      'every delivery delivered',
      async () =>
        (await h.db('webhook_deliveries').whereIn('event_id', events).where({ status: 'delivered' }))
          .length === rows.length,
    );
    // Every delivery reached its endpoint (the path tells the two apart), a repeat only as the same webhook-id.
    const byPath = new Map(endpoints.map((e, i) => [i === 0 ? '/hooks' : '/hooks/2', e.id]));
    const reached = new Set(sink.received.map((r) => `${r.headers['webhook-id']} ${byPath.get(r.path)}`));
    expect(reached).toEqual(pairs);
  });

  test('end to end: usage that crosses the balance threshold and then zero reaches the endpoint as signed events', async () => {
    const customer = 'cus_wh_e2e';
    await h.customer(customer);
    await h.fund(customer, '1.00');
    const threshold = await h.call('PUT', `/v1/customers/${customer}/balance-threshold`, {
      threshold_usd: '0.50',
    });
    expect(threshold.status).toBe(200);
    const sink = await open((_request, _index, res) => reply(res, 200));
    const endpoint = await createEndpoint(sink.url, ['credit.balance_low', 'credit.depleted']);

    // $0.60 of web searches takes the balance from 1.00 to 0.40 (below 0.50), then $0.50 more to -0.10.
    for (const [event_id, calls] of [
      ['wh-e2e-1', 60],
      ['wh-e2e-2', 50],
    ] as const) {
      const usage = await h.call('POST', '/v1/usage-events', {
        events: [
          { event_id, customer_id: customer, model: 'gpt-5.4-nano', tool_calls: { web_search: calls } },
        ],
      });
      expect(usage.body).toMatchObject({ accepted: 1 });
    }

    await waitFor('both events at the endpoint', () => sink.received.length >= 2);
    const payloads = sink.received.map(
      (r) =>
        new Webhook(endpoint.secret).verify(r.body, r.headers) as {
          type: string;
          data: Record<string, unknown>;
        },
    );
    expect(payloads.map((p) => p.type).sort()).toEqual(['credit.balance_low', 'credit.depleted']);
    for (const payload of payloads) expect(payload.data.customer_id).toBe(customer);
    const deliveries = await eventually(
      () => deliveriesOf(endpoint.id),
      (d) => d.length === 2 && d.every((x: { status: string }) => x.status === 'delivered'),
    );
    expect(deliveries.map((d: { event_type: string }) => d.event_type).sort()).toEqual([
      'credit.balance_low',
      'credit.depleted',
    ]);
  });

  describe('a worker killed mid-delivery', () => {
    const children: Child[] = [];
    afterAll(async () => {
      for (const child of children) if (child.process.exitCode === null) child.process.kill('SIGKILL');
      await Promise.all(children.map((c) => c.exited));
    });

    test('every event reaches the endpoint once per delivery row, repeats only as redeliveries of one webhook-id', async () => {
      // Real `npm run worker` processes from here on, with this file's short schedule.
      await h.stopWorker();
      const env = {
        WEBHOOK_RETRY_SCHEDULE: 'PT0S,PT0.2S,PT0.4S',
        WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
        WEBHOOK_SWEEP_INTERVAL_MS: '500',
      };
      let held: Received | undefined;
      const sink = await open((request, _index, res) => {
        // The first request is never answered: the worker sending it is killed while it waits.
        if (!held) {
          held = request;
          return;
        }
        reply(res, 200);
      });
      const endpoint = await createEndpoint(sink.url, ['auto_recharge.succeeded']);

      const first = await startWorker(h, env);
      children.push(first);
      const events: string[] = [];
      for (let n = 0; n < 10; n++) {
        events.push(
          await record('cus_wh_kill', 'auto_recharge.succeeded', { n, amount_usd: '10.000000000' }),
        );
      }
      await waitFor('the first delivery to reach the endpoint', () => held !== undefined);
      first.process.kill('SIGKILL');
      await first.exited;
      // More events while no worker runs: the next ones fan them out.
      for (let n = 10; n < 20; n++) {
        events.push(
          await record('cus_wh_kill', 'auto_recharge.succeeded', { n, amount_usd: '10.000000000' }),
        );
      }
      // Two workers from here on, whose dispatchers fan out and start deliveries at the same time.
      children.push(...(await Promise.all([startWorker(h, env), startWorker(h, env)])));

      await waitFor(
        'every delivery delivered',
        async () => {
          const rows = await h
            .db('webhook_deliveries')
            .where({ endpoint_id: endpoint.id, status: 'delivered' });
          return rows.length === events.length;
        },
        90_000,
      );
      // Exactly one delivery row per (event, endpoint).
      const rows = await h.db('webhook_deliveries').where({ endpoint_id: endpoint.id });
      expect(rows.map((r) => r.event_id as string).sort()).toEqual([...events].sort());
      // Every event reached the endpoint; every request verifies and carries its own event's body, so a repeat
      // is a redelivery of the same webhook-id with the same body, never a second event.
      const ids = sink.received.map((r) => r.headers['webhook-id']!);
      expect(new Set(ids)).toEqual(new Set(events));
      const bodyOf = new Map<string, string>();
      for (const r of sink.received) {
        const payload = new Webhook(endpoint.secret).verify(r.body, r.headers) as { data: { n: number } };
        expect(events[payload.data.n]).toBe(r.headers['webhook-id']);
        const seen = bodyOf.get(r.headers['webhook-id']!);
        if (seen !== undefined) expect(r.body).toBe(seen);
        bodyOf.set(r.headers['webhook-id']!, r.body);
      }
      // The request the dead worker never heard back from was sent again, under the same webhook-id.
      expect(ids.filter((id) => id === held!.headers['webhook-id']).length).toBeGreaterThanOrEqual(2);
      expect(events.slice(0, 10)).toContain(held!.headers['webhook-id']);
    }, 240_000);
  });
});
