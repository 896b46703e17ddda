import type { z } from 'zod';
import { formatUsd, usd } from '../../billing/money';
import { refundableNanos, refundFailureStatus } from '../../billing/refunds';
import type { Db } from '../../db/connection';
import {
  findRefundable,
  getRefund,
  recordRefund,
  refundedOfPayment,
  type Refundable,
  type RefundRow,
} from '../../db/refunds';
import { refundRequestedSignal } from '../../workflows/messages';
import type { AccountWorkflows } from '../accounts';
import { ApiError, invalid, notFound } from '../errors';
import type { RouteTable } from '../http';
import { derivedId } from '../idempotency';
import { Refund, RefundCreate } from '../schemas';
import { refundView } from '../views';
import { conflictOnReuse } from './credits';

/**
 * Refunds of paid credit (README "Refunds"). The route records the refund `pending` in PostgreSQL and signals the
 * customer's account workflow, which claims the credit, refunds the card and settles it (activities/refund-credits.ts),
 * then answers the outcome it reads back from PostgreSQL, exactly as a top-up is answered.
 */
export function refundRoutes(routes: RouteTable, deps: { db: Db; accounts: AccountWorkflows }): void {
  routes.add({
    method: 'post',
    path: '/v1/top-ups/:id/refunds',
    tag: 'Credits',
    summary:
      "Refunds all (no amount) or part of a top-up's payment, or an auto-recharge's (its id, ar_...), and removes " +
      "the same credit from that purchase's grant. More than is left to refund is a 400; credit already spent is a " +
      '409 credit_already_spent unless allow_negative. A refund still running after the wait timeout is 202 ' +
      'pending (GET /v1/refunds/{id} shows how it ended).',
    body: RefundCreate,
    responses: {
      201: { description: 'Refunded', schema: Refund },
      202: { description: 'Accepted and still running (status pending)', schema: Refund },
    },
    handler: async ({ params, body, principal, idempotencyKey }) => {
      const source = await findRefundable(deps.db, params.id!);
      if (!source) throw notFound('top-up or auto-recharge', params.id!, 'id');
      const refund_id = derivedId('re', principal, idempotencyKey, `refund:${source.id}`);
      // A retry (same key and body) asks for the refund it made: answered as it stands, never checked again.
      const known = await getRefund(deps.db, refund_id);
      const row = known ?? (await recordNewRefund(deps.db, refund_id, source, body));
      if (row.status === 'pending') {
        await deps.accounts.submit(
          'refund',
          row.customer_id,
          refundRequestedSignal,
          { refund_id },
          refund_id,
        );
      }
      return refundAnswer((await getRefund(deps.db, refund_id))!);
    },
  });

  routes.add({
    method: 'get',
    path: '/v1/refunds/:id',
    tag: 'Credits',
    summary: 'Retrieve a refund, e.g. one that was still pending when it was requested.',
    responses: { 200: { description: 'The refund', schema: Refund } },
    handler: async ({ params }) => {
      const row = await getRefund(deps.db, params.id!);
      if (!row) throw notFound('refund', params.id!);
      return { status: 200, body: refundView(row) };
    },
  });
}

/**
 * Checks a new refund against what the API can see (the purchase succeeded, the amount is left to refund counting
 * every refund of the payment not failed) and records it pending. The account's claim checks again under the wallet
 * lock, so concurrent requests can never refund more than the payment together.
 */
async function recordNewRefund(
  db: Db,
  refund_id: string,
  source: Refundable,
  body: z.infer<typeof RefundCreate>,
): Promise<RefundRow> {
  const what = source.kind === 'top_up' ? 'top-up' : 'auto-recharge';
  if (
    source.status !== 'succeeded' ||
    source.payment_id === null ||
    source.grant_id === null ||
    source.payment_nanos === null
  ) {
    throw new ApiError(
      'conflict',
      `${what} ${source.id} is ${source.status}: only a succeeded one was paid for and can be refunded`,
      { code: 'top_up_not_succeeded' },
    );
  }
  const refunded_nanos = await refundedOfPayment(db, source.payment_id, { claimed_only: false });
  const left_nanos = refundableNanos(source.payment_nanos, refunded_nanos);
  const amount_nanos = body.amount_usd === undefined ? left_nanos : usd(body.amount_usd);
  if (left_nanos === 0n || amount_nanos > left_nanos) {
    throw invalid(
      'amount_usd',
      `${formatUsd(left_nanos)} is left to refund of ${what} ${source.id} (paid ` +
        `${formatUsd(source.payment_nanos)}, ${formatUsd(refunded_nanos)} refunded or being refunded)` +
        (body.amount_usd === undefined ? '' : `: amount_usd ${formatUsd(amount_nanos)} is more than that`),
      'amount_exceeds_refundable',
    );
  }
  return conflictOnReuse(() =>
    recordRefund(db, {
      id: refund_id,
      customer_id: source.customer_id,
      payment_id: source.payment_id!,
      top_up_id: source.kind === 'top_up' ? source.id : null,
      recharge_id: source.kind === 'auto_recharge' ? source.id : null,
      grant_id: source.grant_id!,
      amount_nanos,
      allow_negative: body.allow_negative ?? false,
    }),
  );
}

/**
 * A refund as the API answers it: 201 succeeded, 202 still pending, and for a failed one the status its code says
 * (billing/refunds.ts `refundFailureStatus`): 400 naming `amount_usd`, 409, or 402 when the processor declined.
 */
function refundAnswer(row: RefundRow): { status: number; body: z.infer<typeof Refund> } {
  if (row.status === 'pending') return { status: 202, body: refundView(row) };
  if (row.status === 'succeeded') return { status: 201, body: refundView(row) };
  const code = row.failure_code ?? 'refund_failed';
  const message = row.failure_message ?? 'the refund failed';
  const extra = { refund: refundView(row) };
  const status = refundFailureStatus(code);
  if (status === 400) {
    const param = code === 'amount_exceeds_refundable' ? 'amount_usd' : undefined;
    throw new ApiError('invalid_request', message, { code, param, extra });
  }
  throw new ApiError(status === 409 ? 'conflict' : 'card_error', message, { code, extra });
}
