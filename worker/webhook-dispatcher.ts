import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { Logger } from 'pino';
import type { Db } from '../db/connection';
import type { Config } from '../wiring/config';
import { CoalescingPass } from '../wiring/coalescing-pass';
import {
  claimUnstartedDeliveries,
  fanOutEvents,
  listenForEvents,
  markDeliveriesStarted,
  postponeDeliveries,
} from '../db/webhooks';
import { webhookDeliveryWorkflow, webhookDeliveryWorkflowId } from '../workflows/webhook-delivery-workflow';

/** Events fanned out, and deliveries started, per statement; a full batch is followed by another at once. */
const BATCH_SIZE = 100;
/** How long a claim on unstarted deliveries keeps other dispatchers away (a crashed one's rows come back after). */
const CLAIM_LEASE_MS = 60_000;
/** When starting a delivery's workflow failed (Temporal away), how long before a dispatcher tries again. */
const START_RETRY_MS = 5_000;
/** Workflow starts in flight at once. */
const START_CONCURRENCY = 8;

export interface WebhookDispatcherOptions {
  db: Db;
  temporal: Client;
  task_queue: string;
  /** WEBHOOK_RETRY_SCHEDULE in ms, handed to each delivery workflow at its start. */
  schedule_ms: number[];
  /** WEBHOOK_TIMEOUT_MS. */
  timeout_ms: number;
  /** WEBHOOK_SWEEP_INTERVAL_MS. */
  sweep_interval_ms: number;
  logger: Logger;
}

/**
 * Moves events from the `events` outbox to their delivery workflows, in the worker process. Each pass (1) fans out
 * the events not yet fanned out into one delivery per enabled, subscribed endpoint, in a transaction that marks them
 * fanned out (SKIP LOCKED: concurrent dispatchers take disjoint events; a delivery is unique per (event, endpoint)
 * anyway), then (2) claims the deliveries whose workflow is not started yet, with a lease, and starts
 * `webhook-delivery:<id>` for each: a workflow id that exists already (a start whose mark was lost) counts as
 * started. No transaction is open across a Temporal call.
 *
 * Passes run when an event is committed (the `events` trigger notifies; the dispatcher listens on a dedicated
 * connection) and every sweep interval, which also covers a lost notification connection and crashed dispatchers'
 * leases. Any number of workers run one each.
 */
export class WebhookDispatcher {
  private readonly passes: CoalescingPass;
  private listener?: Promise<{ close(): Promise<void> } | undefined>;

  constructor(private readonly options: WebhookDispatcherOptions) {
    this.passes = new CoalescingPass(
      () => this.dispatchAll(),
      (error) => this.options.logger.warn({ err: error }, 'webhook dispatch failed; the sweep retries'),
    );
  }

  start(): void {
    this.listen();
    this.passes.sweepEvery(this.options.sweep_interval_ms, () => {
      if (!this.listener) this.listen();
    });
    this.kick();
  }

  /** Stops the sweep and the listener and waits for the pass in progress; idempotent. */
  async stop(): Promise<void> {
    const stopping = this.passes.stop(); // stops sweeps and kicks at once, before the listener closes
    const listener = await this.listener;
    this.listener = undefined;
    await listener?.close().catch(() => undefined);
    await stopping;
  }

  /** Runs a pass soon; calls while one runs coalesce into one more pass. */
  kick(): void {
    this.passes.kick();
  }

  private listen(): void {
    if (this.passes.stopped) return;
    const opening = listenForEvents(this.options.db, {
      onEvent: () => this.kick(),
      onLost: (error) => {
        if (this.listener === opening) this.listener = undefined;
        if (!this.passes.stopped)
          this.options.logger.warn({ err: error }, 'event notifications lost; listening again');
      },
    }).catch((error: unknown) => {
      if (this.listener === opening) this.listener = undefined;
      this.options.logger.warn({ err: error }, 'could not listen for event notifications; sweeping only');
      return undefined;
    });
    this.listener = opening;
  }

  /** Passes until both steps come back short, or a start failed (Temporal is struggling: the sweep retries). */
  private async dispatchAll(): Promise<void> {
    for (;;) {
      const fanned = await fanOutEvents(this.options.db, BATCH_SIZE);
      const started = await this.startBatch();
      if (this.passes.stopped || started.failed > 0) return;
      if (fanned < BATCH_SIZE && started.claimed < BATCH_SIZE) return;
    }
  }

  private async startBatch(): Promise<{ claimed: number; failed: number }> {
    const ids = await claimUnstartedDeliveries(this.options.db, BATCH_SIZE, CLAIM_LEASE_MS);
    const started: string[] = [];
    const failed: string[] = [];
    let next = 0;
    const lane = async () => {
      while (next < ids.length) {
        const id = ids[next++]!;
        try {
          await this.startWorkflow(id);
          started.push(id);
        } catch (error) {
          failed.push(id);
          this.options.logger.warn(
            { err: error, delivery_id: id },
            'webhook delivery not started; will retry',
          );
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(START_CONCURRENCY, ids.length) }, lane));
    await markDeliveriesStarted(this.options.db, started);
    await postponeDeliveries(this.options.db, failed, START_RETRY_MS);
    return { claimed: ids.length, failed: failed.length };
  }

  private async startWorkflow(delivery_id: string): Promise<void> {
    try {
      await this.options.temporal.workflow.start(webhookDeliveryWorkflow, {
        workflowId: webhookDeliveryWorkflowId(delivery_id),
        taskQueue: this.options.task_queue,
        args: [{ delivery_id, schedule_ms: this.options.schedule_ms, timeout_ms: this.options.timeout_ms }],
        // Once per delivery, also after it closed: the attempt activity would send nothing for a settled delivery
        // anyway, but a closed workflow is not restarted.
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      });
    } catch (error) {
      if (error instanceof WorkflowExecutionAlreadyStartedError) return;
      throw error;
    }
  }
}

/** The dispatcher as the configuration sets it (worker/main.ts and `npm start`). */
export function webhookDispatcherFrom(
  config: Pick<
    Config,
    'TEMPORAL_TASK_QUEUE' | 'WEBHOOK_RETRY_SCHEDULE' | 'WEBHOOK_TIMEOUT_MS' | 'WEBHOOK_SWEEP_INTERVAL_MS'
  >,
  parts: { db: Db; temporal: Client; logger: Logger },
): WebhookDispatcher {
  return new WebhookDispatcher({
    ...parts,
    task_queue: config.TEMPORAL_TASK_QUEUE,
    schedule_ms: config.WEBHOOK_RETRY_SCHEDULE,
    timeout_ms: config.WEBHOOK_TIMEOUT_MS,
    sweep_interval_ms: config.WEBHOOK_SWEEP_INTERVAL_MS,
  });
}
