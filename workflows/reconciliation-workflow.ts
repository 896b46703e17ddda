import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { type ReconcileResult, scheduledWindow } from '../billing/reconciliation';

const { reconcilePayments } = proxyActivities<Activities>({
  // Listing a day of a busy Stripe account pages through thousands of items.
  startToCloseTimeout: '10m',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
});

export type ReconciliationInput =
  /** Run by the `reconciliation` Schedule: the window is the interval before the run plus the margin. */
  | { interval_ms: number; margin_ms: number }
  /** Asked for by hand (`POST /v1/reports/reconciliation/runs`): this window, ISO-8601. */
  | { window_from: string; window_to: string };

/** The workflow id of a run asked for by hand: one per window, so asking twice while it runs starts it once. */
export function reconciliationWorkflowId(window_from: string, window_to: string): string {
  return `reconciliation:${window_from}/${window_to}`;
}

/**
 * One reconciliation run (README "Reconciliation"): compares our payments and refunds with the gateway's for a
 * window, runs the ledger invariant check and records the report, in one activity. Its report is keyed by this run.
 */
export async function reconciliationWorkflow(input: ReconciliationInput): Promise<ReconcileResult> {
  const { workflowId, runId } = workflowInfo();
  const window =
    'window_from' in input
      ? { from: new Date(input.window_from), to: new Date(input.window_to) }
      : scheduledWindow(new Date(), input.interval_ms, input.margin_ms);
  return reconcilePayments({
    run_id: `rec_${runId.replaceAll('-', '')}`,
    workflow_id: workflowId,
    window_from: window.from.toISOString(),
    window_to: window.to.toISOString(),
  });
}
