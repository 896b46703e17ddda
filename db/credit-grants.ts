import { attributeDebits, type HoldClaim, type StatementEntry } from '../billing/grants';
import { readWallet, withCurrentRemaining, type GrantStatus } from './balance';
import { queryRows, type Db } from './connection';
import { GRANT_COLUMNS, type GrantRow } from './ledger';

/**
 * Grant statements: the customer's grants page by page with their status and remaining as of now, and for one grant
 * the debits that consumed it (replayed from the ledger with the allocation rules of billing/grants.ts). Reads run in
 * one repeatable-read snapshot, so a statement is consistent with itself while money keeps moving.
 */

export type GrantWithStatus = GrantRow & { status: GrantStatus };

export type GrantPage =
  | { ok: true; data: GrantWithStatus[]; has_more: boolean }
  /** No customer with that id. */
  | { ok: false; code: 'customer_not_found' }
  /** `starting_after` is not a grant of this customer. */
  | { ok: false; code: 'unknown_cursor' };

/** One page of the customer's grants, newest first; `starting_after` is a grant id from a previous page. */
export async function listCustomerGrants(
  db: Db,
  customer_id: string,
  page: { limit: number; starting_after?: string },
): Promise<GrantPage> {
  return db.transaction(
    async (trx): Promise<GrantPage> => {
      const wallet = await readWallet(trx, customer_id);
      if (!wallet) return { ok: false, code: 'customer_not_found' };
      let cursor: { granted_at: Date; id: string } | null = null;
      if (page.starting_after !== undefined) {
        const [row] = await queryRows<{ granted_at: Date; id: string }>(
          trx,
          `SELECT granted_at, id FROM credit_grants WHERE customer_id = ? AND id = ?`,
          [customer_id, page.starting_after],
        );
        if (!row) return { ok: false, code: 'unknown_cursor' };
        cursor = row;
      }
      const rows = await queryRows<GrantRow>(
        trx,
        `SELECT ${GRANT_COLUMNS} FROM credit_grants
         WHERE customer_id = ? AND (?::timestamptz IS NULL OR (granted_at, id) < (?::timestamptz, ?::text))
         ORDER BY granted_at DESC, id DESC LIMIT ?`,
        [
          customer_id,
          cursor?.granted_at ?? null,
          cursor?.granted_at ?? null,
          cursor?.id ?? null,
          page.limit + 1,
        ],
      );
      const data = await withCurrentRemaining(trx, wallet, rows.slice(0, page.limit));
      return { ok: true, data, has_more: rows.length > page.limit };
    },
    { isolationLevel: 'repeatable read', readOnly: true },
  );
}

export interface GrantDebitRow {
  entry_id: bigint;
  kind: string;
  ref: string;
  created_at: Date;
  /** What this entry took from the grant. */
  amount_nanos: bigint;
}

export interface GrantStatement {
  grant: GrantWithStatus;
  /** Newest first, one page. */
  debits: GrantDebitRow[];
  has_more: boolean;
}

/**
 * One grant of the customer with the debits that consumed it, newest first: captures, usage batches, and the
 * write-offs of its expiry or void. Undefined for an unknown grant or one of another customer. `starting_after` is a
 * ledger entry id from a previous page. The whole ledger of the customer is replayed (the allocation depends on every
 * debit and grant before it), so the cost grows with the customer's entries.
 */
export async function grantStatement(
  db: Db,
  customer_id: string,
  grant_id: string,
  page: { limit: number; starting_after?: bigint },
): Promise<GrantStatement | undefined> {
  return db.transaction(
    async (trx) => {
      const wallet = await readWallet(trx, customer_id);
      if (!wallet) return undefined;
      const grants = await queryRows<GrantRow>(
        trx,
        `SELECT ${GRANT_COLUMNS} FROM credit_grants WHERE customer_id = ? ORDER BY entry_id`,
        [customer_id],
      );
      const row = grants.find((g) => g.id === grant_id);
      if (!row) return undefined;
      const [grant] = await withCurrentRemaining(trx, wallet, [row]);
      // Every entry that changed what the customer owns (holds and releases change nothing), in ledger order.
      // A refund's claim names the grant it took from (db/refunds.ts) and how much.
      const rows = await queryRows<
        Omit<StatementEntry, 'from_grant'> & {
          created_at: Date;
          refund_grant_id: string | null;
          from_grant_nanos: bigint | null;
        }
      >(
        trx,
        `SELECT e.id, e.kind, e.ref, e.created_at, p.owned_delta_nanos, p.held_delta_nanos,
                r.grant_id AS refund_grant_id, r.from_grant_nanos
         FROM (SELECT entry_id, sum(amount_nanos)::bigint AS owned_delta_nanos,
                 COALESCE(sum(amount_nanos) FILTER (WHERE account = 'held'), 0)::bigint AS held_delta_nanos
               FROM ledger_postings WHERE customer_id = ? AND account IN ('available', 'held')
               GROUP BY entry_id HAVING sum(amount_nanos) <> 0) p
         JOIN ledger_entries e ON e.id = p.entry_id
         LEFT JOIN refunds r ON e.kind = 'refund' AND r.id = e.ref
         ORDER BY e.id`,
        [customer_id],
      );
      const entries = rows.map(
        ({ refund_grant_id, from_grant_nanos, ...entry }): StatementEntry & { created_at: Date } => ({
          ...entry,
          from_grant:
            refund_grant_id === null
              ? null
              : { grant_id: refund_grant_id, amount_nanos: from_grant_nanos ?? 0n },
        }),
      );
      const claims = await queryRows<HoldClaim>(
        trx,
        `SELECT grant_id, authorization_id, amount_nanos FROM credit_grant_holds WHERE customer_id = ?`,
        [customer_id],
      );
      const byEntry = new Map(entries.map((e) => [e.id, e]));
      const mine = attributeDebits(grants, entries, claims)
        .filter((d) => d.grant_id === grant_id)
        .reverse()
        .filter((d) => page.starting_after === undefined || d.entry_id < page.starting_after);
      const debits = mine.slice(0, page.limit).map((d) => {
        const entry = byEntry.get(d.entry_id)!;
        return {
          entry_id: d.entry_id,
          kind: entry.kind,
          ref: entry.ref,
          created_at: entry.created_at,
          amount_nanos: d.amount_nanos,
        };
      });
      return { grant: grant!, debits, has_more: mine.length > page.limit };
    },
    { isolationLevel: 'repeatable read', readOnly: true },
  );
}
