import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '../db/connection';
import {
  deleteClaim,
  deleteExpiredKey,
  insertClaim,
  ProcessSession,
  readIdempotencyKey,
  storeIdempotentResponse,
  takeOverClaim,
} from '../db/idempotency';
import { ApiError } from './errors';

/**
 * `Idempotency-Key` for every POST (API.md): the same key and body within 24 h gets the first response again;
 * the same key with another body is 409 `idempotency_conflict`. The first request claims the key before it runs,
 * so two concurrent requests with one key never both run (the second is 409 `idempotency_key_in_use`). A claim
 * names this process's session (db/idempotency.ts) and dies with the process: after a crash, the client's retry
 * takes the abandoned claim over at once. Server errors (5xx) are not stored, so the client's retry runs again,
 * which is safe because every money movement underneath is keyed by ids derived from this key.
 */
const KEY_TTL_MS = 24 * 60 * 60 * 1000;
export const MAX_KEY_LENGTH = 255;

export interface StoredResponse {
  status: number;
  body: unknown;
}

export type Claim = { kind: 'claimed' } | { kind: 'replay'; response: StoredResponse };

export function requestHash(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${path}\n${JSON.stringify(body ?? null)}`)
    .digest('hex');
}

/**
 * The idempotency keys of one API instance. Its process session opens on the first keyed request (an instance that
 * never sees one holds no extra connection) and reopens with a new key if the connection is lost.
 */
export class IdempotencyKeys {
  private session?: Promise<ProcessSession>;
  private closed = false;

  constructor(private readonly db: Db) {}

  /** Claims the key for this request, or returns the response to replay, or throws a 409. */
  async claim(scope: string, key: string, hash: string): Promise<Claim> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const claim = { scope, key, request_hash: hash, holder: (await this.processSession()).key };
      if (await insertClaim(this.db, claim)) return { kind: 'claimed' };

      const row = await readIdempotencyKey(this.db, scope, key, KEY_TTL_MS);
      if (!row) continue; // deleted between our insert and select: try again
      if (row.expired) {
        await deleteExpiredKey(this.db, scope, key, row.request_hash);
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
      // Claimed by a process that has died since: its request will never answer, so this retry runs it.
      if (!row.holder_alive && (await takeOverClaim(this.db, claim))) return { kind: 'claimed' };
      throw new ApiError(
        'conflict',
        'a request with this Idempotency-Key is still in progress; retry later',
        {
          code: 'idempotency_key_in_use',
          param: 'Idempotency-Key',
        },
      );
    }
    throw new ApiError('conflict', 'could not claim the Idempotency-Key; retry', {
      code: 'idempotency_key_in_use',
    });
  }

  store(scope: string, key: string, response: StoredResponse): Promise<void> {
    return storeIdempotentResponse(this.db, scope, key, response);
  }

  /** Gives the key back after a server error, so that the client's retry runs the request again. */
  release(scope: string, key: string): Promise<void> {
    return deleteClaim(this.db, scope, key);
  }

  /** Ends the process session (its claims then read as abandoned); idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const session = await this.session?.catch(() => undefined);
    this.session = undefined;
    await session?.close();
  }

  private async processSession(): Promise<ProcessSession> {
    if (this.closed) throw new ApiError('unavailable', 'the server is shutting down; retry');
    const seen = this.session;
    const current = seen && (await seen.catch(() => undefined));
    if (current?.alive) return current;
    // Lost, never opened, or failed to open: the first caller to notice opens a new one (with a new key), and
    // concurrent callers share that opening.
    if (this.session === seen) {
      if (current) void current.close().catch(() => undefined);
      this.session = ProcessSession.open(this.db);
    }
    return this.session!;
  }
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
