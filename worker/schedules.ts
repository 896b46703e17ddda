import { type Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';

const RELEASE_EXPIRED_HOLDS_SCHEDULE_ID = 'release-expired-holds';

/**
 * The engine's recurring jobs as Temporal Schedules (visible and pausable in the Temporal UI). Creating one that
 * exists already updates its interval, so a deploy with a new setting takes effect.
 */
export async function ensureSchedules(
  client: Client,
  options: { task_queue: string; hold_sweep_interval_ms: number },
): Promise<void> {
  const spec = { intervals: [{ every: options.hold_sweep_interval_ms }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'releaseExpiredHoldsWorkflow',
    workflowId: RELEASE_EXPIRED_HOLDS_SCHEDULE_ID,
    taskQueue: options.task_queue,
  };
  try {
    await client.schedule.create({
      scheduleId: RELEASE_EXPIRED_HOLDS_SCHEDULE_ID,
      spec,
      action,
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
    });
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
    await client.schedule.getHandle(RELEASE_EXPIRED_HOLDS_SCHEDULE_ID).update((previous) => ({
      ...previous,
      spec,
      action,
    }));
  }
}
