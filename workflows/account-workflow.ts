import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  type AccountSettings,
  type AccountState,
  type Command,
  type CommandResult,
  type Refusal,
  clearDueExpiries,
  completeCommand,
  enqueue,
  findResult,
  initialAccountState,
  msUntilNextExpiry,
  nextRunState,
  recordThresholdCrossing,
  setPaymentMethod,
  toView,
  validateCreditGrant,
  validateTopUp,
} from '../billing/account';
import {
  accountStateQuery,
  accountStatusSearchAttribute,
  balanceThresholdCrossedSignal,
  customerIdSearchAttribute,
  expireCreditSignal,
  grantCreditUpdate,
  setPaymentMethodUpdate,
  topUpUpdate,
} from './messages';

export interface AccountWorkflowInput {
  customer_id: string;
  settings: AccountSettings;
  /** Present when this run continues an earlier one. */
  state?: AccountState;
}

/**
 * One long-lived workflow per customer (`account:<customer_id>`) that owns the account's lifecycle. It is a
 * thin shell over billing/account.ts: messages go through pure functions, accepted work is queued in state and
 * run one command at a time as activities, so the account's money operations never interleave.
 */
export async function accountWorkflow(input: AccountWorkflowInput): Promise<void> {
  let state = input.state ?? initialAccountState(input.customer_id);
  const acts = activitiesFor(input.settings);
  let expiryRequested = false;

  upsertSearchAttributes([
    { key: customerIdSearchAttribute, value: state.customer_id },
    { key: accountStatusSearchAttribute, value: state.status },
  ]);

  setHandler(accountStateQuery, () => toView(state));

  setHandler(
    setPaymentMethodUpdate,
    async (request) => {
      await acts.db.savePaymentMethod({
        customer_id: state.customer_id,
        payment_method: request.payment_method,
      });
      state = setPaymentMethod(state, request);
      return toView(state);
    },
    {
      validator: (request) =>
        assertAccepted(request.payment_method ? null : refusal('invalid_amount', 'empty')),
    },
  );

  setHandler(
    topUpUpdate,
    async (request) => {
      state = enqueue(state, {
        kind: 'top_up',
        id: request.top_up_id,
        request,
        payment_method: state.payment_method!,
      });
      return (await resultOf(request.top_up_id, 'top_up')).result;
    },
    { validator: (request) => assertAccepted(validateTopUp(state, request)) },
  );

  setHandler(
    grantCreditUpdate,
    async (request) => {
      // The grant is dated when the account accepted it (the validator checked its expiry against this time), not
      // when its turn in the queue comes.
      const accepted_at = new Date(Date.now()).toISOString();
      state = enqueue(state, { kind: 'grant_credit', id: request.grant_id, request, accepted_at });
      return (await resultOf(request.grant_id, 'grant_credit')).result;
    },
    { validator: (request) => assertAccepted(validateCreditGrant(state, request, Date.now())) },
  );

  setHandler(balanceThresholdCrossedSignal, (crossing) => {
    state = recordThresholdCrossing(state, crossing);
  });

  setHandler(expireCreditSignal, () => {
    expiryRequested = true;
  });

  async function resultOf<K extends CommandResult['kind']>(id: string, kind: K) {
    await condition(() => findResult(state, id) !== undefined);
    const outcome = findResult(state, id)!;
    if (outcome.kind !== kind)
      throw ApplicationFailure.nonRetryable(`id ${id} was used for a ${outcome.kind}`);
    return outcome as Extract<CommandResult, { kind: K }>;
  }

  const hasWork = () => state.queue.length > 0 || expiryRequested;
  for (;;) {
    const expiry_ms = msUntilNextExpiry(state, Date.now());
    const woke = await condition(
      () => hasWork() || continueAsNewDue(input.settings),
      expiry_ms === undefined ? undefined : Math.max(expiry_ms, 1),
    );
    if (!woke || expiryRequested) {
      expiryRequested = false;
      const now = new Date(Date.now());
      await acts.db.expireCredit({ customer_id: state.customer_id, now: now.toISOString() });
      state = clearDueExpiries(state, now.getTime());
    }
    while (state.queue.length > 0) {
      const outcome = await run(state.queue[0]!);
      state = completeCommand(state, outcome);
    }
    if (continueAsNewDue(input.settings) && !hasWork()) {
      // Every update handler delivers its answer first, and work that arrived meanwhile (queued commands, an
      // expiry request) is done in this run: nothing accepted is ever dropped by continue-as-new.
      // New work that arrives meanwhile wakes the loop too: an update handler waiting for its queued command must
      // not wait on a loop that waits for the handler.
      await condition(() => allHandlersFinished() || hasWork());
      if (!hasWork()) await continueAsNew<typeof accountWorkflow>({ ...input, state: nextRunState(state) });
    }
  }

  async function run(command: Command): Promise<CommandResult> {
    switch (command.kind) {
      case 'top_up': {
        const base = {
          top_up_id: command.id,
          customer_id: state.customer_id,
          amount_usd: command.request.amount_usd,
        };
        await acts.db.startTopUp(base);
        const charge = await acts.payment.chargeTopUp({ ...base, payment_method: command.payment_method });
        const result =
          charge.status === 'succeeded'
            ? await acts.money.completeTopUp({ ...base, payment_id: charge.payment_id })
            : await acts.db.failTopUp({ ...base, ...charge });
        return { kind: 'top_up', result };
      }
      case 'grant_credit': {
        const result = await acts.money.grantOperatorCredit({
          ...command.request,
          customer_id: state.customer_id,
          granted_at: command.accepted_at ?? null,
        });
        return { kind: 'grant_credit', result };
      }
    }
  }
}

function continueAsNewDue(settings: AccountSettings): boolean {
  const info = workflowInfo();
  return (
    info.continueAsNewSuggested ||
    (settings.continue_as_new_after_events !== null &&
      info.historyLength >= settings.continue_as_new_after_events)
  );
}

function refusal(code: Refusal['code'], message: string): Refusal {
  return { code, message };
}

/** Update validators reject with the refusal's code as the failure type, so the API maps it without parsing text. */
function assertAccepted(refused: Refusal | null): void {
  if (refused)
    throw ApplicationFailure.create({ type: refused.code, message: refused.message, nonRetryable: true });
}

/**
 * Activity stubs with every timeout and retry written out. Retries have no attempt limit on purpose: every step is
 * idempotent and keyed by its operation's id, and giving up would fail the account workflow with money half-moved
 * (a card charged, its credit not yet granted). A step that keeps failing shows in the Temporal UI as a pending
 * activity with its attempt count and last error, which is what operators alert on; the interval is capped so the
 * step goes through within minutes of the database or the processor coming back.
 */
function activitiesFor(settings: AccountSettings) {
  const retry = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '5m' };
  const db = proxyActivities<Activities>({ startToCloseTimeout: settings.activity_timeout_ms, retry });
  return { db, payment: db, money: db };
}
