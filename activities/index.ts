import type { Db } from '../db/connection';
import { expireCreditActivities } from './expire-credit';
import { grantCreditActivities } from './grant-credit';
import type { PaymentGateway } from './payments/payment-gateway';
import { paymentMethodActivities } from './save-payment-method';
import { topUpActivities } from './top-up-credits';

export interface ActivityDeps {
  db: Db;
  gateway: PaymentGateway;
}

/** All activities, built from their dependencies; workflows import only the type. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...topUpActivities(deps),
    ...grantCreditActivities(deps),
    ...paymentMethodActivities(deps),
    ...expireCreditActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
