import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';

const { releaseExpiredHolds } = proxyActivities<Activities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 },
});

/** Run by the `release-expired-holds` Temporal Schedule: holds not captured by their expiry go back to available. */
export async function releaseExpiredHoldsWorkflow(): Promise<{ released: number }> {
  return releaseExpiredHolds();
}
