import type { Knex } from 'knex';

/**
 * `reconciliation_runs` (README "Reconciliation"): one report per run of the reconciliation workflow, keyed by the
 * workflow run (an activity retried writes the same row again). `mismatches` and `ledger_violations` are JSON arrays
 * (every mismatch between our payments and refunds and the gateway's over the window, every broken ledger invariant);
 * `status` is `ok` exactly when both are empty. `seq` orders the runs for paging, newest first.
 * Indexes on the payments and the simulated gateway's books serve the window's reads.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE reconciliation_runs (
      id                 text PRIMARY KEY,
      seq                bigserial UNIQUE,
      workflow_id        text NOT NULL,
      started_at         timestamptz NOT NULL,
      finished_at        timestamptz NOT NULL,
      window_from        timestamptz NOT NULL,
      window_to          timestamptz NOT NULL,
      gateway            text NOT NULL,
      payments_checked   integer NOT NULL CHECK (payments_checked >= 0),
      refunds_checked    integer NOT NULL CHECK (refunds_checked >= 0),
      mismatches         jsonb NOT NULL CHECK (jsonb_typeof(mismatches) = 'array'),
      ledger_violations  jsonb NOT NULL CHECK (jsonb_typeof(ledger_violations) = 'array'),
      status             text NOT NULL CHECK (status IN ('ok', 'mismatches')),
      CHECK (window_to > window_from),
      CHECK (finished_at >= started_at),
      CHECK ((status = 'ok') = (jsonb_array_length(mismatches) = 0 AND jsonb_array_length(ledger_violations) = 0))
    );
    CREATE INDEX payments_created_idx ON payments (created_at);
    CREATE INDEX simulated_charges_created_idx ON simulated_charges (created_at);
    CREATE INDEX simulated_refunds_created_idx ON simulated_refunds (created_at);
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP INDEX simulated_refunds_created_idx, simulated_charges_created_idx, payments_created_idx;
    DROP TABLE reconciliation_runs;
  `);
}
