import type { Socket } from 'node:net';
import { Pool, type PoolClient, type QueryConfig, type QueryResult, type QueryResultRow } from 'pg';
import type { UsageLines } from '../billing/metering';
import './connection'; // registers the int8 -> bigint parser before any query runs
import {
  CURRENT_MONTH_SQL,
  MONTH_SPEND_SQL,
  MOVEMENTS,
  movementSql,
  WALLET_FLOOR_SQLSTATE,
} from './postings';

/**
 * The hot path: authorize, capture, void and ingest. Each operation is one SQL statement (ingestion: one short
 * transaction) against the customer's wallet row plus appends, straight through `pg` with named prepared
 * statements. The conditional update of the wallet row is the whole concurrency story: PostgreSQL's row lock
 * serialises one customer's calls, and `available_nanos >= hold` is checked and applied in the same statement,
 * so no interleaving can overdraw.
 *
 * What each statement does to the ledger, the wallet and the low-balance threshold is not written here: each embeds
 * its movement's CTEs from `db/postings.ts` (the one posting path), fed by its own source rows. So every statement
 * also records a threshold crossing in the same statement, noticed exactly once however many calls race past it.
 */

export interface HotPathOptions {
  databaseUrl: string;
  pool_max: number;
  statement_timeout_ms?: number;
}

export function createHotPathPool(options: HotPathOptions): Pool {
  const pool = new Pool({
    connectionString: options.databaseUrl,
    max: options.pool_max,
    statement_timeout: options.statement_timeout_ms ?? 10_000,
  });
  pool.on('connect', (client) => coalesceWrites(client));
  return pool;
}

/**
 * `pg` writes each protocol message of a prepared statement (bind, describe, execute, sync) to the socket
 * separately: four system calls per query, a fifth of the hot path's CPU in profiles. Corking the socket for the
 * rest of the tick sends them as one packet. `connection.stream` is the client's socket (a net.Socket).
 */
function coalesceWrites(client: PoolClient): void {
  const stream = (client as unknown as { connection?: { stream?: Socket } }).connection?.stream;
  if (!stream || typeof stream.cork !== 'function') return;
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  let corked = false;
  stream.write = ((...args: unknown[]) => {
    if (!corked) {
      corked = true;
      stream.cork();
      process.nextTick(() => {
        corked = false;
        stream.uncork();
      });
    }
    return write(...args);
  }) as Socket['write'];
}

/**
 * What an authorization must fit under besides the balance, as SQL over the wallet row before the statement (see the
 * lifecycle migration and db/limits.ts). `$4` is the hold, `$7` the call's estimated tokens.
 *
 * - Budget and usage limit: this month's spend plus every open hold plus this hold must not pass the customer's
 *   budget limit, nor the usage limit in effect (the operator's override, else the tier's). Holds count as they
 *   count against the balance, so concurrent authorizations can never reserve past a limit.
 * - Rate limits: two token buckets on the row, requests per minute and tokens per minute (the override, else the
 *   tier's; null: unlimited). Each refills continuously at its per-minute rate up to one minute's worth; a call
 *   takes one request and its estimated tokens (all of a bucket at most, so a call larger than the TPM still runs
 *   once the bucket is full). The buckets are doubles (rates, not money); `RATE_EPSILON` absorbs their rounding so
 *   that a bucket refilled for exactly the advertised Retry-After is never a hair short.
 */
const RATE_EPSILON = 1e-6;
const USAGE_LIMIT = `COALESCE(override_usage_limit_nanos, tier_usage_limit_nanos)`;
const RPM = `COALESCE(override_rpm, tier_rpm)`;
const TPM = `COALESCE(override_tpm, tier_tpm)`;
const ELAPSED_S = `GREATEST(extract(epoch FROM now() - rate_refilled_at)::float8, 0)`;
const bucketNow = (left: string, perMinute: string) =>
  `LEAST(${perMinute}::float8, COALESCE(${left} + ${perMinute} * ${ELAPSED_S} / 60.0, ${perMinute}::float8))`;
const REQUESTS_NOW = bucketNow('rate_requests', RPM);
const TOKENS_NOW = bucketNow('rate_tokens', TPM);

/** The checks of one authorization as SQL, given the SQL of its hold and its estimated tokens. */
function authorizationChecks(hold: string, tokens: string) {
  const spendWithHold = `(${MONTH_SPEND_SQL} + held_nanos + ${hold})`;
  const tokensNeeded = `LEAST(${tokens}, ${TPM})::float8`;
  // Seconds until both buckets hold what this call needs (0: they do now).
  const rateWait_s = `GREATEST(
    CASE WHEN ${RPM} IS NULL OR ${REQUESTS_NOW} >= 1 - ${RATE_EPSILON} THEN 0
         ELSE (1 - ${REQUESTS_NOW}) * 60.0 / ${RPM} END,
    CASE WHEN ${TPM} IS NULL OR ${TOKENS_NOW} >= ${tokensNeeded} - ${RATE_EPSILON} THEN 0
         ELSE (${tokensNeeded} - ${TOKENS_NOW}) * 60.0 / ${TPM} END)`;
  return {
    balance: `available_nanos > 0 AND available_nanos >= ${hold}`,
    budget: `(budget_limit_nanos IS NULL OR ${spendWithHold} <= budget_limit_nanos)`,
    usageLimit: `(${USAGE_LIMIT} IS NULL OR ${spendWithHold} <= ${USAGE_LIMIT})`,
    rateWait_s,
    rate: `(${RPM} IS NULL AND ${TPM} IS NULL OR ${rateWait_s} = 0)`,
    /** The buckets after this call took its share (run only when `rate` held). */
    takeFromBuckets: [
      `rate_requests = CASE WHEN ${RPM} IS NULL THEN NULL ELSE ${REQUESTS_NOW} - 1 END`,
      `rate_tokens = CASE WHEN ${TPM} IS NULL THEN NULL ELSE GREATEST(${TOKENS_NOW} - ${tokensNeeded}, 0) END`,
      `rate_refilled_at = CASE WHEN ${RPM} IS NULL AND ${TPM} IS NULL THEN NULL
         ELSE GREATEST(COALESCE(rate_refilled_at, now()), now()) END`,
    ],
  };
}

const AUTHORIZE_CHECKS = authorizationChecks('$4::bigint', '$7::bigint');

/**
 * Authorize: the hold is taken only if the available balance is positive and covers it, this month's spend and open
 * holds stay within the budget and the usage limit, and the rate buckets hold the call, all checked and applied in
 * the wallet update itself, so no interleaving can overdraw, overspend or outrun a limit.
 */
const AUTHORIZE_SQL = `
WITH ${movementSql({
  definition: MOVEMENTS.hold,
  ref: '$2::text',
  amounts: { hold: '$4::bigint' },
  where: `customer_id = $1 AND ${AUTHORIZE_CHECKS.balance} AND ${AUTHORIZE_CHECKS.budget}
    AND ${AUTHORIZE_CHECKS.usageLimit} AND ${AUTHORIZE_CHECKS.rate}`,
  extraSet: AUTHORIZE_CHECKS.takeFromBuckets,
})}, a AS (
  INSERT INTO authorizations (id, customer_id, model, hold_nanos, status, created_at, expires_at)
  SELECT $2, $1, $3, $4::bigint, 'held', $6::timestamptz, $5::timestamptz FROM w
)
SELECT w.available_nanos, (SELECT count(*) FROM c)::int AS crossings FROM w`;

/**
 * Why an authorization was refused, read only on the refusal path with the same expressions as AUTHORIZE_SQL (a
 * retried request whose hold was taken the first time is refused by the checks but is not a refusal).
 */
const REFUSAL_CHECKS = authorizationChecks('$3::bigint', '$4::bigint');
/**
 * Why an authorization was refused, read only on the refusal path with the same checks as AUTHORIZE_SQL (`r`). The
 * first authorization of a month refused by the budget limit also records the `budget_limit` crossing (`fired`, `c`)
 * if spend alone has not reached the limit yet (open holds have): the customer is blocked from now on, and
 * `budget.limit_reached` says so once per month either way (the wallet's `budget_limit_month` decides, under its lock).
 * A hold larger than the whole limit is refused without it while spend and holds are below the limit: it could never
 * fit, whatever was spent, so it says nothing about the month, and marking the month would silence the event when
 * spend really reaches the limit.
 */
const AUTHORIZE_REFUSAL_SQL = `
WITH r AS (
  SELECT customer_id, available_nanos, EXISTS (SELECT 1 FROM authorizations WHERE id = $2) AS held_already,
    ${REFUSAL_CHECKS.balance} AS balance_ok, ${REFUSAL_CHECKS.budget} AS budget_ok,
    ${REFUSAL_CHECKS.usageLimit} AS usage_limit_ok, ceil(${REFUSAL_CHECKS.rateWait_s})::int AS rate_wait_s,
    ${MONTH_SPEND_SQL} + held_nanos AS committed_nanos, budget_limit_nanos, ${USAGE_LIMIT} AS usage_limit_nanos
  FROM wallets WHERE customer_id = $1
), fired AS (
  UPDATE wallets SET budget_limit_month = ${CURRENT_MONTH_SQL}
  FROM r
  WHERE wallets.customer_id = r.customer_id AND NOT r.held_already AND NOT r.budget_ok
    AND wallets.budget_limit_nanos IS NOT NULL
    AND ($3::bigint <= wallets.budget_limit_nanos OR r.committed_nanos >= wallets.budget_limit_nanos)
    AND wallets.budget_limit_month IS DISTINCT FROM ${CURRENT_MONTH_SQL}
  RETURNING wallets.customer_id, wallets.budget_limit_nanos, wallets.available_nanos,
    ${MONTH_SPEND_SQL.replace(/(spend_month|month_spend_nanos)/g, 'wallets.$1')} AS month_spend_nanos
), c AS (
  INSERT INTO threshold_crossings (customer_id, kind, threshold_nanos, balance_after_nanos, month_spend_nanos)
  SELECT customer_id, 'budget_limit', budget_limit_nanos, available_nanos, month_spend_nanos FROM fired
  RETURNING id
)
SELECT r.*, (SELECT count(*) FROM c)::int AS crossings FROM r`;

/** Attempts of an authorization whose refusal the re-check could not explain (the wallet changed in between). */
const MAX_AUTHORIZE_ATTEMPTS = 3;

/**
 * Capture locks in the same order as ingestion: the authorization, then the usage event's key (`ev`), then the
 * wallet (`w` waits for `ev` through its EXISTS), so a capture and an ingestion racing on one event id queue
 * behind each other instead of deadlocking. A cost beyond the hold is debited without a balance check, down to the
 * wallet floor ($10); past it the floor guard aborts the whole statement.
 */
const CAPTURE_SQL = `
WITH a AS (
  UPDATE authorizations SET status = 'captured', settled_at = now(), cost_nanos = $2::bigint,
    released_nanos = GREATEST(hold_nanos - $2::bigint, 0), event_id = $4
  WHERE id = $1 AND status = 'held' AND expires_at > now()
  RETURNING id, customer_id, model, hold_nanos, status, created_at, expires_at, settled_at, cost_nanos,
    released_nanos, event_id
), ev AS (
  INSERT INTO usage_events (customer_id, event_id, model, feature, processing, occurred_at, cost_nanos,
    provider_cost_nanos, price_version, lines, authorization_id)
  SELECT a.customer_id, $4, a.model, $9, $8, $5::timestamptz, $2::bigint, $3::bigint, $7, $6::jsonb, $1
  FROM a
  RETURNING customer_id
), ${movementSql({
  definition: MOVEMENTS.capture,
  ref: '$1::text',
  amounts: { hold: 'a.hold_nanos', cost: '$2::bigint' },
  from: 'a',
  where: 'wallets.customer_id = a.customer_id AND EXISTS (SELECT 1 FROM ev)',
  floor: '$10::bigint',
})}
SELECT a.*, w.available_nanos, (SELECT count(*) FROM c)::int AS crossings,
  EXISTS (SELECT 1 FROM credit_grant_holds g WHERE g.authorization_id = $1 AND g.settled_at IS NULL) AS claimed
FROM a JOIN w USING (customer_id)`;

/** Releases a hold: `voided` by the caller, or `expired` by the sweeper (only once its time has passed). */
const RELEASE_SQL = `
WITH a AS (
  UPDATE authorizations SET status = $2, settled_at = now(), cost_nanos = 0, released_nanos = hold_nanos
  WHERE id = $1 AND status = 'held' AND ($2 = 'voided' OR expires_at <= now())
  RETURNING customer_id, hold_nanos
), ${movementSql({
  definition: MOVEMENTS.release,
  ref: '$1::text',
  amounts: { hold: 'a.hold_nanos' },
  from: 'a',
  where: 'wallets.customer_id = a.customer_id',
})}
SELECT w.amt_hold AS hold_nanos, (SELECT count(*) FROM c)::int AS crossings,
  EXISTS (SELECT 1 FROM credit_grant_holds g WHERE g.authorization_id = $1 AND g.settled_at IS NULL) AS claimed
FROM w`;

/**
 * One statement per batch. Events of unknown customers are left out (and reported), repeats of a recorded
 * (customer_id, event_id) are skipped by the primary key, each customer is charged one ledger entry for its new
 * events, and the wallets are locked in customer-id order only after the events are in (`locked`), so concurrent
 * batches over the same customers neither deadlock nor hold wallet locks while inserting events. Entry ids are
 * drawn after the lock, so a customer's entries in id order always chain balance to balance.
 *
 * The wallet floor ($12): a customer whose whole batch fits above the floor (by this statement's snapshot) costs
 * nothing more. For one that does not, its new events count in the order sent, and those whose running total passes
 * the room left above the floor are not recorded (`past_floor`, reported one by one). The floor guard in the wallet
 * update checks again under the lock; if a concurrent batch took the room in between, it aborts the statement and
 * `HotPath` runs it again on a fresh snapshot.
 */
const INGEST_SQL = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
    $7::bigint[], $8::bigint[], $9::text[], $10::jsonb[]) WITH ORDINALITY
    AS t(customer_id, event_id, model, feature, processing, occurred_at, cost_nanos, provider_cost_nanos,
         price_version, lines, ord)
), known AS (
  SELECT r.customer_id, r.requested, wl.available_nanos + $12::bigint AS room
  FROM (SELECT customer_id, sum(cost_nanos) AS requested FROM input GROUP BY customer_id) r
  JOIN wallets wl USING (customer_id)
), past_floor AS (
  SELECT f.customer_id, f.event_id FROM (
    SELECT i.customer_id, i.event_id, i.cost_nanos, k.room,
      sum(i.cost_nanos) OVER (PARTITION BY i.customer_id ORDER BY i.ord) AS running
    FROM input i JOIN known k USING (customer_id)
    WHERE k.requested > k.room
      AND NOT EXISTS (SELECT 1 FROM usage_events u WHERE u.customer_id = i.customer_id AND u.event_id = i.event_id)
  ) f WHERE f.cost_nanos > 0 AND f.running > f.room
), ins AS (
  INSERT INTO usage_events (customer_id, event_id, model, feature, processing, occurred_at, cost_nanos,
    provider_cost_nanos, price_version, lines, batch_id)
  SELECT i.customer_id, i.event_id, i.model, i.feature, i.processing, i.occurred_at, i.cost_nanos,
    i.provider_cost_nanos, i.price_version, i.lines, $11::uuid
  FROM input i JOIN known k USING (customer_id)
  WHERE NOT EXISTS (SELECT 1 FROM past_floor f WHERE f.customer_id = i.customer_id AND f.event_id = i.event_id)
  ON CONFLICT (customer_id, event_id) DO NOTHING
  RETURNING customer_id, event_id, cost_nanos
), totals AS (
  SELECT customer_id, sum(cost_nanos)::bigint AS total FROM ins GROUP BY customer_id HAVING sum(cost_nanos) > 0
), locked AS (
  SELECT wl.customer_id FROM wallets wl JOIN totals t USING (customer_id) ORDER BY wl.customer_id FOR UPDATE OF wl
), ${movementSql({
  definition: MOVEMENTS.usage,
  ref: `'usage:' || $11 || ':' || wallets.customer_id`,
  amounts: { cost: 't.total' },
  from: 'totals t JOIN locked l USING (customer_id)',
  where: 'wallets.customer_id = t.customer_id',
  floor: '$12::bigint',
})}
SELECT 'recorded' AS kind, customer_id, event_id FROM ins
UNION ALL SELECT 'unknown', customer_id, NULL FROM (SELECT DISTINCT customer_id FROM input) i
  WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.customer_id = i.customer_id)
UNION ALL SELECT 'past_floor', customer_id, event_id FROM past_floor
UNION ALL SELECT 'crossed', NULL, NULL FROM c`;

export interface AuthorizeInput {
  customer_id: string;
  authorization_id: string;
  model: string;
  hold_nanos: bigint;
  /** The call's estimated tokens, taken from the tokens-per-minute bucket (absent: none, only a request is counted). */
  estimated_tokens?: bigint;
  /** When the API accepted the call: stored as is, so the response and later reads agree to the millisecond. */
  created_at: Date;
  expires_at: Date;
}

export type AuthorizeOutcome =
  | { ok: true; available_nanos: bigint; crossed: boolean }
  | { ok: false; code: 'insufficient_balance'; available_nanos: bigint }
  /** This month's spend plus open holds would pass the budget limit / the usage limit in effect. */
  | {
      ok: false;
      code: 'budget_limit_reached' | 'usage_limit_reached';
      committed_nanos: bigint;
      limit_nanos: bigint;
      /** The refusal recorded the month's `budget_limit` crossing (the first refusal of the month by the budget). */
      crossed?: boolean;
    }
  /** The requests-per-minute or tokens-per-minute bucket is short; it holds the call in `retry_after_s`. */
  | { ok: false; code: 'rate_limit_exceeded'; retry_after_s: number }
  | { ok: false; code: 'unknown_customer' }
  /** An authorization with this id exists already (a retried request): nothing was held again. */
  | { ok: false; code: 'exists' };

export interface CaptureInput {
  authorization_id: string;
  cost_nanos: bigint;
  provider_cost_nanos: bigint;
  event_id: string;
  occurred_at: Date;
  /** Per-dimension quantity and amount, stored as `usage_events.lines` (see `UsageLines`). */
  lines: UsageLines;
  price_version: string;
  processing: string;
  feature: string | null;
}

export interface AuthorizationRow {
  id: string;
  customer_id: string;
  model: string;
  hold_nanos: bigint;
  status: 'held' | 'captured' | 'voided' | 'expired';
  created_at: Date;
  expires_at: Date;
  settled_at: Date | null;
  cost_nanos: bigint | null;
  released_nanos: bigint | null;
  event_id: string | null;
}

export type CaptureOutcome =
  | {
      ok: true;
      authorization: AuthorizationRow;
      available_nanos: bigint;
      crossed: boolean;
      /**
       * A grant that expired (or was voided) while this hold was open has a claim on it, now settled by the hold:
       * the caller settles the claim (`settleGrantClaims`) so that credit given back by an expired grant is written
       * off at once rather than at the next sweep.
       */
      claimed: boolean;
    }
  | { ok: false; code: 'not_held' }
  | { ok: false; code: 'duplicate_event' }
  /** The cost beyond the hold would take the available balance below the wallet floor: nothing was recorded. */
  | { ok: false; code: 'wallet_floor_reached' };

export interface IngestRow {
  customer_id: string;
  event_id: string;
  model: string;
  feature: string | null;
  processing: string;
  occurred_at: Date;
  cost_nanos: bigint;
  provider_cost_nanos: bigint;
  price_version: string;
  /** Per-dimension quantity and amount, stored as `usage_events.lines` (see `UsageLines`). */
  lines: UsageLines;
}

const UNIQUE_VIOLATION = '23505';
const DEADLOCK_DETECTED = '40P01';
const MAX_DEADLOCK_ATTEMPTS = 3;
/**
 * A floor conflict means another batch debited the same wallet and committed in between, so every retry follows
 * progress; once the room above the floor is gone, the retry's snapshot shows it and rejects instead of failing.
 */
const MAX_FLOOR_ATTEMPTS = 10;

/** The default wallet floor (`WALLET_FLOOR_USD` of wiring/config.ts): $1,000 below zero. */
const DEFAULT_WALLET_FLOOR_NANOS = 1_000_000_000_000n;

export interface HotPathSettings {
  /** How far below zero unchecked usage may take an available balance, in nanos (>= 0). */
  wallet_floor_nanos: bigint;
}

const errorCode = (error: unknown) => (error as { code?: string }).code;

/**
 * A statement that kept conflicting with concurrent ones (a deadlock, or a floor check made stale by another batch)
 * after its bounded retries. Nothing of it was written; the caller's retry is safe (events are deduplicated by
 * event id, holds by authorization id), so the API answers 503 rather than a defect's 500.
 */
export class ContentionError extends Error {
  constructor(
    readonly attempts: number,
    readonly cause_code: string,
  ) {
    super(`the statement conflicted with concurrent ones ${attempts} times (${cause_code})`);
  }
}

export class HotPath {
  readonly wallet_floor_nanos: bigint;

  constructor(
    readonly pool: Pool,
    settings: HotPathSettings = { wallet_floor_nanos: DEFAULT_WALLET_FLOOR_NANOS },
  ) {
    if (settings.wallet_floor_nanos < 0n) throw new Error('the wallet floor is a distance below zero: >= 0');
    this.wallet_floor_nanos = settings.wallet_floor_nanos;
  }

  /**
   * Runs one statement, again (a bounded number of times) if it aborted for a reason that a fresh snapshot removes; the
   * aborted statement left nothing behind, so running it again is safe. Locks are taken in one order
   * (authorization, event keys, wallets in id order), so only two ingestion batches inserting the same event ids
   * in opposite orders can deadlock; and ingestion (`retryOnFloor`) decides which events fit above the wallet
   * floor from its snapshot, which a concurrent batch may have made stale.
   */
  private async query<R extends QueryResultRow>(
    config: QueryConfig,
    retryOnFloor = false,
  ): Promise<QueryResult<R>> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.pool.query<R>(config);
      } catch (error) {
        const code = errorCode(error);
        const deadlock = code === DEADLOCK_DETECTED;
        const staleFloor = retryOnFloor && code === WALLET_FLOOR_SQLSTATE;
        if (!deadlock && !staleFloor) throw error;
        if (attempt >= (deadlock ? MAX_DEADLOCK_ATTEMPTS : MAX_FLOOR_ATTEMPTS)) {
          throw new ContentionError(attempt, code!);
        }
      }
    }
  }

  /**
   * Takes the hold, or says why not. A refusal is explained by a second read with the same checks; if that read finds
   * every check passing (a capture, a release or a refill landed in between), the authorization is tried again, a
   * bounded number of times, rather than answered with a reason that is not true.
   */
  async authorize(input: AuthorizeInput): Promise<AuthorizeOutcome> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.tryAuthorize(input);
      if (outcome !== 'unexplained') return outcome;
      if (attempt >= MAX_AUTHORIZE_ATTEMPTS) throw new ContentionError(attempt, 'authorization re-check');
    }
  }

  private async tryAuthorize(input: AuthorizeInput): Promise<AuthorizeOutcome | 'unexplained'> {
    let result;
    try {
      result = await this.pool.query<{ available_nanos: bigint; crossings: number }>({
        name: 'authorize',
        text: AUTHORIZE_SQL,
        values: [
          input.customer_id,
          input.authorization_id,
          input.model,
          input.hold_nanos,
          input.expires_at,
          input.created_at,
          input.estimated_tokens ?? 0n,
        ],
      });
    } catch (error) {
      if (errorCode(error) === UNIQUE_VIOLATION) return { ok: false, code: 'exists' };
      throw error;
    }
    const row = result.rows[0];
    if (row) return { ok: true, available_nanos: row.available_nanos, crossed: row.crossings > 0 };
    // Refused: only now find out why (the refusal path may cost a second query; the success path never does).
    const refusal = await this.pool.query<{
      available_nanos: bigint;
      held_already: boolean;
      balance_ok: boolean;
      budget_ok: boolean;
      usage_limit_ok: boolean;
      rate_wait_s: number;
      committed_nanos: bigint;
      budget_limit_nanos: bigint | null;
      usage_limit_nanos: bigint | null;
      crossings: number;
    }>({
      name: 'authorize_refusal',
      text: AUTHORIZE_REFUSAL_SQL,
      values: [input.customer_id, input.authorization_id, input.hold_nanos, input.estimated_tokens ?? 0n],
    });
    const found = refusal.rows[0];
    if (found?.held_already) return { ok: false, code: 'exists' };
    if (!found) return { ok: false, code: 'unknown_customer' };
    // Limits before the balance: a refusal that waiting or topping up cannot lift comes first.
    const committed_nanos = found.committed_nanos + input.hold_nanos;
    if (!found.budget_ok) {
      return {
        ok: false,
        code: 'budget_limit_reached',
        committed_nanos,
        limit_nanos: found.budget_limit_nanos!,
        crossed: found.crossings > 0,
      };
    }
    if (!found.usage_limit_ok)
      return {
        ok: false,
        code: 'usage_limit_reached',
        committed_nanos,
        limit_nanos: found.usage_limit_nanos!,
      };
    if (!found.balance_ok)
      return { ok: false, code: 'insufficient_balance', available_nanos: found.available_nanos };
    if (found.rate_wait_s > 0)
      return { ok: false, code: 'rate_limit_exceeded', retry_after_s: found.rate_wait_s };
    return 'unexplained';
  }

  async getAuthorization(id: string): Promise<AuthorizationRow | undefined> {
    const result = await this.pool.query<AuthorizationRow>({
      name: 'get_authorization',
      text: `SELECT id, customer_id, model, hold_nanos, status, created_at, expires_at, settled_at, cost_nanos,
               released_nanos, event_id FROM authorizations WHERE id = $1`,
      values: [id],
    });
    return result.rows[0];
  }

  async capture(input: CaptureInput): Promise<CaptureOutcome> {
    try {
      const result = await this.query<
        AuthorizationRow & { available_nanos: bigint; crossings: number; claimed: boolean }
      >({
        name: 'capture',
        text: CAPTURE_SQL,
        values: [
          input.authorization_id,
          input.cost_nanos,
          input.provider_cost_nanos,
          input.event_id,
          input.occurred_at,
          JSON.stringify(input.lines),
          input.price_version,
          input.processing,
          input.feature,
          this.wallet_floor_nanos,
        ],
      });
      const row = result.rows[0];
      if (!row) return { ok: false, code: 'not_held' };
      const { available_nanos, crossings, claimed, ...authorization } = row;
      return { ok: true, authorization, available_nanos, crossed: crossings > 0, claimed };
    } catch (error) {
      // The whole statement is undone: the usage event id was already recorded, so nothing is charged twice.
      if (errorCode(error) === UNIQUE_VIOLATION) return { ok: false, code: 'duplicate_event' };
      if (errorCode(error) === WALLET_FLOOR_SQLSTATE) return { ok: false, code: 'wallet_floor_reached' };
      throw error;
    }
  }

  /** Releases the hold. Returns the released amount (and whether a grant's claim is due), or null when not held. */
  async release(
    authorization_id: string,
    as: 'voided' | 'expired',
  ): Promise<{ released_nanos: bigint; claimed: boolean } | null> {
    const result = await this.pool.query<{ hold_nanos: bigint; crossings: number; claimed: boolean }>({
      name: 'release',
      text: RELEASE_SQL,
      values: [authorization_id, as],
    });
    const row = result.rows[0];
    // `claimed`: as for a capture, an expired or voided grant's claim on this hold is now due (see CaptureOutcome).
    return row ? { released_nanos: row.hold_nanos, claimed: row.claimed } : null;
  }

  /** Ids of held authorizations whose time has passed, oldest first (for the expiry sweep). */
  async expiredHolds(limit: number): Promise<string[]> {
    const result = await this.pool.query<{ id: string }>({
      name: 'expired_holds',
      text: `SELECT id FROM authorizations WHERE status = 'held' AND expires_at <= now() ORDER BY expires_at LIMIT $1`,
      values: [limit],
    });
    return result.rows.map((r) => r.id);
  }

  /**
   * Records rated usage events in one statement (see INGEST_SQL). Returns the keys of the events recorded now, the
   * customers that do not exist and the keys of the events that did not fit above the wallet floor (neither of
   * those is recorded).
   */
  async ingest(
    batch_id: string,
    rows: readonly IngestRow[],
  ): Promise<{
    recorded: Set<string>;
    unknown_customers: Set<string>;
    past_floor: Set<string>;
    crossed: boolean;
  }> {
    const result = await this.query<{ kind: string; customer_id: string | null; event_id: string | null }>(
      {
        name: 'ingest',
        text: INGEST_SQL,
        values: [
          rows.map((r) => r.customer_id),
          rows.map((r) => r.event_id),
          rows.map((r) => r.model),
          rows.map((r) => r.feature),
          rows.map((r) => r.processing),
          rows.map((r) => r.occurred_at),
          rows.map((r) => r.cost_nanos.toString()),
          rows.map((r) => r.provider_cost_nanos.toString()),
          rows.map((r) => r.price_version),
          rows.map((r) => JSON.stringify(r.lines)),
          batch_id,
          this.wallet_floor_nanos,
        ],
      },
      true,
    );
    const recorded = new Set<string>();
    const unknown_customers = new Set<string>();
    const past_floor = new Set<string>();
    let crossed = false;
    for (const row of result.rows) {
      if (row.kind === 'recorded') recorded.add(eventKey(row.customer_id!, row.event_id!));
      else if (row.kind === 'unknown') unknown_customers.add(row.customer_id!);
      else if (row.kind === 'past_floor') past_floor.add(eventKey(row.customer_id!, row.event_id!));
      else crossed = true;
    }
    return { recorded, unknown_customers, past_floor, crossed };
  }
}

export const eventKey = (customer_id: string, event_id: string): string => `${customer_id}\u0000${event_id}`;
