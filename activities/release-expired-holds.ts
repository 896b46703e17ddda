import { log } from '@temporalio/activity';
import type { Db } from '../db/connection';
import type { HotPath } from '../db/hot-path';
import { customersWithSettledClaims, settleGrantClaims } from '../db/ledger';

const BATCH_SIZE = 500;
const MAX_BATCHES = 20;
/** Customers whose retired grants' claims are settled per run; the schedule runs it again for the rest. */
const MAX_CLAIM_CUSTOMERS = 500;

/**
 * Releases every hold whose time has passed (status `expired`, hold back to available). Each release is its own
 * conditional statement, so a hold captured or voided meanwhile is left alone and a retry releases nothing twice.
 * Bounded per run; the schedule runs it again.
 *
 * Then settles the claims of retired (expired or voided) grants whose holds have settled, released now or captured
 * or voided since the last run: what those holds gave back of a retired grant is written off here at the latest.
 */
export function releaseExpiredHoldsActivities(deps: { hotPath: HotPath; db: Db }) {
  return {
    async releaseExpiredHolds(): Promise<{ released: number; claims_settled_customers?: number }> {
      let released = 0;
      for (let batch = 0; batch < MAX_BATCHES; batch++) {
        const ids = await deps.hotPath.expiredHolds(BATCH_SIZE);
        for (const id of ids) {
          if ((await deps.hotPath.release(id, 'expired')) !== null) released++;
        }
        if (ids.length < BATCH_SIZE) break;
      }
      // One customer's failure (a ledger defect) must not keep the others' credit from being settled.
      let settled = 0;
      for (const customer_id of await customersWithSettledClaims(deps.db, MAX_CLAIM_CUSTOMERS)) {
        try {
          await settleGrantClaims(deps.db, customer_id);
          settled++;
        } catch (error) {
          log.error('settling retired grants failed', { customer_id, error: String(error) });
        }
      }
      return settled === 0 ? { released } : { released, claims_settled_customers: settled };
    },
  };
}
