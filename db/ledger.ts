import type { Knex } from 'knex';
import {
  isExpired,
  paidCreditExpiry,
  planRetirement,
  reconcileGrants,
  type GrantSlice,
  type HoldClaim,
  type OpenGrant,
  type OpenHold,
} from '../billing/grants';
import { formatUsd } from '../billing/money';
import { execute, queryRows, type Db } from './connection';
import { recordEvent } from './events';
import { MOVEMENTS, postMovement, type MovementRequest, type PostedMovement, type Wallet } from './postings';

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

/** Sources of credit a card paid for; every other source is promotional (free) credit. */
export const PAID_GRANT_SOURCES: readonly GrantSource[] = ['top_up', 'auto_recharge'];

export type RetireReason = 'expired' | 'voided';

export interface GrantRow extends GrantSlice {
  customer_id: string;
  source: GrantSource;
  reason: string | null;
  /** When nothing of the grant is left for anyone: a retired grant closes once its last claim settles. */
  closed_at: Date | null;
  /** Set when the grant retires (expires or is voided), before it closes. */
  closed_reason: RetireReason | null;
  entry_id: bigint;
  retired_at: Date | null;
  /** The customer's last ledger entry when the grant retired: later debits never consumed it but through claims. */
  retired_after_entry_id: bigint | null;
}

export const GRANT_COLUMNS = `id, customer_id, source, reason, amount_nanos, remaining_nanos, granted_at, expires_at,
  closed_at, closed_reason, entry_id, retired_at, retired_after_entry_id`;

async function openGrants(q: Knex | Knex.Transaction, customer_id: string): Promise<GrantRow[]> {
  return queryRows<GrantRow>(
    q,
    `SELECT ${GRANT_COLUMNS} FROM credit_grants WHERE customer_id = ? AND closed_at IS NULL`,
    [customer_id],
  );
}

/** One grant by id, whatever its customer or state. */
export async function getGrant(q: Db, grant_id: string): Promise<GrantRow | undefined> {
  const rows = await queryRows<GrantRow>(q, `SELECT ${GRANT_COLUMNS} FROM credit_grants WHERE id = ?`, [
    grant_id,
  ]);
  return rows[0];
}

/** A grant row as the pure rules see it. */
export function openGrantOf(row: GrantRow): OpenGrant {
  return { ...row, retiring: row.closed_reason !== null };
}

/** The customer's claims still waiting for their hold (see billing/grants.ts). */
export async function openClaims(q: Db, customer_id: string): Promise<HoldClaim[]> {
  return queryRows<HoldClaim>(
    q,
    `SELECT grant_id, authorization_id, amount_nanos FROM credit_grant_holds
     WHERE customer_id = ? AND settled_at IS NULL ORDER BY authorization_id, grant_id`,
    [customer_id],
  );
}

/**
 * What each settled hold among `authorization_ids` consumed of itself (`hold - released`: a capture's cost up to the
 * hold, zero for a release). Holds still held are absent: only a settled authorization is final.
 */
export async function consumedBySettledHolds(
  q: Db,
  authorization_ids: readonly string[],
): Promise<Map<string, bigint>> {
  if (authorization_ids.length === 0) return new Map();
  const ids = [...new Set(authorization_ids)];
  const rows = await queryRows<{ id: string; consumed_nanos: bigint }>(
    q,
    `SELECT id, (hold_nanos - released_nanos)::bigint AS consumed_nanos FROM authorizations
     WHERE id IN (${ids.map(() => '?').join(', ')}) AND status <> 'held'`,
    ids,
  );
  return new Map(rows.map((r) => [r.id, r.consumed_nanos]));
}

/**
 * A retired grant's nanos are written off by the expiry movement (available -> breakage); a voided grant's entries
 * have their own kind, `void`, so the ledger tells an operator's void from an expiry.
 */
function writeOffKind(reason: RetireReason): string {
  return reason === 'voided' ? 'void' : 'expiry';
}

/** The entry ref of the write-off of what one hold gave back of a grant's claim. */
export function claimWriteOffRef(grant_id: string, authorization_id: string): string {
  return `${grant_id}/hold/${authorization_id}`;
}

/**
 * The customer's open grants and `reconcileGrants` over them, its open claims and what the wallet owns: nothing is
 * written. `reconcile` applies the result under the wallet lock; balance reads show it (db/balance.ts).
 */
export async function reconciliationOf(q: Db, wallet: Wallet) {
  const rows = await openGrants(q, wallet.customer_id);
  const claims = await openClaims(q, wallet.customer_id);
  const consumed = await consumedBySettledHolds(
    q,
    claims.map((c) => c.authorization_id),
  );
  const result = reconcileGrants(
    rows.map(openGrantOf),
    claims,
    consumed,
    wallet.available_nanos + wallet.held_nanos,
  );
  return { rows, result };
}

interface Reconciled {
  wallet: Wallet;
  /** Open grants after settlement and allocation (closed ones left out), remaining as stored now. */
  grants: GrantRow[];
  open_claims: HoldClaim[];
}

/**
 * Brings the customer's grants up to date under the wallet lock (see `reconcileGrants`): settles the claims whose
 * hold has settled (writing off what the holds gave back, with `credit.expired` for expired grants), closes retired
 * grants with nothing left, and attributes the rest of the consumption since the last allocation to the other
 * grants. Every lifecycle write calls this first, so a rule about grants always sees them as they are.
 */
async function reconcile(trx: Knex.Transaction, locked: Wallet): Promise<Reconciled> {
  let wallet = locked;
  const { rows, result } = await reconciliationOf(trx, wallet);
  const byId = new Map(rows.map((g) => [g.id, g]));
  for (const settlement of result.settlements) {
    const grant = byId.get(settlement.grant_id)!;
    const reason = grant.closed_reason!;
    if (settlement.written_off_nanos > 0n) {
      const ref = claimWriteOffRef(grant.id, settlement.authorization_id);
      const posted = await postMovement(trx, wallet, {
        customer_id: wallet.customer_id,
        definition: MOVEMENTS.expiry,
        kind: writeOffKind(reason),
        ref,
        amounts: { amount: settlement.written_off_nanos },
      });
      wallet = posted.wallet;
      if (reason === 'expired') {
        await recordEvent(trx, {
          customer_id: wallet.customer_id,
          type: 'credit.expired',
          data: {
            grant_id: grant.id,
            amount_usd: formatUsd(settlement.written_off_nanos),
            expired_at: grant.expires_at?.toISOString() ?? null,
            authorization_id: settlement.authorization_id,
          },
          occurrence_key: `expiry:${ref}`,
        });
      }
    }
    await execute(
      trx,
      `UPDATE credit_grant_holds SET settled_at = now(), paid_nanos = ?, written_off_nanos = ?
       WHERE grant_id = ? AND authorization_id = ? AND settled_at IS NULL`,
      [settlement.paid_nanos, settlement.written_off_nanos, grant.id, settlement.authorization_id],
    );
  }
  const closing = new Set(result.closing);
  const grants: GrantRow[] = [];
  for (const row of rows) {
    const remaining_nanos = result.remaining.get(row.id)!;
    if (remaining_nanos !== row.remaining_nanos || closing.has(row.id)) {
      await execute(
        trx,
        `UPDATE credit_grants SET remaining_nanos = ?,
           closed_at = CASE WHEN ? THEN now() ELSE closed_at END WHERE id = ?`,
        [remaining_nanos, closing.has(row.id), row.id],
      );
    }
    if (!closing.has(row.id)) grants.push({ ...row, remaining_nanos });
  }
  return { wallet, grants, open_claims: result.open_claims };
}

/** The authorizations held right now, oldest first, each with what grants that retired earlier claimed of it. */
async function openHolds(trx: Knex.Transaction, reconciled: Reconciled): Promise<OpenHold[]> {
  const holds = await queryRows<{ authorization_id: string; hold_nanos: bigint }>(
    trx,
    `SELECT id AS authorization_id, hold_nanos FROM authorizations
     WHERE customer_id = ? AND status = 'held' ORDER BY created_at, id`,
    [reconciled.wallet.customer_id],
  );
  const claimed = new Map<string, bigint>();
  for (const c of reconciled.open_claims) {
    claimed.set(c.authorization_id, (claimed.get(c.authorization_id) ?? 0n) + c.amount_nanos);
  }
  return holds.map((h) => ({ ...h, claimed_nanos: claimed.get(h.authorization_id) ?? 0n }));
}

export interface Retirement {
  grant_id: string;
  /** Written off now. */
  amount_nanos: bigint;
  /** Kept for the holds open at retirement; settles (paid or written off) as they do. */
  held_nanos: bigint;
}

/**
 * Retires grants (`reconciled` must be this transaction's reconciliation): writes off what no open hold can still
 * capture and claims the rest for those holds (see `planRetirement`). Expired grants report `credit.expired`.
 */
async function retire(
  trx: Knex.Transaction,
  reconciled: Reconciled,
  grant_ids: ReadonlySet<string>,
  reason: RetireReason,
): Promise<{ wallet: Wallet; retirements: Retirement[] }> {
  let wallet = reconciled.wallet;
  const customer_id = wallet.customer_id;
  const plans = planRetirement(
    reconciled.grants.filter((g) => g.closed_reason === null),
    grant_ids,
    await openHolds(trx, reconciled),
  );
  const [last] = await queryRows<{ id: bigint | null }>(
    trx,
    `SELECT max(id) AS id FROM ledger_entries WHERE customer_id = ?`,
    [customer_id],
  );
  const byId = new Map(reconciled.grants.map((g) => [g.id, g]));
  const retirements: Retirement[] = [];
  for (const plan of plans) {
    const grant = byId.get(plan.grant_id)!;
    if (plan.write_off_nanos > 0n) {
      const posted = await postMovement(trx, wallet, {
        customer_id,
        definition: MOVEMENTS.expiry,
        kind: writeOffKind(reason),
        ref: grant.id,
        amounts: { amount: plan.write_off_nanos },
      });
      wallet = posted.wallet;
    }
    for (const claim of plan.claims) {
      await execute(
        trx,
        `INSERT INTO credit_grant_holds (grant_id, authorization_id, customer_id, amount_nanos) VALUES (?, ?, ?, ?)`,
        [claim.grant_id, claim.authorization_id, customer_id, claim.amount_nanos],
      );
    }
    const held_nanos = plan.claims.reduce((sum, c) => sum + c.amount_nanos, 0n);
    await execute(
      trx,
      `UPDATE credit_grants SET remaining_nanos = ?, closed_reason = ?, retired_at = now(),
         retired_after_entry_id = ?, closed_at = CASE WHEN ? THEN now() END
       WHERE id = ? AND closed_reason IS NULL`,
      [held_nanos, reason, last?.id ?? null, held_nanos === 0n, grant.id],
    );
    if (reason === 'expired' && grant.remaining_nanos > 0n) {
      await recordEvent(trx, {
        customer_id,
        type: 'credit.expired',
        data: {
          grant_id: grant.id,
          amount_usd: formatUsd(plan.write_off_nanos),
          held_usd: formatUsd(held_nanos),
          expired_at: grant.expires_at?.toISOString() ?? null,
        },
        occurrence_key: `expiry:${grant.id}`,
      });
    }
    retirements.push({ grant_id: grant.id, amount_nanos: plan.write_off_nanos, held_nanos });
  }
  return { wallet, retirements };
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
  /**
   * Where the credit comes from: `payments` for money a card paid, `promotions` for free credit, `refunds` for the
   * claim of a refund the gateway refused, given back, `revenue` for enterprise usage moved onto its invoice,
   * `disputes` for credit a won card dispute unfreezes.
   */
  funded_by: keyof typeof FUNDING_MOVEMENTS;
  granted_at?: Date;
}

/** The movement that funds a grant, by where its credit comes from. */
const FUNDING_MOVEMENTS = {
  payments: MOVEMENTS.paidCredit,
  promotions: MOVEMENTS.promotionalCredit,
  refunds: MOVEMENTS.refundRelease,
  revenue: MOVEMENTS.usageInvoiced,
  disputes: MOVEMENTS.disputeRelease,
} as const;

/**
 * Grants credit: one entry (funding account -> customer's available), one grant row and its `credit.granted` event,
 * in one transaction (a savepoint when `db` is already a transaction). Idempotent: a second call with the same
 * (kind, ref) returns the grant the first call made and records nothing.
 */
export async function grantCredit(db: Db, request: GrantRequest): Promise<GrantRow> {
  if (request.amount_nanos <= 0n) throw new Error('a grant must be positive');
  return db.transaction(async (trx) => {
    const wallet = await lockWallet(trx, request.customer_id);
    // Attribute consumption so far to the existing grants before the new one joins the order, so that earlier
    // usage is never charged to a grant that did not exist yet.
    const reconciled = await reconcile(trx, wallet);
    const posted = await postMovement(trx, reconciled.wallet, {
      customer_id: request.customer_id,
      definition: FUNDING_MOVEMENTS[request.funded_by],
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
    await recordEvent(trx, {
      customer_id: row.customer_id,
      type: 'credit.granted',
      data: {
        grant_id: row.id,
        source: row.source,
        amount_usd: formatUsd(row.amount_nanos),
        expires_at: row.expires_at?.toISOString() ?? null,
      },
      occurrence_key: `grant:${row.id}`,
    });
    return row;
  });
}

/**
 * Grants credit a card paid for (a top-up, an auto-recharge), expiring `validity` after it is granted
 * (`TOP_UP_CREDIT_VALIDITY`: an ISO-8601 duration, null = never; see `paidCreditExpiry`). Call it inside the
 * transaction that records the payment's outcome. Idempotent by (kind, ref) like `grantCredit`: a retry returns the
 * grant (and expiry) the first call made.
 */
export async function grantPaidCredit(
  db: Db,
  request: Omit<GrantRequest, 'expires_at' | 'funded_by' | 'granted_at' | 'source'> & {
    source: 'top_up' | 'auto_recharge';
    validity: string | null;
  },
): Promise<GrantRow> {
  const { validity, ...rest } = request;
  const [clock] = await queryRows<{ now: Date }>(db, `SELECT now() AS now`);
  const granted_at = clock!.now;
  return grantCredit(db, {
    ...rest,
    funded_by: 'payments',
    granted_at,
    expires_at: paidCreditExpiry(granted_at, validity),
  });
}

/**
 * Retires every grant of the customer that has expired by `now`: writes off what no open hold can still capture
 * (one `expiry` entry per grant, available -> breakage, and `credit.expired`), keeps the rest for those holds, and
 * settles earlier claims whose holds have settled since. Idempotent per grant. Returns this call's retirements.
 */
export async function expireGrants(
  db: Db,
  customer_id: string,
  now: Date,
): Promise<{ grant_id: string; amount_nanos: bigint; held_nanos: bigint }[]> {
  return db.transaction(async (trx) => {
    const wallet = await lockWallet(trx, customer_id);
    const reconciled = await reconcile(trx, wallet);
    const due = reconciled.grants.filter((g) => g.closed_reason === null && isExpired(g, now));
    if (due.length === 0) return [];
    const { retirements } = await retire(trx, reconciled, new Set(due.map((g) => g.id)), 'expired');
    return retirements;
  });
}

/**
 * Settles the customer's claims whose holds have settled (see `reconcile`). Returns whether the customer exists.
 * The hold sweep calls it after releasing holds, so released credit of a retired grant is written off promptly.
 */
export async function settleGrantClaims(db: Db, customer_id: string): Promise<void> {
  await db.transaction(async (trx) => {
    await reconcile(trx, await lockWallet(trx, customer_id));
  });
}

/** Customers with claims whose hold has settled and that are not settled yet, at most `limit`. */
export async function customersWithSettledClaims(db: Db, limit: number): Promise<string[]> {
  const rows = await queryRows<{ customer_id: string }>(
    db,
    `SELECT DISTINCT c.customer_id FROM credit_grant_holds c JOIN authorizations a ON a.id = c.authorization_id
     WHERE c.settled_at IS NULL AND a.status <> 'held' LIMIT ?`,
    [limit],
  );
  return rows.map((r) => r.customer_id);
}

/**
 * When each retiring grant's open claims settle at the latest: the last expiry among the holds it waits for (a hold
 * is captured or voided before its expiry, or released by the sweep after it), soonest first.
 */
export async function claimsSettleBy(
  db: Db,
  customer_id: string,
): Promise<{ grant_id: string; settle_by: Date }[]> {
  return queryRows<{ grant_id: string; settle_by: Date }>(
    db,
    `SELECT c.grant_id, max(a.expires_at) AS settle_by
     FROM credit_grant_holds c JOIN authorizations a ON a.id = c.authorization_id
     WHERE c.customer_id = ? AND c.settled_at IS NULL GROUP BY c.grant_id ORDER BY settle_by, c.grant_id`,
    [customer_id],
  );
}

export type VoidOutcome =
  | { status: 'not_found' }
  /** `voided_now`: this call retired it; false when it was already voided, expired, or closed (nothing changed). */
  | { status: 'ok'; voided_now: boolean; retirement: Retirement | null };

/**
 * Voids one grant of the customer: writes off what no open hold can still capture (a `void` entry, available ->
 * breakage) and keeps the rest for those holds, like an expiry; no other grant changes. A grant that already retired
 * (voided or expired) is left as it is: a second void changes nothing. `not_found` for an unknown grant or one of
 * another customer.
 */
export async function voidGrant(db: Db, customer_id: string, grant_id: string): Promise<VoidOutcome> {
  return db.transaction(async (trx) => {
    const [owner] = await queryRows<{ customer_id: string }>(
      trx,
      `SELECT customer_id FROM credit_grants WHERE id = ?`,
      [grant_id],
    );
    if (!owner || owner.customer_id !== customer_id) return { status: 'not_found' };
    const wallet = await lockWallet(trx, customer_id);
    const reconciled = await reconcile(trx, wallet);
    const grant = reconciled.grants.find((g) => g.id === grant_id);
    if (!grant || grant.closed_reason !== null) return { status: 'ok', voided_now: false, retirement: null };
    const { retirements } = await retire(trx, reconciled, new Set([grant_id]), 'voided');
    return { status: 'ok', voided_now: true, retirement: retirements[0] ?? null };
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

/** One grant's credit as a debit that names it (a refund) sees it, under the wallet lock, grants brought up to date. */
export interface GrantCredit {
  wallet: Wallet;
  /** The grant as it stands now; undefined when it does not exist for this customer. */
  grant: GrantRow | undefined;
  /** false when it expired or was voided (retired): what it keeps belongs to open holds, not to the customer. */
  open: boolean;
  remaining_nanos: bigint;
  /** The part of the remainder no open authorization may still capture (held money is the grants' in their order). */
  free_nanos: bigint;
}

/**
 * Locks the customer's wallet, brings its grants up to date (see `reconcile`) and says how much of one grant is left
 * and how much of that is free of open holds (attributed to the grants in consumption order, as a capture would
 * consume them: `planRetirement`'s rule). Call inside the transaction that then debits it (`debitGrant`).
 */
export async function readGrantCredit(
  trx: Knex.Transaction,
  customer_id: string,
  grant_id: string,
): Promise<GrantCredit> {
  const reconciled = await reconcile(trx, await lockWallet(trx, customer_id));
  const grant = reconciled.grants.find((g) => g.id === grant_id);
  if (!grant || grant.closed_reason !== null) {
    const [row] = await queryRows<GrantRow>(
      trx,
      `SELECT ${GRANT_COLUMNS} FROM credit_grants WHERE id = ? AND customer_id = ?`,
      [grant_id, customer_id],
    );
    return { wallet: reconciled.wallet, grant: row, open: false, remaining_nanos: 0n, free_nanos: 0n };
  }
  const live = reconciled.grants.filter((g) => g.closed_reason === null);
  const [plan] = planRetirement(live, new Set([grant_id]), await openHolds(trx, reconciled));
  return {
    wallet: reconciled.wallet,
    grant,
    open: true,
    remaining_nanos: grant.remaining_nanos,
    free_nanos: plan?.write_off_nanos ?? 0n,
  };
}

/**
 * Posts a debit that names one grant (a refund's claim) through the one posting path and takes `from_grant_nanos`
 * of it off that grant's remaining; the rest of the debit is consumption like any other (attributed to the grants in
 * their order at the next reconciliation, or debt). The caller holds the wallet lock (`readGrantCredit`). Idempotent by
 * the movement's (kind, ref): a repeat changes nothing.
 */
export async function debitGrant(
  trx: Knex.Transaction,
  wallet: Wallet,
  request: { grant_id: string; from_grant_nanos: bigint; movement: MovementRequest<'amount'> },
): Promise<PostedMovement> {
  if (request.from_grant_nanos < 0n || request.from_grant_nanos > request.movement.amounts.amount) {
    throw new Error(`debit ${request.movement.ref} takes ${request.from_grant_nanos} of its grant`);
  }
  const posted = await postMovement(trx, wallet, request.movement);
  if (!posted.created || request.from_grant_nanos === 0n) return posted;
  const updated = await queryRows<{ id: string }>(
    trx,
    `UPDATE credit_grants SET remaining_nanos = remaining_nanos - ?
     WHERE id = ? AND customer_id = ? AND closed_reason IS NULL AND remaining_nanos >= ? RETURNING id`,
    [request.from_grant_nanos, request.grant_id, wallet.customer_id, request.from_grant_nanos],
  );
  if (updated.length !== 1) {
    throw new Error(
      `grant ${request.grant_id} cannot give ${request.from_grant_nanos} to ${request.movement.ref}`,
    );
  }
  return posted;
}
