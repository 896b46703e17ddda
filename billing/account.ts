import type { SubscriptionCache } from './subscriptions';
import {
  type AutoRechargeResult,
  type AutoRechargeState,
  applyRechargeResult,
  rechargeIdFor,
} from './auto-recharge';
import { decodeUsd, formatUsd, isWholeCents, parseUsd } from './money';
import { MS_PER_DAY } from './durations';
import { type BillingPeriod, parseBillingPeriod } from './periods';
import type { RefundRequest, RefundResult } from './refunds';

/**
 * The account workflow's state and the pure decisions over it. The workflow is a thin shell: each message
 * becomes a call here that returns the next state (and the command to run), and the workflow runs commands as
 * activities. Nothing here touches Temporal, so every rule is unit-tested without a server.
 *
 * Money in state and payloads is a USD decimal string (exact, readable in the Temporal UI).
 */

export interface AccountSettings {
  /** Start-to-close timeout of every database step the workflow runs. */
  activity_timeout_ms: number;
  /** Continue-as-new after this many history events even if Temporal has not suggested it (tests force it low). */
  continue_as_new_after_events: number | null;
  /** Start-to-close timeout of a payment call; absent in settings from older starts (then the default below). */
  payment_activity_timeout_ms?: number;
  /** `BILLING_DAY` in ms: the unit of tier age rules and grace periods (absent in older starts: one day). */
  billing_day_ms?: number;
  /** `TOP_UP_CREDIT_VALIDITY`: an ISO-8601 duration, or null when bought credit never expires (absent: `P1Y`). */
  top_up_credit_validity?: string | null;
  /** `BILLING_PERIOD` as written (`P1M`, `PT12S`; billing/periods.ts parses it); absent in older starts: `P1M`. */
  billing_period?: string;
  /** `DUNNING_RETRY_SCHEDULE`: retries of a failed renewal, in billing days after it; absent: [1, 3, 5, 7]. */
  dunning_retry_days?: number[];
}

/** A card processor may take long under load; its calls get more room than a database step. */
export const DEFAULT_PAYMENT_ACTIVITY_TIMEOUT_MS = 60_000;

export interface TopUpRequest {
  top_up_id: string;
  amount_usd: string;
}

export interface TopUpResult {
  top_up_id: string;
  status: 'succeeded' | 'failed';
  amount_usd: string;
  grant_id: string | null;
  failure_code: string | null;
  decline_code: string | null;
  failure_message: string | null;
  /** The expiry of the credit granted (ISO-8601; null: never). Absent in results recorded before paid credit expired. */
  grant_expires_at?: string | null;
}

/** The validity of paid credit for these settings: `P1Y` when they predate the setting, null for never. */
export function paidCreditValidity(settings: AccountSettings | undefined): string | null {
  return settings?.top_up_credit_validity === undefined ? 'P1Y' : settings.top_up_credit_validity;
}

/** `BILLING_DAY`'s default (`P1D`), for settings that predate it. */
export const DEFAULT_BILLING_DAY_MS = MS_PER_DAY;

/** `BILLING_PERIOD`'s default: calendar months. */
export const DEFAULT_BILLING_PERIOD = 'P1M';
/** `DUNNING_RETRY_SCHEDULE`'s default, in billing days after the failed renewal. */
export const DEFAULT_DUNNING_RETRY_DAYS: readonly number[] = Object.freeze([1, 3, 5, 7]);

/** The subscription period of these settings (`P1M` when they predate the setting); throws on an invalid one. */
export function billingPeriodOf(settings: AccountSettings | undefined): BillingPeriod {
  const text = settings?.billing_period ?? DEFAULT_BILLING_PERIOD;
  const period = parseBillingPeriod(text);
  // The configuration refuses a bad value at startup, so this is a defect (or a hand-edited start input).
  if (!period) throw new Error(`billing_period ${JSON.stringify(text)} is not a billing period`);
  return period;
}

/** The dunning retries of these settings, in billing days after the failed renewal ([1, 3, 5, 7] when absent). */
export function dunningRetryDaysOf(settings: AccountSettings | undefined): readonly number[] {
  return settings?.dunning_retry_days ?? DEFAULT_DUNNING_RETRY_DAYS;
}

export type OperatorGrantSource = 'promotion' | 'goodwill';

export interface CreditGrantRequest {
  grant_id: string;
  amount_usd: string;
  source: OperatorGrantSource;
  reason: string;
  /** ISO-8601; null for credit that never expires. */
  expires_at: string | null;
}

export interface CreditGrantResult {
  grant_id: string;
  amount_usd: string;
  expires_at: string | null;
}

export interface PaymentMethodRequest {
  payment_method: string;
}

/**
 * What a crossing crossed (`db/postings.ts` fires each kind once per crossing):
 * - `low_balance`: the available balance went below the low-balance alert threshold;
 * - `recharge`: below the auto-recharge threshold;
 * - `depleted`: to zero or below;
 * - `budget_alert` / `budget_limit`: this UTC month's spend reached the budget's alert / limit.
 */
export type CrossingKind = 'low_balance' | 'recharge' | 'depleted' | 'budget_alert' | 'budget_limit';

/** The hot path saw a debit cross one of the customer's thresholds (once per crossing). */
export interface ThresholdCrossing {
  /** Increasing id of the crossing in the outbox; redeliveries repeat it. */
  crossing_id: string;
  /** Absent in crossings recorded before kinds existed: `low_balance`. */
  kind?: CrossingKind;
  /** The threshold crossed (for budgets: the alert or limit); `0.00` for `depleted`. */
  threshold_usd: string;
  /** The available balance after the debit. */
  balance_usd: string;
  /** This month's spend after the debit, for budget crossings. */
  month_spend_usd?: string;
  crossed_at: string;
}

export type Command =
  | {
      kind: 'top_up';
      id: string;
      request: TopUpRequest;
      /**
       * The card accepted with the request (Updates). Requests that arrive by signal carry none: the charge step
       * reads the card on file in PostgreSQL when it runs.
       */
      payment_method?: string;
    }
  | {
      kind: 'grant_credit';
      id: string;
      request: CreditGrantRequest;
      /** When the account accepted the grant (ISO-8601); absent in state carried from older runs. */
      accepted_at?: string;
    }
  /** Charge the card once for a `recharge` crossing (id `ar_<crossing_id>`, see billing/auto-recharge.ts). */
  | { kind: 'auto_recharge'; id: string; crossing: ThresholdCrossing }
  /** Refund (part of) a paid credit's payment and remove the credit; recorded by the API (see billing/refunds.ts). */
  | { kind: 'refund'; id: string; request: RefundRequest };

export type CommandResult =
  /** `already_settled`: the database had its outcome before this run ran it (a redelivery); counted already. */
  | { kind: 'top_up'; result: TopUpResult; already_settled?: boolean }
  | { kind: 'grant_credit'; result: CreditGrantResult }
  | { kind: 'auto_recharge'; result: AutoRechargeResult }
  | { kind: 'refund'; result: RefundResult }
  /** The account refused the command: it was invalid, or a step failed in a way no retry can fix. */
  | { kind: 'refused'; id: string; command_kind: Command['kind']; refusal: Refusal };

/** A refusal as operators see it in the query and the workflow's memo. */
export interface RefusalRecord {
  id: string;
  command_kind: Command['kind'];
  code: string;
  message: string;
  at: string;
}

export interface AccountState {
  customer_id: string;
  status: 'active';
  payment_method: string | null;
  /** Accepted work not finished yet, oldest first; carried across continue-as-new. */
  queue: Command[];
  /** Outcomes of the most recent commands (oldest first), so a retried request gets the first answer. */
  results: { id: string; result: CommandResult }[];
  /** Open grants that expire, so the workflow can sleep until the next expiry. */
  grant_expiries: { grant_id: string; expires_at: string }[];
  lifetime_top_ups_usd: string;
  top_ups_succeeded: number;
  top_ups_failed: number;
  /** How many runs this account has had (1 + continue-as-new count); shown to operators. */
  run_number: number;
  /** The latest threshold crossing the hot path reported (recorded and shown; nothing acts on it yet). Absent in older runs' state. */
  last_crossing?: ThresholdCrossing | null;
  threshold_crossings?: number;
  /** Commands the account refused (absent in older runs' state), and the latest of them. */
  refusals?: number;
  last_refusal?: RefusalRecord | null;
  /**
   * The spend tier as the last review found it (PostgreSQL is the authority: every run without it reviews the tier
   * first); absent in runs from before tiers.
   */
  tier?: AccountTier | null;
  /**
   * Requests were recorded in PostgreSQL that the queue had no room for (or a rebuild read only the first page of):
   * once the queue drains, the workflow reads the next pending requests from the database.
   */
  backlog?: boolean;
  /** Auto-recharge settings (cached from PostgreSQL), this month's recharges and the last one. Absent in older runs. */
  auto_recharge?: AutoRechargeState | null;
  /** Crossings received whose event (`credit.balance_low`, `credit.depleted`, `budget.*`) is not recorded yet. */
  crossing_events?: ThresholdCrossing[];
  /** The monthly budget (cached from PostgreSQL, where the hot path enforces it). Absent in older runs' state. */
  budget?: BudgetState | null;
  /** The live subscription (cached from PostgreSQL; null: none, the account is on Free). Absent in older runs. */
  subscription?: SubscriptionCache | null;
  /** Subscription change requests received and not run yet (ids of `subscription_changes`), oldest first. */
  subscription_changes?: string[];
  /** The past-due invoice whose dunning workflow this account started (started once per invoice). */
  dunning_started?: string | null;
  /**
   * Top-ups whose waiting charge (SCA) Stripe settled while the top-up was queued or running: run again if it parks
   * (see `notePaymentSettled`, `parkCommand`). Absent in older runs' state.
   */
  payment_rechecks?: string[];
}

/** The customer's monthly budget as `PUT .../budget` saved it: USD strings, null for none. */
export interface BudgetSettings {
  monthly_alert_usd: string | null;
  monthly_limit_usd: string | null;
}

/** The budget and the UTC months (`YYYY-MM`) in which its alert and its limit last fired, for operators. */
export interface BudgetState extends BudgetSettings {
  alert_fired_month: string | null;
  limit_reached_month: string | null;
}

/** Takes new budget settings; the months it fired in stay (the database decides whether a raised one fires again). */
export function applyBudgetSettings(state: AccountState, settings: BudgetSettings): AccountState {
  const fired = state.budget ?? { alert_fired_month: null, limit_reached_month: null };
  return {
    ...state,
    budget: {
      ...settings,
      alert_fired_month: fired.alert_fired_month,
      limit_reached_month: fired.limit_reached_month,
    },
  };
}

/** Notes the month a budget crossing fired in; crossings of other kinds leave the budget as it is. */
function noteBudgetCrossing(budget: BudgetState | null | undefined, crossing: ThresholdCrossing) {
  if (crossing.kind !== 'budget_alert' && crossing.kind !== 'budget_limit') return budget;
  const month = crossing.crossed_at.slice(0, 7);
  const base: BudgetState = budget ?? {
    monthly_alert_usd: crossing.kind === 'budget_alert' ? crossing.threshold_usd : null,
    monthly_limit_usd: crossing.kind === 'budget_limit' ? crossing.threshold_usd : null,
    alert_fired_month: null,
    limit_reached_month: null,
  };
  return crossing.kind === 'budget_alert'
    ? { ...base, alert_fired_month: month }
    : { ...base, limit_reached_month: month };
}

/** A tier review's answer (activities/review-tier.ts), kept in state and shown by the query. Times ISO-8601. */
export interface AccountTier {
  /** The tier id (`free`, `tier_1` ...), also the `BillingTier` search attribute. */
  tier: string;
  /** The tier before this review (null: none stored). */
  previous_tier: string | null;
  /** Whether this review promoted the account (and recorded `tier.promoted`). */
  promoted: boolean;
  lifetime_paid_usd: string;
  first_payment_at: string | null;
  /** When time alone promotes next: the workflow reviews again at this instant (a durable timer); null: no timer. */
  next_review_at: string | null;
}

/** What queries return and the payment-method update answers: the state minus internal bookkeeping. */
export type AccountView = Omit<AccountState, 'results'> & {
  recent_results: number;
  /** The settings this run works with (the worker's at the run's start, else the start input's). */
  settings?: AccountSettings;
};

/** How many outcomes are remembered for deduplication; older retries are still safe (activities are idempotent). */
export const RESULTS_KEPT = 200;

/** Bounds the queue: a caller that floods one account gets a clear refusal rather than unbounded history. */
export const QUEUE_LIMIT = 50;

export function initialAccountState(customer_id: string): AccountState {
  return {
    customer_id,
    status: 'active',
    payment_method: null,
    queue: [],
    results: [],
    grant_expiries: [],
    lifetime_top_ups_usd: formatUsd(0n),
    top_ups_succeeded: 0,
    top_ups_failed: 0,
    run_number: 1,
    last_crossing: null,
    threshold_crossings: 0,
    refusals: 0,
    last_refusal: null,
    backlog: false,
    auto_recharge: null,
    crossing_events: [],
  };
}

export function toView(state: AccountState, settings?: AccountSettings): AccountView {
  const { results, ...rest } = state;
  return { ...rest, recent_results: results.length, ...(settings ? { settings } : {}) };
}

/** A typed refusal of a request, carried as the `type` of an ApplicationFailure across Temporal. */
export interface Refusal {
  /**
   * `no_payment_method`, `invalid_amount`, `queue_full`, `invalid_expiry` from the account's own rules; otherwise
   * the type of the non-retryable activity failure that refused it (`invalid_data`, `constraint_violation`,
   * `payment_refused`, `conflict`, `not_found`, ...).
   */
  code: RefusalCode;
  message: string;
}

export type RefusalCode =
  | 'no_payment_method'
  | 'invalid_amount'
  | 'queue_full'
  | 'invalid_expiry'
  | (string & { readonly refusal?: never });

/** Refusals that say the request itself is malformed (HTTP 400); every other refusal is a state conflict (409). */
export const INVALID_REQUEST_REFUSALS: ReadonlySet<string> = new Set([
  'invalid_amount',
  'invalid_expiry',
  'invalid_data',
  'constraint_violation',
]);

export function validateTopUp(state: AccountState, request: TopUpRequest): Refusal | null {
  if (findResult(state, request.top_up_id) || isQueued(state, request.top_up_id)) return null;
  if (state.payment_method === null) {
    return { code: 'no_payment_method', message: 'the customer has no payment method on file' };
  }
  const amount = parseUsd(request.amount_usd);
  if (!amount.ok || amount.nanos <= 0n || !isWholeCents(amount.nanos)) {
    return { code: 'invalid_amount', message: 'a top-up must be a positive amount of whole cents' };
  }
  return state.queue.length >= QUEUE_LIMIT ? queueFull() : null;
}

export function validateCreditGrant(
  state: AccountState,
  request: CreditGrantRequest,
  now_ms: number,
): Refusal | null {
  if (findResult(state, request.grant_id) || isQueued(state, request.grant_id)) return null;
  const amount = parseUsd(request.amount_usd);
  if (!amount.ok || amount.nanos <= 0n)
    return { code: 'invalid_amount', message: 'a grant must be positive' };
  if (request.expires_at !== null && !(Date.parse(request.expires_at) > now_ms)) {
    return { code: 'invalid_expiry', message: 'expires_at must be a time in the future' };
  }
  return state.queue.length >= QUEUE_LIMIT ? queueFull() : null;
}

function queueFull(): Refusal {
  return { code: 'queue_full', message: `the account already has ${QUEUE_LIMIT} operations in progress` };
}

export function findResult(state: AccountState, id: string): CommandResult | undefined {
  return state.results.find((r) => r.id === id)?.result;
}

export function isQueued(state: AccountState, id: string): boolean {
  return state.queue.some((c) => c.id === id);
}

/** Queues a command unless the same id is queued or already answered (a retry), in which case nothing changes. */
export function enqueue(state: AccountState, command: Command): AccountState {
  if (isQueued(state, command.id) || findResult(state, command.id)) return state;
  return { ...state, queue: [...state.queue, command] };
}

export function setPaymentMethod(state: AccountState, request: PaymentMethodRequest): AccountState {
  return { ...state, payment_method: request.payment_method };
}

/** Records the outcome of the command at the head of the queue and the bookkeeping it implies. */
export function completeCommand(state: AccountState, outcome: CommandResult): AccountState {
  const [head, ...rest] = state.queue;
  const outcomeKind = outcome.kind === 'refused' ? outcome.command_kind : outcome.kind;
  if (!head || head.kind !== outcomeKind || head.id !== outcomeId(outcome)) {
    throw new Error('completed a command that is not at the head of the queue');
  }
  const results = [...state.results, { id: head.id, result: outcome }].slice(-RESULTS_KEPT);
  let next: AccountState = { ...state, queue: rest, results };
  if (state.payment_rechecks?.includes(head.id)) {
    next = { ...next, payment_rechecks: state.payment_rechecks.filter((id) => id !== head.id) };
  }
  if (outcome.kind === 'refused') {
    // A refused top-up is a failed top-up in the database too (no charge, or a charge that could not be granted).
    return {
      ...next,
      top_ups_failed: state.top_ups_failed + (outcome.command_kind === 'top_up' ? 1 : 0),
      refusals: (state.refusals ?? 0) + 1,
    };
  }
  if (outcome.kind === 'auto_recharge') {
    const { result } = outcome;
    next = { ...next, auto_recharge: applyRechargeResult(state.auto_recharge, result) };
    if (result.grant_id !== null && result.grant_expires_at !== null) {
      const expiry = { grant_id: result.grant_id, expires_at: result.grant_expires_at };
      next = { ...next, grant_expiries: [...next.grant_expiries, expiry] };
    }
    return next;
  }
  if (outcome.kind === 'top_up' && outcome.already_settled !== true) {
    const succeeded = outcome.result.status === 'succeeded';
    const paid_nanos = decodeUsd(outcome.result.amount_usd);
    const lifetime_nanos = decodeUsd(state.lifetime_top_ups_usd);
    next = {
      ...next,
      lifetime_top_ups_usd: succeeded ? formatUsd(lifetime_nanos + paid_nanos) : state.lifetime_top_ups_usd,
      top_ups_succeeded: state.top_ups_succeeded + (succeeded ? 1 : 0),
      top_ups_failed: state.top_ups_failed + (succeeded ? 0 : 1),
    };
  }
  if (outcome.kind === 'grant_credit' && outcome.result.expires_at !== null) {
    next = noteGrantExpiry(next, outcome.result.grant_id, outcome.result.expires_at);
  }
  if (outcome.kind === 'top_up' && outcome.result.grant_id !== null && outcome.result.grant_expires_at) {
    // Paid credit expires too (TOP_UP_CREDIT_VALIDITY); each purchase with its own expiry.
    next = noteGrantExpiry(next, outcome.result.grant_id, outcome.result.grant_expires_at);
  }
  return next;
}

/**
 * Remembers when a grant needs the account's attention: its expiry, or (for a grant that expired while holds were
 * open) when those holds settle at the latest. The workflow sleeps until the soonest; one entry per grant, the latest
 * time given wins. For every lifecycle that grants expiring credit (top-ups, auto-recharges, operator grants).
 */
export function noteGrantExpiry(state: AccountState, grant_id: string, expires_at: string): AccountState {
  return {
    ...state,
    grant_expiries: [
      ...state.grant_expiries.filter((e) => e.grant_id !== grant_id),
      { grant_id, expires_at },
    ],
  };
}

function outcomeId(outcome: CommandResult): string {
  if (outcome.kind === 'refused') return outcome.id;
  if (outcome.kind === 'auto_recharge') return outcome.result.recharge_id;
  if (outcome.kind === 'refund') return outcome.result.refund_id;
  return outcome.kind === 'top_up' ? outcome.result.top_up_id : outcome.result.grant_id;
}

/** The refused outcome of a command, for `completeCommand`. */
export function refusedOutcome(command: Command, refusal: Refusal): CommandResult {
  return { kind: 'refused', id: command.id, command_kind: command.kind, refusal };
}

/** Remembers the latest refusal for operators (query and memo); `at` is when the account refused it. */
export function noteRefusal(
  state: AccountState,
  command: Command,
  refusal: Refusal,
  at: string,
): AccountState {
  return {
    ...state,
    last_refusal: {
      id: command.id,
      command_kind: command.kind,
      code: refusal.code,
      message: refusal.message,
      at,
    },
  };
}

/**
 * The account's own rules, checked when a command reaches the head of the queue. Updates were validated when they
 * were accepted; requests that arrive by signal cannot be refused on arrival, so they are checked here. A top-up
 * without a card on file is left to the charge step, which reads the card from PostgreSQL, the authority on it.
 */
export function checkCommand(command: Command): Refusal | null {
  // Sized and checked by its own first step, against the settings and balance in PostgreSQL when it runs.
  if (command.kind === 'auto_recharge') return null;
  // Decided by its own first step (the claim), under the wallet lock, against the payment and the credit left.
  if (command.kind === 'refund') return null;
  if (command.kind === 'top_up') {
    const amount = parseUsd(command.request.amount_usd);
    if (!amount.ok || amount.nanos <= 0n || !isWholeCents(amount.nanos)) {
      return { code: 'invalid_amount', message: 'a top-up must be a positive amount of whole cents' };
    }
    return null;
  }
  const amount = parseUsd(command.request.amount_usd);
  if (!amount.ok || amount.nanos <= 0n)
    return { code: 'invalid_amount', message: 'a grant must be positive' };
  const { expires_at } = command.request;
  if (expires_at !== null) {
    const expires_ms = Date.parse(expires_at);
    const accepted_ms = command.accepted_at === undefined ? undefined : Date.parse(command.accepted_at);
    if (Number.isNaN(expires_ms) || (accepted_ms !== undefined && !(expires_ms > accepted_ms))) {
      return { code: 'invalid_expiry', message: 'expires_at must be after the time the grant was requested' };
    }
  }
  return null;
}

/**
 * Stripe settled the waiting charge of a top-up (its webhook, README "Inbound Stripe webhooks"): the top-up runs
 * again, and its charge step reads the settled payment instead of charging. Parked (out of the queue, no outcome),
 * it is queued now; queued or running, it is noted, so that if its run parks it before hearing of the settlement
 * (the webhook arrived while the charge call was out) it is queued again at once. An answered top-up is left alone.
 */
export function notePaymentSettled(state: AccountState, request: TopUpRequest): AccountState {
  const id = request.top_up_id;
  if (findResult(state, id)) return state;
  if (isQueued(state, id)) {
    const rechecks = state.payment_rechecks ?? [];
    return rechecks.includes(id) ? state : { ...state, payment_rechecks: [...rechecks, id] };
  }
  return acceptRequest(state, { kind: 'top_up', id, request });
}

/** Whether a payment-settled signal has the shape the API sends (anyone with namespace access can signal). */
export function isWellFormedTopUpRequest(request: unknown): request is TopUpRequest {
  const r = request as Partial<Record<keyof TopUpRequest, unknown>> | null;
  return (
    typeof r?.top_up_id === 'string' &&
    /^[A-Za-z0-9_]{1,200}$/.test(r.top_up_id) &&
    typeof r.amount_usd === 'string' &&
    parseUsd(r.amount_usd).ok
  );
}

/**
 * Takes the head command, a top-up whose charge waits for the customer (SCA), out of the queue without an outcome,
 * so the account's other work goes on: it runs again when Stripe settles its payment (`notePaymentSettled`). A
 * settlement heard while it ran queues it again at once (at the tail, behind work that waited for it).
 */
export function parkCommand(state: AccountState, command: Command): AccountState {
  const [head, ...rest] = state.queue;
  if (!head || head.kind !== command.kind || head.id !== command.id) {
    throw new Error('parked a command that is not at the head of the queue');
  }
  const rechecks = state.payment_rechecks ?? [];
  if (!rechecks.includes(head.id)) return { ...state, queue: rest };
  return { ...state, queue: [...rest, head], payment_rechecks: rechecks.filter((id) => id !== head.id) };
}

/**
 * Queues a request that arrived by signal. It is already recorded in PostgreSQL, so when the queue is full it is
 * not refused but left there: the backlog flag makes the workflow read it from the database once the queue drains.
 */
export function acceptRequest(state: AccountState, command: Command): AccountState {
  if (isQueued(state, command.id) || findResult(state, command.id)) return state;
  if (state.queue.length >= QUEUE_LIMIT) return { ...state, backlog: true };
  return { ...state, queue: [...state.queue, command] };
}

/** Requests read back from PostgreSQL (oldest first); `more` when the page was full and more may be waiting. */
export interface PendingRequests {
  commands: Command[];
  more: boolean;
}

/** Queues requests read from the database that are not queued or answered yet, and clears the backlog flag. */
export function enqueuePending(state: AccountState, pending: PendingRequests): AccountState {
  let next: AccountState = { ...state, backlog: false };
  for (const command of pending.commands) {
    if (isQueued(next, command.id) || findResult(next, command.id)) continue;
    next = { ...next, queue: [...next.queue, command] };
  }
  return { ...next, backlog: pending.more || next.backlog };
}

/**
 * Why the periodic sweep wakes an account (db/stalled-accounts.ts): work PostgreSQL says is overdue. Each reason
 * asks the workflow for the step that does it, whether or not its own state knew about the work.
 */
export type WakeReason = 'renewal_overdue' | 'expiry_overdue' | 'request_pending' | 'tier_review_overdue';

export const WAKE_REASONS: readonly WakeReason[] = Object.freeze([
  'renewal_overdue',
  'expiry_overdue',
  'request_pending',
  'tier_review_overdue',
]);

/** What a wake asks for. A malformed signal asks for everything: each step is safe to run when nothing is due. */
export function wakeWork(input: unknown): {
  expire: boolean;
  read_requests: boolean;
  refresh_subscription: boolean;
  review_tier: boolean;
} {
  const given = (input as { reasons?: unknown } | null)?.reasons;
  const reasons = Array.isArray(given) ? WAKE_REASONS.filter((r) => given.includes(r)) : [...WAKE_REASONS];
  const asked = reasons.length > 0 ? reasons : [...WAKE_REASONS];
  return {
    expire: asked.includes('expiry_overdue'),
    read_requests: asked.includes('request_pending'),
    refresh_subscription: asked.includes('renewal_overdue') || asked.includes('request_pending'),
    review_tier: asked.includes('tier_review_overdue'),
  };
}

/** What the database says about an account; see db/account-snapshot.ts. Money as USD strings, times ISO. */
export interface AccountSnapshot {
  payment_method: string | null;
  grant_expiries: { grant_id: string; expires_at: string }[];
  lifetime_top_ups_usd: string;
  top_ups_succeeded: number;
  top_ups_failed: number;
  last_crossing: ThresholdCrossing | null;
  threshold_crossings: number;
  pending: PendingRequests;
  /** Absent in snapshots recorded before auto-recharge. */
  auto_recharge?: AutoRechargeState | null;
  /**
   * Delivered crossings the account has not acted on (a run terminated between receiving and acting): a `recharge`
   * crossing without its recharge row, another kind without its event. Oldest first; absent in older snapshots.
   */
  unhandled_crossings?: ThresholdCrossing[];
  /** Absent in snapshots recorded before budgets. */
  budget?: BudgetState | null;
}

/**
 * The state of a run that started without carried state, rebuilt from the database. What this run learned before
 * the snapshot arrived wins where it is newer: a payment method saved by an update of this run, requests that
 * arrived by signal (queued after the older ones the database lists), a crossing with a higher id.
 */
export function rebuildState(state: AccountState, snapshot: AccountSnapshot): AccountState {
  const fromDb = enqueuePending({ ...state, queue: [] }, snapshot.pending);
  const queue = [...fromDb.queue, ...state.queue.filter((c) => !isQueued(fromDb, c.id))];
  const newerCrossing =
    state.last_crossing &&
    (!snapshot.last_crossing ||
      BigInt(state.last_crossing.crossing_id) > BigInt(snapshot.last_crossing.crossing_id));
  return {
    ...state,
    payment_method: state.payment_method ?? snapshot.payment_method,
    queue,
    backlog: fromDb.backlog || (state.backlog ?? false),
    grant_expiries: snapshot.grant_expiries,
    lifetime_top_ups_usd: snapshot.lifetime_top_ups_usd,
    top_ups_succeeded: snapshot.top_ups_succeeded,
    top_ups_failed: snapshot.top_ups_failed,
    last_crossing: newerCrossing ? state.last_crossing : snapshot.last_crossing,
    threshold_crossings: Math.max(snapshot.threshold_crossings, state.threshold_crossings ?? 0),
    ...(snapshot.auto_recharge === undefined ? {} : { auto_recharge: snapshot.auto_recharge }),
    ...(snapshot.budget === undefined ? {} : { budget: snapshot.budget }),
  };
}

/** Milliseconds until the next grant expiry (0 when one is due), or undefined when nothing expires. */
export function msUntilNextExpiry(state: AccountState, now_ms: number): number | undefined {
  let soonest_ms: number | undefined;
  for (const e of state.grant_expiries) {
    const at_ms = Date.parse(e.expires_at);
    if (soonest_ms === undefined || at_ms < soonest_ms) soonest_ms = at_ms;
  }
  return soonest_ms === undefined ? undefined : Math.max(0, soonest_ms - now_ms);
}

/**
 * After an expiry run: wakes the account again when the holds that retired grants still wait for settle at the
 * latest. Times already past are left to the hold sweep, which settles claims after releasing (waking for them now
 * would only find the same holds still held).
 */
export function noteClaimsSettleBy(
  state: AccountState,
  settleBy: readonly { grant_id: string; expires_at: string }[],
  now_ms: number,
): AccountState {
  let next = state;
  for (const entry of settleBy) {
    if (Date.parse(entry.expires_at) > now_ms) next = noteGrantExpiry(next, entry.grant_id, entry.expires_at);
  }
  return next;
}

/** Forgets expiries that are due at `now_ms` once the ledger has written them off. */
export function clearDueExpiries(state: AccountState, now_ms: number): AccountState {
  return { ...state, grant_expiries: state.grant_expiries.filter((e) => Date.parse(e.expires_at) > now_ms) };
}

/**
 * Whether the account has not seen this crossing yet. Crossing ids increase across all kinds (one outbox), and the
 * outbox delivers a customer's crossings in id order, so "above the last id seen" is right whatever the kinds: the
 * `low_balance` and `recharge` crossings of one debit are two rows with two ids, each acted on once.
 */
const CROSSING_KINDS: readonly CrossingKind[] = [
  'low_balance',
  'recharge',
  'depleted',
  'budget_alert',
  'budget_limit',
];

/**
 * Whether a crossing signal has the shape the notifier sends. Anyone with access to the namespace can signal an
 * account (`temporal workflow signal`); a malformed crossing must be ignored, not throw in the handler, which would
 * fail every workflow task from then on and wedge the account.
 */
export function isWellFormedCrossing(crossing: unknown): crossing is ThresholdCrossing {
  if (typeof crossing !== 'object' || crossing === null) return false;
  const c = crossing as Record<string, unknown>;
  const money = (v: unknown) => typeof v === 'string' && /^-?[0-9]+\.[0-9]{9}$/.test(v);
  return (
    typeof c.crossing_id === 'string' &&
    /^[0-9]{1,19}$/.test(c.crossing_id) &&
    (c.kind === undefined || CROSSING_KINDS.includes(c.kind as CrossingKind)) &&
    money(c.threshold_usd) &&
    money(c.balance_usd) &&
    (c.month_spend_usd === undefined || money(c.month_spend_usd)) &&
    typeof c.crossed_at === 'string' &&
    !Number.isNaN(Date.parse(c.crossed_at))
  );
}

export function isNewCrossing(state: AccountState, crossing: ThresholdCrossing): boolean {
  const last = state.last_crossing;
  return !last || BigInt(crossing.crossing_id) > BigInt(last.crossing_id);
}

/** Records a crossing once: a redelivered or older crossing id leaves the state unchanged. */
export function recordThresholdCrossing(state: AccountState, crossing: ThresholdCrossing): AccountState {
  if (!isNewCrossing(state, crossing)) return state;
  const budget = noteBudgetCrossing(state.budget, crossing);
  return {
    ...state,
    last_crossing: crossing,
    threshold_crossings: (state.threshold_crossings ?? 0) + 1,
    ...(budget === undefined ? {} : { budget }),
  };
}

/**
 * Turns a new crossing into work: a `recharge` crossing queues one recharge command for its id (not bounded by the
 * queue limit: crossings are few, at most one per kind per debit, and dropping one would lose a recharge); any
 * other kind waits to have its event recorded. A crossing already queued or answered changes nothing.
 */
export function actOnCrossing(state: AccountState, crossing: ThresholdCrossing): AccountState {
  if ((crossing.kind ?? 'low_balance') === 'recharge') {
    return enqueue(state, { kind: 'auto_recharge', id: rechargeIdFor(crossing.crossing_id), crossing });
  }
  const waiting = state.crossing_events ?? [];
  if (waiting.some((c) => c.crossing_id === crossing.crossing_id)) return state;
  return { ...state, crossing_events: [...waiting, crossing] };
}

/** Forgets crossing events once they are recorded in the outbox. */
export function clearCrossingEvents(state: AccountState, crossing_ids: readonly string[]): AccountState {
  const done = new Set(crossing_ids);
  return { ...state, crossing_events: (state.crossing_events ?? []).filter((c) => !done.has(c.crossing_id)) };
}

/**
 * Whether a command's outcome may have changed what the customer paid, so its tier must be reviewed: every outcome
 * but an operator grant (no payment) and a declined or skipped top-up or auto-recharge (no charge). A refused top-up
 * or recharge may have been charged before its grant failed.
 */
export function mayChangeTier(outcome: CommandResult): boolean {
  switch (outcome.kind) {
    case 'grant_credit':
      return false;
    case 'refused':
      return outcome.command_kind !== 'grant_credit';
    case 'top_up':
    case 'auto_recharge':
    // A refund lowers lifetime paid (a tier never demotes, but the next tier's rules and timer see it).
    case 'refund':
      return outcome.result.status === 'succeeded';
  }
}

/** Keeps the latest tier review (null when the customer is unknown to the database). */
export function applyTierReview(state: AccountState, review: AccountTier | null): AccountState {
  return { ...state, tier: review };
}

/** Milliseconds until the tier's next age rule is met (0 when due), or undefined when no review waits on time. */
export function msUntilTierReview(state: AccountState, now_ms: number): number | undefined {
  const at = state.tier?.next_review_at;
  return at ? Math.max(0, Date.parse(at) - now_ms) : undefined;
}

/** The state a new run starts from after continue-as-new. */
export function nextRunState(state: AccountState): AccountState {
  return { ...state, run_number: state.run_number + 1 };
}
