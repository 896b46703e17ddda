import type { Pool } from 'pg';
import {
  type AllowanceUsage,
  type AllowanceWindow,
  allowanceWindows,
  calendarMonth,
  type RouteAnswer,
  routeAnswer,
  type RouteChain,
} from '../billing/soft-caps';
import type { Plan } from '../billing/plans';
import { queryRows, type Db } from './connection';
import { ContentionError } from './hot-path';

/**
 * Soft-cap counters (`allowance_counters`, README "Soft caps"). The route's decision and its count are one
 * statement on the hot path's `pg` pool (a named prepared statement per chain length), so no interleaving of
 * concurrent requests ever counts past a limit:
 *
 * 1. `customer` reads the customer and its live subscription; no row means no such customer (nothing is counted).
 * 2. `effective` picks the plan whose allowances apply (the subscription's while `active` and in the catalog, else
 *    Free) and what `period` means (the live subscription's current period, else the UTC month passed in).
 * 3. `steps` keeps that plan's chain out of the chains of every plan (computed by `billing/soft-caps.ts`), resolving
 *    `period` windows.
 * 4. `s1`, `s2`, ... each try one step in chain order: an upsert that inserts the window's counter at 1, or adds 1
 *    to it only `WHERE used < limit`. PostgreSQL evaluates that condition on the latest version of the row, after
 *    locking it (even one a concurrent transaction inserted after this statement's snapshot), so the check and the
 *    increment cannot be separated. A step runs only if no earlier step counted (its `NOT EXISTS` waits for them).
 *    A full counter is a decision, not a lost race: the next step is tried in the same statement, so a request never
 *    has to start over because a concurrent one took the last unit. A counter already full in the statement's
 *    snapshot is skipped without the upsert (counts only grow within a window, so it is still full): past an
 *    allowance a request locks and writes nothing it does not count, and one served unlimited or with every
 *    allowance exhausted writes nothing at all.
 *
 * Locks follow the chain's order, so two requests can deadlock only on a plan whose downgrades form a cycle through
 * two allowances (A -> B -> A) walked from both ends at once; PostgreSQL aborts one, which is run again (bounded).
 */

export interface RouteInput {
  customer_id: string;
  /** The requested model's chain on every plan of the catalog (`routeChains`). */
  chains: readonly RouteChain[];
  /** The Free plan's id: its allowances apply while past due or without a subscription. */
  free_plan_id: string;
  /** When the request arrived: decides the UTC month of a customer without a live subscription. */
  at: Date;
}

/** The answer, or `unknown_customer` (nothing counted). */
export type RouteOutcome = { ok: true; answer: RouteAnswer } | { ok: false; code: 'unknown_customer' };

const DEADLOCK_DETECTED = '40P01';
const MAX_ROUTE_ATTEMPTS = 3;

/** The statement for chains of up to `steps` counted steps (see the module comment). */
function routeSql(steps: number): string {
  const tries: string[] = [];
  for (let k = 1; k <= steps; k++) {
    const earlier = Array.from({ length: k - 1 }, (_, j) => ` AND NOT EXISTS (SELECT 1 FROM s${j + 1})`).join(
      '',
    );
    tries.push(`s${k} AS (
  INSERT INTO allowance_counters AS ac (customer_id, counter_key, window_start, window_end, used)
  SELECT customer_id, counter_key, window_start, window_end, 1 FROM steps st WHERE step = ${k} AND limit_n > 0${earlier}
    AND NOT EXISTS (SELECT 1 FROM allowance_counters f WHERE (f.customer_id, f.counter_key, f.window_start)
      = (st.customer_id, st.counter_key, st.window_start) AND f.used >= st.limit_n)
  ON CONFLICT (customer_id, counter_key, window_start) DO UPDATE SET used = ac.used + 1
    WHERE ac.used < (SELECT limit_n FROM steps WHERE step = ${k})
  RETURNING ${k} AS step, ac.used
)`);
  }
  const counted =
    tries.length === 0
      ? 'SELECT NULL::int AS step, NULL::int AS used WHERE false'
      : tries.map((_, k) => `SELECT * FROM s${k + 1}`).join(' UNION ALL ');
  return `
WITH customer AS (
  SELECT c.id, s.plan, s.status, s.current_period_start, s.current_period_end
  FROM customers c LEFT JOIN subscriptions s ON s.customer_id = c.id AND s.status <> 'canceled'
  WHERE c.id = $1
), effective AS (
  SELECT id AS customer_id,
    CASE WHEN status = 'active' AND plan = ANY($5::text[]) THEN plan ELSE $2 END AS plan,
    COALESCE(current_period_start, $3::timestamptz) AS period_start,
    COALESCE(current_period_end, $4::timestamptz) AS period_end
  FROM customer
), steps AS (
  SELECT e.customer_id, t.step, t.counter_key, t.limit_n,
    COALESCE(t.window_start, e.period_start) AS window_start, COALESCE(t.window_end, e.period_end) AS window_end
  FROM unnest($6::text[], $7::int[], $8::text[], $9::int[], $10::timestamptz[], $11::timestamptz[])
    AS t(plan, step, counter_key, limit_n, window_start, window_end)
  JOIN effective e USING (plan)
)${tries.map((t) => `, ${t}`).join('')}
SELECT e.plan, e.period_start, e.period_end, c.step, c.used
FROM effective e LEFT JOIN (${counted}) c ON true`;
}

const statements = new Map<number, { name: string; text: string }>();

function routeStatement(steps: number): { name: string; text: string } {
  let statement = statements.get(steps);
  if (!statement) {
    statement = { name: `route_${steps}`, text: routeSql(steps) };
    statements.set(steps, statement);
  }
  return statement;
}

/**
 * Routes one request and counts it, in one statement (see the module comment). Throws `ContentionError` when the
 * statement deadlocked `MAX_ROUTE_ATTEMPTS` times (nothing was counted; the API answers 503 and a retry is safe).
 */
export async function routeRequest(pool: Pool, input: RouteInput): Promise<RouteOutcome> {
  const month = calendarMonth(input.at);
  const plans: string[] = [];
  const step: number[] = [];
  const counter: string[] = [];
  const limit: number[] = [];
  const start: (Date | null)[] = [];
  const end: (Date | null)[] = [];
  for (const chain of input.chains) {
    chain.steps.forEach((s, i) => {
      plans.push(chain.plan_id);
      step.push(i + 1);
      counter.push(s.counter_key);
      limit.push(s.allowance.limit);
      start.push(s.window?.start ?? null);
      end.push(s.window?.end ?? null);
    });
  }
  const longest = Math.max(0, ...input.chains.map((c) => c.steps.length));
  const values = [
    input.customer_id,
    input.free_plan_id,
    month.start,
    month.end,
    input.chains.map((c) => c.plan_id),
    plans,
    step,
    counter,
    limit,
    start,
    end,
  ];
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await pool.query<{
        plan: string;
        period_start: Date;
        period_end: Date;
        step: number | null;
        used: number | null;
      }>({ ...routeStatement(longest), values });
      const row = result.rows[0];
      if (!row) return { ok: false, code: 'unknown_customer' };
      const period = { start: row.period_start, end: row.period_end };
      const counted = row.step === null ? null : { step: row.step, used: row.used! };
      const chain = input.chains.find((c) => c.plan_id === row.plan);
      // No chain: the catalog has no plan of that id (no Free plan), so nothing is capped.
      if (!chain) return { ok: true, answer: uncapped(input, row.plan) };
      return { ok: true, answer: routeAnswer(chain, counted, period) };
    } catch (error) {
      if ((error as { code?: string }).code !== DEADLOCK_DETECTED) throw error;
      if (attempt >= MAX_ROUTE_ATTEMPTS) throw new ContentionError(attempt, DEADLOCK_DETECTED);
    }
  }
}

function uncapped(input: RouteInput, plan: string): RouteAnswer {
  const requested_model = input.chains[0]?.requested_model ?? '';
  return {
    model: requested_model,
    requested_model,
    downgraded: false,
    reason: null,
    remaining: null,
    resets_at: null,
    plan,
  };
}

/**
 * Each allowance of `plan` with what the customer used of it in the window that holds `at` (0 when nothing was
 * counted yet). `period` is what `period` windows mean for this customer (`periodWindow` of its live subscription);
 * null is the UTC calendar month of `at`. For `GET /v1/customers/:id/subscription`'s `usage_this_period`; pass the
 * plan whose allowances apply (`effectivePlan`: Free while past due).
 */
export async function allowanceUsage(
  db: Db,
  customer_id: string,
  plan: Plan,
  at: Date,
  period: AllowanceWindow | null,
): Promise<AllowanceUsage[]> {
  const windows = allowanceWindows(plan, at, period ?? calendarMonth(at));
  if (windows.length === 0) return [];
  // A customer has a handful of counters since the earliest of these windows began: read them all, match here.
  const earliest = new Date(Math.min(...windows.map((w) => w.window.start.getTime())));
  const rows = await queryRows<{ counter_key: string; window_start: Date; used: number }>(
    db,
    `SELECT counter_key, window_start, used FROM allowance_counters WHERE customer_id = ? AND window_start >= ?`,
    [customer_id, earliest],
  );
  const used = new Map(rows.map((r) => [`${r.counter_key}@${r.window_start.getTime()}`, r.used]));
  return windows.map(({ allowance, counter_key, window }) => {
    const count = used.get(`${counter_key}@${window.start.getTime()}`) ?? 0;
    return {
      models: allowance.models,
      limit: allowance.limit,
      used: count,
      remaining: Math.max(allowance.limit - count, 0),
      window: allowance.window,
      downgrade_to: allowance.downgrade_to,
      window_start: window.start,
      resets_at: window.end,
    };
  });
}
