import { createHash, randomBytes } from 'node:crypto';
import { type Db, execute, queryRows } from '../db/connection';
import { ApiError } from './errors';

/**
 * `Idempotency-Key` for every POST (API.md): the same key and body within 24 h gets the first response again;
 * the same key with another body is 409 `idempotency_conflict`. The first request claims the key before it runs,
 * so two concurrent requests with one key never both run; a claim abandoned by a crashed process is taken over
 * after CLAIM_TIMEOUT_MS. Server errors (5xx) are not stored, so the client's retry runs again, which is safe
 * because every money movement underneath is keyed by ids derived from this key.
 */
export const KEY_TTL_MS = 24 * 60 * 60 * 1000;
export const CLAIM_TIMEOUT_MS = 60_000;
export const MAX_KEY_LENGTH = 255;

export interface StoredResponse {
  status: number;
  body: unknown;
}

export type Claim = { kind: 'claimed' } | { kind: 'replay'; response: StoredResponse };

interface KeyRow {
  request_hash: string;
  status_code: number | null;
  response_body: unknown;
  expired: boolean;
  claim_stale: boolean;
}

export function requestHash(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${path}\n${JSON.stringify(body ?? null)}`)
    .digest('hex');
}

/** Claims the key for this request, or returns the response to replay, or throws a 409. */
export async function claimKey(db: Db, scope: string, key: string, hash: string): Promise<Claim> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const inserted = await execute(
      db,
      `INSERT INTO idempotency_keys (scope, key, request_hash, locked_at) VALUES (?, ?, ?, now())
       ON CONFLICT (scope, key) DO NOTHING`,
      [scope, key, hash],
    );
    if (inserted === 1) return { kind: 'claimed' };

    const [row] = await queryRows<KeyRow>(
      db,
      `SELECT request_hash, status_code, response_body,
              created_at < now() - make_interval(secs => ?) AS expired,
              locked_at < now() - make_interval(secs => ?) AS claim_stale
       FROM idempotency_keys WHERE scope = ? AND key = ?`,
      [KEY_TTL_MS / 1000, CLAIM_TIMEOUT_MS / 1000, scope, key],
    );
    if (!row) continue; // deleted between our insert and select: try again
    if (row.expired) {
      await execute(db, `DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND request_hash = ?`, [
        scope,
        key,
        row.request_hash,
      ]);
      continue;
    }
    if (row.request_hash !== hash) {
      throw new ApiError(
        'idempotency_conflict',
        'this Idempotency-Key was already used with a different request; use a new key for a new request',
        { param: 'Idempotency-Key' },
      );
    }
    if (row.status_code !== null) {
      return { kind: 'replay', response: { status: row.status_code, body: row.response_body } };
    }
    if (row.claim_stale) {
      const taken = await execute(
        db,
        `UPDATE idempotency_keys SET locked_at = now()
         WHERE scope = ? AND key = ? AND status_code IS NULL AND locked_at < now() - make_interval(secs => ?)`,
        [scope, key, CLAIM_TIMEOUT_MS / 1000],
      );
      if (taken === 1) return { kind: 'claimed' };
    }
    throw new ApiError('conflict', 'a request with this Idempotency-Key is still in progress; retry later', {
      code: 'idempotency_key_in_use',
      param: 'Idempotency-Key',
    });
  }
  throw new ApiError('conflict', 'could not claim the Idempotency-Key; retry', {
    code: 'idempotency_key_in_use',
  });
}

export async function storeResponse(
  db: Db,
  scope: string,
  key: string,
  response: StoredResponse,
): Promise<void> {
  await execute(
    db,
    `UPDATE idempotency_keys SET status_code = ?, response_body = ?::jsonb, locked_at = NULL
     WHERE scope = ? AND key = ?`,
    [response.status, JSON.stringify(response.body), scope, key],
  );
}

/** Gives the key back after a server error, so that the client's retry runs the request again. */
export async function releaseKey(db: Db, scope: string, key: string): Promise<void> {
  await execute(db, `DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND status_code IS NULL`, [
    scope,
    key,
  ]);
}

/**
 * A resource id derived from the caller and its idempotency key, so a retried request names the same top-up or
 * grant all the way down to the ledger. Without a key, a random id: the caller opted out of retries.
 */
export function derivedId(
  prefix: string,
  scope: string,
  idempotencyKey: string | undefined,
  salt: string,
): string {
  if (idempotencyKey === undefined) return `${prefix}_${randomBytes(12).toString('hex')}`;
  const digest = createHash('sha256').update(`${scope}\n${salt}\n${idempotencyKey}`).digest('hex');
  return `${prefix}_${digest.slice(0, 24)}`;
}
