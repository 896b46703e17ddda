import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { createDb, type Db, migrateLatest } from '../../db/connection';

/** The server tests create their databases in; the machine's PostgreSQL by default (see DESIGN.md). */
export function adminDatabaseUrl(): string {
  return process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
}

/** A fresh, migrated database for one test file, dropped again by `drop()`. */
export async function createTestDatabase(): Promise<{ db: Db; url: string; drop: () => Promise<void> }> {
  const name = `billing_test_${randomBytes(6).toString('hex')}`;
  await withAdmin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(adminDatabaseUrl());
  url.pathname = `/${name}`;
  const db = createDb({ databaseUrl: url.toString(), pool_max: 20 });
  await migrateLatest(db);
  return {
    db,
    url: url.toString(),
    drop: async () => {
      await db.destroy();
      await withAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

async function withAdmin(fn: (client: Client) => Promise<unknown>): Promise<void> {
  const client = new Client({ connectionString: adminDatabaseUrl() });
  await client.connect();
  try {
    await fn(client);
  } finally {
    await client.end();
  }
}
