import type { Db } from '../db/connection';
import { savePaymentMethod } from '../db/customers';

export function paymentMethodActivities(deps: { db: Db }) {
  return {
    async savePaymentMethod(input: { customer_id: string; payment_method: string }): Promise<void> {
      await savePaymentMethod(deps.db, input.customer_id, input.payment_method);
    },
  };
}
