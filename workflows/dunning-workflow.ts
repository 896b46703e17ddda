import {
  ActivityFailure,
  condition,
  getExternalWorkflowHandle,
  log,
  patched,
  proxyActivities,
  setHandler,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { accountWorkflowId, retryInvoicePaymentSignal, subscriptionChangedSignal } from './messages';

/** Runs that stop dunning when an attempt's charge succeeded but settling it failed for good (older runs went on). */
const STOP_AFTER_CHARGE_PATCH = 'dunning-stops-after-a-charge';

export interface DunningInput {
  customer_id: string;
  invoice_id: string;
  /** DUNNING_RETRY_SCHEDULE: billing days after the failed renewal at which the invoice is charged again. */
  retry_days: number[];
  billing_day_ms: number;
  activity_timeout_ms: number;
  payment_activity_timeout_ms: number;
}

export type DunningOutcome = 'paid' | 'uncollectible' | 'closed';

/**
 * Collects one past-due invoice (`dunning:<invoice_id>`, started by the account workflow when a renewal's charge
 * fails; attempt 1 was that charge). It charges the invoice again at each day of the retry schedule (durable timers),
 * and at once whenever the customer's payment method changes (the account forwards `retryInvoicePayment`; such a
 * retry does not use up a scheduled one). Paid at any attempt: the invoice is paid and the subscription active again.
 * The schedule spent: the invoice is uncollectible and the subscription ends, the account lands on Free. Every
 * attempt is an activity in this workflow's history, so the Temporal UI shows the whole dunning run. The account is
 * told (`subscriptionChanged`) when it ends either way.
 */
export async function dunningWorkflow(input: DunningInput): Promise<DunningOutcome> {
  const db = proxyActivities<Activities>({
    startToCloseTimeout: input.activity_timeout_ms,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m' },
  });
  const payment = proxyActivities<Activities>({
    startToCloseTimeout: input.payment_activity_timeout_ms,
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '10m' },
  });
  let retryNow = false;
  setHandler(retryInvoicePaymentSignal, () => {
    retryNow = true;
  });

  // Attempt numbers name each charge's idempotency key: 1 was the renewal's own.
  let attempt = 1;
  const started_ms = Date.now();
  const chargeOnce = async (): Promise<'paid' | 'open' | 'closed'> => {
    attempt += 1;
    let charged = false;
    try {
      const charge = await payment.chargeInvoice({ invoice_id: input.invoice_id, attempt });
      charged = charge.status === 'succeeded';
      return (await db.settleInvoiceAttempt({ invoice_id: input.invoice_id, charge })).status;
    } catch (error) {
      // The card was charged but recording it failed for good: never charge again under the next attempt's key. The
      // payment is recorded (its charge step wrote it), and the ledger check lists an invoice charge that did not pay
      // its invoice for an operator to settle.
      if (charged && error instanceof ActivityFailure && patched(STOP_AFTER_CHARGE_PATCH)) {
        log.error('dunning charged the invoice but could not settle it; stopping', {
          attempt,
          error: error.cause?.message,
        });
        return 'closed';
      }
      // A step that can never succeed (a card the gateway refuses outright, say) is a failed attempt: dunning
      // goes on to the next one and, at the end, cancels, so the subscription never stays past due for good.
      if (!(error instanceof ActivityFailure)) throw error;
      log.warn('dunning attempt failed for good', { attempt, error: error.cause?.message });
      return 'open';
    }
  };

  let outcome: DunningOutcome | null = null;
  for (const day of input.retry_days) {
    const due_ms = started_ms + day * input.billing_day_ms;
    // Card updates retry at once, as often as they come, until the scheduled attempt is due.
    while (outcome === null && Date.now() < due_ms) {
      const woke = await condition(() => retryNow, Math.max(1, due_ms - Date.now()));
      if (!woke) break;
      retryNow = false;
      const status = await chargeOnce();
      if (status !== 'open') outcome = status;
    }
    if (outcome !== null) break;
    const status = await chargeOnce();
    if (status !== 'open') {
      outcome = status;
      break;
    }
  }
  if (outcome === null) {
    // Retried until it succeeds (a database step): the subscription must not stay past due.
    const ended = await db.exhaustDunning({ invoice_id: input.invoice_id });
    outcome = ended.status === 'canceled' ? 'uncollectible' : 'closed';
  }
  try {
    await getExternalWorkflowHandle(accountWorkflowId(input.customer_id)).signal(subscriptionChangedSignal, {
      reason: `dunning_${outcome}`,
    });
  } catch (error) {
    // The account is not running (terminated): its next run reads the subscription from PostgreSQL anyway.
    log.warn('could not tell the account that dunning ended', { error: String(error) });
  }
  return outcome;
}
