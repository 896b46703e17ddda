import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type {
  WakeReason,
  BudgetSettings,
  AccountView,
  CreditGrantRequest,
  CreditGrantResult,
  PaymentMethodRequest,
  ThresholdCrossing,
  TopUpRequest,
  TopUpResult,
} from '../billing/account';
import type { AutoRechargeSettings } from '../billing/auto-recharge';
import type { RefundRequest } from '../billing/refunds';

/**
 * Every name that crosses between the API, the worker and the account workflow: one module, imported by all.
 * Payloads carry money as USD decimal strings, so histories stay exact and readable in the Temporal UI.
 */

export const accountWorkflowId = (customer_id: string): string => `account:${customer_id}`;

export const topUpUpdate = defineUpdate<TopUpResult, [TopUpRequest]>('topUp');
export const grantCreditUpdate = defineUpdate<CreditGrantResult, [CreditGrantRequest]>('grantCredit');
export const setPaymentMethodUpdate = defineUpdate<AccountView, [PaymentMethodRequest]>('setPaymentMethod');
export const accountStateQuery = defineQuery<AccountView>('accountState');
/** Sent by the hot path's outbox when a debit takes the balance below the customer's threshold. */
export const balanceThresholdCrossedSignal = defineSignal<[ThresholdCrossing]>('balanceThresholdCrossed');
/**
 * Money requests from the API. The API records each request in PostgreSQL first (a pending top-up, a pending grant
 * request), then signals; it reads the outcome from the database. Signals, unlike Updates (at most 10 in flight per
 * workflow), admit any number of concurrent requests, and a request the workflow never heard of (a lost signal, a
 * terminated run) is still found in the database when a run rebuilds its state or drains its backlog.
 */
export const topUpRequestedSignal = defineSignal<[TopUpRequest]>('topUpRequested');
/**
 * Stripe's webhook settled the waiting (SCA) charge of a top-up (README "Inbound Stripe webhooks"): the account runs
 * the top-up again, and its charge step reads the settled payment.
 */
export const paymentSettledSignal = defineSignal<[TopUpRequest]>('paymentSettled');
export const creditGrantRequestedSignal =
  defineSignal<[CreditGrantRequest & { accepted_at: string }]>('creditGrantRequested');
/** A refund the API recorded in PostgreSQL (`refunds`, pending); the workflow runs it like a top-up request. */
export const refundRequestedSignal = defineSignal<[RefundRequest]>('refundRequested');
/** The API saved a new payment method in PostgreSQL (the authority on it); the workflow refreshes its copy. */
export const paymentMethodChangedSignal = defineSignal<[PaymentMethodRequest]>('paymentMethodChanged');
/** The API saved the auto-recharge settings in PostgreSQL; the workflow refreshes its copy and search attribute. */
export const autoRechargeChangedSignal = defineSignal<[AutoRechargeSettings]>('autoRechargeChanged');
/** The API saved the customer's budget in PostgreSQL (the hot path enforces it); the workflow refreshes its copy. */
export const budgetChangedSignal = defineSignal<[BudgetSettings]>('budgetChanged');
/** The API recorded a subscription change request (`subscription_changes`); the account runs it in turn. */
export const subscriptionChangeRequestedSignal = defineSignal<[{ change_id: string }]>(
  'subscriptionChangeRequested',
);
/** The subscription changed in PostgreSQL outside the account's own steps (a cancellation, dunning's outcome). */
export const subscriptionChangedSignal = defineSignal<[{ reason: string }]>('subscriptionChanged');
/** Sent to a dunning workflow: the payment method changed, retry the invoice now. */
export const retryInvoicePaymentSignal = defineSignal('retryInvoicePayment');
export const dunningWorkflowId = (invoice_id: string): string => `dunning:${invoice_id}`;
/**
 * Sent by the periodic sweep (signal with start) to an account whose work is overdue in PostgreSQL: a renewal, an
 * expiry, a request recorded but never run. A terminated account starts again and rebuilds; a running one that
 * missed a signal reads again what it missed.
 */
export const accountWakeSignal = defineSignal<[{ reasons: WakeReason[] }]>('wake');
/** Asks the workflow to write off expired credit now (operators, tests); the workflow also does it on a timer. */
export const expireCreditSignal = defineSignal('expireCredit');

/** Search attributes shown in the Temporal UI; registered by the dev server launcher and the worker. */
export const customerIdSearchAttribute = defineSearchAttributeKey(
  'BillingCustomerId',
  SearchAttributeType.KEYWORD,
);
export const accountStatusSearchAttribute = defineSearchAttributeKey(
  'BillingStatus',
  SearchAttributeType.KEYWORD,
);
/** The spend tier (`free`, `tier_1` ... `tier_5` in the bundled table): `temporal workflow list --query 'BillingTier="tier_3"'`. */
export const tierSearchAttribute = defineSearchAttributeKey('BillingTier', SearchAttributeType.KEYWORD);
/** Whether auto-recharge is on (`BillingAutoRecharge = true`), upserted when the setting changes. */
export const autoRechargeSearchAttribute = defineSearchAttributeKey(
  'BillingAutoRecharge',
  SearchAttributeType.BOOL,
);
/** The subscription plan (`free` without one): `temporal workflow list --query 'BillingPlan="plus"'`. */
export const planSearchAttribute = defineSearchAttributeKey('BillingPlan', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = {
  [customerIdSearchAttribute.name]: 'Keyword',
  [accountStatusSearchAttribute.name]: 'Keyword',
  [autoRechargeSearchAttribute.name]: 'Bool',
  [tierSearchAttribute.name]: 'Keyword',
  [planSearchAttribute.name]: 'Keyword',
} as const;
