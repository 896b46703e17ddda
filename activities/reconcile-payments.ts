import {
  compareBooks,
  gatewayListingWindow,
  type GatewayRecord,
  type Mismatch,
  type ReconcileResult,
  truncatedListing,
} from '../billing/reconciliation';
import type { Db } from '../db/connection';
import { checkLedger } from '../db/ledger-check';
import {
  type CounterpartKeys,
  paymentsToReconcile,
  recordReconciliationRun,
  refundsToReconcile,
} from '../db/reconciliation';
import type { PaymentGateway } from '../payments/payment-gateway';

/** The most charges, and refunds, one run reads from the gateway; more is reported as `listing_truncated`. */
export const MAX_BOOK_ITEMS = 10_000;

export interface ReconcileInput {
  /** The report's id, named after the workflow run, so a retried activity rewrites its own report. */
  run_id: string;
  workflow_id: string;
  /** The window, ISO-8601: items created in [window_from, window_to) are compared. */
  window_from: string;
  window_to: string;
}

/**
 * One reconciliation run (README "Reconciliation"): reads the gateway's charges and refunds around the window and our
 * payments and refunds (and their counterparts by id and key), compares them (billing/reconciliation.ts), runs the ledger's
 * invariant check, and records the report. Only reads until the report is written, so a retry is harmless.
 */
export function reconciliationActivities(deps: { db: Db; gateway: PaymentGateway }) {
  return {
    async reconcilePayments(input: ReconcileInput): Promise<ReconcileResult> {
      const started_at = new Date();
      const window = { from: new Date(input.window_from), to: new Date(input.window_to) };
      const listing = gatewayListingWindow(window, started_at);
      const charges = await deps.gateway.listCharges(listing, MAX_BOOK_ITEMS);
      const payments = await paymentsToReconcile(deps.db, deps.gateway.name, window, keysOf(charges));
      const chargeBooks = compareBooks('charge', window, payments, charges);
      const gatewayRefunds = await deps.gateway.listRefunds(listing, MAX_BOOK_ITEMS);
      const refunds = await refundsToReconcile(deps.db, deps.gateway.name, window, keysOf(gatewayRefunds));
      const refundBooks = compareBooks('refund', window, refunds, gatewayRefunds);
      const mismatches: Mismatch[] = [
        ...(charges.length >= MAX_BOOK_ITEMS ? [truncatedListing('charge', MAX_BOOK_ITEMS)] : []),
        ...(gatewayRefunds.length >= MAX_BOOK_ITEMS ? [truncatedListing('refund', MAX_BOOK_ITEMS)] : []),
        ...chargeBooks.mismatches,
        ...refundBooks.mismatches,
      ];
      const ledger_violations = await checkLedger(deps.db);
      const run = await recordReconciliationRun(deps.db, {
        id: input.run_id,
        workflow_id: input.workflow_id,
        started_at,
        finished_at: new Date(),
        window_from: window.from,
        window_to: window.to,
        gateway: deps.gateway.name,
        payments_checked: chargeBooks.checked,
        refunds_checked: refundBooks.checked,
        mismatches,
        ledger_violations,
      });
      return {
        run_id: run.id,
        status: run.status,
        mismatches: mismatches.length,
        ledger_violations: ledger_violations.length,
      };
    },
  };
}

/** The ids and keys of gateway records, to find their counterparts on our side whenever they were recorded. */
function keysOf(records: readonly GatewayRecord[]): CounterpartKeys {
  return {
    gateway_ids: records.map((r) => r.id),
    idempotency_keys: records.flatMap((r) => (r.idempotency_key === null ? [] : [r.idempotency_key])),
  };
}
