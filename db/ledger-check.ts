import { type Db, queryRows } from './connection';

/**
 * The ledger's invariants, each a query that returns the rows breaking it. Run after every test file and by
 * `npm run ledger:check` against any database. An empty result means the books are consistent.
 */
/** A wallet column (the hot path's balance row) equals the sum of the postings to that customer account. */
function walletMatchesPostings(account: 'available' | 'held') {
  const column = `${account}_nanos`;
  return {
    name: `every wallet's ${account} balance equals its postings`,
    sql: `SELECT w.customer_id AS subject, w.${column}::text || ' vs ' || COALESCE(p.total, 0)::text AS detail
          FROM wallets w LEFT JOIN (SELECT customer_id, sum(amount_nanos) AS total FROM ledger_postings
            WHERE account = '${account}' GROUP BY customer_id) p ON p.customer_id = w.customer_id
          WHERE w.${column} <> COALESCE(p.total, 0)`,
  };
}

const INVARIANTS: { name: string; sql: string }[] = [
  {
    name: 'every entry has at least two postings that sum to zero',
    sql: `SELECT e.id::text AS subject, COALESCE(sum(p.amount_nanos), 0)::text AS detail
          FROM ledger_entries e LEFT JOIN ledger_postings p ON p.entry_id = e.id
          GROUP BY e.id HAVING count(p.id) < 2 OR COALESCE(sum(p.amount_nanos), 0) <> 0`,
  },
  {
    name: 'all postings together sum to zero',
    sql: `SELECT 'all' AS subject, sum(amount_nanos)::text AS detail FROM ledger_postings
          HAVING sum(amount_nanos) <> 0`,
  },
  {
    name: "an entry's amount is its change to the customer's available account",
    sql: `SELECT e.id::text AS subject, e.amount_nanos::text || ' vs ' || COALESCE(sum(p.amount_nanos), 0)::text AS detail
          FROM ledger_entries e LEFT JOIN ledger_postings p ON p.entry_id = e.id AND p.account = 'available'
          GROUP BY e.id HAVING e.amount_nanos <> COALESCE(sum(p.amount_nanos), 0)`,
  },
  walletMatchesPostings('available'),
  walletMatchesPostings('held'),
  {
    name: "no grant's remaining is negative or above its amount",
    sql: `SELECT id AS subject, remaining_nanos::text || ' of ' || amount_nanos::text AS detail FROM credit_grants
          WHERE remaining_nanos < 0 OR remaining_nanos > amount_nanos`,
  },
  {
    name: 'open grants hold at least what the wallet owns (credit never appears without a grant)',
    sql: `SELECT w.customer_id AS subject,
            (w.available_nanos + w.held_nanos)::text || ' owned vs ' || COALESCE(g.total, 0)::text AS detail
          FROM wallets w LEFT JOIN (SELECT customer_id, sum(remaining_nanos) AS total FROM credit_grants
            WHERE closed_at IS NULL GROUP BY customer_id) g ON g.customer_id = w.customer_id
          WHERE w.available_nanos + w.held_nanos > COALESCE(g.total, 0)`,
  },
  {
    name: 'a retired grant keeps exactly what it reserved for holds still to settle (nothing once closed)',
    sql: `SELECT g.id AS subject, g.remaining_nanos::text || ' vs ' || COALESCE(c.total, 0)::text AS detail
          FROM credit_grants g LEFT JOIN (SELECT grant_id, sum(amount_nanos) AS total FROM credit_grant_holds
            WHERE settled_at IS NULL GROUP BY grant_id) c ON c.grant_id = g.id
          WHERE (g.closed_reason IS NOT NULL AND g.remaining_nanos <> COALESCE(c.total, 0))
             OR (g.closed_at IS NOT NULL AND c.total IS NOT NULL)`,
  },
  {
    name: 'retired grants never claim more of a hold than the hold, nor are paid more than its capture took',
    sql: `SELECT a.id AS subject, 'hold ' || a.hold_nanos::text || ' claimed ' || c.claimed::text || ' paid ' ||
              c.paid::text AS detail
          FROM authorizations a JOIN (SELECT authorization_id, sum(amount_nanos) AS claimed,
              COALESCE(sum(paid_nanos), 0) AS paid FROM credit_grant_holds GROUP BY authorization_id) c
            ON c.authorization_id = a.id
          WHERE c.claimed > a.hold_nanos OR c.paid > a.hold_nanos - COALESCE(a.released_nanos, a.hold_nanos)`,
  },
  {
    name: 'what a settled hold gave back of a retired grant was written off by its own entry',
    sql: `SELECT c.grant_id || '/' || c.authorization_id AS subject,
              c.written_off_nanos::text || ' vs ' || COALESCE(-e.amount_nanos, 0)::text AS detail
          FROM credit_grant_holds c
          LEFT JOIN ledger_entries e ON e.kind IN ('expiry', 'void')
            AND e.ref = c.grant_id || '/hold/' || c.authorization_id
          WHERE c.settled_at IS NOT NULL AND c.written_off_nanos <> COALESCE(-e.amount_nanos, 0)`,
  },
  {
    name: 'every succeeded top-up has exactly its grant and one succeeded payment',
    sql: `SELECT t.id AS subject, t.amount_nanos::text AS detail FROM top_ups t
          LEFT JOIN credit_grants g ON g.id = t.grant_id
          LEFT JOIN payments p ON p.idempotency_key = 'top_up:' || t.id AND p.status = 'succeeded'
          WHERE t.status = 'succeeded' AND (g.amount_nanos IS DISTINCT FROM t.amount_nanos
            OR p.amount_nanos IS DISTINCT FROM t.amount_nanos)`,
  },
  {
    // A recharge still pending is in flight (its grant is the next step); any other outcome after a succeeded charge
    // is a card charged without its credit (a refund is owed).
    name: 'a succeeded auto-recharge payment has a succeeded recharge with its grant',
    sql: `SELECT p.id AS subject, COALESCE(r.status, 'no recharge') || ' ' || p.amount_nanos::text AS detail
          FROM payments p
          LEFT JOIN auto_recharges r ON p.id = 'pay_' || r.id
          LEFT JOIN credit_grants g ON g.id = r.grant_id
          WHERE p.idempotency_key LIKE 'auto!_recharge:%' ESCAPE '!' AND p.status = 'succeeded'
            AND (r.id IS NULL OR (r.status <> 'pending' AND (r.status <> 'succeeded' OR r.payment_id IS DISTINCT FROM p.id
              OR g.amount_nanos IS DISTINCT FROM p.amount_nanos)))`,
  },
  {
    name: 'no payment is refunded beyond its amount, and only a succeeded payment is refunded',
    sql: `SELECT p.id AS subject, p.status || ' ' || p.amount_nanos::text || ' refunded ' || r.total::text AS detail
          FROM payments p JOIN (SELECT payment_id, sum(amount_nanos) AS total FROM refunds
            WHERE status = 'succeeded' OR (status = 'pending' AND claimed_at IS NOT NULL) GROUP BY payment_id) r
            ON r.payment_id = p.id
          WHERE r.total > p.amount_nanos OR p.status <> 'succeeded'`,
  },
  {
    // A failed refund whose claim was not given back is one the gateway refunded that the account could not settle.
    name: "a refund's entries follow its status: claimed once for its amount, then settled or given back",
    sql: `SELECT r.id AS subject, r.status || ' claim ' || COALESCE(c.amount_nanos::text, 'none') || ' settled ' ||
              (s.id IS NOT NULL)::text || ' released ' || (l.id IS NOT NULL)::text AS detail
          FROM refunds r
          LEFT JOIN ledger_entries c ON c.kind = 'refund' AND c.ref = r.id
          LEFT JOIN ledger_entries s ON s.kind = 'refund_settled' AND s.ref = r.id
          LEFT JOIN ledger_entries l ON l.kind = 'refund_release' AND l.ref = r.id
          WHERE (r.claimed_at IS NOT NULL) <> (c.id IS NOT NULL)
             OR (c.id IS NOT NULL AND c.amount_nanos <> -r.amount_nanos)
             OR (s.id IS NOT NULL) <> (r.status = 'succeeded')
             OR (l.id IS NOT NULL) <> (r.status = 'failed' AND r.claimed_at IS NOT NULL)`,
  },
  {
    name: 'the refunds clearing account holds exactly the claims of the refunds under way',
    sql: `SELECT 'refunds' AS subject, COALESCE(p.total, 0)::text || ' vs ' || COALESCE(r.total, 0)::text AS detail
          FROM (SELECT sum(amount_nanos) AS total FROM ledger_postings WHERE account = 'refunds') p,
               (SELECT sum(amount_nanos) AS total FROM refunds WHERE status = 'pending' AND claimed_at IS NOT NULL) r
          WHERE COALESCE(p.total, 0) <> COALESCE(r.total, 0)`,
  },
  {
    name: 'the disputes account holds exactly the credit frozen by open disputes, each frozen and closed once',
    sql: `SELECT 'disputes' AS subject, COALESCE(p.total, 0)::text || ' vs ' || COALESCE(d.total, 0)::text AS detail
          FROM (SELECT sum(amount_nanos) AS total FROM ledger_postings WHERE account = 'disputes') p,
               (SELECT sum(amount_nanos) AS total FROM disputes WHERE status = 'open') d
          WHERE COALESCE(p.total, 0) <> COALESCE(d.total, 0)
          UNION ALL
          SELECT d.id, d.status FROM disputes d
          LEFT JOIN ledger_entries f ON f.kind = 'dispute' AND f.ref = d.id
          LEFT JOIN ledger_entries w ON w.kind = 'dispute_won' AND w.ref = d.id
          LEFT JOIN ledger_entries l ON l.kind = 'dispute_lost' AND l.ref = d.id
          WHERE f.id IS NULL OR f.amount_nanos <> -d.amount_nanos
             OR (w.id IS NOT NULL) <> (d.status = 'won') OR (l.id IS NOT NULL) <> (d.status = 'lost')`,
  },
  {
    name: 'no failed top-up granted credit',
    sql: `SELECT t.id AS subject, t.failure_code AS detail FROM top_ups t
          JOIN ledger_entries e ON e.kind = 'top_up' AND e.ref = t.id WHERE t.status = 'failed'`,
  },
  {
    // Invoices: a paid card invoice was paid by exactly one succeeded charge of its total, and its lines sum to it.
    name: 'a paid card invoice has a succeeded payment of its total, and its lines sum to its total',
    sql: `SELECT i.id AS subject, i.total_nanos::text || ' total, paid ' || COALESCE(p.amount_nanos, 0)::text ||
              ', lines ' || COALESCE(l.sum, 0)::text AS detail
          FROM invoices i
          LEFT JOIN payments p ON p.id = i.payment_id AND p.status = 'succeeded'
          LEFT JOIN (SELECT invoice_id, sum(amount_nanos) AS sum FROM invoice_lines GROUP BY invoice_id) l
            ON l.invoice_id = i.id
          WHERE COALESCE(l.sum, 0) <> i.total_nanos
             OR (i.status = 'paid' AND i.collection = 'charge' AND i.total_nanos > 0
                 AND p.amount_nanos IS DISTINCT FROM i.total_nanos)`,
  },
  {
    // A charge for an invoice that is not paid is money taken without what it bought (a refund is owed).
    name: 'every succeeded invoice charge paid its invoice',
    sql: `SELECT p.id AS subject, COALESCE(i.status, 'no invoice') AS detail FROM payments p
          LEFT JOIN invoices i ON i.payment_id = p.id
          WHERE p.idempotency_key LIKE 'invoice:%' AND p.status = 'succeeded'
            AND (i.id IS NULL OR i.status <> 'paid')`,
  },
  {
    name: 'every usage or capture entry charges exactly the cost of the usage events it charged',
    sql: `SELECT e.id::text AS subject, e.kind || ' revenue ' || COALESCE(r.revenue, 0)::text || ' vs events ' ||
              COALESCE(u.cost, 0)::text AS detail
          FROM ledger_entries e
          LEFT JOIN (SELECT entry_id, sum(cost_nanos) AS cost FROM usage_event_entries GROUP BY entry_id) u
            ON u.entry_id = e.id
          LEFT JOIN (SELECT entry_id, sum(amount_nanos) AS revenue FROM ledger_postings WHERE account = 'revenue'
                     GROUP BY entry_id) r ON r.entry_id = e.id
          WHERE e.kind IN ('usage', 'capture') AND COALESCE(u.cost, 0) <> COALESCE(r.revenue, 0)`,
  },
  {
    name: 'every usage event with a cost was charged by an entry of its customer',
    sql: `SELECT customer_id || '/' || event_id AS subject, COALESCE(entry_kind, 'no entry') AS detail
          FROM usage_event_entries
          WHERE cost_nanos > 0 AND (entry_id IS NULL OR entry_customer_id <> customer_id)`,
  },
  {
    name: "a held authorization's hold is in the wallet's held balance, and nothing else is",
    sql: `SELECT w.customer_id AS subject, w.held_nanos::text || ' held vs ' || COALESCE(a.total, 0)::text AS detail
          FROM wallets w LEFT JOIN (SELECT customer_id, sum(hold_nanos) AS total FROM authorizations
            WHERE status = 'held' GROUP BY customer_id) a ON a.customer_id = w.customer_id
          WHERE w.held_nanos <> COALESCE(a.total, 0)`,
  },
  {
    name: 'a settled authorization charged its cost and released the rest of its hold',
    sql: `SELECT id AS subject, status || ' hold ' || hold_nanos::text || ' cost ' || COALESCE(cost_nanos, -1)::text ||
              ' released ' || COALESCE(released_nanos, -1)::text AS detail
          FROM authorizations WHERE status <> 'held'
            AND (cost_nanos IS NULL OR released_nanos IS NULL OR released_nanos <> GREATEST(hold_nanos - cost_nanos, 0)
                 OR (status <> 'captured' AND cost_nanos <> 0))`,
  },
];

export interface Violation {
  invariant: string;
  subject: string;
  detail: string;
}

export async function checkLedger(db: Db): Promise<Violation[]> {
  const violations: Violation[] = [];
  for (const invariant of INVARIANTS) {
    const rows = await queryRows<{ subject: string; detail: string }>(db, invariant.sql);
    violations.push(
      ...rows.map((r) => ({ invariant: invariant.name, subject: r.subject, detail: r.detail })),
    );
  }
  return violations;
}
