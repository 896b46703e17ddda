import type { Knex } from 'knex';
import * as coreLedger from './20261125000001_core_ledger';
import * as metering from './20261125000002_metering';
import * as claimsAndLeases from './20261130153700_claims_and_leases';
import * as accountRequests from './20261130160000_account_requests';
import * as walletFloor from './20261130170000_wallet_floor';
import * as walletFloorDebitsOnly from './20261130180000_wallet_floor_debits_only';
import * as lifecycle from './20261130190000_lifecycle';
import * as webhooks from './20261130190200_webhooks';
import * as autoRecharge from './20261130190300_auto_recharge';
import * as spendTiers from './20261130190400_spend_tiers';
import * as grantHolds from './20261130190100_grant_holds';
import * as crossingKindsReplaceXact from './20261130190500_crossing_kinds_replace_xact';
import * as rechargeRearming from './20261130190600_recharge_rearming';
import * as subscriptions from './20261201090000_subscriptions';
import * as subscriptionChanges from './20261201095000_subscription_changes';
import * as stripeCustomers from './20261201091000_stripe_customers';
import * as customerContracts from './20261201094000_customer_contracts';
import * as allowanceCounters from './20261201093000_allowance_counters';
import * as refunds from './20261201092000_refunds';
import * as stripeWebhooks from './20261201096000_stripe_webhooks';
import * as reconciliationRuns from './20261201097000_reconciliation_runs';
import * as accountWakes from './20261202090000_account_wakes';
import * as tierReviewAt from './20261202091000_tier_review_at';

/**
 * Migrations are listed here rather than discovered on disk so that they run identically under tsx,
 * jest and a compiled build. Append new migrations at the end; never edit one that has shipped.
 */
const migrations: Record<string, Knex.Migration> = {
  '20261125000001_core_ledger': coreLedger,
  '20261125000002_metering': metering,
  '20261130153700_claims_and_leases': claimsAndLeases,
  '20261130160000_account_requests': accountRequests,
  '20261130170000_wallet_floor': walletFloor,
  '20261130180000_wallet_floor_debits_only': walletFloorDebitsOnly,
  '20261130190000_lifecycle': lifecycle,
  '20261130190200_webhooks': webhooks,
  '20261130190300_auto_recharge': autoRecharge,
  '20261130190400_spend_tiers': spendTiers,
  '20261130190100_grant_holds': grantHolds,
  '20261130190500_crossing_kinds_replace_xact': crossingKindsReplaceXact,
  '20261130190600_recharge_rearming': rechargeRearming,
  '20261201090000_subscriptions': subscriptions,
  '20261201095000_subscription_changes': subscriptionChanges,
  '20261201091000_stripe_customers': stripeCustomers,
  '20261201094000_customer_contracts': customerContracts,
  '20261201093000_allowance_counters': allowanceCounters,
  '20261201092000_refunds': refunds,
  '20261201096000_stripe_webhooks': stripeWebhooks,
  '20261201097000_reconciliation_runs': reconciliationRuns,
  '20261202090000_account_wakes': accountWakes,
  '20261202091000_tier_review_at': tierReviewAt,
};

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: () => Promise.resolve(Object.keys(migrations)),
  getMigrationName: (name) => name,
  getMigration: (name) => {
    const migration = migrations[name];
    if (!migration) throw new Error(`unknown migration ${name}`);
    return Promise.resolve(migration);
  },
};
