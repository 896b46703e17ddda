import { type Client, isGrpcServiceError, WorkflowFailedError } from '@temporalio/client';
import type { z } from 'zod';
import {
  type ReconcileResult,
  scheduledWindow,
  type TimeWindow,
  windowProblem,
} from '../../billing/reconciliation';
import type { Db } from '../../db/connection';
import { getReconciliationRun, listReconciliationRuns } from '../../db/reconciliation';
import { reconciliationWorkflowId, type ReconciliationInput } from '../../workflows/reconciliation-workflow';
import { ApiError, invalid } from '../errors';
import type { RouteTable } from '../http';
import {
  ErrorResponse,
  listOf,
  ListQuery,
  ReconciliationRun,
  ReconciliationRunCreate,
  ReconciliationRunPending,
} from '../schemas';
import { reconciliationRunView } from '../views';

export interface ReconciliationRouteDeps {
  db: Db;
  temporal: Client;
  task_queue: string;
  /** How long a run asked for by hand is waited for before answering 202. */
  wait_timeout_ms: number;
  /** RECONCILIATION_INTERVAL and RECONCILIATION_WINDOW_MARGIN: the default window of a run asked for by hand. */
  interval_ms: number;
  margin_ms: number;
}

/**
 * Reconciliation reports (README "Reconciliation"): the runs of the `reconciliation` Schedule and those asked for by
 * hand, newest first, each with every mismatch and ledger violation; and a run asked for now, for one window.
 */
export function reportRoutes(routes: RouteTable, deps: ReconciliationRouteDeps): void {
  const TAG = 'Reports';

  routes.add({
    method: 'get',
    path: '/v1/reports/reconciliation',
    tag: TAG,
    summary:
      'The latest reconciliation runs, newest first: the window each compared, our payments and refunds against ' +
      "the gateway's, every mismatch and every ledger invariant violation.",
    query: ListQuery,
    responses: { 200: { description: 'A page of runs', schema: listOf(ReconciliationRun) } },
    handler: async ({ query }) => {
      const page = await listReconciliationRuns(deps.db, {
        limit: query.limit ?? 20,
        starting_after: query.starting_after,
      });
      if (!page) throw invalid('starting_after', 'starting_after must be the id of a reconciliation run');
      return { status: 200, body: { data: page.data.map(reconciliationRunView), has_more: page.has_more } };
    },
  });

  routes.add({
    method: 'post',
    path: '/v1/reports/reconciliation/runs',
    tag: TAG,
    summary:
      'Reconcile one window now (default: the scheduled window ending now). One workflow per window: asking again ' +
      'while it runs joins it, asking after it finished runs it again. Answers the report when the run ends within ' +
      'the wait, else 202 (the report appears in GET /v1/reports/reconciliation).',
    body: ReconciliationRunCreate,
    responses: {
      201: { description: 'The run, finished', schema: ReconciliationRun },
      202: { description: 'Still running', schema: ReconciliationRunPending },
      503: {
        description: 'The run could not reach the gateway or the database; retry',
        schema: ErrorResponse,
      },
    },
    handler: async ({ body }) => {
      const window = requestedWindow(body, deps);
      const window_from = window.from.toISOString();
      const window_to = window.to.toISOString();
      const workflow_id = reconciliationWorkflowId(window_from, window_to);
      const result = await guard(async () => {
        const handle = await deps.temporal.workflow.start('reconciliationWorkflow', {
          workflowId: workflow_id,
          taskQueue: deps.task_queue,
          args: [{ window_from, window_to } satisfies ReconciliationInput],
          workflowIdConflictPolicy: 'USE_EXISTING',
          workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        });
        return waitAtMost(handle.result() as Promise<ReconcileResult>, deps.wait_timeout_ms);
      });
      if (result === undefined) {
        const pending: z.infer<typeof ReconciliationRunPending> = {
          object: 'reconciliation_run',
          status: 'running',
          workflow_id,
          window_from,
          window_to,
        };
        return { status: 202, body: pending };
      }
      const run = await getReconciliationRun(deps.db, result.run_id);
      if (!run) throw new Error(`reconciliation run ${result.run_id} finished without its report`);
      return { status: 201, body: reconciliationRunView(run) };
    },
  });
}

/** The window a request names, or the scheduled one ending now; a 400 naming the field for a bad one. */
function requestedWindow(
  body: z.infer<typeof ReconciliationRunCreate>,
  deps: Pick<ReconciliationRouteDeps, 'interval_ms' | 'margin_ms'>,
): TimeWindow {
  const now = new Date();
  const fallback = scheduledWindow(now, deps.interval_ms, deps.margin_ms);
  const to = body.window_to === undefined ? fallback.to : new Date(body.window_to);
  const from =
    body.window_from === undefined
      ? new Date(to.getTime() - deps.interval_ms - deps.margin_ms)
      : new Date(body.window_from);
  const window = { from, to };
  const problem = windowProblem(window, now);
  if (problem !== null) throw invalid(body.window_to === undefined ? 'window_from' : 'window_to', problem);
  return window;
}

/** The promise's value if it settles within `timeout_ms`, else undefined. */
async function waitAtMost<T>(promise: Promise<T>, timeout_ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeout_ms);
  });
  // Answered 202, the caller no longer waits: a later failure of the run is its report's (or the UI's) to show.
  promise.catch(() => undefined);
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** An unreachable Temporal, or a run that failed (its activity out of retries), is a 503 to retry. */
async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof WorkflowFailedError) {
      throw new ApiError(
        'unavailable',
        'the reconciliation run failed; see its workflow in the Temporal UI',
        {
          code: 'reconciliation_failed',
        },
      );
    }
    if (isGrpcServiceError(error) || (error as Error).name === 'ServiceError') {
      throw new ApiError('unavailable', 'Temporal is not reachable right now; retry');
    }
    throw error;
  }
}
