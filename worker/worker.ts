import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';

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
    activities: createActivities(options.deps),
    ...options.overrides,
  });
}
