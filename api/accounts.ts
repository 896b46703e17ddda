import {
  type Client,
  isGrpcServiceError,
  WithStartWorkflowOperation,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  WorkflowUpdateStage,
} from '@temporalio/client';
import type { SignalDefinition, UpdateDefinition } from '@temporalio/common';
import type { AccountSettings } from '../billing/account';
import { accountWorkflowId } from '../workflows/messages';
import type { accountWorkflow } from '../workflows';
import { ApiError } from './errors';
import type { Metrics } from './metrics';

/**
 * The API's door to account workflows. Every message goes through Update-with-Start, so an account whose workflow
 * is missing (created while Temporal was down, say) gets one on first use, and the caller waits for the outcome
 * for at most `wait_timeout_ms` before hearing that the work is still pending.
 */
export class AccountWorkflows {
  constructor(
    private readonly client: Client,
    private readonly options: { task_queue: string; settings: AccountSettings; wait_timeout_ms: number },
    private readonly metrics?: Pick<Metrics, 'updateSent'>,
  ) {}

  /** Starts the customer's workflow unless it is already running. */
  async ensureStarted(customer_id: string): Promise<void> {
    await this.guard(async () => {
      await this.client.workflow.start('accountWorkflow', this.startOptions(customer_id));
    });
  }

  /**
   * Sends an update and waits for its result. Returns `{ pending: true }` if the workflow accepted the update but
   * did not finish it in time; the work goes on and its outcome is recorded where it belongs.
   */
  async update<Ret, Arg>(
    customer_id: string,
    update: UpdateDefinition<Ret, [Arg]>,
    arg: Arg,
    update_id: string,
  ): Promise<{ pending: false; result: Ret } | { pending: true }> {
    const deadline_ms = Date.now() + this.options.wait_timeout_ms;
    this.metrics?.updateSent(update.name);
    return this.guard(async () => {
      const handle = await this.client.connection.withDeadline(deadline_ms, () =>
        this.client.workflow.startUpdateWithStart(update, {
          args: [arg],
          updateId: update_id,
          waitForStage: WorkflowUpdateStage.ACCEPTED,
          startWorkflowOperation: new WithStartWorkflowOperation<typeof accountWorkflow>(
            'accountWorkflow',
            this.startOptions(customer_id),
          ),
        }),
      );
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline_ms - Date.now()));
      });
      try {
        const outcome = await Promise.race([handle.result(), timedOut]);
        return outcome === 'timeout' ? { pending: true } : { pending: false, result: outcome as Ret };
      } finally {
        clearTimeout(timer);
      }
    });
  }

  /** Signals the workflow, starting it first if the account has none yet. */
  async signal<Arg>(customer_id: string, signal: SignalDefinition<[Arg]>, arg: Arg): Promise<void> {
    // Bounded, so that a crossing delivery ends well within its claim lease.
    await this.guard(() =>
      this.client.connection.withDeadline(Date.now() + this.options.wait_timeout_ms, () =>
        this.client.workflow.signalWithStart<typeof accountWorkflow, [Arg]>('accountWorkflow', {
          ...this.startOptions(customer_id),
          signal,
          signalArgs: [arg],
        }),
      ),
    );
  }

  async query<Ret>(customer_id: string, query: string): Promise<Ret> {
    return this.guard(() => this.client.workflow.getHandle(accountWorkflowId(customer_id)).query<Ret>(query));
  }

  private startOptions(customer_id: string) {
    return {
      workflowId: accountWorkflowId(customer_id),
      taskQueue: this.options.task_queue,
      args: [{ customer_id, settings: this.options.settings }] as Parameters<typeof accountWorkflow>,
      workflowIdConflictPolicy: 'USE_EXISTING' as const,
    };
  }

  /** Maps Temporal failures to the API's errors: a refused update is the caller's problem, the rest is ours. */
  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof WorkflowUpdateFailedError) {
        const cause = error.cause as { type?: string; message?: string } | undefined;
        const code = cause?.type ?? 'rejected';
        const type = code === 'invalid_amount' || code === 'invalid_expiry' ? 'invalid_request' : 'conflict';
        throw new ApiError(type, cause?.message ?? 'the account refused the request', { code });
      }
      // Not accepted before the deadline (no worker polling, or the account is backed up): retryable, not a defect.
      if (error instanceof WorkflowUpdateRPCTimeoutOrCancelledError) {
        throw new ApiError(
          'unavailable',
          'the account workflow did not accept the request in time; retry with the same Idempotency-Key',
        );
      }
      if (isGrpcServiceError(error) || (error as Error).name === 'ServiceError') {
        throw new ApiError(
          'unavailable',
          'the account workflow is not reachable right now; retry with the same Idempotency-Key',
        );
      }
      throw error;
    }
  }
}
