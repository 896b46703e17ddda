import knexFactory, { type Knex } from 'knex';
import { types } from 'pg';
import { migrationSource } from './migrations';

/**
 * The knex pool of each process. Which way to reach PostgreSQL serves which purpose (this pool, knex transactions,
 * the hot path's `pg` pool, the idempotency session) is written down in db/README.md.
 */
// PostgreSQL int8 (OID 20) arrives as a string by default; all our int8 columns are money in nanos or ids,
// so they become `bigint` here, once, for every query. Never Number: nanos exceed 2^53 at about $9M.
types.setTypeParser(20, (text) => BigInt(text));

export type Db = Knex;

export interface DbOptions {
  databaseUrl: string;
  pool_max?: number;
  statement_timeout_ms?: number;
}

/** Opens a knex pool on PostgreSQL. Every connection has a statement timeout so that no query hangs forever. */
export function createDb(options: DbOptions): Db {
  const statementTimeout_ms = options.statement_timeout_ms ?? 30_000;
  return knexFactory({
    client: 'pg',
    connection: { connectionString: options.databaseUrl, statement_timeout: statementTimeout_ms },
    pool: { min: 0, max: options.pool_max ?? 10 },
  });
}

/** Applies every pending migration; safe to call from several processes at once (knex takes a lock). */
export async function migrateLatest(db: Db): Promise<void> {
  await db.migrate.latest({ migrationSource });
}

/** Values a query may bind. `bigint` is sent as its decimal text, which PostgreSQL reads exactly into int8. */
export type SqlValue = string | number | bigint | boolean | Date | null;

/** Runs one SQL statement with positional `?` bindings and returns its rows, typed by the caller. */
export async function queryRows<T>(q: Db, text: string, bindings: readonly SqlValue[] = []): Promise<T[]> {
  const result = (await q.raw(text, bindings as unknown as Knex.RawBinding[])) as { rows: T[] };
  return result.rows;
}

/** Runs one SQL statement and returns how many rows it touched. */
export async function execute(q: Db, text: string, bindings: readonly SqlValue[] = []): Promise<number> {
  const result = (await q.raw(text, bindings as unknown as Knex.RawBinding[])) as { rowCount: number | null };
  return result.rowCount ?? 0;
}

/** Whether PostgreSQL answers at all (readiness). Throws when it does not. */
export async function ping(db: Db): Promise<void> {
  await queryRows(db, 'SELECT 1');
}

/** A PostgreSQL text[] literal (one binding whatever the count); elements quoted and escaped. */
export function textArray(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`).join(',')}}`;
}
