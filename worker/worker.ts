import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { Context } from '@temporalio/activity';
import { createActivities, type ActivityDeps } from '../activities';
import { accountWorkflowId, accountWakeSignal } from '../workflows/messages';

export interface BillingWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  task_queue: string;
  deps: ActivityDeps;
  /** A prebuilt workflow bundle (tests build it once); otherwise the workflows are bundled at startup. */
  workflow_bundle_path?: string;
  overrides?: Partial<WorkerOptions>;
}

/** The Temporal worker that runs account workflows and their activities. */
export async function createBillingWorker(options: BillingWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.task_queue,
    ...(options.workflow_bundle_path
      ? { workflowBundle: { codePath: options.workflow_bundle_path } }
      : { workflowsPath: require.resolve('../workflows') }),
    activities: createActivities({ wakeAccount: wakeAccountFrom(options.deps), ...options.deps }),
    ...options.overrides,
  });
}

/**
 * How an activity wakes an account workflow: signal with start on the activity's own client and task queue, with
 * the worker's account settings (as the API starts accounts), so a terminated account starts again and rebuilds.
 */
function wakeAccountFrom(deps: ActivityDeps): ActivityDeps['wakeAccount'] {
  const settings = deps.settings;
  if (!settings) return undefined;
  return async (customer_id, reasons) => {
    const { client, info } = Context.current();
    await client.workflow.signalWithStart('accountWorkflow', {
      workflowId: accountWorkflowId(customer_id),
      taskQueue: info.taskQueue,
      args: [{ customer_id, settings }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      signal: accountWakeSignal,
      signalArgs: [{ reasons }],
    });
  };
}
