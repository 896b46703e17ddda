import { proxyActivities, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { type DeliveryStatus, nextAttemptDelay } from '../billing/webhooks';

export interface WebhookDeliveryInput {
  delivery_id: string;
  /** WEBHOOK_RETRY_SCHEDULE when the delivery was dispatched: the delay before each attempt, the first included. */
  schedule_ms: number[];
  /** WEBHOOK_TIMEOUT_MS: how long one attempt's HTTP exchange may take. */
  timeout_ms: number;
}

/** The workflow id of a delivery: one workflow per delivery, so starting it twice starts it once. */
export function webhookDeliveryWorkflowId(delivery_id: string): string {
  return `webhook-delivery:${delivery_id}`;
}

/** Time for an attempt's two short PostgreSQL statements, on top of its HTTP timeout. */
const ATTEMPT_MARGIN_MS = 5_000;

/**
 * Delivers one event to one endpoint: sleeps for each delay of the retry schedule and makes one attempt after it,
 * until an attempt is answered 2xx (delivered), the endpoint is disabled or deleted (canceled), or the schedule is
 * spent (the last attempt marks it failed). The activity records every attempt and the delivery's status in
 * PostgreSQL, so the workflow carries no state of its own beyond where in the schedule it is. An activity is
 * retried (without limit, backing off to a minute) only when it could not reach PostgreSQL or its worker died.
 */
export async function webhookDeliveryWorkflow(input: WebhookDeliveryInput): Promise<DeliveryStatus> {
  const { attemptWebhookDelivery } = proxyActivities<Activities>({
    startToCloseTimeout: input.timeout_ms + ATTEMPT_MARGIN_MS,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m' },
  });
  for (const [index, delay_ms] of input.schedule_ms.entries()) {
    if (delay_ms > 0) await sleep(delay_ms);
    const { status } = await attemptWebhookDelivery({
      delivery_id: input.delivery_id,
      timeout_ms: input.timeout_ms,
      next_attempt_in_ms: nextAttemptDelay(input.schedule_ms, index),
    });
    if (status !== 'pending') return status;
  }
  // Not reached: the last attempt settles the delivery.
  return 'failed';
}
