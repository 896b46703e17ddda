import type { AccountSettings, WakeReason } from '../billing/account';
import type { ChargeLimits } from '../billing/auto-recharge';
import type { PlanCatalog } from '../billing/plans';
import type { TierTable } from '../billing/tiers';
import type { Db } from '../db/connection';
import type { HotPath } from '../db/hot-path';
import type { PaymentGateway } from '../payments/payment-gateway';
import { accountStateActivities } from './account-state';
import { webhookDeliveryActivities } from './deliver-webhook';
import { expireCreditActivities } from './expire-credit';
import { withPermanentFailures } from './failures';
import { grantCreditActivities } from './grant-credit';
import { releaseExpiredHoldsActivities } from './release-expired-holds';
import { crossingEventActivities } from './record-crossing-events';
import { reconciliationActivities } from './reconcile-payments';
import { autoRechargeActivities } from './recharge-credits';
import { refundActivities } from './refund-credits';
import { reviewTierActivities } from './review-tier';
import { paymentMethodActivities } from './save-payment-method';
import { subscriptionActivities } from './subscriptions';
import { topUpActivities } from './top-up-credits';

export interface ActivityDeps {
  db: Db;
  gateway: PaymentGateway;
  hotPath: HotPath;
  /** The worker's account settings, read by every account run at its start (absent: the start input's are kept). */
  settings?: AccountSettings;
  /** TOP_UP_MIN_USD..TOP_UP_MAX_USD: the range of an auto-recharge's charge (absent: the configuration's defaults). */
  charge_limits?: ChargeLimits;
  /** The spend-tier table (`TIERS_PATH`); absent: the bundled OpenAI table. */
  tiers?: TierTable;
  /** The plan catalog (`PLANS_PATH`); absent: the bundled one. */
  plans?: PlanCatalog;
  /** Wakes a customer's account workflow (signal with start) for what is overdue; the worker provides it. */
  wakeAccount?: (customer_id: string, reasons: WakeReason[]) => Promise<void>;
}

/**
 * All activities, built from their dependencies; workflows import only the type. Every one leaves with a
 * non-retryable, typed failure when it failed in a way no retry can fix (activities/failures.ts).
 */
export function createActivities(deps: ActivityDeps) {
  return withPermanentFailures({
    ...topUpActivities(deps),
    ...grantCreditActivities(deps),
    ...paymentMethodActivities(deps),
    ...expireCreditActivities(deps),
    ...releaseExpiredHoldsActivities(deps),
    ...accountStateActivities(deps),
    ...webhookDeliveryActivities(deps),
    ...autoRechargeActivities(deps),
    ...crossingEventActivities(deps),
    ...reviewTierActivities(deps),
    ...subscriptionActivities(deps),
    ...refundActivities(deps),
    ...reconciliationActivities(deps),
  });
}

export type Activities = ReturnType<typeof createActivities>;
export type { InvoiceCharge } from './subscriptions';
