import { randomBytes } from 'node:crypto';
import type { Client } from 'pg';
import { execute, queryRows, type Db } from './connection';

/**
 * The `idempotency_keys` store behind the API's `Idempotency-Key` handling (api/idempotency.ts holds the rules).
 *
 * A claim names the process holding it, and dies with that process: every API process opens one *process session*,
 * a dedicated PostgreSQL connection outside the pools that holds a session advisory lock on a random 62-bit key for
 * the life of the process. A claim row stores that key in `claimed_by`; `process_session_alive(key)` looks the lock
 * up in `pg_locks`. When a process dies (`kill -9`, a crashed host), PostgreSQL ends its session and drops the lock,
 * so a retry of an abandoned request takes the claim over at once instead of waiting out a timeout.
 *
 * One connection per process, not one per in-flight request: holding a lock per request would tie up a connection
 * for every waiting top-up (up to UPDATE_WAIT_TIMEOUT_MS each) and starve the pool under concurrency.
 */

/** Claims written before `claimed_by` existed name no process; they count as alive for this long, as before. */
const LEGACY_CLAIM_TIMEOUT_S = 60;

/** Whether the claim on a row is held by a live process, as one SQL expression over the row's columns. */
const HOLDER_ALIVE = `CASE WHEN claimed_by IS NULL THEN locked_at >= now() - make_interval(secs => ${LEGACY_CLAIM_TIMEOUT_S})
  ELSE process_session_alive(claimed_by) END`;

export interface IdempotencyRow {
  request_hash: string;
  status_code: number | null;
  response_body: unknown;
  /** Older than the key's lifetime: deleted and claimed afresh. */
  expired: boolean;
  /** A claim in progress whose process is still alive (false once a response is stored). */
  holder_alive: boolean;
}

/** Inserts a new claim for `holder`; false if the key exists already (claimed, answered or expired). */
export async function insertClaim(
  db: Db,
  claim: { scope: string; key: string; request_hash: string; holder: bigint },
): Promise<boolean> {
  const inserted = await execute(
    db,
    `INSERT INTO idempotency_keys (scope, key, request_hash, locked_at, claimed_by) VALUES (?, ?, ?, now(), ?)
     ON CONFLICT (scope, key) DO NOTHING`,
    [claim.scope, claim.key, claim.request_hash, claim.holder],
  );
  return inserted === 1;
}

export async function readIdempotencyKey(
  db: Db,
  scope: string,
  key: string,
  ttl_ms: number,
): Promise<IdempotencyRow | undefined> {
  const [row] = await queryRows<IdempotencyRow>(
    db,
    `SELECT request_hash, status_code, response_body,
            created_at < now() - make_interval(secs => ? / 1000.0) AS expired,
            status_code IS NULL AND ${HOLDER_ALIVE} AS holder_alive
     FROM idempotency_keys WHERE scope = ? AND key = ?`,
    [ttl_ms, scope, key],
  );
  return row;
}

/** Deletes an expired key (only if it still carries the request seen), so that it can be claimed afresh. */
export async function deleteExpiredKey(
  db: Db,
  scope: string,
  key: string,
  request_hash: string,
): Promise<void> {
  await execute(db, `DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND request_hash = ?`, [
    scope,
    key,
    request_hash,
  ]);
}

/**
 * Takes over a claim whose holder is dead. The row lock makes concurrent takeovers race fairly: the loser's
 * re-check sees the winner's live session and changes nothing. Returns whether this holder now has the claim.
 */
export async function takeOverClaim(
  db: Db,
  claim: { scope: string; key: string; request_hash: string; holder: bigint },
): Promise<boolean> {
  const taken = await execute(
    db,
    `UPDATE idempotency_keys SET locked_at = now(), claimed_by = ?
     WHERE scope = ? AND key = ? AND request_hash = ? AND status_code IS NULL AND NOT (${HOLDER_ALIVE})`,
    [claim.holder, claim.scope, claim.key, claim.request_hash],
  );
  return taken === 1;
}

/** Stores the response a key answers with from now on, ending the claim. */
export async function storeIdempotentResponse(
  db: Db,
  scope: string,
  key: string,
  response: { status: number; body: unknown },
): Promise<void> {
  await execute(
    db,
    `UPDATE idempotency_keys SET status_code = ?, response_body = ?::jsonb, locked_at = NULL, claimed_by = NULL
     WHERE scope = ? AND key = ?`,
    [response.status, JSON.stringify(response.body), scope, key],
  );
}

/** Deletes an unanswered claim, so that the client's retry runs the request again. */
export async function deleteClaim(db: Db, scope: string, key: string): Promise<void> {
  await execute(db, `DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND status_code IS NULL`, [
    scope,
    key,
  ]);
}

/**
 * This process's session: a connection of its own (made like the pool's, but outside it) holding a session advisory
 * lock on `key` until `close()` or the process's death. TCP keepalives make PostgreSQL notice a vanished host
 * within about a minute; a dead process on a live host is noticed at once (its socket closes).
 */
export class ProcessSession {
  private lost = false;

  private constructor(
    private readonly db: Db,
    private readonly connection: Client,
    readonly key: bigint,
  ) {
    connection.on('error', () => (this.lost = true));
    connection.on('end', () => (this.lost = true));
  }

  static async open(db: Db): Promise<ProcessSession> {
    const connection = (await db.client.acquireRawConnection()) as Client;
    // 62 random bits, never 0: a positive int8 whose halves map onto pg_locks' classid and objid.
    const key = (BigInt(`0x${randomBytes(8).toString('hex')}`) & ((1n << 62n) - 1n)) | 1n;
    try {
      await connection.query(
        `SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3`,
      );
      await connection.query('SELECT pg_advisory_lock($1::bigint)', [key.toString()]);
    } catch (error) {
      await db.client.destroyRawConnection(connection);
      throw error;
    }
    return new ProcessSession(db, connection, key);
  }

  /** false once the connection broke: claims naming this key may already have been taken over. */
  get alive(): boolean {
    return !this.lost;
  }

  /** Ends the session; PostgreSQL releases the lock with it. */
  async close(): Promise<void> {
    this.lost = true;
    await this.db.client.destroyRawConnection(this.connection);
  }
}
