import { log } from '@temporalio/activity';
import type { Db } from '../db/connection';
import type { HotPath } from '../db/hot-path';
import type { WakeReason } from '../billing/account';
import { customersWithSettledClaims, settleGrantClaims } from '../db/ledger';
import { noteWakes, stalledAccounts } from '../db/stalled-accounts';

const BATCH_SIZE = 500;
const MAX_BATCHES = 20;
/** Customers whose retired grants' claims are settled per run; the schedule runs it again for the rest. */
const MAX_CLAIM_CUSTOMERS = 500;
/** Accounts woken per run (never woken first); the schedule runs it again for the rest. */
const MAX_WOKEN_ACCOUNTS = 500;

/**
 * Releases every hold whose time has passed (status `expired`, hold back to available). Each release is its own
 * conditional statement, so a hold captured or voided meanwhile is left alone and a retry releases nothing twice.
 * Bounded per run; the schedule runs it again.
 *
 * Then settles the claims of retired (expired or voided) grants whose holds have settled, released now or captured
 * or voided since the last run: what those holds gave back of a retired grant is written off here at the latest.
 */
export function releaseExpiredHoldsActivities(deps: {
  hotPath: HotPath;
  db: Db;
  wakeAccount?: (customer_id: string, reasons: WakeReason[]) => Promise<void>;
}) {
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

    /**
     * Wakes every account whose work is overdue in PostgreSQL by more than `overdue_by_ms` (db/stalled-accounts.ts:
     * a renewal, an expiry, a request never run) with signal with start: a terminated account starts again and
     * rebuilds, a running one that missed a signal does the step now. So none of it waits for the customer's next
     * call. One account that cannot be woken does not keep the others asleep; the next run tries it again.
     */
    async wakeOverdueAccounts(input: {
      overdue_by_ms: number;
      /** Absent in histories from before it was configurable: the hour it was. */
      max_backoff_ms?: number;
    }): Promise<{ woken: number }> {
      const backoff = {
        overdue_by_ms: input.overdue_by_ms,
        max_backoff_ms: input.max_backoff_ms ?? 3_600_000,
      };
      const wake = deps.wakeAccount;
      if (!wake) return { woken: 0 };
      const at = new Date();
      const woken: string[] = [];
      for (const { customer_id, reasons } of await stalledAccounts(
        deps.db,
        at,
        backoff,
        MAX_WOKEN_ACCOUNTS,
      )) {
        try {
          await wake(customer_id, reasons);
          woken.push(customer_id);
          log.info('woke an account with overdue work', { customer_id, reasons });
        } catch (error) {
          log.error('waking an account failed', { customer_id, reasons, error: String(error) });
        }
      }
      await noteWakes(deps.db, woken, at, backoff.max_backoff_ms);
      return { woken: woken.length };
    },
  };
}
