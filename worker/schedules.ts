import {
  type Client,
  ScheduleAlreadyRunning,
  ScheduleOverlapPolicy,
  type ScheduleOptionsAction,
} from '@temporalio/client';
import type { ReconciliationInput } from '../workflows/reconciliation-workflow';
import type { SweepInput } from '../workflows/release-expired-holds-workflow';

export const RELEASE_EXPIRED_HOLDS_SCHEDULE_ID = 'release-expired-holds';
export const RECONCILIATION_SCHEDULE_ID = 'reconciliation';

export interface ScheduleSettings {
  task_queue: string;
  /** HOLD_SWEEP_INTERVAL_MS. */
  hold_sweep_interval_ms: number;
  /** RECONCILIATION_INTERVAL, in ms. */
  reconciliation_interval_ms: number;
  /** RECONCILIATION_WINDOW_MARGIN, in ms. */
  reconciliation_window_margin_ms: number;
  /** ACCOUNT_WAKE_AFTER and ACCOUNT_WAKE_MAX_BACKOFF, in ms: the sweep's input (absent: its defaults). */
  wake?: SweepInput;
  /**
   * Prefixed to every Schedule id and its workflows' ids. Schedules live in the namespace, not the task queue, so
   * a test file gives its own (default none).
   */
  id_prefix?: string;
}

/**
 * The engine's recurring jobs as Temporal Schedules (visible and pausable in the Temporal UI). Creating one that
 * exists already updates its interval and input, so a deploy with a new setting takes effect.
 * - `release-expired-holds` every HOLD_SWEEP_INTERVAL_MS;
 * - `reconciliation` every RECONCILIATION_INTERVAL, each run checking the interval before it plus the margin.
 */
export async function ensureSchedules(client: Client, options: ScheduleSettings): Promise<void> {
  const prefix = options.id_prefix ?? '';
  await ensureSchedule(
    client,
    `${prefix}${RELEASE_EXPIRED_HOLDS_SCHEDULE_ID}`,
    options.hold_sweep_interval_ms,
    {
      type: 'startWorkflow',
      workflowType: 'releaseExpiredHoldsWorkflow',
      workflowId: `${prefix}${RELEASE_EXPIRED_HOLDS_SCHEDULE_ID}`,
      taskQueue: options.task_queue,
      args: options.wake ? [options.wake] : [],
    },
  );
  const input: ReconciliationInput = {
    interval_ms: options.reconciliation_interval_ms,
    margin_ms: options.reconciliation_window_margin_ms,
  };
  await ensureSchedule(client, `${prefix}${RECONCILIATION_SCHEDULE_ID}`, options.reconciliation_interval_ms, {
    type: 'startWorkflow',
    workflowType: 'reconciliationWorkflow',
    workflowId: `${prefix}${RECONCILIATION_SCHEDULE_ID}`,
    taskQueue: options.task_queue,
    args: [input],
  });
}

/** Creates the Schedule, or updates the spec and action of the one that exists (its pause state is kept). */
async function ensureSchedule(
  client: Client,
  scheduleId: string,
  every_ms: number,
  action: ScheduleOptionsAction,
): Promise<void> {
  const spec = { intervals: [{ every: every_ms }] };
  try {
    await client.schedule.create({
      scheduleId,
      spec,
      action,
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
    });
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
    await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action }));
  }
}
