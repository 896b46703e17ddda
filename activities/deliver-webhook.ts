import { Webhook } from 'standardwebhooks';
import { attemptOutcome, type DeliveryStatus, eventBody, RESPONSE_BODY_MAX_BYTES } from '../billing/webhooks';
import type { Db } from '../db/connection';
import { PermanentError } from '../db/errors';
import { cancelDelivery, getDeliveryTarget, recordAttempt } from '../db/webhooks';

export interface WebhookAttemptInput {
  delivery_id: string;
  /** How long the HTTP request may take, answer included (WEBHOOK_TIMEOUT_MS). */
  timeout_ms: number;
  /** The delay before the next attempt of the schedule, or null when this is the last one. */
  next_attempt_in_ms: number | null;
}

/** What one HTTP request to an endpoint came to. */
interface HttpOutcome {
  status_code: number | null;
  error: string | null;
  response_body: string | null;
}

const USER_AGENT = 'ai-billing-engine-webhooks/1';

/**
 * One attempt of one webhook delivery, run by the delivery workflow at each step of the retry schedule. It sends
 * only while the delivery is pending and its endpoint enabled (a disabled or deleted endpoint cancels it), signs the
 * body per Standard Webhooks at the time of sending (webhook-id is the event id, the same at every attempt, so
 * receivers can drop redeliveries), and records the attempt and its outcome in PostgreSQL before returning the
 * delivery's status. An endpoint's failure is an outcome, not an activity failure: the activity fails (and
 * Temporal retries it) only when PostgreSQL does. A retry after a crash between sending and recording sends again,
 * which receivers see as a redelivery of the same webhook-id.
 */
export function webhookDeliveryActivities(deps: { db: Db }) {
  return {
    async attemptWebhookDelivery(input: WebhookAttemptInput): Promise<{ status: DeliveryStatus }> {
      const target = await getDeliveryTarget(deps.db, input.delivery_id);
      if (!target)
        throw new PermanentError('not_found', `webhook delivery ${input.delivery_id} does not exist`);
      if (target.status !== 'pending') return { status: target.status };
      if (target.endpoint_status !== 'enabled') {
        return { status: await cancelDelivery(deps.db, input.delivery_id) };
      }
      const payload = JSON.stringify(
        eventBody({
          type: target.event_type,
          customer_id: target.customer_id,
          data: target.data,
          created_at: target.event_created_at,
        }),
      );
      const attempted_at = new Date();
      const started_ms = performance.now();
      const outcome = await post(
        target.url,
        signedHeaders(target.secret, target.event_id, attempted_at, payload),
        payload,
        input.timeout_ms,
      );
      const duration_ms = Math.round(performance.now() - started_ms);
      const status = await recordAttempt(deps.db, {
        delivery_id: input.delivery_id,
        attempted_at,
        duration_ms,
        ...outcome,
        outcome: attemptOutcome(outcome.status_code, input.next_attempt_in_ms === null),
        next_attempt_in_ms: input.next_attempt_in_ms,
      });
      return { status };
    },
  };
}

/** The Standard Webhooks headers of one attempt: the signature covers `id.timestamp.body` with the endpoint's key. */
function signedHeaders(secret: string, event_id: string, at: Date, payload: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    'user-agent': USER_AGENT,
    'webhook-id': event_id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(event_id, at, payload),
  };
}

/**
 * POSTs the body and reads at most RESPONSE_BODY_MAX_BYTES of the answer, within `timeout_ms` for the whole
 * exchange. Redirects are not followed (a 3xx is an answer that is not 2xx): a delivery goes to the URL the operator
 * registered, nowhere else.
 */
async function post(
  url: string,
  headers: Record<string, string>,
  payload: string,
  timeout_ms: number,
): Promise<HttpOutcome> {
  const signal = AbortSignal.timeout(timeout_ms);
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers, body: payload, redirect: 'manual', signal });
  } catch (error) {
    return { status_code: null, error: describeNetworkError(error, timeout_ms), response_body: null };
  }
  let response_body: string | null = null;
  let error: string | null = null;
  try {
    response_body = await readPrefix(response, RESPONSE_BODY_MAX_BYTES);
  } catch (readError) {
    error = `answer not read: ${describeNetworkError(readError, timeout_ms)}`;
  }
  return { status_code: response.status, error, response_body };
}

/** The first `max_bytes` of a response body as text (NUL, which PostgreSQL text refuses, becomes U+FFFD). */
async function readPrefix(response: Response, max_bytes: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max_bytes) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks)
    .subarray(0, max_bytes)
    .toString('utf8')
    .replace(/\u0000/g, '\uFFFD');
}

/** Why no answer came, in a line: a timeout, or the network error's code and message (bounded, no control chars). */
function describeNetworkError(error: unknown, timeout_ms: number): string {
  const name = (error as { name?: string } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return `timeout: no answer within ${timeout_ms} ms`;
  const cause = (error as { cause?: { code?: string; message?: string } } | null)?.cause;
  const text = cause?.message
    ? `${cause.code ? `${cause.code}: ` : ''}${cause.message}`
    : error instanceof Error
      ? error.message
      : String(error);
  return text.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 500);
}
