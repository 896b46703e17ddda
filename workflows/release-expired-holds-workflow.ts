import { patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';

const { releaseExpiredHolds, wakeOverdueAccounts } = proxyActivities<Activities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 },
});

/**
 * The sweep's input, from the worker's configuration through its Schedule: how late an account's work may be before
 * the sweep wakes it (ACCOUNT_WAKE_AFTER; a healthy account does it on its own timer), and the longest wait before an
 * account whose work stays overdue is woken again (ACCOUNT_WAKE_MAX_BACKOFF). Absent: the configuration's defaults.
 */
export interface SweepInput {
  overdue_by_ms?: number;
  max_backoff_ms?: number;
}

/** ACCOUNT_WAKE_AFTER's and ACCOUNT_WAKE_MAX_BACKOFF's defaults, for Schedules created before they were passed. */
const DEFAULT_OVERDUE_BY_MS = 60_000;
const DEFAULT_MAX_BACKOFF_MS = 3_600_000;

/** Runs recorded before the sweep woke accounts with an overdue renewal replay without it. */
const WAKE_OVERDUE_PATCH = 'sweep-wakes-overdue-accounts';

/**
 * Run by the `release-expired-holds` Temporal Schedule: holds not captured by their expiry go back to available, and
 * accounts whose work is overdue in PostgreSQL (a renewal, a credit expiry, a request never run: their workflow was
 * terminated, say, or missed a signal) are woken to do it.
 */
export async function releaseExpiredHoldsWorkflow(
  input: SweepInput = {},
): Promise<{ released: number; woken?: number }> {
  const released = await releaseExpiredHolds();
  if (!patched(WAKE_OVERDUE_PATCH)) return released;
  const { woken } = await wakeOverdueAccounts({
    overdue_by_ms: input.overdue_by_ms ?? DEFAULT_OVERDUE_BY_MS,
    max_backoff_ms: input.max_backoff_ms ?? DEFAULT_MAX_BACKOFF_MS,
  });
  // Shown only when it woke someone, so the common answer stays `{released}`.
  return woken === 0 ? released : { ...released, woken };
}
