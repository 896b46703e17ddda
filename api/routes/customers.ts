import type { PaymentGateway } from '../../payments/payment-gateway';
import type { Db } from '../../db/connection';
import { createCustomer, getCustomer, listCustomers, savePaymentMethod } from '../../db/customers';
import { paymentMethodChangedSignal } from '../../workflows/messages';
import type { AccountWorkflows } from '../accounts';
import { invalid, notFound } from '../errors';
import type { RouteTable } from '../http';
import { derivedId } from '../idempotency';
import { Customer, CustomerCreate, listOf, ListQuery, PaymentMethodPut } from '../schemas';
import { customerView } from '../views';

export function customerRoutes(
  routes: RouteTable,
  deps: { db: Db; accounts: AccountWorkflows; gateway: PaymentGateway },
): void {
  routes.add({
    method: 'post',
    path: '/v1/customers',
    tag: 'Customers',
    summary: 'Create a customer and start its account workflow; an existing id returns the customer (200).',
    body: CustomerCreate,
    responses: {
      201: { description: 'Created', schema: Customer },
      200: { description: 'Exists', schema: Customer },
    },
    handler: async ({ body, principal, idempotencyKey }) => {
      const id = body.id ?? derivedId('cus', principal, idempotencyKey, 'customer');
      const { customer, created } = await createCustomer(deps.db, {
        id,
        email: body.email ?? null,
        name: body.name ?? null,
        metadata: body.metadata ?? {},
      });
      // Also for an existing customer: a workflow that failed to start the first time starts now.
      await deps.accounts.ensureStarted(id);
      return { status: created ? 201 : 200, body: customerView(customer) };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/customers',
    tag: 'Customers',
    summary: 'List customers by id.',
    query: ListQuery,
    responses: { 200: { description: 'A page of customers', schema: listOf(Customer) } },
    handler: async ({ query }) => {
      const page = await listCustomers(deps.db, {
        limit: query.limit ?? 20,
        starting_after: query.starting_after,
      });
      return { status: 200, body: { data: page.data.map(customerView), has_more: page.has_more } };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/customers/:id',
    tag: 'Customers',
    summary: 'Retrieve a customer with its balance.',
    responses: { 200: { description: 'The customer', schema: Customer } },
    handler: async ({ params }) => {
      const customer = await getCustomer(deps.db, params.id!);
      if (!customer) throw notFound('customer', params.id!);
      return { status: 200, body: customerView(customer) };
    },
  });

  routes.add({
    method: 'put',
    path: '/v1/customers/:id/payment-method',
    tag: 'Customers',
    summary:
      'Set the default payment method (Stripe test tokens such as pm_card_visa on the simulated gateway).',
    body: PaymentMethodPut,
    responses: { 200: { description: 'The customer', schema: Customer } },
    handler: async ({ params, body }) => {
      const id = params.id!;
      if (!deps.gateway.acceptsPaymentMethod(body.payment_method)) {
        throw invalid(
          'payment_method',
          `the ${deps.gateway.name} gateway cannot charge '${body.payment_method}'`,
          'payment_method_unknown',
        );
      }
      if (!(await getCustomer(deps.db, id))) throw notFound('customer', id);
      // PostgreSQL is the authority on the card (a top-up's charge step reads it there); the account workflow is
      // told so that its copy, shown to operators, follows. A PUT is idempotent: after a 503 the retry tells it again.
      await savePaymentMethod(deps.db, id, body.payment_method);
      await deps.accounts.signal(id, paymentMethodChangedSignal, body);
      const customer = await getCustomer(deps.db, id);
      return { status: 200, body: customerView(customer!) };
    },
  });
}
