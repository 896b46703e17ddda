import type { Logger } from 'pino';
import { formatUsd } from '../billing/money';
import type { Db } from '../db/connection';
import { execute, queryRows } from '../db/connection';
import { balanceThresholdCrossedSignal } from '../workflows/messages';
import type { AccountWorkflows } from './accounts';

const BATCH_SIZE = 100;

interface CrossingRow {
  id: bigint;
  customer_id: string;
  threshold_nanos: bigint;
  balance_after_nanos: bigint;
  crossed_at: Date;
}

/**
 * Delivers threshold crossings from the `threshold_crossings` outbox to account workflows. The hot path records a
 * crossing in the same statement as the debit and kicks this notifier after commit; a periodic sweep delivers
 * what a crashed process left behind. Rows are claimed with SKIP LOCKED, so several API processes share the work,
 * and the workflow ignores a crossing id it has seen, so a redelivery after a crash is harmless.
 */
export class CrossingNotifier {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;

  constructor(
    private readonly db: Db,
    private readonly accounts: AccountWorkflows,
    private readonly logger: Logger,
    private readonly sweep_interval_ms: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), this.sweep_interval_ms);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Delivers pending crossings soon; calls while a delivery runs coalesce into one more pass. */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.deliverAll()
      .catch((error: unknown) =>
        this.logger.warn({ err: error }, 'threshold crossing delivery failed; will retry'),
      )
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async deliverAll(): Promise<void> {
    while ((await this.deliverBatch()) === BATCH_SIZE) {
      // keep going while full batches come back
    }
  }

  /** Claims, signals and marks one batch in one transaction; returns how many crossings it delivered. */
  async deliverBatch(): Promise<number> {
    return this.db.transaction(async (trx) => {
      const rows = await queryRows<CrossingRow>(
        trx,
        `SELECT id, customer_id, threshold_nanos, balance_after_nanos, crossed_at FROM threshold_crossings
         WHERE signaled_at IS NULL ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED`,
        [BATCH_SIZE],
      );
      for (const row of rows) {
        await this.accounts.signal(row.customer_id, balanceThresholdCrossedSignal, {
          crossing_id: row.id.toString(),
          threshold_usd: formatUsd(row.threshold_nanos),
          balance_usd: formatUsd(row.balance_after_nanos),
          crossed_at: row.crossed_at.toISOString(),
        });
        await execute(trx, `UPDATE threshold_crossings SET signaled_at = now() WHERE id = ?`, [row.id]);
      }
      return rows.length;
    });
  }
}
