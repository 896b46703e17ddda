import type { Logger } from 'pino';
import { formatUsd } from '../billing/money';
import type { Db } from '../db/connection';
import {
  claimCrossings,
  markCrossingsDelivered,
  type PendingCrossing,
  postponeCrossings,
} from '../db/crossings';
import { balanceThresholdCrossedSignal } from '../workflows/messages';
import { CoalescingPass } from '../wiring/coalescing-pass';
import type { AccountWorkflows } from './accounts';

/** Crossings claimed per batch; a full batch is followed by another pass at once. */
const CROSSING_BATCH_SIZE = 100;
/**
 * How long a claim keeps other deliverers away. Longer than a batch takes (signals run CROSSING_DELIVERY_CONCURRENCY
 * at a time, each bounded by the API's Temporal deadline), short enough that a crashed deliverer's rows come back
 * within a minute.
 */
const CROSSING_CLAIM_LEASE_MS = 60_000;
/** Customers signalled at once within a batch; one customer's crossings go in order, one after another. */
const CROSSING_DELIVERY_CONCURRENCY = 8;
/** Retry spacing after a failed signal: doubles per attempt from 1 s up to 5 min, never abandoned. */
const CROSSING_RETRY_BACKOFF = { base_ms: 1_000, max_ms: 300_000 };

export interface CrossingMetrics {
  delivered(count: number): void;
  failed(count: number): void;
}

/**
 * Delivers threshold crossings from the `threshold_crossings` outbox to account workflows. The hot path records a
 * crossing in the same statement as the debit and kicks this notifier after commit; a periodic sweep delivers what
 * another (or a crashed) process left behind.
 *
 * No transaction stays open across Temporal calls: a batch is claimed with a lease in one short statement
 * (db/crossings.ts), signalled, then marked delivered in another. Several API processes run notifiers at once and
 * claim disjoint batches (SKIP LOCKED); a crossing is delivered at least once, and the workflow ignores a crossing
 * id it has seen, so a redelivery (after a crash, or a lease that ran out mid-signal) is harmless.
 */
export class CrossingNotifier {
  private readonly passes: CoalescingPass;

  constructor(
    private readonly db: Db,
    private readonly accounts: AccountWorkflows,
    private readonly logger: Logger,
    private readonly sweep_interval_ms: number,
    private readonly metrics?: CrossingMetrics,
  ) {
    this.passes = new CoalescingPass(
      () => this.deliverAll(),
      (error) => this.logger.warn({ err: error }, 'threshold crossing delivery failed; will retry'),
    );
  }

  start(): void {
    this.passes.sweepEvery(this.sweep_interval_ms);
  }

  /** Stops the sweep and waits for the delivery in progress; idempotent. */
  async stop(): Promise<void> {
    await this.passes.stop();
  }

  /** Delivers pending crossings soon; calls while a delivery runs coalesce into one more pass. */
  kick(): void {
    this.passes.kick();
  }

  /** Batches until one comes back short or with a failure (Temporal is struggling: the sweep retries later). */
  private async deliverAll(): Promise<void> {
    for (;;) {
      const batch = await this.deliverBatch();
      if (this.passes.stopped || batch.claimed < CROSSING_BATCH_SIZE || batch.failed > 0) return;
    }
  }

  /** Claims one batch, signals it with no transaction open, then records what was delivered and what failed. */
  async deliverBatch(): Promise<{ claimed: number; delivered: number; failed: number }> {
    const claimed = await claimCrossings(this.db, CROSSING_BATCH_SIZE, CROSSING_CLAIM_LEASE_MS);
    if (claimed.length === 0) return { claimed: 0, delivered: 0, failed: 0 };
    // Past this instant another process may hold the rows: stop signalling and let the lease hand them over.
    const lease_end_ms = Date.now() + CROSSING_CLAIM_LEASE_MS / 2;
    const delivered: bigint[] = [];
    const failed: bigint[] = [];
    await forEachLimited(byCustomer(claimed), CROSSING_DELIVERY_CONCURRENCY, async (rows) => {
      for (const [i, row] of rows.entries()) {
        if (Date.now() > lease_end_ms) return;
        try {
          await this.signal(row);
          delivered.push(row.id);
        } catch (error) {
          // Keep a customer's crossings in order: the rest of its batch waits for the same retry.
          failed.push(...rows.slice(i).map((r) => r.id));
          this.logger.warn(
            { err: error, crossing_id: row.id.toString(), attempts: row.delivery_attempts },
            'threshold crossing not delivered; will retry',
          );
          return;
        }
      }
    });
    await markCrossingsDelivered(this.db, delivered);
    await postponeCrossings(this.db, failed, CROSSING_RETRY_BACKOFF);
    this.metrics?.delivered(delivered.length);
    this.metrics?.failed(failed.length);
    return { claimed: claimed.length, delivered: delivered.length, failed: failed.length };
  }

  private signal(row: PendingCrossing): Promise<void> {
    return this.accounts.signal(row.customer_id, balanceThresholdCrossedSignal, {
      crossing_id: row.id.toString(),
      kind: row.kind,
      threshold_usd: formatUsd(row.threshold_nanos),
      balance_usd: formatUsd(row.balance_after_nanos),
      ...(row.month_spend_nanos === null ? {} : { month_spend_usd: formatUsd(row.month_spend_nanos) }),
      crossed_at: row.crossed_at.toISOString(),
    });
  }
}

/** Groups claimed rows by customer, each group in crossing order (rows arrive sorted by id). */
function byCustomer(rows: readonly PendingCrossing[]): PendingCrossing[][] {
  const groups = new Map<string, PendingCrossing[]>();
  for (const row of rows) {
    const group = groups.get(row.customer_id);
    if (group) group.push(row);
    else groups.set(row.customer_id, [row]);
  }
  return [...groups.values()];
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}
