import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  condition,
  getExternalWorkflowHandle,
  makeContinueAsNewFunc,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities';
import {
  type AccountSettings,
  type AccountState,
  type Command,
  type CommandResult,
  type Refusal,
  acceptRequest,
  applyBudgetSettings,
  actOnCrossing,
  applyTierReview,
  checkCommand,
  clearCrossingEvents,
  clearDueExpiries,
  completeCommand,
  DEFAULT_BILLING_DAY_MS,
  DEFAULT_BILLING_PERIOD,
  DEFAULT_PAYMENT_ACTIVITY_TIMEOUT_MS,
  dunningRetryDaysOf,
  enqueue,
  enqueuePending,
  findResult,
  initialAccountState,
  isNewCrossing,
  isWellFormedCrossing,
  isWellFormedTopUpRequest,
  mayChangeTier,
  msUntilNextExpiry,
  msUntilTierReview,
  nextRunState,
  noteClaimsSettleBy,
  notePaymentSettled,
  noteRefusal,
  parkCommand,
  rebuildState,
  recordThresholdCrossing,
  refusedOutcome,
  setPaymentMethod,
  toView,
  validateCreditGrant,
  validateTopUp,
  wakeWork,
} from '../billing/account';
import { applyRechargeSettings, clearMonthlyRetry, msUntilMonthlyRetry } from '../billing/auto-recharge';
import { isWellFormedRefundRequest } from '../billing/refunds';
import type { SubscriptionCache } from '../billing/subscriptions';
import type { InvoiceCharge } from '../activities';
import { dunningWorkflow } from './dunning-workflow';
import {
  accountStateQuery,
  accountWakeSignal,
  accountStatusSearchAttribute,
  autoRechargeChangedSignal,
  autoRechargeSearchAttribute,
  budgetChangedSignal,
  balanceThresholdCrossedSignal,
  creditGrantRequestedSignal,
  customerIdSearchAttribute,
  dunningWorkflowId,
  expireCreditSignal,
  grantCreditUpdate,
  paymentMethodChangedSignal,
  paymentSettledSignal,
  planSearchAttribute,
  refundRequestedSignal,
  retryInvoicePaymentSignal,
  setPaymentMethodUpdate,
  subscriptionChangedSignal,
  subscriptionChangeRequestedSignal,
  tierSearchAttribute,
  topUpRequestedSignal,
  topUpUpdate,
} from './messages';

export interface AccountWorkflowInput {
  customer_id: string;
  /** The settings of whoever started the account; the worker's current settings replace them at each run start. */
  settings: AccountSettings;
  /** Present when this run continues an earlier one. */
  state?: AccountState;
}

/**
 * Runs that start by reading the database: the worker's current settings (a local activity) and, without carried
 * state, the state rebuilt from PostgreSQL. Histories recorded before this change replay without either.
 */
const RUN_START_PATCH = 'account-run-start-reads-database';

/**
 * A run that continues an earlier one also reads the requests still pending in PostgreSQL once its carried queue
 * drains, so a request whose signal was lost (an API process that died between recording and signalling, a client
 * that never retried) runs at the account's next run at the latest.
 */
const RUN_START_BACKLOG_PATCH = 'account-run-start-reads-backlog';

/**
 * Crossings are acted on: a `recharge` crossing queues its auto-recharge, the other kinds have their event recorded.
 * Histories recorded before only noted each crossing in state; they replay that way.
 */
const CROSSING_ACTIONS_PATCH = 'account-acts-on-crossings';

/**
 * Runs act on the sweep's `wake` signal (db/stalled-accounts.ts). A worker running the code from before it recorded
 * such a signal with no commands; replayed here it still does nothing.
 */
const WAKE_PATCH = 'account-acts-on-wake';

/** Validity of bought credit when the run's settings predate TOP_UP_CREDIT_VALIDITY (its default). */
const DEFAULT_TOP_UP_CREDIT_VALIDITY = 'P1Y';

/**
 * Runs that keep the spend tier: they review it at their start (unless they carry it), after every command that may
 * have been paid for, and on a durable timer at the instant the next age rule is met; each review upserts the
 * `BillingTier` search attribute when the tier changed. Runs recorded before this replay without any of it.
 */
const TIERS_PATCH = 'account-spend-tiers';

/**
 * A grant that expires while holds are open keeps what they may capture until they settle; the account wakes again
 * when they settle at the latest (a timer that histories recorded before this change never had).
 */
const EXPIRY_WAITS_FOR_HOLDS_PATCH = 'account-expiry-waits-for-holds';

/**
 * A recharge refused for `monthly_limit` is asked again once at the next UTC month's start (a durable timer, never a
 * poll): the activity records one `recharge` crossing for that month if auto-recharge is still on and the balance
 * still below the threshold. Histories recorded before this never had the timer.
 */
const MONTHLY_RETRY_PATCH = 'account-auto-recharge-monthly-retry';

/**
 * Subscriptions (README "Subscriptions"): change requests run in turn after the money commands, the renewal runs on
 * a durable timer at the period end, and a failed renewal starts the invoice's dunning workflow. Runs recorded
 * before this never met any of it; runs that were already going when it shipped turn it on when their first
 * subscription request arrives.
 */
const SUBSCRIPTIONS_PATCH = 'account-subscriptions';

/** `run`'s answer for a top-up whose charge waits for the customer (SCA): no outcome yet, see `parkCommand`. */
const PARKED = 'parked';

/** How long a renewal that could not run waits before it is tried again (a step that failed for good). */
const RENEWAL_RETRY_MS = 60_000;

/** A charge step that failed for good is a failed charge: the change or renewal still reaches an outcome. */
const UNCHARGEABLE: InvoiceCharge = {
  status: 'failed',
  payment_id: '',
  failure_code: 'processing_error',
  decline_code: null,
  message: 'the charge could not be made',
};

/**
 * One long-lived workflow per customer (`account:<customer_id>`) that owns the account's lifecycle. It is a
 * thin shell over billing/account.ts: messages go through pure functions, accepted work is queued in state and
 * run one command at a time as activities, so the account's money operations never interleave.
 *
 * It never fails: a command whose step fails in a way no retry can fix is refused (recorded in the database, the
 * query and the memo), and the next command runs. Its state is a cache of PostgreSQL, rebuilt from there when a
 * run starts without carried state (an operator's terminate, a reset to the first run).
 */
export async function accountWorkflow(input: AccountWorkflowInput): Promise<void> {
  let state = input.state ?? initialAccountState(input.customer_id);
  let settings = input.settings;
  let acts = activitiesFor(settings);
  let expiryRequested = false;
  /** The value of BillingAutoRecharge this run last upserted (undefined: none yet). */
  let shownAutoRecharge: boolean | undefined;
  let tiersOn = false;
  let subscriptionsOn = false;
  let subscriptionRefresh = false;
  /** The next subscription refresh also reads the change requests pending in PostgreSQL (a lost signal's). */
  let subscriptionChangesAsked = false;
  /** The sweep found this account's tier review overdue: review it at the next turn, whatever the timer says. */
  let tierReviewAsked = false;
  let retryDunning = false;
  let renewalRetryAt_ms: number | undefined;
  /** The BillingPlan and BillingStatus values this run last upserted. */
  let shownPlan: string | undefined;
  let shownStatus: string | undefined;

  upsertSearchAttributes([
    { key: customerIdSearchAttribute, value: state.customer_id },
    { key: accountStatusSearchAttribute, value: state.status },
  ]);

  setHandler(accountStateQuery, () => toView(state, settings));

  // Kept for workflows and callers that use it; the API saves the card itself and sends paymentMethodChanged.
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

  // Updates for money: kept for workflows and callers that use them; the API sends the signals below instead.
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

  setHandler(paymentMethodChangedSignal, (request) => {
    state = setPaymentMethod(state, request);
    // A new card retries a past-due invoice at once.
    if (state.subscription?.status === 'past_due') retryDunning = true;
  });

  setHandler(subscriptionChangeRequestedSignal, ({ change_id }) => {
    const known = state.subscription_changes ?? [];
    if (typeof change_id === 'string' && !known.includes(change_id)) {
      state = { ...state, subscription_changes: [...known, change_id] };
    }
  });

  setHandler(subscriptionChangedSignal, () => {
    subscriptionRefresh = true;
  });

  // The sweep found this account's work overdue in PostgreSQL (db/stalled-accounts.ts). Whatever this run's state
  // says, it does the steps asked for: each does nothing when nothing is due, and the database decides what is.
  setHandler(accountWakeSignal, (input) => {
    // A worker of the code before the wake buffered it with no handler and did nothing: its history replays so.
    if (!patched(WAKE_PATCH)) return;
    const work = wakeWork(input);
    if (work.expire) expiryRequested = true;
    if (work.read_requests) {
      state = { ...state, backlog: true };
      subscriptionChangesAsked = true;
    }
    if (work.refresh_subscription) subscriptionRefresh = true;
    if (work.review_tier) tierReviewAsked = true;
  });

  setHandler(topUpRequestedSignal, (request) => {
    state = acceptRequest(state, { kind: 'top_up', id: request.top_up_id, request });
  });

  setHandler(refundRequestedSignal, (request) => {
    if (!isWellFormedRefundRequest(request)) {
      log.warn('ignored a malformed refund request signal', { request });
      return;
    }
    state = acceptRequest(state, {
      kind: 'refund',
      id: request.refund_id,
      request: { refund_id: request.refund_id },
    });
  });

  setHandler(paymentSettledSignal, (request) => {
    if (!isWellFormedTopUpRequest(request)) {
      log.warn('ignored a malformed payment settled signal', { request });
      return;
    }
    state = notePaymentSettled(state, request);
  });

  setHandler(creditGrantRequestedSignal, ({ accepted_at, ...request }) => {
    state = acceptRequest(state, { kind: 'grant_credit', id: request.grant_id, request, accepted_at });
  });

  setHandler(balanceThresholdCrossedSignal, (crossing) => {
    if (!isWellFormedCrossing(crossing)) {
      log.warn('ignored a malformed threshold crossing signal', { crossing });
      return;
    }
    const fresh = isNewCrossing(state, crossing);
    state = recordThresholdCrossing(state, crossing);
    // Only a crossing not seen before becomes work, so a redelivery does nothing.
    if (fresh && patched(CROSSING_ACTIONS_PATCH)) state = actOnCrossing(state, crossing);
  });

  setHandler(budgetChangedSignal, (settings) => {
    state = applyBudgetSettings(state, settings);
  });

  setHandler(autoRechargeChangedSignal, (settings) => {
    state = { ...state, auto_recharge: applyRechargeSettings(state.auto_recharge, settings) };
    showAutoRecharge();
  });

  setHandler(expireCreditSignal, () => {
    expiryRequested = true;
  });

  async function resultOf<K extends 'top_up' | 'grant_credit'>(id: string, kind: K) {
    await condition(() => findResult(state, id) !== undefined);
    const outcome = findResult(state, id)!;
    // Failing the update (not the workflow): the caller hears the refusal with its code as the failure type.
    if (outcome.kind === 'refused') {
      throw ApplicationFailure.create({
        type: outcome.refusal.code,
        message: outcome.refusal.message,
        nonRetryable: true,
      });
    }
    if (outcome.kind !== kind)
      throw ApplicationFailure.nonRetryable(`id ${id} was used for a ${outcome.kind}`);
    return outcome as Extract<CommandResult, { kind: K }>;
  }

  // Runs recorded before the patch wrote off expiries after every wake-up (a `condition` without a timeout resolves
  // to undefined); patched runs only when the expiry timer fired or was asked for.
  const patchedRun = patched(RUN_START_PATCH);
  if (patchedRun) {
    // The memo is the run's own: a run that continues an earlier one shows the refusals it carries.
    if (state.last_refusal) showRefusals();
    const current = await attempt(() => workerSettings.currentAccountSettings());
    if (current) {
      settings = current;
      acts = activitiesFor(settings);
    }
    if (!input.state) {
      const snapshot = await attempt(() => acts.db.loadAccountSnapshot({ customer_id: state.customer_id }));
      if (snapshot) state = rebuildState(state, snapshot);
      // Crossings a terminated run received but never acted on (snapshots from before this patch list none).
      const unhandled = snapshot?.unhandled_crossings ?? [];
      if (unhandled.length > 0 && patched(CROSSING_ACTIONS_PATCH)) {
        for (const crossing of unhandled) state = actOnCrossing(state, crossing);
      }
    } else if (patched(RUN_START_BACKLOG_PATCH)) {
      state = { ...state, backlog: true };
    }
    if (patched(TIERS_PATCH)) {
      tiersOn = true;
      // A run that carries its tier shows it (search attributes are the run's own); any other asks the database.
      if (state.tier) showTier();
      else await reviewTier();
    }
  }

  if (patchedRun && patched(SUBSCRIPTIONS_PATCH)) {
    subscriptionsOn = true;
    // A continued run carries its subscription; a rebuilt one (or one from before subscriptions) reads it.
    if (input.state?.subscription === undefined) await loadSubscription(true);
    else showSubscription();
  }

  // A run carrying auto-recharge settings (continued, or rebuilt) shows them; older runs carry none.
  if (state.auto_recharge?.settings) showAutoRecharge();

  const hasWork = () =>
    state.queue.length > 0 ||
    expiryRequested ||
    state.backlog === true ||
    (state.crossing_events?.length ?? 0) > 0 ||
    (state.subscription_changes?.length ?? 0) > 0 ||
    subscriptionRefresh ||
    retryDunning ||
    tierReviewAsked;
  // Asked only while a retry is noted, so histories without one never meet the patch.
  const monthlyRetryOn = () => state.auto_recharge?.retry_month != null && patched(MONTHLY_RETRY_PATCH);
  for (;;) {
    const now_ms = Date.now();
    const expiry_ms = msUntilNextExpiry(state, now_ms);
    const tier_ms = tiersOn ? msUntilTierReview(state, now_ms) : undefined;
    const retryOn = monthlyRetryOn();
    const retry_ms = retryOn ? msUntilMonthlyRetry(state.auto_recharge, now_ms) : undefined;
    const renewal_ms = subscriptionsOn ? msUntilRenewal(Date.now()) : undefined;
    const timeout_ms = earliest(earliest(earliest(expiry_ms, tier_ms), retry_ms), renewal_ms);
    const woke = await condition(
      () => hasWork() || continueAsNewDue(settings),
      timeout_ms === undefined ? undefined : Math.max(timeout_ms, 1),
    );
    const timedOut = patchedRun ? woke === false : !woke;
    // With tiers (or a monthly retry) one timer serves several deadlines, so each acts only once its instant has come.
    const expiryDue =
      tiersOn || retryOn || renewal_ms !== undefined
        ? timedOut && msUntilNextExpiry(state, Date.now()) === 0
        : timedOut;
    if (expiryDue || expiryRequested) {
      expiryRequested = false;
      const now = new Date(Date.now());
      // A write-off that can never succeed is logged and not retried at once; the next expiry or request tries again.
      const expired = await attempt(() =>
        acts.db.expireCredit({ customer_id: state.customer_id, now: now.toISOString() }),
      );
      state = clearDueExpiries(state, now.getTime());
      // Results recorded before grants waited for open holds are arrays without `claims_settle_by`.
      const settleBy = Array.isArray(expired) ? [] : (expired?.claims_settle_by ?? []);
      if (settleBy.length > 0 && patched(EXPIRY_WAITS_FOR_HOLDS_PATCH)) {
        state = noteClaimsSettleBy(state, settleBy, Date.now());
      }
    }
    if ((state.crossing_events?.length ?? 0) > 0) await recordCrossingEvents();
    // The age rule's instant: a durable timer, never a poll. The review itself decides (PostgreSQL has the facts).
    if (tiersOn && (msUntilTierReview(state, Date.now()) === 0 || tierReviewAsked)) await reviewTier();
    tierReviewAsked = false;
    if (retryOn && msUntilMonthlyRetry(state.auto_recharge, Date.now()) === 0) await askMonthlyRetry();
    while (state.queue.length > 0) await runHead(state.queue[0]!);
    // Runs that were going when subscriptions shipped turn them on with their first subscription request (a change,
    // or a cancellation's refresh).
    const subscriptionAsked = (state.subscription_changes?.length ?? 0) > 0 || subscriptionRefresh;
    if (!subscriptionsOn && subscriptionAsked && patched(SUBSCRIPTIONS_PATCH)) {
      subscriptionsOn = true;
      await loadSubscription(true);
    }
    if (subscriptionsOn) await subscriptionWork();
    // Never left set without subscriptions on, or the loop would wake at once forever.
    subscriptionRefresh = subscriptionsOn && subscriptionRefresh;
    subscriptionChangesAsked = subscriptionsOn && subscriptionChangesAsked;
    retryDunning = subscriptionsOn && retryDunning;
    if (state.backlog === true) {
      const pending = await attempt(() => acts.db.pendingAccountRequests({ customer_id: state.customer_id }));
      state = enqueuePending(state, pending ?? { commands: [], more: false });
    }
    if (continueAsNewDue(settings) && !hasWork()) {
      // Every update handler delivers its answer first, and work that arrived meanwhile (queued commands, an
      // expiry request) is done in this run: nothing accepted is ever dropped by continue-as-new.
      // New work that arrives meanwhile wakes the loop too: an update handler waiting for its queued command must
      // not wait on a loop that waits for the handler.
      await condition(() => allHandlersFinished() || hasWork());
      if (!hasWork()) {
        // The memo goes along: the next run's first task would re-upsert it, but until then the Temporal UI (and
        // anyone describing the workflow) would see an account with no refusals.
        await makeContinueAsNewFunc<typeof accountWorkflow>({ memo: refusalsMemo(state) })({
          customer_id: input.customer_id,
          settings,
          state: nextRunState(state),
        });
      }
    }
  }

  /** The subscription's steps due now: queued change requests, a refresh, the renewal, a card update's retry. */
  async function subscriptionWork(): Promise<void> {
    await runSubscriptionChanges();
    if (subscriptionRefresh) {
      subscriptionRefresh = false;
      const withPending = subscriptionChangesAsked;
      subscriptionChangesAsked = false;
      // Change requests it finds are queued: the loop runs them at its next turn.
      await loadSubscription(withPending);
    }
    if (msUntilRenewal(Date.now()) === 0) await renew(state.subscription!);
    if (retryDunning) {
      retryDunning = false;
      const invoice_id = state.subscription?.dunning_invoice_id;
      if (invoice_id) {
        await getExternalWorkflowHandle(dunningWorkflowId(invoice_id))
          .signal(retryInvoicePaymentSignal)
          .catch((error: unknown) =>
            log.warn('dunning is not running', { invoice_id, error: String(error) }),
          );
      }
    }
  }

  /** The queued change requests, oldest first, each run to its outcome. */
  async function runSubscriptionChanges(): Promise<void> {
    while ((state.subscription_changes?.length ?? 0) > 0) {
      const change_id = state.subscription_changes![0]!;
      await runSubscriptionChange(change_id);
      state = {
        ...state,
        subscription_changes: (state.subscription_changes ?? []).filter((id) => id !== change_id),
      };
    }
  }

  /** Decide, charge the change's invoice once (attempt 1), apply or refuse: each step keyed by the change id. */
  async function runSubscriptionChange(change_id: string): Promise<void> {
    const billing_period = billingPeriodText(settings);
    const prepared = await attempt(() => acts.db.prepareSubscriptionChange({ change_id, billing_period }));
    if (prepared?.status === 'charge') {
      const charge =
        (await attempt(() => acts.payment.chargeInvoice({ invoice_id: prepared.invoice_id, attempt: 1 }))) ??
        UNCHARGEABLE;
      await attempt(() => acts.db.completeSubscriptionChange({ change_id, charge }));
    }
    await loadSubscription(false);
  }

  /** The renewal at the period end: the new period's charge (attempt 1 of its invoice), or the cancellation. */
  async function renew(sub: SubscriptionCache): Promise<void> {
    const billing_period = billingPeriodText(settings);
    const period_index = sub.period_index + 1;
    const at = new Date(Date.now()).toISOString();
    const step = await attempt(() =>
      acts.db.renewSubscription({ subscription_id: sub.id, period_index, billing_period, at }),
    );
    if (step?.status === 'charge') {
      const charge =
        (await attempt(() => acts.payment.chargeInvoice({ invoice_id: step.invoice_id, attempt: 1 }))) ??
        UNCHARGEABLE;
      await attempt(() =>
        acts.db.completeRenewal({
          subscription_id: sub.id,
          period_index,
          invoice_id: step.invoice_id,
          charge,
          billing_period,
        }),
      );
    }
    await loadSubscription(false);
    // Nothing moved (a step that failed for good): try again later rather than at once.
    const after = state.subscription;
    if (
      after &&
      after.id === sub.id &&
      after.period_index === sub.period_index &&
      after.status === 'active'
    ) {
      renewalRetryAt_ms = Date.now() + RENEWAL_RETRY_MS;
    }
  }

  /** Milliseconds until the renewal is due (0: due now); undefined when none is (no live, active subscription). */
  function msUntilRenewal(now_ms: number): number | undefined {
    const sub = state.subscription;
    if (!subscriptionsOn || !sub || sub.status !== 'active') return undefined;
    const due_ms = Math.max(Date.parse(sub.current_period_end), renewalRetryAt_ms ?? 0);
    return Math.max(0, due_ms - now_ms);
  }

  /** Reads the subscription from PostgreSQL (and, rebuilding, the change requests still pending). */
  async function loadSubscription(withPending: boolean): Promise<void> {
    const loaded = await attempt(() => acts.db.loadSubscription({ customer_id: state.customer_id }));
    if (!loaded) return;
    if (loaded.subscription?.period_index !== state.subscription?.period_index) renewalRetryAt_ms = undefined;
    // Requests recorded earlier run first (PostgreSQL's order, oldest first); those only signalled follow.
    const known = state.subscription_changes ?? [];
    const changes = withPending
      ? [...loaded.pending_changes, ...known.filter((id) => !loaded.pending_changes.includes(id))]
      : known;
    state = { ...state, subscription: loaded.subscription, subscription_changes: changes };
    showSubscription();
    await startDunning();
  }

  /** A past-due invoice gets its dunning workflow, once (it outlives this run: continue-as-new, terminate). */
  async function startDunning(): Promise<void> {
    const sub = state.subscription;
    const invoice_id = sub?.status === 'past_due' ? sub.dunning_invoice_id : null;
    if (!invoice_id || state.dunning_started === invoice_id) return;
    try {
      await startChild(dunningWorkflow, {
        workflowId: dunningWorkflowId(invoice_id),
        parentClosePolicy: ParentClosePolicy.ABANDON,
        args: [
          {
            customer_id: state.customer_id,
            invoice_id,
            retry_days: [...dunningRetryDaysOf(settings)],
            billing_day_ms: settings.billing_day_ms ?? DEFAULT_BILLING_DAY_MS,
            activity_timeout_ms: settings.activity_timeout_ms,
            payment_activity_timeout_ms:
              settings.payment_activity_timeout_ms ?? DEFAULT_PAYMENT_ACTIVITY_TIMEOUT_MS,
          },
        ],
      });
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    }
    state = { ...state, dunning_started: invoice_id };
  }

  /** Operators filter on the plan and on past-due accounts: `BillingPlan="plus"`, `BillingStatus="past_due"`. */
  function showSubscription(): void {
    const sub = state.subscription;
    const plan = sub && sub.status !== 'canceled' ? sub.plan : 'free';
    const status = sub?.status === 'past_due' ? 'past_due' : state.status;
    if (plan !== shownPlan) {
      shownPlan = plan;
      upsertSearchAttributes([{ key: planSearchAttribute, value: plan }]);
    }
    if (status !== shownStatus) {
      shownStatus = status;
      upsertSearchAttributes([{ key: accountStatusSearchAttribute, value: status }]);
    }
  }

  /** Runs the command at the head of the queue to its outcome: done, or refused. Never throws for a failed step. */
  async function runHead(command: Command): Promise<void> {
    const charged: { payment_id: string | null } = { payment_id: null };
    let outcome: CommandResult | typeof PARKED;
    const refused = checkCommand(command);
    if (refused) {
      outcome = refusedOutcome(command, refused);
    } else {
      try {
        outcome = await run(command, charged);
      } catch (error) {
        const failure = refusalOf(error);
        if (!failure) throw error;
        outcome = refusedOutcome(command, failure);
      }
    }
    // A top-up whose charge waits for the customer leaves the queue without an outcome (Stripe's webhook brings it back).
    if (outcome === PARKED) {
      state = parkCommand(state, command);
      return;
    }
    state = completeCommand(state, outcome);
    if (outcome.kind === 'refused') await recordRefusal(command, outcome.refusal, charged.payment_id);
    // A declined card (or no card) switches auto-recharge off.
    if (command.kind === 'auto_recharge') showAutoRecharge();
    // A payment that succeeded (a top-up, an auto-recharge) may promote at once, and starts the age rules' clock.
    if (tiersOn && mayChangeTier(outcome)) await reviewTier();
  }

  /**
   * Records the events of the crossings received (once per crossing: the activity is keyed by crossing id). One
   * that can never be recorded is logged and dropped, so it cannot hold up the account.
   */
  async function recordCrossingEvents(): Promise<void> {
    const crossings = state.crossing_events ?? [];
    await attempt(() => acts.db.recordCrossingEvents({ customer_id: state.customer_id, crossings }));
    state = clearCrossingEvents(
      state,
      crossings.map((c) => c.crossing_id),
    );
  }

  /**
   * The retry month has started: the database records one `recharge` crossing for it if the balance is still below
   * an enabled threshold (keyed by customer and month, so a crash or a continue-as-new never asks twice in effect);
   * the outbox delivers it and its recharge decides afresh. Forgotten here whatever the answer.
   */
  async function askMonthlyRetry(): Promise<void> {
    const month = state.auto_recharge!.retry_month!;
    await attempt(() => acts.db.queueMonthlyRecharge({ customer_id: state.customer_id, month }));
    state = { ...state, auto_recharge: clearMonthlyRetry(state.auto_recharge!, month) };
  }

  /** Upserts BillingAutoRecharge when it differs from what this run last showed. */
  function showAutoRecharge(): void {
    const enabled = state.auto_recharge?.settings?.enabled ?? false;
    if (shownAutoRecharge === enabled) return;
    shownAutoRecharge = enabled;
    upsertSearchAttributes([{ key: autoRechargeSearchAttribute, value: enabled }]);
  }

  /**
   * Reviews the spend tier in PostgreSQL (promoting it if earned) and keeps the answer: the tier for the query and
   * the search attribute, and the instant of the next age rule for the timer. Any command that may have moved money
   * in from a card calls it after completing; a review that fails for good keeps the tier as it was.
   */
  async function reviewTier(): Promise<void> {
    const review = await attempt(() =>
      acts.db.reviewTier({
        customer_id: state.customer_id,
        billing_day_ms: settings.billing_day_ms,
        // The workflow's clock: a timer that fired at the age rule's instant reviews at or after it.
        now: new Date(Date.now()).toISOString(),
      }),
    );
    if (review === undefined) return;
    const before = state.tier?.tier;
    state = applyTierReview(state, review);
    if (state.tier && state.tier.tier !== before) showTier();
  }

  /** Operators filter on the tier in the Temporal UI: `BillingTier="tier_3"`. */
  function showTier(): void {
    if (state.tier) upsertSearchAttributes([{ key: tierSearchAttribute, value: state.tier.tier }]);
  }

  async function run(
    command: Command,
    charged: { payment_id: string | null },
  ): Promise<CommandResult | typeof PARKED> {
    switch (command.kind) {
      case 'top_up': {
        const base = {
          top_up_id: command.id,
          customer_id: state.customer_id,
          amount_usd: command.request.amount_usd,
        };
        // Commands accepted by Update carry their card and start with their own step (as recorded histories do);
        // requests that arrived by signal are recorded by the API, and the charge step checks them itself.
        if (command.payment_method !== undefined) {
          const started = await acts.db.startTopUp(base);
          // Histories from before startTopUp returned anything replay with no result here.
          if (started?.settled) return { kind: 'top_up', result: started.settled, already_settled: true };
        }
        let charge = await acts.payment.chargeTopUp(
          command.payment_method === undefined ? base : { ...base, payment_method: command.payment_method },
        );
        if (charge.status === 'settled')
          return { kind: 'top_up', result: charge.result, already_settled: true };
        // SCA: the charge waits for the customer. Parked unless Stripe's webhook settled it meanwhile.
        if (charge.status === 'pending') {
          charge = await acts.db.awaitTopUpPayment({ ...base, payment_id: charge.payment_id });
          if (charge.status === 'pending') return PARKED;
        }
        if (charge.status === 'succeeded') charged.payment_id = charge.payment_id;
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
      case 'auto_recharge': {
        // Decide (or find the decision), charge the decided amount once, then grant or record the decline: each
        // step keyed by the crossing, so a retry, a redelivery or a resumed run never charges twice.
        const base = { customer_id: state.customer_id, crossing_id: command.crossing.crossing_id };
        const started = await acts.db.startAutoRecharge(base);
        if (started.status === 'settled') return { kind: 'auto_recharge', result: started.result };
        const charge = await acts.payment.chargeAutoRecharge({ ...base, amount_usd: started.amount_usd });
        if (charge.status === 'succeeded') charged.payment_id = charge.payment_id;
        const result =
          charge.status === 'succeeded'
            ? await acts.money.completeAutoRecharge({
                ...base,
                payment_id: charge.payment_id,
                credit_validity:
                  settings.top_up_credit_validity === undefined
                    ? DEFAULT_TOP_UP_CREDIT_VALIDITY
                    : settings.top_up_credit_validity,
              })
            : await acts.db.failAutoRecharge({ ...base, ...charge });
        return { kind: 'auto_recharge', result };
      }
      case 'refund': {
        // Claim the credit (decided under the wallet lock, before the gateway hears of it), refund the card once,
        // then settle or give the claim back: each step keyed by the refund id (activities/refund-credits.ts).
        const base = { customer_id: state.customer_id, refund_id: command.id };
        const claimed = await acts.db.claimRefund(base);
        if (claimed.status === 'settled') return { kind: 'refund', result: claimed.result };
        const sent = await acts.payment.refundPayment(base);
        const result =
          sent.status === 'succeeded'
            ? await acts.money.completeRefund({ ...base, gateway_refund_id: sent.gateway_refund_id })
            : await acts.db.failRefund({ ...base, failure_code: sent.failure_code, message: sent.message });
        return { kind: 'refund', result };
      }
    }
  }

  /** The Temporal UI shows the memo: how many commands this account refused, and the latest. */
  function showRefusals(): void {
    upsertMemo(refusalsMemo(state));
  }

  /** Tells the database (the API waits there), the query and the memo shown in the Temporal UI. */
  async function recordRefusal(command: Command, refused: Refusal, payment_id: string | null): Promise<void> {
    state = noteRefusal(state, command, refused, new Date(Date.now()).toISOString());
    showRefusals();
    const answer = await attempt(() =>
      acts.db.refuseAccountRequest({
        command_kind: command.kind,
        id: command.id,
        code: refused.code,
        message: refused.message,
        payment_id,
      }),
    );
    // No card by the time of the charge switched auto-recharge off: the copy (and the search attribute) follow.
    // Histories recorded before answered nothing here.
    if (answer?.auto_recharge) {
      state = { ...state, auto_recharge: applyRechargeSettings(state.auto_recharge, answer.auto_recharge) };
    }
  }
}

/**
 * Runs an activity whose permanent failure must not fail the workflow; returns undefined (and logs) when it failed.
 * Activities retry until they succeed unless their failure is non-retryable, so this is the never-succeeds case.
 */
async function attempt<T>(step: () => Promise<T>): Promise<T | undefined> {
  try {
    return await step();
  } catch (error) {
    if (!(error instanceof ActivityFailure)) throw error;
    log.warn('account step failed permanently; going on without it', { error: error.cause?.message });
    return undefined;
  }
}

/** The refusal an activity's failure means; undefined for errors that are not activity failures (bugs: rethrown). */
function refusalOf(error: unknown): Refusal | undefined {
  if (!(error instanceof ActivityFailure)) return undefined;
  const cause = error.cause;
  if (cause instanceof ApplicationFailure)
    return { code: cause.type ?? 'activity_failed', message: cause.message };
  return { code: 'activity_failed', message: cause?.message ?? error.message };
}

/** The sooner of two optional deadlines. */
function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  return b === undefined ? a : Math.min(a, b);
}

/** BILLING_PERIOD of the run's settings as written (its default when they predate it); activities parse it. */
function billingPeriodText(settings: AccountSettings): string {
  return settings.billing_period ?? DEFAULT_BILLING_PERIOD;
}

function refusalsMemo(state: AccountState): Record<string, unknown> {
  return { refusals: state.refusals ?? 0, last_refusal: state.last_refusal ?? null };
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

/** Read at every run start; a few quick attempts, then the start input's settings are kept. */
const workerSettings = proxyLocalActivities<Activities>({
  startToCloseTimeout: '5s',
  retry: { maximumAttempts: 3 },
});

/**
 * Activity stubs with every timeout and retry written out, two kinds:
 * - database steps: `activity_timeout_ms`, retried from 1 s, backing off to at most a minute;
 * - payment calls: `payment_activity_timeout_ms` (a processor may be slow), retried from 2 s up to every 10 min,
 *   so an outage at the processor is not hammered.
 * Neither has an attempt limit: every step is idempotent and keyed by its operation's id, and giving up on a
 * transient failure would leave money half-moved (a card charged, its credit not yet granted). A step that keeps
 * failing shows in the Temporal UI as a pending activity with its attempt count and last error, which is what
 * operators alert on. Failures that can never succeed are non-retryable (activities/failures.ts) and become the
 * command's refusal.
 */
function activitiesFor(settings: AccountSettings) {
  const db = proxyActivities<Activities>({
    startToCloseTimeout: settings.activity_timeout_ms,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m' },
  });
  const payment = proxyActivities<Activities>({
    startToCloseTimeout: settings.payment_activity_timeout_ms ?? DEFAULT_PAYMENT_ACTIVITY_TIMEOUT_MS,
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '10m' },
  });
  return { db, payment, money: db };
}
