import { type Db, queryRows } from './connection';

/**
 * The ledger's invariants, each a query that returns the rows breaking it. Run after every test file and by
 * `npm run ledger:check` against any database. An empty result means the books are consistent.
 */
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
  {
    name: "every wallet's available balance equals its postings",
    sql: `SELECT w.customer_id AS subject, w.available_nanos::text || ' vs ' || COALESCE(p.total, 0)::text AS detail
          FROM wallets w LEFT JOIN (SELECT customer_id, sum(amount_nanos) AS total FROM ledger_postings
            WHERE account = 'available' GROUP BY customer_id) p ON p.customer_id = w.customer_id
          WHERE w.available_nanos <> COALESCE(p.total, 0)`,
  },
  {
    name: "every wallet's held balance equals its postings",
    sql: `SELECT w.customer_id AS subject, w.held_nanos::text || ' vs ' || COALESCE(p.total, 0)::text AS detail
          FROM wallets w LEFT JOIN (SELECT customer_id, sum(amount_nanos) AS total FROM ledger_postings
            WHERE account = 'held' GROUP BY customer_id) p ON p.customer_id = w.customer_id
          WHERE w.held_nanos <> COALESCE(p.total, 0)`,
  },
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
    name: 'every succeeded top-up has exactly its grant and one succeeded payment',
    sql: `SELECT t.id AS subject, t.amount_nanos::text AS detail FROM top_ups t
          LEFT JOIN credit_grants g ON g.id = t.grant_id
          LEFT JOIN payments p ON p.idempotency_key = 'top_up:' || t.id AND p.status = 'succeeded'
          WHERE t.status = 'succeeded' AND (g.amount_nanos IS DISTINCT FROM t.amount_nanos
            OR p.amount_nanos IS DISTINCT FROM t.amount_nanos)`,
  },
  {
    name: 'no failed top-up granted credit',
    sql: `SELECT t.id AS subject, t.failure_code AS detail FROM top_ups t
          JOIN ledger_entries e ON e.kind = 'top_up' AND e.ref = t.id WHERE t.status = 'failed'`,
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
