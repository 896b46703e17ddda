import { z } from 'zod';
import { formatCents, usd } from '../../billing/money';
import { readBalance } from '../../db/balance';
import type { Db } from '../../db/connection';
import { getCustomer } from '../../db/customers';
import { listLedgerEntries } from '../../db/ledger';
import { getTopUp } from '../../db/top-ups';
import { grantCreditUpdate, topUpUpdate } from '../../workflows/messages';
import type { AccountWorkflows } from '../accounts';
import { ApiError, invalid, notFound } from '../errors';
import type { RouteTable } from '../http';
import { derivedId } from '../idempotency';
import {
  Balance,
  CreditGrant,
  creditGrantCreate,
  LedgerEntry,
  listOf,
  ListQuery,
  TopUp,
  topUpCreate,
} from '../schemas';
import { balanceView, LEDGER_ENTRY_PREFIX, ledgerEntryView as ledgerEntryViewOf, topUpView } from '../views';

export interface CreditLimits {
  top_up_min_nanos: bigint;
  top_up_max_nanos: bigint;
  /** One operator grant at most; also keeps any wallet far from the bigint column's limit. */
  credit_grant_max_nanos: bigint;
}

export function creditRoutes(
  routes: RouteTable,
  deps: { db: Db; accounts: AccountWorkflows; limits: CreditLimits },
): void {
  async function requireCustomer(id: string) {
    const customer = await getCustomer(deps.db, id);
    if (!customer) throw notFound('customer', id);
    return customer;
  }

  routes.add({
    method: 'get',
    path: '/v1/customers/:id/balance',
    tag: 'Credits',
    summary: 'Available and held balance, and every grant with what remains of it.',
    responses: { 200: { description: 'The balance', schema: Balance } },
    handler: async ({ params }) => {
      const balance = await readBalance(deps.db, params.id!);
      if (!balance) throw notFound('customer', params.id!);
      return { status: 200, body: balanceView(params.id!, balance) };
    },
  });

  routes.add({
    method: 'post',
    path: '/v1/customers/:id/top-ups',
    tag: 'Credits',
    summary: 'Charge the default payment method and grant that much credit. Declines are 402 card_declined.',
    // The amount's rules (whole cents, the configured range) are the schema's, so the document states them.
    body: topUpCreate(deps.limits),
    responses: {
      201: { description: 'Succeeded, or still pending after the wait timeout', schema: TopUp },
    },
    handler: async ({ params, body, principal, idempotencyKey }) => {
      const customer = await requireCustomer(params.id!);
      const amount_nanos = usd(body.amount_usd);
      if (customer.payment_method === null) {
        throw new ApiError(
          'conflict',
          'the customer has no payment method; PUT one to /payment-method first',
          {
            code: 'no_payment_method',
          },
        );
      }
      const top_up_id = derivedId('tu', principal, idempotencyKey, `top_up:${customer.id}`);
      const outcome = await deps.accounts.update(
        customer.id,
        topUpUpdate,
        { top_up_id, amount_usd: formatCents(amount_nanos) },
        top_up_id,
      );
      const row = await getTopUp(deps.db, top_up_id);
      if (!row) throw new ApiError('unavailable', 'the top-up was not recorded yet; retry with the same key');
      if (!outcome.pending && outcome.result.status === 'failed') {
        throw new ApiError('card_error', outcome.result.failure_message ?? 'the card was declined', {
          code: outcome.result.failure_code ?? 'card_declined',
          extra: { decline_code: outcome.result.decline_code, top_up: topUpView(row) },
        });
      }
      return { status: 201, body: topUpView(row) };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/top-ups/:id',
    tag: 'Credits',
    summary: 'Retrieve a top-up, e.g. one that was still pending when it was created.',
    responses: { 200: { description: 'The top-up', schema: TopUp } },
    handler: async ({ params }) => {
      const row = await getTopUp(deps.db, params.id!);
      if (!row) throw notFound('top-up', params.id!);
      return { status: 200, body: topUpView(row) };
    },
  });

  routes.add({
    method: 'post',
    path: '/v1/customers/:id/credit-grants',
    tag: 'Credits',
    summary: 'Free credit from an operator (promotion or goodwill), optionally expiring.',
    body: creditGrantCreate(deps.limits),
    responses: { 201: { description: 'The grant', schema: CreditGrant } },
    handler: async ({ params, body, principal, idempotencyKey }) => {
      const customer = await requireCustomer(params.id!);
      const grant_id = derivedId('gr', principal, idempotencyKey, `grant:${customer.id}`);
      const expires_at = body.expires_at ? new Date(body.expires_at).toISOString() : null;
      if (expires_at !== null && Date.parse(expires_at) <= Date.now()) {
        throw invalid('expires_at', 'expires_at must be in the future');
      }
      const outcome = await deps.accounts.update(
        customer.id,
        grantCreditUpdate,
        {
          grant_id,
          amount_usd: body.amount_usd,
          source: body.source ?? 'promotion',
          reason: body.reason,
          expires_at,
        },
        grant_id,
      );
      if (outcome.pending)
        throw new ApiError('unavailable', 'the grant is still being applied; retry with the same key');
      const balance = await readBalance(deps.db, customer.id);
      const grant = balance?.grants.find((g) => g.id === grant_id);
      if (!grant) throw new Error(`grant ${grant_id} was applied but is not in the balance`);
      return {
        status: 201,
        body: {
          ...balanceView(customer.id, { ...balance!, grants: [grant] }).grants[0]!,
          customer_id: customer.id,
        } satisfies z.infer<typeof CreditGrant>,
      };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/customers/:id/ledger',
    tag: 'Credits',
    summary: 'Ledger entries of the customer, newest first.',
    query: ListQuery,
    responses: { 200: { description: 'A page of ledger entries', schema: listOf(LedgerEntry) } },
    handler: async ({ params, query }) => {
      await requireCustomer(params.id!);
      const startingAfter = query.starting_after;
      if (startingAfter !== undefined && !/^le_[0-9]{1,18}$/.test(startingAfter)) {
        throw invalid('starting_after', 'starting_after must be a ledger entry id such as "le_42"');
      }
      const page = await listLedgerEntries(deps.db, params.id!, {
        limit: query.limit ?? 20,
        starting_after:
          startingAfter === undefined ? undefined : BigInt(startingAfter.slice(LEDGER_ENTRY_PREFIX.length)),
      });
      return { status: 200, body: { data: page.data.map(ledgerEntryViewOf), has_more: page.has_more } };
    },
  });
}

export function limitsFrom(config: {
  TOP_UP_MIN_USD: string;
  TOP_UP_MAX_USD: string;
  CREDIT_GRANT_MAX_USD: string;
}): CreditLimits {
  return {
    top_up_min_nanos: usd(config.TOP_UP_MIN_USD),
    top_up_max_nanos: usd(config.TOP_UP_MAX_USD),
    credit_grant_max_nanos: usd(config.CREDIT_GRANT_MAX_USD),
  };
}
