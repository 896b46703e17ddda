import type { Knex } from 'knex';

/**
 * `last_crossing_kinds` (written by every movement, read by the same statement's RETURNING) replaced
 * `last_crossing_xact`, which told a statement it had crossed by comparing transaction ids. Nothing writes the old
 * column any more.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`ALTER TABLE wallets DROP COLUMN last_crossing_xact`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`ALTER TABLE wallets ADD COLUMN last_crossing_xact xid8`);
}
