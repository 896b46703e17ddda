import { EVENT_TYPES } from '../billing/events';
import { useHarness } from './support/harness';

/**
 * Outbound webhooks on real PostgreSQL and Temporal: endpoints (the secret shown once, list, disable, delete) and
 * their bad input.
 */
const h = useHarness();

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

  test('every known event type can be subscribed to', async () => {
    const created = await h.call('POST', '/v1/webhook-endpoints', {
      url: 'https://example.com/all-listed',
      events: [...EVENT_TYPES],
    });
    expect(created.status).toBe(201);
    expect(created.body.events).toEqual([...EVENT_TYPES].sort());
  });
});
