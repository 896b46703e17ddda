import type { CreditGrantRequest, CreditGrantResult } from '../billing/account';
import { formatUsd, usd } from '../billing/money';
import type { Db } from '../db/connection';
import { settleGrantRequest } from '../db/credit-grant-requests';
import { grantCredit } from '../db/ledger';

/**
 * Free credit from an operator (promotion, goodwill): promotions -> customer, idempotent by grant id. The grant
 * request the API recorded (if any) is marked granted after the ledger has the grant; a retry after a crash in
 * between finds the grant and marks it then.
 */
export function grantCreditActivities(deps: { db: Db }) {
  return {
    async grantOperatorCredit(
      input: CreditGrantRequest & { customer_id: string; granted_at?: string | null },
    ): Promise<CreditGrantResult> {
      const grant = await grantCredit(deps.db, {
        grant_id: input.grant_id,
        customer_id: input.customer_id,
        source: input.source,
        amount_nanos: usd(input.amount_usd),
        reason: input.reason,
        expires_at: input.expires_at === null ? null : new Date(input.expires_at),
        kind: 'credit_grant',
        ref: input.grant_id,
        funded_by: 'promotions',
        granted_at: input.granted_at ? new Date(input.granted_at) : undefined,
      });
      await settleGrantRequest(deps.db, input.grant_id, { status: 'granted' });
      return {
        grant_id: grant.id,
        amount_usd: formatUsd(grant.amount_nanos),
        expires_at: grant.expires_at?.toISOString() ?? null,
      };
    },
  };
}
