import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import fs from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { recordEvent } from '../../db/events';
import { recordSubscriptionChange } from '../../db/subscriptions';
import { recordTopUp } from '../../db/top-ups';
import { accountWakeSignal, accountWorkflowId, expireCreditSignal } from '../../workflows/messages';
import { webhookDeliveryWorkflowId } from '../../workflows/webhook-delivery-workflow';
import globalSetup from './global-setup';
import globalTeardown from './global-teardown';
import { waitFor } from './eventually';
import { Harness } from './harness';

/**
 * `npm run histories:record`: runs representative account lifecycles against a real Temporal dev server and saves
 * their event histories under test/histories/. test/replay.test.ts replays every saved history through the current
 * workflow code, so a change that would break running workflows fails CI. Record new histories when the workflow
 * gains behaviour; never delete old ones while workflows of that shape may still be running.
 */
/** `HISTORIES_OUT_DIR` records elsewhere (a trial run that leaves the committed histories alone). */
const OUT_DIR = process.env.HISTORIES_OUT_DIR ?? path.join(__dirname, '..', 'histories');

async function main(): Promise<void> {
  await globalSetup();
  const h = await Harness.start({ settings: { continue_as_new_after_events: 60 } });
  try {
    const stamp = new Date().toISOString().slice(0, 10);

    // Which scenarios to record: all by default, or those named on the command line (old histories stay as they
    // are: they are what workflows started by older code look like).
    const wanted = (name: string) => process.argv.length <= 2 || process.argv.slice(2).includes(name);

    // 1. Payment method, a successful and a declined top-up, an expiring promotion and its expiry.
    if (wanted('lifecycle')) {
      const a = `cus_hist_a_${Date.now()}`;
      await h.customer(a, 'pm_card_visa');
      await expectStatus(h.call('POST', `/v1/customers/${a}/top-ups`, { amount_usd: '25.00' }), 201);
      await expectStatus(
        h.call('POST', `/v1/customers/${a}/credit-grants`, {
          amount_usd: '3.50',
          reason: 'launch promotion',
          expires_at: new Date(Date.now() + 1_500).toISOString(),
        }),
        201,
      );
      await expectStatus(
        h.call('PUT', `/v1/customers/${a}/payment-method`, { payment_method: 'pm_card_chargeDeclined' }),
        200,
      );
      await expectStatus(h.call('POST', `/v1/customers/${a}/top-ups`, { amount_usd: '10.00' }), 402);
      await settled(
        h,
        a,
        'the expiry timer to write the promotion off',
        async () =>
          (await h.db('credit_grants').where({ customer_id: a, closed_reason: 'expired' })).length === 1,
      );
      const signalled = await historyLength(h, a);
      await h.temporal.workflow.getHandle(accountWorkflowId(a)).signal(expireCreditSignal);
      await settled(
        h,
        a,
        'the expiry request to be handled',
        async () => (await historyLength(h, a)) > signalled,
      );
      await save(h, a, `${stamp}-lifecycle`);
    }

    // 2. Concurrent top-ups that cross the continue-as-new threshold: the first run's history ends in continue-as-new.
    if (wanted('continue-as-new')) {
      const b = `cus_hist_b_${Date.now()}`;
      await h.customer(b, 'pm_card_visa');
      await Promise.all(
        ['1.00', '2.00', '3.00', '4.00', '5.00'].map((amount_usd) =>
          h.call('POST', `/v1/customers/${b}/top-ups`, { amount_usd }),
        ),
      );
      // The next run starts by reading the worker's settings and the pending requests: let it get that far.
      await settled(h, b, 'the run after continue-as-new', async () => (await runCount(h, b)) >= 2);
      await save(h, b, `${stamp}-continue-as-new`);
    }

    // 3. Usage takes the balance below the customer's threshold: the hot path signals the crossing once.
    if (wanted('threshold-crossing')) {
      const c = `cus_hist_c_${Date.now()}`;
      await h.customer(c, 'pm_card_visa');
      await expectStatus(h.call('POST', `/v1/customers/${c}/top-ups`, { amount_usd: '1.00' }), 201);
      await expectStatus(
        h.call('PUT', `/v1/customers/${c}/balance-threshold`, { threshold_usd: '0.50' }),
        200,
      );
      const event = { customer_id: c, model: 'gpt-5.4', output_tokens: 40_000 }; // $0.60
      await expectStatus(h.call('POST', '/v1/usage-events', { events: [{ event_id: 'e1', ...event }] }), 200);
      await settled(h, c, 'the crossing to be delivered', () => crossingsDelivered(h, c));
      await save(h, c, `${stamp}-threshold-crossing`);
    }

    // 4. Auto-recharge: a debit crosses the low-balance and recharge thresholds (an event, one recharge), then a
    //    declined card switches auto-recharge off at the next crossing.
    if (wanted('auto-recharge')) {
      const d = `cus_hist_d_${Date.now()}`;
      await h.customer(d, 'pm_card_visa');
      await expectStatus(h.call('POST', `/v1/customers/${d}/top-ups`, { amount_usd: '10.00' }), 201);
      await expectStatus(
        h.call('PUT', `/v1/customers/${d}/balance-threshold`, { threshold_usd: '9.80' }),
        200,
      );
      await expectStatus(
        h.call('PUT', `/v1/customers/${d}/auto-recharge`, {
          enabled: true,
          threshold_usd: '9.50',
          amount_usd: '5.00',
        }),
        200,
      );
      const event = { customer_id: d, model: 'gpt-5.4', output_tokens: 40_000 }; // $0.60
      await expectStatus(h.call('POST', '/v1/usage-events', { events: [{ event_id: 'e1', ...event }] }), 200);
      await settled(h, d, 'the recharge: 9.40 + 5.00', () => rechargesSettled(h, d, 1));
      await expectStatus(
        h.call('PUT', `/v1/customers/${d}/payment-method`, { payment_method: 'pm_card_chargeDeclined' }),
        200,
      );
      const big = { customer_id: d, model: 'gpt-5.4', output_tokens: 400_000 }; // $6.00: 14.40 -> 8.40
      await expectStatus(h.call('POST', '/v1/usage-events', { events: [{ event_id: 'e2', ...big }] }), 200);
      await settled(h, d, 'the declined recharge', () => rechargesSettled(h, d, 2));
      await save(h, d, `${stamp}-auto-recharge`);
    }

    // 4b. Auto-recharge switched on below the threshold (one recharge at once), then a crossing refused by the
    //     monthly limit: the account waits for the next UTC month on a durable timer.
    if (wanted('auto-recharge-rearm')) {
      const r = `cus_hist_r_${Date.now()}`;
      await h.customer(r, 'pm_card_visa');
      await h.fund(r, '4.00');
      await expectStatus(
        h.call('PUT', `/v1/customers/${r}/auto-recharge`, {
          enabled: true,
          threshold_usd: '5.00',
          amount_usd: '10.00',
          monthly_limit_usd: '10.00',
        }),
        200,
      );
      await settled(h, r, 'the recharge on enabling: 4.00 + 10.00', () => rechargesSettled(h, r, 1));
      const searches = { customer_id: r, model: 'gpt-5.4-nano', tool_calls: { web_search: 1000 } }; // $10.00
      await expectStatus(
        h.call('POST', '/v1/usage-events', { events: [{ event_id: 'r1', ...searches }] }),
        200,
      );
      await settled(h, r, 'the refusal by the monthly limit', () => rechargesSettled(h, r, 2));
      await save(h, r, `${stamp}-auto-recharge-rearm`);
    }

    // 5. A webhook delivery answered 500 twice, then 204: three attempts with the schedule's timers between them.
    if (wanted('webhook-delivery')) {
      let requests = 0;
      const server = createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          res.statusCode = ++requests <= 2 ? 500 : 204;
          res.end();
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
        const endpoint = await h.call('POST', '/v1/webhook-endpoints', { url, events: ['tier.promoted'] });
        const { id: event_id } = await recordEvent(h.db, {
          customer_id: null,
          type: 'tier.promoted',
          data: { tier: 'tier_1' },
          occurrence_key: `history:webhook:${Date.now()}`,
        });
        let delivery_id: string | undefined;
        await waitFor('the webhook delivery', async () => {
          const [row] = await h.db('webhook_deliveries').where({
            event_id,
            endpoint_id: endpoint.body.id,
            status: 'delivered',
          });
          delivery_id = row?.id as string | undefined;
          return delivery_id !== undefined;
        });
        if (!delivery_id) throw new Error('the webhook delivery did not complete');
        await saveWorkflow(h, webhookDeliveryWorkflowId(delivery_id), `webhook-delivery-${stamp}-retried`);
      } finally {
        server.closeAllConnections();
        server.close();
      }
    }

    // 6. Spend tiers: the run-start review, a $50 top-up that promotes to tier 1 at once, then tier 2 on the age
    //    rule's timer (7 billing days of 300 ms after the first payment).
    if (wanted('spend-tiers')) {
      const tiers = await Harness.start({ settings: { billing_day_ms: 300 } });
      try {
        const e = `cus_hist_e_${Date.now()}`;
        await tiers.customer(e, 'pm_card_visa');
        await expectStatus(tiers.call('POST', `/v1/customers/${e}/top-ups`, { amount_usd: '50.00' }), 201);
        // 2.1 s to the age rule's timer, then the review.
        await settled(tiers, e, 'tier 2 on its timer', async () => {
          const [row] = await tiers.db('customers').where({ id: e });
          return row?.tier === 'tier_2';
        });
        await save(tiers, e, `${stamp}-spend-tiers`);
      } finally {
        await tiers.stop();
      }
    }

    // 7. A promotion that expires while a hold is open: the expiry keeps the held part, the hold is captured, and the
    //    account wakes again at the hold's expiry to settle it (behind its patch).
    if (wanted('expiry-under-hold')) {
      const f = `cus_hist_f_${Date.now()}`;
      await h.customer(f);
      await expectStatus(
        h.call('POST', `/v1/customers/${f}/credit-grants`, {
          amount_usd: '5.00',
          reason: 'trial',
          expires_at: new Date(Date.now() + 1_500).toISOString(),
        }),
        201,
      );
      const usage = { output_tokens: 200_000 }; // $3.00 of gpt-5.4 output
      const hold = await h.call('POST', '/v1/authorizations', {
        customer_id: f,
        model: 'gpt-5.4',
        estimated_usage: usage,
        ttl_seconds: 4,
      });
      if (hold.status !== 201) throw new Error(`authorization: ${hold.status} ${JSON.stringify(hold.body)}`);
      await settled(
        h,
        f,
        'the expiry timer (3.00 stays held)',
        async () =>
          (await h.db('credit_grants').where({ customer_id: f, closed_reason: 'expired' })).length === 1,
      );
      await expectStatus(h.call('POST', `/v1/authorizations/${hold.body.id}/capture`, { usage }), 200);
      await settled(h, f, "the settle timer at the hold's expiry", async () => {
        const [grant] = await h.db('credit_grants').where({ customer_id: f });
        return grant?.closed_at != null;
      });
      await save(h, f, `${stamp}-expiry-under-hold`);
    }

    // 8. The sweep's wake: a top-up and a subscription change recorded but never signalled (an API that died in
    //    between) are read from PostgreSQL and run when the account is woken with `request_pending`.
    if (wanted('wake')) {
      const g = `cus_hist_g_${Date.now()}`;
      await h.customer(g, 'pm_card_visa');
      await expectStatus(h.call('POST', `/v1/customers/${g}/top-ups`, { amount_usd: '5.00' }), 201);
      await recordTopUp(h.db, { id: `tu_${g}_lost`, customer_id: g, amount_nanos: 3_000_000_000n });
      await recordSubscriptionChange(h.db, { id: `sc_${g}_lost`, customer_id: g, plan: 'go', seats: null });
      await h.temporal.workflow
        .getHandle(accountWorkflowId(g))
        .signal(accountWakeSignal, { reasons: ['request_pending', 'expiry_overdue'] });
      await settled(h, g, 'the lost top-up and subscription change to run', async () => {
        const [topUp] = await h.db('top_ups').where({ id: `tu_${g}_lost` });
        const [change] = await h.db('subscription_changes').where({ id: `sc_${g}_lost` });
        return topUp?.status === 'succeeded' && change?.status === 'applied';
      });
      await save(h, g, `${stamp}-wake`);
    }
  } finally {
    await h.stop();
    await globalTeardown();
  }
}

/**
 * Waits (with a deadline) until `ready` holds and the account's latest run is idle (no workflow task and no activity
 * pending), so what it records is the whole step and nothing half-done.
 */
async function settled(h: Harness, customer_id: string, what: string, ready: () => Promise<boolean>) {
  const handle = h.temporal.workflow.getHandle(accountWorkflowId(customer_id));
  await waitFor(what, async () => {
    if (!(await ready())) return false;
    const { raw } = await handle.describe();
    return !raw.pendingWorkflowTask && (raw.pendingActivities?.length ?? 0) === 0;
  });
}

async function historyLength(h: Harness, customer_id: string): Promise<number> {
  const history = await h.temporal.workflow.getHandle(accountWorkflowId(customer_id)).fetchHistory();
  return history.events?.length ?? 0;
}

async function runCount(h: Harness, customer_id: string): Promise<number> {
  let runs = 0;
  for await (const _ of h.temporal.workflow.list({
    query: `WorkflowId = '${accountWorkflowId(customer_id)}'`,
  })) {
    runs++;
  }
  return runs;
}

async function crossingsDelivered(h: Harness, customer_id: string): Promise<boolean> {
  const rows = await h.db('threshold_crossings').where({ customer_id });
  return rows.length > 0 && rows.every((r: { signaled_at: Date | null }) => r.signaled_at !== null);
}

/** At least `count` recharges of the customer have an outcome (none still pending). */
async function rechargesSettled(h: Harness, customer_id: string, count: number): Promise<boolean> {
  const rows = await h.db('auto_recharges').where({ customer_id });
  return rows.length >= count && rows.every((r: { status: string }) => r.status !== 'pending');
}

/** Saves every run of the customer's account workflow, oldest first, one file per run. */
function save(h: Harness, customer_id: string, name: string): Promise<void> {
  return saveWorkflow(h, accountWorkflowId(customer_id), `account-${name}`);
}

/** Saves every run of a workflow, oldest first, one file per run (`<name>-run<n>.json`). */
async function saveWorkflow(h: Harness, workflowId: string, name: string): Promise<void> {
  const runIds: string[] = [];
  for await (const execution of h.temporal.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
    runIds.unshift(execution.runId); // the visibility store lists newest first
  }
  fs.mkdirSync(OUT_DIR, { recursive: true });
  for (const [index, runId] of runIds.entries()) {
    const history = await h.temporal.workflow.getHandle(workflowId, runId).fetchHistory();
    // A run that has only just started has nothing to replay (and the replayer would wait for more events).
    if ((history.events?.length ?? 0) < 3) continue;
    const file = path.join(OUT_DIR, `${name}-run${index + 1}.json`);
    // Canonical proto3 JSON, the same format `temporal workflow show --output json` exports.
    fs.writeFileSync(
      file,
      JSON.stringify({ workflow_id: workflowId, history: JSON.parse(historyToJSON(history)) }),
    );
    console.log(`saved ${file} (${history.events?.length ?? 0} events)`);
  }
}

async function expectStatus(
  response: Promise<{ status: number; body: unknown }>,
  status: number,
): Promise<void> {
  const r = await response;
  if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${JSON.stringify(r.body)}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
