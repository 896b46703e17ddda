import type { Knex } from 'knex';
import { allocateConsumption, applyAllocation, type GrantSlice } from '../billing/grants';
import { execute, queryRows, type Db } from './connection';
import { MOVEMENTS, postMovement, type Wallet } from './postings';

/**
 * Ledger writes for lifecycle events (grants, top-ups, expiries) and the grant rows that record where credit came
 * from. Each is one transaction that first locks the customer's wallet row, so everything that moves one
 * customer's money is serialised by that lock; the money itself moves only through `db/postings.ts`.
 */

class UnknownCustomerError extends Error {
  constructor(readonly customer_id: string) {
    super(`customer ${customer_id} does not exist`);
  }
}

/** Locks the customer's wallet row for the rest of the transaction and returns it. */
export async function lockWallet(trx: Knex.Transaction, customer_id: string): Promise<Wallet> {
  const rows = await queryRows<Wallet>(
    trx,
    `SELECT customer_id, available_nanos, held_nanos FROM wallets WHERE customer_id = ? FOR UPDATE`,
    [customer_id],
  );
  const wallet = rows[0];
  if (!wallet) throw new UnknownCustomerError(customer_id);
  return wallet;
}

export type GrantSource =
  'top_up' | 'auto_recharge' | 'promotion' | 'goodwill' | 'refund_reversal' | 'subscription';

export interface GrantRow extends GrantSlice {
  customer_id: string;
  source: GrantSource;
  reason: string | null;
  closed_at: Date | null;
  closed_reason: 'expired' | 'voided' | null;
  entry_id: bigint;
}

export const GRANT_COLUMNS = `id, customer_id, source, reason, amount_nanos, remaining_nanos, granted_at, expires_at,
  closed_at, closed_reason, entry_id`;

async function openGrants(q: Knex | Knex.Transaction, customer_id: string): Promise<GrantRow[]> {
  const result = await queryRows<GrantRow>(
    q,
    `SELECT ${GRANT_COLUMNS} FROM credit_grants WHERE customer_id = ? AND closed_at IS NULL`,
    [customer_id],
  );
  return result;
}

/**
 * Attributes all consumption since the last allocation to the customer's open grants and stores the result.
 * Call with the wallet lock held. Returns the grants as they are after allocation.
 */
async function allocateGrants(trx: Knex.Transaction, wallet: Wallet): Promise<GrantRow[]> {
  const grants = await openGrants(trx, wallet.customer_id);
  const allocation = allocateConsumption(grants, wallet.available_nanos + wallet.held_nanos);
  for (const [grant_id, remaining_nanos] of allocation.changes) {
    await execute(trx, `UPDATE credit_grants SET remaining_nanos = ? WHERE id = ?`, [
      remaining_nanos,
      grant_id,
    ]);
  }
  return applyAllocation(grants, allocation);
}

export interface GrantRequest {
  grant_id: string;
  customer_id: string;
  source: GrantSource;
  amount_nanos: bigint;
  reason: string | null;
  expires_at: Date | null;
  /** The entry that funds the grant; (kind, ref) makes granting idempotent. */
  kind: string;
  ref: string;
  /** Where the credit comes from: `payments` for money a card paid, `promotions` for free credit. */
  funded_by: 'payments' | 'promotions';
  granted_at?: Date;
}

/**
 * Grants credit: one entry (funding account -> customer's available) and one grant row, in one transaction.
 * Idempotent: a second call with the same (kind, ref) returns the grant the first call made.
 */
export async function grantCredit(db: Db, request: GrantRequest): Promise<GrantRow> {
  if (request.amount_nanos <= 0n) throw new Error('a grant must be positive');
  return db.transaction(async (trx) => {
    const wallet = await lockWallet(trx, request.customer_id);
    // Attribute consumption so far to the existing grants before the new one joins the order, so that earlier
    // usage is never charged to a grant that did not exist yet.
    await allocateGrants(trx, wallet);
    const posted = await postMovement(trx, wallet, {
      customer_id: request.customer_id,
      definition: request.funded_by === 'payments' ? MOVEMENTS.paidCredit : MOVEMENTS.promotionalCredit,
      kind: request.kind,
      ref: request.ref,
      amounts: { amount: request.amount_nanos },
    });
    if (posted.created) {
      await execute(
        trx,
        `INSERT INTO credit_grants (id, customer_id, source, reason, amount_nanos, remaining_nanos, granted_at,
           expires_at, entry_id)
         VALUES (?, ?, ?, ?, ?, ?, COALESCE(?, now()), ?, ?)`,
        [
          request.grant_id,
          request.customer_id,
          request.source,
          request.reason,
          request.amount_nanos,
          request.amount_nanos,
          request.granted_at ?? null,
          request.expires_at,
          posted.entry_id,
        ],
      );
    }
    const grant = await queryRows<GrantRow>(
      trx,
      `SELECT ${GRANT_COLUMNS} FROM credit_grants WHERE entry_id = ?`,
      [posted.entry_id],
    );
    const row = grant[0];
    if (!row) throw new Error(`entry ${request.kind}:${request.ref} exists without its grant`);
    return row;
  });
}

/**
 * Writes off what is left of every grant that has expired by `now`: one `expiry` entry per grant (available ->
 * breakage), then the grant closes. Idempotent per grant. Returns the write-offs made by this call.
 */
export async function expireGrants(
  db: Db,
  customer_id: string,
  now: Date,
): Promise<{ grant_id: string; amount_nanos: bigint }[]> {
  return db.transaction(async (trx) => {
    let wallet = await lockWallet(trx, customer_id);
    const grants = await allocateGrants(trx, wallet);
    const writeOffs: { grant_id: string; amount_nanos: bigint }[] = [];
    for (const grant of grants) {
      if (grant.expires_at === null || grant.expires_at.getTime() > now.getTime()) continue;
      if (grant.remaining_nanos > 0n) {
        const posted = await postMovement(trx, wallet, {
          customer_id,
          definition: MOVEMENTS.expiry,
          ref: grant.id,
          amounts: { amount: grant.remaining_nanos },
        });
        wallet = posted.wallet;
        writeOffs.push({ grant_id: grant.id, amount_nanos: grant.remaining_nanos });
      }
      await execute(
        trx,
        `UPDATE credit_grants SET remaining_nanos = 0, closed_at = ?, closed_reason = 'expired' WHERE id = ?`,
        [now, grant.id],
      );
    }
    return writeOffs;
  });
}

export interface LedgerEntryRow {
  id: bigint;
  kind: string;
  ref: string;
  amount_nanos: bigint;
  balance_after_nanos: bigint | null;
  created_at: Date;
}

/** One page of a customer's ledger, newest first. `starting_after` is an entry id from a previous page. */
export async function listLedgerEntries(
  db: Db,
  customer_id: string,
  page: { limit: number; starting_after?: bigint },
): Promise<{ data: LedgerEntryRow[]; has_more: boolean }> {
  const rows = await queryRows<LedgerEntryRow>(
    db,
    `SELECT id, kind, ref, amount_nanos, balance_after_nanos, created_at FROM ledger_entries
     WHERE customer_id = ? AND (?::bigint IS NULL OR id < ?::bigint)
     ORDER BY id DESC LIMIT ?`,
    [customer_id, page.starting_after ?? null, page.starting_after ?? null, page.limit + 1],
  );
  return { data: rows.slice(0, page.limit), has_more: rows.length > page.limit };
}
