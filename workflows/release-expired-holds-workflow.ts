import { patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';

const { releaseExpiredHolds, wakeOverdueAccounts } = proxyActivities<Activities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 },
});

/** How late an account's work may be before the sweep wakes it (a healthy account does it on its own timer). */
const DEFAULT_OVERDUE_BY_MS = 60_000;

/** Runs recorded before the sweep woke accounts with an overdue renewal replay without it. */
const WAKE_OVERDUE_PATCH = 'sweep-wakes-overdue-accounts';

/**
 * Run by the `release-expired-holds` Temporal Schedule: holds not captured by their expiry go back to available, and
 * accounts whose work is overdue in PostgreSQL (a renewal, a credit expiry, a request never run: their workflow was
 * terminated, say, or missed a signal) are woken to do it.
 */
export async function releaseExpiredHoldsWorkflow(
  input: { overdue_by_ms?: number } = {},
): Promise<{ released: number; woken?: number }> {
  const released = await releaseExpiredHolds();
  if (!patched(WAKE_OVERDUE_PATCH)) return released;
  const { woken } = await wakeOverdueAccounts({
    overdue_by_ms: input.overdue_by_ms ?? DEFAULT_OVERDUE_BY_MS,
  });
  // Shown only when it woke someone, so the common answer stays `{released}`.
  return woken === 0 ? released : { ...released, woken };
}
