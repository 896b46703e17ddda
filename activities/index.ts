import type { Db } from '../db/connection';
import type { HotPath } from '../db/hot-path';
import { releaseExpiredHoldsActivities } from './release-expired-holds';
import { expireCreditActivities } from './expire-credit';
import { grantCreditActivities } from './grant-credit';
import type { PaymentGateway } from '../payments/payment-gateway';
import { paymentMethodActivities } from './save-payment-method';
import { topUpActivities } from './top-up-credits';

export interface ActivityDeps {
  db: Db;
  gateway: PaymentGateway;
  hotPath: HotPath;
}

/** All activities, built from their dependencies; workflows import only the type. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...topUpActivities(deps),
    ...grantCreditActivities(deps),
    ...paymentMethodActivities(deps),
    ...expireCreditActivities(deps),
    ...releaseExpiredHoldsActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
