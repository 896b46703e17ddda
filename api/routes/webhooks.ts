import { randomBytes } from 'node:crypto';
import { normalizeSubscription } from '../../billing/webhooks';
import type { Db } from '../../db/connection';
import {
  createWebhookEndpoint,
  getWebhookEndpoint,
  listDeliveries,
  listWebhookEndpoints,
  setWebhookEndpointStatus,
} from '../../db/webhooks';
import { ApiError, invalid, notFound } from '../errors';
import type { RouteTable } from '../http';
import { derivedId } from '../idempotency';
import {
  ErrorResponse,
  listOf,
  ListQuery,
  NoBody,
  WebhookDeliveriesQuery,
  WebhookDelivery,
  WebhookEndpoint,
  WebhookEndpointCreate,
  WebhookEndpointCreated,
  WebhookEndpointDeleted,
} from '../schemas';
import { webhookDeliveryView, webhookEndpointView } from '../views';

/** A Standard Webhooks signing secret: `whsec_` and 24 random bytes in base64 (the prefix is the convention). */
function newSigningSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

/**
 * Outbound webhook endpoints: create (the signing secret is in that response only), list, read, disable and enable,
 * delete, and every delivery with every attempt. Delivery itself runs in the worker (worker/webhook-dispatcher.ts).
 */
export function webhookRoutes(routes: RouteTable, deps: { db: Db }): void {
  const TAG = 'Webhooks';

  async function requireEndpoint(id: string) {
    const endpoint = await getWebhookEndpoint(deps.db, id);
    if (!endpoint) throw notFound('webhook endpoint', id);
    return endpoint;
  }

  routes.add({
    method: 'post',
    path: '/v1/webhook-endpoints',
    tag: TAG,
    summary:
      'Create an endpoint that receives the listed event types, signed per Standard Webhooks; the answer holds its ' +
      'secret, shown this once.',
    body: WebhookEndpointCreate,
    responses: {
      201: { description: 'Created, with its signing secret', schema: WebhookEndpointCreated },
      200: {
        description: 'A retry whose endpoint exists already (its secret is not shown again)',
        schema: WebhookEndpoint,
      },
      409: { description: 'A retry whose endpoint has been deleted since', schema: ErrorResponse },
    },
    handler: async ({ body, principal, idempotencyKey }) => {
      const secret = newSigningSecret();
      const { endpoint, created } = await createWebhookEndpoint(deps.db, {
        id: derivedId('we', principal, idempotencyKey, 'webhook_endpoint'),
        // Stored as parsed, so the address called is the one shown.
        url: new URL(body.url).href,
        events: normalizeSubscription(body.events),
        secret,
      });
      if (!endpoint) {
        throw new ApiError(
          'conflict',
          'the endpoint this Idempotency-Key created has been deleted; send a new key to create another',
          { code: 'webhook_endpoint_deleted' },
        );
      }
      const view = webhookEndpointView(endpoint);
      return created ? { status: 201, body: { ...view, secret } } : { status: 200, body: view };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/webhook-endpoints',
    tag: TAG,
    summary: 'List endpoints, newest first (never their secrets).',
    query: ListQuery,
    responses: { 200: { description: 'A page of endpoints', schema: listOf(WebhookEndpoint) } },
    handler: async ({ query }) => {
      const page = await listWebhookEndpoints(deps.db, {
        limit: query.limit ?? 20,
        starting_after: query.starting_after,
      });
      if (!page) throw invalid('starting_after', 'starting_after must be the id of a webhook endpoint');
      return { status: 200, body: { data: page.data.map(webhookEndpointView), has_more: page.has_more } };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/webhook-endpoints/:id',
    tag: TAG,
    summary: 'Retrieve an endpoint (without its secret).',
    responses: { 200: { description: 'The endpoint', schema: WebhookEndpoint } },
    handler: async ({ params }) => ({
      status: 200,
      body: webhookEndpointView(await requireEndpoint(params.id!)),
    }),
  });

  for (const [action, status] of [
    ['disable', 'disabled'],
    ['enable', 'enabled'],
  ] as const) {
    routes.add({
      method: 'post',
      path: `/v1/webhook-endpoints/:id/${action}`,
      tag: TAG,
      summary:
        action === 'disable'
          ? 'Stop sending to an endpoint: events from now on are not delivered to it, and its pending deliveries are ' +
            'canceled at their next attempt. Idempotent.'
          : 'Send to an endpoint again, from the events recorded from now on. Idempotent.',
      body: NoBody,
      responses: { 200: { description: 'The endpoint', schema: WebhookEndpoint } },
      handler: async ({ params }) => {
        const endpoint = await setWebhookEndpointStatus(deps.db, params.id!, status);
        if (!endpoint) throw notFound('webhook endpoint', params.id!);
        return { status: 200, body: webhookEndpointView(endpoint) };
      },
    });
  }

  routes.add({
    method: 'delete',
    path: '/v1/webhook-endpoints/:id',
    tag: TAG,
    summary:
      'Delete an endpoint: nothing more is sent to it (pending deliveries are canceled at their next attempt), and ' +
      'it is gone from every read.',
    responses: { 200: { description: 'Deleted', schema: WebhookEndpointDeleted } },
    handler: async ({ params }) => {
      const endpoint = await setWebhookEndpointStatus(deps.db, params.id!, 'deleted');
      if (!endpoint) throw notFound('webhook endpoint', params.id!);
      return { status: 200, body: { id: endpoint.id, object: 'webhook_endpoint', deleted: true } };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/webhook-endpoints/:id/deliveries',
    tag: TAG,
    summary:
      "An endpoint's deliveries, newest first (optionally in one status), each with every attempt (time, HTTP status " +
      'or error, duration).',
    query: WebhookDeliveriesQuery,
    responses: { 200: { description: 'A page of deliveries', schema: listOf(WebhookDelivery) } },
    handler: async ({ params, query }) => {
      await requireEndpoint(params.id!);
      const page = await listDeliveries(deps.db, params.id!, {
        limit: query.limit ?? 20,
        starting_after: query.starting_after,
        status: query.status,
      });
      if (!page)
        throw invalid('starting_after', 'starting_after must be the id of a delivery of this endpoint');
      return { status: 200, body: { data: page.data.map(webhookDeliveryView), has_more: page.has_more } };
    },
  });
}
