import { z } from 'zod';
import { formatCents, formatUsd, usd } from '../../billing/money';
import { readBalance } from '../../db/balance';
import type { Db } from '../../db/connection';
import { getCustomer } from '../../db/customers';
import { listCustomerGrants, grantStatement } from '../../db/credit-grants';
import { listLedgerEntries, voidGrant } from '../../db/ledger';
import { INVALID_REQUEST_REFUSALS } from '../../billing/account';
import { getGrantRequest, recordGrantRequest, type GrantRequestRow } from '../../db/credit-grant-requests';
import { PermanentError, sqlStateOf } from '../../db/errors';
import { refundedNanosOf } from '../../db/refunds';
import { getTopUp, recordTopUp, type TopUpRow } from '../../db/top-ups';
import { creditGrantRequestedSignal, topUpRequestedSignal } from '../../workflows/messages';
import type { AccountWorkflows } from '../accounts';
import { ApiError, invalid, notFound } from '../errors';
import type { RouteTable } from '../http';
import { derivedId } from '../idempotency';
import {
  Balance,
  CreditGrant,
  creditGrantCreate,
  CreditGrantPending,
  CreditGrantRequest,
  CreditGrantStatement,
  CustomerCreditGrant,
  LedgerEntry,
  listOf,
  ListQuery,
  NoBody,
  TopUp,
  topUpCreate,
} from '../schemas';
import {
  balanceView,
  customerGrantView,
  grantDebitView,
  LEDGER_ENTRY_PREFIX,
  ledgerEntryView as ledgerEntryViewOf,
  topUpView,
} from '../views';

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
    summary:
      'Charge the default payment method and grant that much credit. Declines are 402 card_declined; a top-up ' +
      'still running after the wait timeout is 202 pending (GET /v1/top-ups/{id} shows how it ended).',
    // The amount's rules (whole cents, the configured range) are the schema's, so the document states them.
    body: topUpCreate(deps.limits),
    responses: {
      201: { description: 'Succeeded', schema: TopUp },
      202: { description: 'Accepted and still running (status pending)', schema: TopUp },
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
      // Recorded first, then delivered: the database is the record of the request and of its outcome.
      const recorded = await conflictOnReuse(() =>
        recordTopUp(deps.db, { id: top_up_id, customer_id: customer.id, amount_nanos }),
      );
      if (recorded.status === 'pending') {
        await deps.accounts.submit(
          'top_up',
          customer.id,
          topUpRequestedSignal,
          { top_up_id, amount_usd: formatCents(amount_nanos) },
          top_up_id,
        );
      }
      return topUpAnswer((await getTopUp(deps.db, top_up_id))!, await refundedNanosOf(deps.db, top_up_id));
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
      return { status: 200, body: topUpView(row, await refundedNanosOf(deps.db, row.id)) };
    },
  });

  routes.add({
    method: 'post',
    path: '/v1/customers/:id/credit-grants',
    tag: 'Credits',
    summary:
      'Free credit from an operator (promotion or goodwill), optionally expiring. A grant not applied within the ' +
      'wait timeout is 202 pending; GET /v1/credit-grants/{id}, or a retry with the same Idempotency-Key, answers ' +
      'how it ended.',
    body: creditGrantCreate(deps.limits),
    responses: {
      201: { description: 'The grant', schema: CreditGrant },
      202: { description: 'Accepted, not applied yet', schema: CreditGrantPending },
    },
    handler: async ({ params, body, principal, idempotencyKey }) => {
      const customer = await requireCustomer(params.id!);
      const grant_id = derivedId('gr', principal, idempotencyKey, `grant:${customer.id}`);
      const expires_at = body.expires_at ? new Date(body.expires_at).toISOString() : null;
      // Only a new request must expire in the future: a retry (same key) of one already recorded asks for its
      // outcome, which stays answerable after the expiry has passed.
      const known = await getGrantRequest(deps.db, grant_id);
      if (!known && expires_at !== null && Date.parse(expires_at) <= Date.now()) {
        throw invalid('expires_at', 'expires_at must be in the future');
      }
      const amount_nanos = usd(body.amount_usd);
      const source = body.source ?? 'promotion';
      const recorded = await conflictOnReuse(() =>
        recordGrantRequest(deps.db, {
          id: grant_id,
          customer_id: customer.id,
          amount_nanos,
          source,
          reason: body.reason,
          expires_at: expires_at === null ? null : new Date(expires_at),
        }),
      );
      if (recorded.status === 'pending') {
        await deps.accounts.submit(
          'credit_grant',
          customer.id,
          creditGrantRequestedSignal,
          {
            grant_id,
            amount_usd: formatUsd(amount_nanos),
            source,
            reason: body.reason,
            expires_at,
            accepted_at: recorded.created_at.toISOString(),
          },
          grant_id,
        );
      }
      const request = (await getGrantRequest(deps.db, grant_id))!;
      if (request.status === 'pending') return { status: 202, body: pendingGrantView(request) };
      if (request.status === 'refused') throw refusalError(request.failure_code, request.failure_message);
      return { status: 201, body: await appliedGrant(deps.db, customer.id, grant_id) };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/customers/:id/credit-grants',
    tag: 'Credits',
    summary:
      "The customer's grants, newest first: source (paid or promotional), amount, remaining, expiry and status " +
      '(active, depleted, expired, voided).',
    query: ListQuery,
    responses: { 200: { description: 'A page of grants', schema: listOf(CustomerCreditGrant) } },
    handler: async ({ params, query }) => {
      const page = await listCustomerGrants(deps.db, params.id!, {
        limit: query.limit ?? 20,
        ...(query.starting_after === undefined ? {} : { starting_after: query.starting_after }),
      });
      if (!page.ok && page.code === 'customer_not_found') throw notFound('customer', params.id!);
      if (!page.ok)
        throw invalid('starting_after', "starting_after must be the id of one of this customer's grants");
      return { status: 200, body: { data: page.data.map(customerGrantView), has_more: page.has_more } };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/customers/:id/credit-grants/:grant_id',
    tag: 'Credits',
    summary:
      'One grant and the debits that consumed it (captures, usage batches, its expiry or void write-offs), with ' +
      'what each took from it, allocated by the consumption order (soonest expiry first, then oldest).',
    query: ListQuery,
    responses: { 200: { description: 'The grant and its debits', schema: CreditGrantStatement } },
    handler: async ({ params, query }) => {
      await requireCustomer(params.id!);
      const startingAfter = query.starting_after;
      if (startingAfter !== undefined && !/^le_[0-9]{1,18}$/.test(startingAfter)) {
        throw invalid('starting_after', 'starting_after must be a ledger entry id such as "le_42"');
      }
      const statement = await grantStatement(deps.db, params.id!, params.grant_id!, {
        limit: query.limit ?? 20,
        ...(startingAfter === undefined
          ? {}
          : { starting_after: BigInt(startingAfter.slice(LEDGER_ENTRY_PREFIX.length)) }),
      });
      if (!statement) throw notFound('credit grant', params.grant_id!);
      return {
        status: 200,
        body: {
          ...customerGrantView(statement.grant),
          debits: { data: statement.debits.map(grantDebitView), has_more: statement.has_more },
        },
      };
    },
  });

  routes.add({
    method: 'post',
    path: '/v1/customers/:id/credit-grants/:grant_id/void',
    tag: 'Credits',
    summary:
      'Writes off what is left of one grant (a void ledger entry to breakage); no other grant changes. The part ' +
      'that holds open now may still capture stays with the grant until they settle, like at expiry. Idempotent: ' +
      'voiding a grant that is already voided or expired answers it as it is and changes nothing.',
    body: NoBody,
    responses: { 200: { description: 'The grant after the void', schema: CustomerCreditGrant } },
    handler: async ({ params }) => {
      await requireCustomer(params.id!);
      const outcome = await voidGrant(deps.db, params.id!, params.grant_id!);
      if (outcome.status === 'not_found') throw notFound('credit grant', params.grant_id!);
      const page = await grantStatement(deps.db, params.id!, params.grant_id!, { limit: 1 });
      return { status: 200, body: customerGrantView(page!.grant) };
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/credit-grants/:id',
    tag: 'Credits',
    summary:
      'Retrieve an operator grant request, e.g. one answered 202 pending: pending, granted (with the grant as it ' +
      'stands now) or refused (with why).',
    responses: { 200: { description: 'The grant request', schema: CreditGrantRequest } },
    handler: async ({ params }) => {
      const request = await getGrantRequest(deps.db, params.id!);
      if (!request) throw notFound('credit grant', params.id!);
      const grant =
        request.status === 'granted' ? await appliedGrant(deps.db, request.customer_id, request.id) : null;
      return {
        status: 200,
        body: {
          ...pendingGrantView(request),
          status: request.status,
          failure_code: request.failure_code,
          failure_message: request.failure_message,
          grant,
        } satisfies z.infer<typeof CreditGrantRequest>,
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

/**
 * A top-up as the API answers it: 201 succeeded, 202 still pending, 402 for a card that declined (or a processor
 * that refused the charge), 400/409 when the account refused it.
 */
function topUpAnswer(row: TopUpRow, refunded_nanos: bigint): { status: number; body: z.infer<typeof TopUp> } {
  if (row.status === 'pending') return { status: 202, body: topUpView(row) };
  if (row.status === 'succeeded') return { status: 201, body: topUpView(row, refunded_nanos) };
  const code = row.failure_code ?? 'card_declined';
  const declined =
    (row.payment_id !== null && !INVALID_REQUEST_REFUSALS.has(code)) || code === 'payment_refused';
  if (declined) {
    throw new ApiError('card_error', row.failure_message ?? 'the card was declined', {
      code,
      extra: { decline_code: row.decline_code, top_up: topUpView(row) },
    });
  }
  throw refusalError(code, row.failure_message, { top_up: topUpView(row) });
}

/** The account refused a request: a malformed one is a 400, any other refusal a 409, with the refusal's code. */
function refusalError(
  code: string | null,
  message: string | null,
  extra?: Record<string, unknown>,
): ApiError {
  const refusal = code ?? 'refused';
  return new ApiError(
    INVALID_REQUEST_REFUSALS.has(refusal) ? 'invalid_request' : 'conflict',
    message ?? 'the account refused the request',
    { code: refusal, extra },
  );
}

/** An applied grant as the balance shows it now (remaining, status), with its customer. */
async function appliedGrant(
  db: Db,
  customer_id: string,
  grant_id: string,
): Promise<z.infer<typeof CreditGrant>> {
  const balance = await readBalance(db, customer_id, grant_id);
  const grant = balance?.grants.find((g) => g.id === grant_id);
  if (!balance || !grant) throw new Error(`grant ${grant_id} was applied but is not in the balance`);
  return { ...balanceView(customer_id, { ...balance, grants: [grant] }).grants[0]!, customer_id };
}

function pendingGrantView(row: GrantRequestRow): z.infer<typeof CreditGrantPending> {
  return {
    id: row.id,
    customer_id: row.customer_id,
    status: 'pending',
    source: row.source,
    reason: row.reason,
    amount_usd: formatUsd(row.amount_nanos),
    expires_at: row.expires_at?.toISOString() ?? null,
    requested_at: row.created_at.toISOString(),
  };
}

/**
 * Records a request, answering in the API's terms what PostgreSQL refuses: an id reused for another request is a
 * 409, text PostgreSQL cannot store (a NUL byte) is a 400, never a 500.
 */
export async function conflictOnReuse<T>(record: () => Promise<T>): Promise<T> {
  try {
    return await record();
  } catch (error) {
    if (error instanceof PermanentError) throw new ApiError('conflict', error.message, { code: error.type });
    if (sqlStateOf(error)?.startsWith('22')) {
      throw invalid(undefined, 'the request holds a value PostgreSQL cannot store (e.g. a NUL character)');
    }
    throw error;
  }
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
