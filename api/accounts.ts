import { type Client, isGrpcServiceError } from '@temporalio/client';
import type { SignalDefinition } from '@temporalio/common';
import type { AccountSettings } from '../billing/account';
import type { Db } from '../db/connection';
import { settledRequestIds } from '../db/credit-grant-requests';
import { accountWorkflowId } from '../workflows/messages';
import type { accountWorkflow } from '../workflows';
import { ApiError } from './errors';
import type { Metrics, MoneyRequestKind } from './metrics';

/**
 * The API's door to account workflows. Every message starts the workflow if it is missing (created while Temporal
 * was down, say, or terminated by an operator), and the caller waits for the outcome for at most
 * `wait_timeout_ms` before hearing that the work is still pending.
 *
 * Money requests (top-ups, grants, refunds) are recorded in PostgreSQL by the route, then signalled (`submit`), and their
 * outcome is read back from PostgreSQL: any number may be in flight at once (Updates admit 10 per workflow).
 */
export class AccountWorkflows {
  private readonly outcomes: OutcomeWaiter;

  constructor(
    private readonly client: Client,
    private readonly options: { task_queue: string; settings: AccountSettings; wait_timeout_ms: number },
    db: Db,
    private readonly metrics?: Pick<Metrics, 'moneyRequestSent'>,
  ) {
    this.outcomes = new OutcomeWaiter(db);
  }

  /**
   * Delivers a money request the caller has recorded in PostgreSQL under `request_id`, then waits until the
   * database shows it settled or the wait timeout passes. `pending` means the account has it and the outcome will
   * be recorded; the caller answers 202. If the signal could not be sent and nothing settled, it is a 503 (the
   * retry with the same Idempotency-Key sends it again; the workflow runs a request id once).
   */
  async submit<Arg>(
    kind: MoneyRequestKind,
    customer_id: string,
    signal: SignalDefinition<[Arg]>,
    arg: Arg,
    request_id: string,
  ): Promise<'settled' | 'pending'> {
    const answer = await this.deliver(customer_id, signal, arg, request_id).catch((error: unknown) => {
      this.metrics?.moneyRequestSent(kind, 'undelivered');
      throw error;
    });
    this.metrics?.moneyRequestSent(kind, answer);
    return answer;
  }

  private async deliver<Arg>(
    customer_id: string,
    signal: SignalDefinition<[Arg]>,
    arg: Arg,
    request_id: string,
  ): Promise<'settled' | 'pending'> {
    const deadline_ms = Date.now() + this.options.wait_timeout_ms;
    let undelivered: unknown;
    try {
      await this.signal(customer_id, signal, arg);
    } catch (error) {
      if (!(error instanceof ApiError) || error.type !== 'unavailable') throw error;
      undelivered = error;
    }
    // Even when the signal reported an error it may have been delivered: what the database says decides.
    if (await this.outcomes.wait(request_id, undelivered ? Date.now() : deadline_ms)) return 'settled';
    if (undelivered) throw undelivered;
    return 'pending';
  }

  /** Starts the customer's workflow unless it is already running. */
  async ensureStarted(customer_id: string): Promise<void> {
    await this.guard(async () => {
      await this.client.workflow.start('accountWorkflow', this.startOptions(customer_id));
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

  /** Maps Temporal failures to the API's errors: an unreachable Temporal is a 503 to retry with the same key. */
  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
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

/**
 * Waits for money requests to settle in PostgreSQL. One poll serves every waiting request of this process (one
 * statement for all their ids), so 200 concurrent top-ups cost one query per tick, not 200.
 */
class OutcomeWaiter {
  private readonly waiting = new Map<string, Set<(settled: boolean) => void>>();
  private polling = false;

  constructor(
    private readonly db: Db,
    private readonly interval_ms = 50,
  ) {}

  /** Resolves true once the request is settled, false if `deadline_ms` passes first (checked at least once). */
  wait(request_id: string, deadline_ms: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let done = false;
      const finish = (settled: boolean) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        const set = this.waiting.get(request_id);
        set?.delete(finish);
        if (set?.size === 0) this.waiting.delete(request_id);
        resolve(settled);
      };
      // After the deadline, one last look: a request that settled just in time is reported as settled.
      const timer = setTimeout(
        () => {
          settledRequestIds(this.db, [request_id]).then(
            (ids) => finish(ids.length > 0),
            () => finish(false),
          );
        },
        Math.max(0, deadline_ms - Date.now()),
      );
      const set = this.waiting.get(request_id) ?? new Set();
      set.add(finish);
      this.waiting.set(request_id, set);
      this.schedule(0);
    });
  }

  private schedule(delay_ms: number): void {
    if (this.polling) return;
    this.polling = true;
    setTimeout(() => void this.poll(), delay_ms);
  }

  private async poll(): Promise<void> {
    try {
      const ids = [...this.waiting.keys()];
      const settled = ids.length === 0 ? [] : await settledRequestIds(this.db, ids);
      for (const id of settled) for (const finish of [...(this.waiting.get(id) ?? [])]) finish(true);
    } catch {
      // A failed poll is retried at the next tick; each waiter still ends at its deadline.
    } finally {
      this.polling = false;
      if (this.waiting.size > 0) this.schedule(this.interval_ms);
    }
  }
}
