import type { ThresholdCrossing } from '../billing/account';
import { crossingEvent } from '../billing/crossing-events';
import type { Db } from '../db/connection';
import { recordEvent } from '../db/events';

/**
 * The events of threshold crossings the account workflow received (`credit.balance_low`, `credit.depleted`,
 * `budget.alert`, `budget.limit_reached`), recorded in the outbox once per crossing: the occurrence key
 * `crossing:<id>` makes a retry, a redelivery or a rebuilt run's second attempt a no-op.
 */
export function crossingEventActivities(deps: { db: Db }) {
  return {
    async recordCrossingEvents(input: {
      customer_id: string;
      crossings: ThresholdCrossing[];
    }): Promise<{ recorded: number }> {
      let recorded = 0;
      await deps.db.transaction(async (trx) => {
        for (const crossing of input.crossings) {
          const event = crossingEvent(input.customer_id, crossing);
          if (event && (await recordEvent(trx, event)).created) recorded += 1;
        }
      });
      return { recorded };
    },
  };
}
