import type { Knex } from 'knex';
import { queryRows, type Db } from './connection';

/**
 * The one posting path: the only place that knows how a money movement becomes a ledger entry, its postings, the
 * change to the customer's wallet row, and the low-balance threshold's arming, disarming and crossing.
 *
 * Contract:
 * - A movement is a `MovementDefinition` (below, in `MOVEMENTS`): which accounts its postings touch, each posting's
 *   amount as a signed sum of the movement's named amounts (`hold`, `cost`, `amount`), and whether its credit
 *   re-arms the threshold. That table is the single definition; two renderings read it:
 *   - `postingsOf` evaluates it in TypeScript (for checks, for knex transactions, for tests), and
 *   - `movementSql` renders it as the data-modifying CTEs `w` (wallet update), `e` (entry), `p` (postings) and `c`
 *     (threshold crossing) that the hot path's single statements (`db/hot-path.ts`) embed, each fed by its own
 *     source rows (an authorization, a batch's per-customer totals).
 *   `postMovement` is the knex-transaction entry point (grants, expiry, and every later refund, recharge, renewal
 *   or write-off): it checks the movement in TypeScript, then runs the same CTEs in one statement.
 * - One movement = at most one entry per customer wallet row, unique by `(kind, ref)`: posting it again is a no-op
 *   (`postMovement` answers `created: false`; the hot path's own keys, an authorization id or a batch id, make a
 *   repeat impossible before it gets here). Entries and postings are only ever appended.
 * - Postings of zero are not written, and a movement whose postings are all zero writes no entry (the wallet row
 *   is still updated, which changes nothing). Every written entry therefore has at least two postings summing to
 *   zero; `amount_nanos` is its change to `available`, and `balance_after_nanos` the available balance after it.
 * - Customer accounts (`available`, `held`) live in the `wallets` row and each change to them is a posting with
 *   the customer's id; system accounts have no balance row (see the core migration).
 * - The threshold rule, for every movement alike and every balance threshold (the low-balance alert, the
 *   auto-recharge threshold, zero): with `after` the new available balance,
 *   `crossed = armed AND after < threshold` (recorded once in `threshold_crossings` with its kind), and
 *   `armed' = (armed OR (rearms AND delta > 0)) AND NOT after < threshold`.
 *   So a debit past a threshold crosses once and disarms; only credit that `rearms` (bought or granted credit,
 *   not a released hold or the unused part of a capture) and reaches the threshold arms it again. An armed wallet
 *   is never below its threshold. `setLowBalanceThreshold` (and `setRechargeThreshold`) arm a new threshold by the
 *   same rule. Movements that `spends` (captures, usage) add to this UTC month's spend, and the first one of a month
 *   that takes the spend to the budget alert or the budget limit crosses it (once per month each).
 *   Every statement writes the kinds it crossed to `last_crossing_kinds`, which its RETURNING reads: so one
 *   statement or one transaction of several movements reports exactly the crossings each movement made.
 * - The caller holds, or the statement takes, the wallet row lock: it serialises everything that moves one
 *   customer's money. Conditions that refuse a movement (a hold larger than the available balance) belong in the
 *   `where` of the wallet update, so the check and the debit are one atomic step.
 * - The wallet floor: movements that debit without a prior balance check (usage, a capture beyond its hold) pass
 *   `floor` and then raise SQLSTATE `WALLET_FLOOR_SQLSTATE` (aborting the whole statement) rather than take the
 *   available balance below minus the floor. Callers decide what a refusal means (reject an event, answer 402).
 */

export type CustomerAccount = 'available' | 'held';
export type SystemAccount = 'payments' | 'promotions' | 'revenue' | 'breakage' | 'refunds' | 'disputes';
export type Account = CustomerAccount | SystemAccount;

export interface Posting {
  account: Account;
  amount_nanos: bigint;
}

export interface Wallet {
  customer_id: string;
  available_nanos: bigint;
  held_nanos: bigint;
}

/** A posting's amount as a signed sum of the movement's named amounts: `{ hold: 1, cost: -1 }` is hold - cost. */
type Terms<A extends string> = Partial<Record<A, 1 | -1>>;

export interface MovementDefinition<A extends string = string> {
  /** The entry kind, when the movement always has the same one (grants take theirs from the request). */
  kind: string | null;
  amounts: readonly A[];
  postings: readonly { account: Account; terms: Terms<A> }[];
  /** Whether this movement's credit re-arms the balance thresholds (see the contract above). */
  rearms: boolean;
  /** What of the movement counts as this month's spend (budgets, usage limits): captures' and usage's cost. */
  spends?: Terms<A>;
}

const define = <A extends string>(definition: MovementDefinition<A>) => definition;

/** Every movement of money there is. A new kind of movement is one more row here, nothing else. */
export const MOVEMENTS = {
  /** An authorization's hold: available -> held. */
  hold: define({
    kind: 'hold',
    amounts: ['hold'],
    postings: [
      { account: 'available', terms: { hold: -1 } },
      { account: 'held', terms: { hold: 1 } },
    ],
    rearms: false,
  }),
  /** A capture: the hold leaves `held`, its cost goes to revenue, the difference returns to (or comes from) available. */
  capture: define({
    kind: 'capture',
    amounts: ['hold', 'cost'],
    postings: [
      { account: 'held', terms: { hold: -1 } },
      { account: 'available', terms: { hold: 1, cost: -1 } },
      { account: 'revenue', terms: { cost: 1 } },
    ],
    rearms: false,
    spends: { cost: 1 },
  }),
  /** A hold released unused (voided or expired): held -> available. */
  release: define({
    kind: 'release',
    amounts: ['hold'],
    postings: [
      { account: 'held', terms: { hold: -1 } },
      { account: 'available', terms: { hold: 1 } },
    ],
    rearms: false,
  }),
  /** Usage recorded without an authorization (one entry per ingestion batch and customer): available -> revenue. */
  usage: define({
    kind: 'usage',
    amounts: ['cost'],
    postings: [
      { account: 'available', terms: { cost: -1 } },
      { account: 'revenue', terms: { cost: 1 } },
    ],
    rearms: false,
    spends: { cost: 1 },
  }),
  /** Credit paid for by a card (`top_up`, auto-recharge): payments -> available. */
  paidCredit: define({
    kind: null,
    amounts: ['amount'],
    postings: [
      { account: 'payments', terms: { amount: -1 } },
      { account: 'available', terms: { amount: 1 } },
    ],
    rearms: true,
  }),
  /** Free credit (promotion, goodwill, subscription allowance): promotions -> available. */
  promotionalCredit: define({
    kind: null,
    amounts: ['amount'],
    postings: [
      { account: 'promotions', terms: { amount: -1 } },
      { account: 'available', terms: { amount: 1 } },
    ],
    rearms: true,
  }),
  /**
   * A refund's claim, the reversing entry of paid credit (kind `refund`, ref the refund id): available -> refunds,
   * before the gateway refunds the card, so the credit cannot be spent while the refund is under way. `refunds` is
   * the clearing account of refunds in flight: the claim is settled or released by one of the two movements below.
   */
  refund: define({
    kind: 'refund',
    amounts: ['amount'],
    postings: [
      { account: 'available', terms: { amount: -1 } },
      { account: 'refunds', terms: { amount: 1 } },
    ],
    rearms: false,
  }),
  /** The gateway refunded the card: the claim leaves the clearing account back to where card money came from. */
  refundSettled: define({
    kind: 'refund_settled',
    amounts: ['amount'],
    postings: [
      { account: 'refunds', terms: { amount: -1 } },
      { account: 'payments', terms: { amount: 1 } },
    ],
    rearms: false,
  }),
  /** The gateway refused the refund: the claimed credit comes back (a `refund_reversal` grant): refunds -> available. */
  refundRelease: define({
    kind: null,
    amounts: ['amount'],
    postings: [
      { account: 'refunds', terms: { amount: -1 } },
      { account: 'available', terms: { amount: 1 } },
    ],
    rearms: true,
  }),
  /**
   * Enterprise usage moved onto its invoice: what the wallet paid at list price for a period's usage comes back
   * (a `subscription` grant), because the invoice bills that usage at the contract's prices: revenue -> available.
   */
  usageInvoiced: define({
    kind: 'usage_invoiced',
    amounts: ['amount'],
    postings: [
      { account: 'revenue', terms: { amount: -1 } },
      { account: 'available', terms: { amount: 1 } },
    ],
    rearms: true,
  }),
  /**
   * A card dispute freezes the disputed credit (kind `dispute`, ref Stripe's dispute id): available -> disputes, so it
   * cannot be spent while the bank decides. `disputes` holds frozen credit until one of the two movements below.
   */
  dispute: define({
    kind: 'dispute',
    amounts: ['amount'],
    postings: [
      { account: 'available', terms: { amount: -1 } },
      { account: 'disputes', terms: { amount: 1 } },
    ],
    rearms: false,
  }),
  /** The dispute was won: the frozen credit comes back (a `refund_reversal` grant, entry `dispute_won`). */
  disputeRelease: define({
    kind: null,
    amounts: ['amount'],
    postings: [
      { account: 'disputes', terms: { amount: -1 } },
      { account: 'available', terms: { amount: 1 } },
    ],
    rearms: true,
  }),
  /** The dispute was lost: the bank took the money back, so the frozen credit leaves as a refund's would. */
  disputeLost: define({
    kind: 'dispute_lost',
    amounts: ['amount'],
    postings: [
      { account: 'disputes', terms: { amount: -1 } },
      { account: 'payments', terms: { amount: 1 } },
    ],
    rearms: false,
  }),
  /** What is left of an expired grant, written off: available -> breakage. */
  expiry: define({
    kind: 'expiry',
    amounts: ['amount'],
    postings: [
      { account: 'available', terms: { amount: -1 } },
      { account: 'breakage', terms: { amount: 1 } },
    ],
    rearms: false,
  }),
};

const CUSTOMER_ACCOUNTS: ReadonlySet<Account> = new Set<Account>(['available', 'held']);

const isCustomerAccount = (account: Account): account is CustomerAccount => CUSTOMER_ACCOUNTS.has(account);

/** The posting amount of `terms` for the given amounts. */
function evaluate<A extends string>(terms: Terms<A>, amounts: Record<A, bigint>): bigint {
  let sum_nanos = 0n;
  for (const [name, sign] of Object.entries(terms) as [A, 1 | -1][]) {
    const amount_nanos: bigint = amounts[name];
    sum_nanos += sign === 1 ? amount_nanos : -amount_nanos;
  }
  return sum_nanos;
}

/**
 * The postings of one movement, evaluated in TypeScript: zero postings left out, in definition order. Throws if
 * the definition does not balance for these amounts (a programmer error: every definition must sum to zero).
 */
export function postingsOf<A extends string>(
  definition: MovementDefinition<A>,
  amounts: Record<A, bigint>,
): Posting[] {
  const all = definition.postings.map((p) => ({
    account: p.account,
    amount_nanos: evaluate(p.terms, amounts),
  }));
  const sum_nanos = all.reduce((sum, p) => sum + p.amount_nanos, 0n);
  if (sum_nanos !== 0n) throw new Error(`movement postings sum to ${sum_nanos}, not zero`);
  return all.filter((p) => p.amount_nanos !== 0n);
}

/** How a movement changes the wallet's two accounts. */
export function walletDelta(postings: readonly Posting[]): { available_nanos: bigint; held_nanos: bigint } {
  const sumOf = (account: CustomerAccount) =>
    postings.filter((p) => p.account === account).reduce((sum, p) => sum + p.amount_nanos, 0n);
  return { available_nanos: sumOf('available'), held_nanos: sumOf('held') };
}

/** `terms` as SQL over the given expressions of the amounts, e.g. `(w.amt_hold) - (w.amt_cost)`. */
function termsSql<A extends string>(terms: Terms<A>, exprs: Record<A, string>): string {
  const parts = (Object.entries(terms) as [A, 1 | -1][]).map(
    ([name, sign], i) => `${sign === 1 ? (i === 0 ? '' : '+ ') : '- '}(${exprs[name]})`,
  );
  return parts.length === 0 ? '0::bigint' : parts.join(' ');
}

/** The terms of every posting to `account`, merged (a definition may post to an account more than once). */
function accountTerms<A extends string>(
  definition: MovementDefinition<A>,
  account: Account,
): Terms<A> | null {
  const postings = definition.postings.filter((p) => p.account === account);
  if (postings.length === 0) return null;
  if (postings.length > 1) throw new Error(`movement posts to ${account} twice; merge the terms`);
  return postings[0]!.terms;
}

/** SQLSTATE raised by `wallet_floor_guard` (see the wallet-floor migration). */
export const WALLET_FLOOR_SQLSTATE = 'WF001';

/**
 * The balance thresholds a debit can cross, each with its own arming (see the contract above): the low-balance
 * alert, the auto-recharge threshold, and zero (`depleted`: the available balance goes to zero or below, i.e. below
 * one nano). `bit` is the kind's bit in `last_crossing_kinds`.
 */
const BALANCE_THRESHOLDS = [
  { kind: 'low_balance', bit: 1, threshold: 'low_balance_threshold_nanos', armed: 'threshold_armed' },
  { kind: 'recharge', bit: 2, threshold: 'recharge_threshold_nanos', armed: 'recharge_armed' },
  { kind: 'depleted', bit: 4, threshold: '1::bigint', armed: 'depleted_armed' },
] as const;

/**
 * The month's spend limits a debit can reach, once per UTC month each (the month is remembered in `month`), by a
 * movement that spends (captures and usage); `value` is the limit column.
 */
const SPEND_THRESHOLDS = [
  { kind: 'budget_alert', bit: 8, value: 'budget_alert_nanos', month: 'budget_alert_month' },
  { kind: 'budget_limit', bit: 16, value: 'budget_limit_nanos', month: 'budget_limit_month' },
] as const;

/** The current UTC month, as `spend_month` and the budget months store it. */
export const CURRENT_MONTH_SQL = `(date_trunc('month', now() AT TIME ZONE 'UTC'))::date`;

/** This month's spend on the wallet row before the statement: what `month_spend_nanos` holds if it is this month's. */
export const MONTH_SPEND_SQL = `(CASE WHEN spend_month = ${CURRENT_MONTH_SQL} THEN month_spend_nanos ELSE 0 END)`;

/**
 * The SET clauses of the wallet update for a movement: both balances, this month's spend, and the threshold rule
 * for every kind of threshold. `delta` is the SQL change of the available balance; every clause reads the old row
 * (that is how UPDATE evaluates SET), so each new value is computed from the state before the movement.
 * `last_crossing_kinds` is written by every movement, so RETURNING shows which kinds this very statement crossed.
 */
function walletSetSql(
  definition: MovementDefinition,
  exprs: Record<string, string>,
  floor: string | undefined,
  extraSet: readonly string[],
): string {
  const availableTerms = accountTerms(definition, 'available');
  const heldTerms = accountTerms(definition, 'held');
  const delta = availableTerms ? termsSql(availableTerms, exprs) : '0::bigint';
  const after = `available_nanos + (${delta})`;
  const newAvailable =
    floor === undefined ? after : `wallet_floor_guard(available_nanos, ${delta}, ${floor})`;
  const crossings: string[] = [];
  const sets: string[] = [
    `available_nanos = ${newAvailable}`,
    ...(heldTerms ? [`held_nanos = held_nanos + (${termsSql(heldTerms, exprs)})`] : []),
  ];
  for (const t of BALANCE_THRESHOLDS) {
    const below = `below_threshold(${t.threshold}, ${after})`;
    const armed = definition.rearms ? `(${t.armed} OR (${delta}) > 0)` : t.armed;
    crossings.push(`CASE WHEN ${t.armed} AND ${below} THEN ${t.bit} ELSE 0 END`);
    sets.push(`${t.armed} = ${armed} AND NOT ${below}`);
  }
  if (definition.spends) {
    const spent = `(${MONTH_SPEND_SQL} + (${termsSql(definition.spends, exprs)}))`;
    sets.push(`month_spend_nanos = ${spent}`, `spend_month = ${CURRENT_MONTH_SQL}`);
    for (const t of SPEND_THRESHOLDS) {
      const reached = `${t.value} IS NOT NULL AND ${t.month} IS DISTINCT FROM ${CURRENT_MONTH_SQL} AND ${spent} >= ${t.value} AND (${termsSql(definition.spends, exprs)}) > 0`;
      crossings.push(`CASE WHEN ${reached} THEN ${t.bit} ELSE 0 END`);
      sets.push(`${t.month} = CASE WHEN ${reached} THEN ${CURRENT_MONTH_SQL} ELSE ${t.month} END`);
    }
  }
  sets.push(`last_crossing_kinds = ${crossings.join(' + ')}`, ...extraSet, `updated_at = now()`);
  return sets.join(',\n    ');
}

/** The crossing rows of one statement: one per kind whose bit `w.last_crossing_kinds` has. */
const CROSSING_KINDS_SQL = [
  ...BALANCE_THRESHOLDS.map(
    (t) =>
      `(${t.bit}, '${t.kind}', ${t.kind === 'depleted' ? '0::bigint' : `w.${t.threshold}`}, NULL::bigint)`,
  ),
  ...SPEND_THRESHOLDS.map((t) => `(${t.bit}, '${t.kind}', w.${t.value}, w.month_spend_nanos)`),
].join(', ');

export interface MovementSql<A extends string> {
  definition: MovementDefinition<A>;
  /** SQL of the entry kind, over the wallet row and `from`; defaults to the definition's kind as a literal. */
  kind?: string;
  /** SQL of the entry's ref, over the wallet row and `from`. */
  ref: string;
  /** SQL of each amount, over the wallet row (`wallets.`) and `from`; evaluated once per wallet row. */
  amounts: Record<A, string>;
  /** Source rows the update joins (`a`, `totals t JOIN locked l USING (customer_id)`), if any. */
  from?: string;
  /** Which wallet rows move, and any condition that must hold for the movement to happen at all. */
  where: string;
  /** SQL of the wallet floor in nanos, for debits that are not checked against the balance (see the contract). */
  floor?: string;
  /** Further SET clauses of the wallet update that only this statement makes (the rate-limit buckets of a hold). */
  extraSet?: readonly string[];
}

/**
 * The CTEs `w`, `e`, `p` and `c` that apply one movement to every wallet row `where` selects, for a WITH clause.
 * After them, `w` has one row per wallet moved (`customer_id`, `available_nanos`, `held_nanos`, `amt_<amount>`,
 * `ref`, `kind`, `crossed`), `e` the entries written (`id`, `customer_id`) and `c` the crossings recorded (`id`).
 */
export function movementSql<A extends string>(spec: MovementSql<A>): string {
  const { definition } = spec;
  const kind = spec.kind ?? (definition.kind === null ? null : `'${definition.kind}'`);
  if (kind === null) throw new Error('this movement takes its kind from the caller');
  const onW = Object.fromEntries(definition.amounts.map((a) => [a, `w.amt_${a}`])) as Record<A, string>;
  const postingSql = definition.postings.map(
    (p) =>
      `(${isCustomerAccount(p.account) ? 'w.customer_id' : 'NULL'}, '${p.account}', ${termsSql(p.terms, onW)})`,
  );
  const availableTerms = accountTerms(definition, 'available');
  const anyNonZero = definition.postings.map((p) => `(${termsSql(p.terms, onW)}) <> 0`).join(' OR ');
  return `w AS (
  UPDATE wallets SET ${walletSetSql(definition, spec.amounts, spec.floor, spec.extraSet ?? [])}
  ${spec.from ? `FROM ${spec.from}` : ''}
  WHERE ${spec.where}
  RETURNING wallets.customer_id, wallets.available_nanos, wallets.held_nanos, wallets.low_balance_threshold_nanos,
    wallets.recharge_threshold_nanos, wallets.budget_alert_nanos, wallets.budget_limit_nanos,
    wallets.month_spend_nanos, wallets.last_crossing_kinds,
    ${definition.amounts.map((a) => `(${spec.amounts[a]})::bigint AS amt_${a}`).join(', ')}, (${spec.ref})::text AS ref, (${kind})::text AS kind,
    (wallets.last_crossing_kinds <> 0) AS crossed
), e AS (
  INSERT INTO ledger_entries (customer_id, kind, ref, amount_nanos, balance_after_nanos)
  SELECT w.customer_id, w.kind, w.ref, ${availableTerms ? termsSql(availableTerms, onW) : '0'}, w.available_nanos
  FROM w WHERE ${anyNonZero}
  RETURNING id, customer_id
), p AS (
  INSERT INTO ledger_postings (entry_id, customer_id, account, amount_nanos)
  SELECT e.id, v.customer_id, v.account, v.amount FROM e JOIN w USING (customer_id)
  CROSS JOIN LATERAL (VALUES ${postingSql.join(', ')}) AS v(customer_id, account, amount)
  WHERE v.amount <> 0
), c AS (
  INSERT INTO threshold_crossings (customer_id, kind, threshold_nanos, balance_after_nanos, month_spend_nanos)
  SELECT w.customer_id, k.kind, k.threshold_nanos, w.available_nanos, k.month_spend_nanos
  FROM w CROSS JOIN LATERAL (VALUES ${CROSSING_KINDS_SQL}) AS k(bit, kind, threshold_nanos, month_spend_nanos)
  WHERE w.crossed AND w.last_crossing_kinds & k.bit <> 0
  ORDER BY w.customer_id, k.bit
  RETURNING id
)`;
}

/**
 * Sets or clears one of a wallet's settable balance thresholds (the low-balance alert, the auto-recharge threshold).
 * A new threshold is armed only if the balance is at or above it: setting it above the balance is not a crossing
 * (nothing was debited), and the next credit that reaches it arms it. Returns false when the customer does not exist.
 */
export async function setBalanceThreshold(
  db: Db,
  customer_id: string,
  kind: 'low_balance' | 'recharge',
  threshold_nanos: bigint | null,
): Promise<boolean> {
  const { threshold, armed } = BALANCE_THRESHOLDS.find((t) => t.kind === kind)!;
  const rows = await queryRows<{ customer_id: string }>(
    db,
    `UPDATE wallets SET ${threshold} = ?::bigint, ${armed} = NOT below_threshold(?::bigint, available_nanos)
     WHERE customer_id = ? RETURNING customer_id`,
    [threshold_nanos, threshold_nanos, customer_id],
  );
  return rows.length === 1;
}

/**
 * Arms one of a wallet's thresholds again by the rule a new threshold follows: armed exactly when the available balance
 * is at or above it. For a crossing that came to nothing because the balance was already back (a released hold, a
 * capture cheaper than its hold: credit that does not `rearm`), so that the next debit below it crosses again. The
 * caller holds the wallet lock. Returns false when the customer does not exist.
 */
export async function rearmBalanceThreshold(
  db: Db,
  customer_id: string,
  kind: 'low_balance' | 'recharge',
): Promise<boolean> {
  const { threshold, armed } = BALANCE_THRESHOLDS.find((t) => t.kind === kind)!;
  const rows = await queryRows<{ customer_id: string }>(
    db,
    `UPDATE wallets SET ${armed} = NOT below_threshold(${threshold}, available_nanos)
     WHERE customer_id = ? RETURNING customer_id`,
    [customer_id],
  );
  return rows.length === 1;
}

/** The low-balance alert threshold (`PUT .../balance-threshold`); see `setBalanceThreshold`. */
export const setLowBalanceThreshold = (db: Db, customer_id: string, threshold_nanos: bigint | null) =>
  setBalanceThreshold(db, customer_id, 'low_balance', threshold_nanos);

export interface MovementRequest<A extends string> {
  customer_id: string;
  definition: MovementDefinition<A>;
  /** With `ref`, the movement's idempotency key. Defaults to the definition's kind. */
  kind?: string;
  ref: string;
  amounts: Record<A, bigint>;
}

export interface PostedMovement {
  entry_id: bigint;
  /** false when an entry with the same (kind, ref) already existed and nothing was written. */
  created: boolean;
  wallet: Wallet;
  /** Whether this movement crossed the low-balance threshold (a crossing row was recorded). */
  crossed: boolean;
}

/**
 * Posts one movement inside a knex transaction. The caller must hold the wallet lock (`lockWallet` in
 * `db/ledger.ts`), which also makes the existence check race-free. Throws on a movement that writes nothing (all
 * amounts zero) or on a wallet of another customer: both are programmer errors.
 */
export async function postMovement<A extends string>(
  trx: Knex.Transaction,
  wallet: Wallet,
  request: MovementRequest<A>,
): Promise<PostedMovement> {
  const kind = request.kind ?? request.definition.kind;
  if (kind === null) throw new Error('this movement needs a kind');
  if (wallet.customer_id !== request.customer_id)
    throw new Error('movement posted under another customer’s lock');
  const postings = postingsOf(request.definition, request.amounts);
  if (postings.length < 2) throw new Error(`movement ${kind}:${request.ref} moves nothing`);

  const existing = await queryRows<{ id: bigint }>(
    trx,
    `SELECT id FROM ledger_entries WHERE kind = ? AND ref = ?`,
    [kind, request.ref],
  );
  if (existing[0]) return { entry_id: existing[0].id, created: false, wallet, crossed: false };

  const { amounts } = request.definition;
  const source = [
    `?::text AS customer_id`,
    `?::text AS kind`,
    `?::text AS ref`,
    ...amounts.map((a) => `?::bigint AS ${a}`),
  ].join(', ');
  const rows = await queryRows<{
    entry_id: bigint | null;
    available_nanos: bigint;
    held_nanos: bigint;
    crossed: boolean;
  }>(
    trx,
    `WITH src AS (SELECT ${source}),
     ${movementSql({
       definition: request.definition,
       kind: 'src.kind',
       ref: 'src.ref',
       amounts: Object.fromEntries(amounts.map((a) => [a, `src.${a}`])) as Record<A, string>,
       from: 'src',
       where: 'wallets.customer_id = src.customer_id',
     })}
     SELECT (SELECT id FROM e) AS entry_id, w.available_nanos, w.held_nanos, w.crossed FROM w`,
    [request.customer_id, kind, request.ref, ...amounts.map((a) => request.amounts[a])],
  );
  const row = rows[0];
  if (!row || row.entry_id === null) throw new Error(`movement ${kind}:${request.ref} wrote no entry`);
  const delta = walletDelta(postings);
  const next: Wallet = {
    customer_id: wallet.customer_id,
    available_nanos: wallet.available_nanos + delta.available_nanos,
    held_nanos: wallet.held_nanos + delta.held_nanos,
  };
  // The statement and the TypeScript evaluation of the same definition must agree (and the lock means nothing
  // else moved this wallet in between).
  if (row.available_nanos !== next.available_nanos || row.held_nanos !== next.held_nanos) {
    throw new Error(
      `movement ${kind}:${request.ref}: wallet ${row.available_nanos}/${row.held_nanos} vs expected`,
    );
  }
  return { entry_id: row.entry_id, created: true, wallet: next, crossed: row.crossed };
}
