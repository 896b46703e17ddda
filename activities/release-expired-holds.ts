import type { HotPath } from '../db/hot-path';

const BATCH_SIZE = 500;
const MAX_BATCHES = 20;

/**
 * Releases every hold whose time has passed (status `expired`, hold back to available). Each release is its own
 * conditional statement, so a hold captured or voided meanwhile is left alone and a retry releases nothing twice.
 * Bounded per run; the schedule runs it again.
 */
export function releaseExpiredHoldsActivities(deps: { hotPath: HotPath }) {
  return {
    async releaseExpiredHolds(): Promise<{ released: number }> {
      let released = 0;
      for (let batch = 0; batch < MAX_BATCHES; batch++) {
        const ids = await deps.hotPath.expiredHolds(BATCH_SIZE);
        for (const id of ids) {
          if ((await deps.hotPath.release(id, 'expired')) !== null) released++;
        }
        if (ids.length < BATCH_SIZE) break;
      }
      return { released };
    },
  };
}
