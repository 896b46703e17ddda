import { NativeConnection } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { SimulatedGateway } from '../../payments/simulated-gateway';
import { createDb } from '../../db/connection';
import { getInvoice } from '../../db/subscriptions';
import { createHotPathPool, HotPath } from '../../db/hot-path';
import { createBillingWorker } from '../../worker/worker';
import { testTierTable } from './test-tiers';

/**
 * A real worker that kills its own process (SIGKILL: no cleanup, no goodbye to the server) at one point of a
 * top-up, to prove that another worker finishes the job with exactly one charge and one grant.
 * CRASH_AT=after_charge: the card is charged, then the process dies before the activity reports back.
 * CRASH_AT=before_grant: the charge activity completed; the process dies as the grant activity starts.
 * CRASH_AT=recharge_after_charge / recharge_before_grant: the same two points of an auto-recharge.
 * CRASH_AT=renewal_after_charge: a subscription renewal's invoice is charged, then the process dies before the
 * charge step reports back (the period is not opened yet).
 */
async function main(): Promise<void> {
  const crashAt = process.env.CRASH_AT;
  const db = createDb({ databaseUrl: process.env.DATABASE_URL!, pool_max: 4 });
  const gateway = new SimulatedGateway(db);
  const hotPath = new HotPath(createHotPathPool({ databaseUrl: process.env.DATABASE_URL!, pool_max: 2 }));
  const tiers = testTierTable();
  const real = createActivities({ db, gateway, hotPath, tiers });
  const die = (): never => {
    process.kill(process.pid, 'SIGKILL');
    throw new Error('unreachable');
  };
  const activities: typeof real = {
    ...real,
    chargeTopUp: async (input) => {
      const result = await real.chargeTopUp(input);
      if (crashAt === 'after_charge') die();
      return result;
    },
    completeTopUp: async (input) => (crashAt === 'before_grant' ? die() : real.completeTopUp(input)),
    chargeAutoRecharge: async (input) => {
      const result = await real.chargeAutoRecharge(input);
      if (crashAt === 'recharge_after_charge') die();
      return result;
    },
    completeAutoRecharge: async (input) =>
      crashAt === 'recharge_before_grant' ? die() : real.completeAutoRecharge(input),
    chargeInvoice: async (input) => {
      const result = await real.chargeInvoice(input);
      const invoice = await getInvoice(db, input.invoice_id);
      if (crashAt === 'renewal_after_charge' && invoice?.key.startsWith('period:')) die();
      return result;
    },
  };
  const connection = await NativeConnection.connect({ address: process.env.TEST_TEMPORAL_ADDRESS! });
  const worker = await createBillingWorker({
    connection,
    namespace: 'default',
    task_queue: process.env.TASK_QUEUE!,
    deps: { db, gateway, hotPath, tiers },
    workflow_bundle_path: process.env.TEST_WORKFLOW_BUNDLE,
    // No sticky cache: after the crash, the next workflow task goes straight to the surviving worker.
    overrides: { activities, maxCachedWorkflows: 0 },
  });
  console.log('crash-worker ready');
  await worker.run();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
