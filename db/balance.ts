import { compareConsumptionOrder } from '../billing/grants';
import { queryRows, type Db } from './connection';
import { GRANT_COLUMNS, type GrantRow, reconciliationOf } from './ledger';
import type { Wallet } from './postings';

export type GrantStatus = 'active' | 'depleted' | 'expired' | 'voided';

export interface BalanceView {
  available_nanos: bigint;
  held_nanos: bigint;
  /** Grants in consumption order (open ones first), each with its remaining as of now. */
  grants: (GrantRow & { status: GrantStatus })[];
}

const MAX_CLOSED_GRANTS_SHOWN = 50;

/**
 * The customer's balance and grants, read in one snapshot. Consumption not yet attributed to grants (and claims of
 * retired grants whose holds have settled) is attributed in memory with the same rules the ledger uses
 * (`reconcileGrants`), so the view is exact without writing anything. A retired grant still waiting for holds shows
 * its status (expired, voided) with what it keeps for them as its remaining.
 * `with_grant_id` adds that grant even when it closed too long ago to be among the recent ones shown.
 */
export async function readBalance(
  db: Db,
  customer_id: string,
  with_grant_id: string | null = null,
): Promise<BalanceView | undefined> {
  return db.transaction(
    async (trx) => {
      const wallets = await queryRows<Wallet>(
        trx,
        `SELECT customer_id, available_nanos, held_nanos FROM wallets WHERE customer_id = ?`,
        [customer_id],
      );
      const wallet = wallets[0];
      if (!wallet) return undefined;
      // Every open grant takes part in allocation; closed ones are history, so only the most recent are shown.
      const grants = await queryRows<GrantRow>(
        trx,
        `(SELECT ${GRANT_COLUMNS} FROM credit_grants WHERE customer_id = ? AND closed_at IS NULL)
         UNION ALL
         (SELECT ${GRANT_COLUMNS} FROM credit_grants WHERE customer_id = ? AND closed_at IS NOT NULL
          ORDER BY closed_at DESC LIMIT ?)
         UNION
         (SELECT ${GRANT_COLUMNS} FROM credit_grants WHERE customer_id = ? AND id = ? AND closed_at IS NOT NULL)`,
        [customer_id, customer_id, MAX_CLOSED_GRANTS_SHOWN, customer_id, with_grant_id],
      );
      const view = await withCurrentRemaining(trx, wallet, grants);
      view.sort(
        (a, b) =>
          Number(a.closed_at !== null) - Number(b.closed_at !== null) || compareConsumptionOrder(a, b),
      );
      return { available_nanos: wallet.available_nanos, held_nanos: wallet.held_nanos, grants: view };
    },
    { isolationLevel: 'repeatable read', readOnly: true },
  );
}

/**
 * Grants as they stand now: each open grant's remaining after the consumption and claim settlements not yet written
 * to its row (`reconcileGrants` in memory, nothing written), and its status. `grants` may hold any of the customer's
 * grants; all of its open grants are read for the allocation. Call inside a repeatable-read transaction.
 */
export async function withCurrentRemaining(
  trx: Db,
  wallet: Wallet,
  grants: readonly GrantRow[],
): Promise<(GrantRow & { status: GrantStatus })[]> {
  const { result: reconciled } = await reconciliationOf(trx, wallet);
  return grants.map((g) => {
    const remaining_nanos = reconciled.remaining.get(g.id) ?? g.remaining_nanos;
    const status: GrantStatus = g.closed_reason ?? (remaining_nanos === 0n ? 'depleted' : 'active');
    return { ...g, remaining_nanos, status };
  });
}

/** The customer's wallet row (no lock), or undefined for an unknown customer. */
export async function readWallet(q: Db, customer_id: string): Promise<Wallet | undefined> {
  const rows = await queryRows<Wallet>(
    q,
    `SELECT customer_id, available_nanos, held_nanos FROM wallets WHERE customer_id = ?`,
    [customer_id],
  );
  return rows[0];
}
