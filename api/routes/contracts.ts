import { dimensionPriced, modelKnown, type Contract } from '../../billing/contracts';
import { usd } from '../../billing/money';
import type { PriceBook } from '../../billing/price-book';
import type { Db } from '../../db/connection';
import { getContract, putContract } from '../../db/contracts';
import { customerExists } from '../../db/customers';
import { ApiError, invalid, notFound } from '../errors';
import type { RouteTable } from '../http';
import { ContractPut, CustomerContract } from '../schemas';
import { contractView } from '../views';
import type { z } from 'zod';

/**
 * A customer's enterprise contract (README "Enterprise contracts"): its seat price and its own prices for metered
 * usage, which its period invoices apply (`enterpriseUsageLines` in db/contracts.ts). A PUT replaces the whole
 * contract and counts a new version.
 */
export function contractRoutes(routes: RouteTable, deps: { db: Db; priceBook: PriceBook }): void {
  routes.add({
    method: 'get',
    path: '/v1/customers/:id/contract',
    tag: 'Customers',
    summary: "The customer's enterprise contract: seat price, price overrides and volume tiers.",
    responses: { 200: { description: 'The contract', schema: CustomerContract } },
    handler: async ({ params }) => {
      const customer_id = params.id!;
      const contract = await getContract(deps.db, customer_id);
      if (contract) return { status: 200, body: contractView(contract) };
      if (!(await customerExists(deps.db, customer_id))) throw notFound('customer', customer_id);
      throw new ApiError('not_found', `customer '${customer_id}' has no contract`, {
        code: 'contract_missing',
      });
    },
  });

  routes.add({
    method: 'put',
    path: '/v1/customers/:id/contract',
    tag: 'Customers',
    summary:
      'Sets the whole enterprise contract (absent lists are empty). Unit prices are in the price book’s unit for the dimension: per 1M tokens for token dimensions.',
    body: ContractPut,
    responses: { 200: { description: 'The contract', schema: CustomerContract } },
    handler: async ({ params, body }) => {
      const contract = contractFrom(body, deps.priceBook);
      const saved = await putContract(deps.db, params.id!, contract);
      if (!saved) throw notFound('customer', params.id!);
      return { status: 200, body: contractView(saved) };
    },
  });
}

/**
 * The validated body as a contract, after checking what only the price book knows: every model is in the book and
 * prices the dimension (400 naming the field: `unknown_model`, `dimension_not_priced`).
 */
function contractFrom(body: z.output<typeof ContractPut>, book: PriceBook): Contract {
  const check = (entry: { model: string; dimension: string }, path: string) => {
    if (!modelKnown(book, entry.model)) {
      throw invalid(
        `${path}.model`,
        `${path}.model: no model ${JSON.stringify(entry.model)} in the price book`,
        'unknown_model',
      );
    }
    if (!dimensionPriced(book, entry.model, entry.dimension)) {
      throw invalid(
        `${path}.dimension`,
        `${path}.dimension: ${entry.model} has no list price for ${entry.dimension}`,
        'dimension_not_priced',
      );
    }
  };
  const overrides = body.price_overrides ?? [];
  const tables = body.volume_tiers ?? [];
  overrides.forEach((entry, i) => check(entry, `price_overrides.${i}`));
  tables.forEach((entry, i) => check(entry, `volume_tiers.${i}`));
  // ContractPut has validated every amount, so usd() cannot throw here.
  return {
    seat_price_nanos: usd(body.seat_price_usd),
    price_overrides: overrides.map((o) => ({
      model: o.model,
      dimension: o.dimension,
      unit_price_nanos: usd(o.unit_price_usd),
    })),
    volume_tiers: tables.map((t) => ({
      model: t.model,
      dimension: t.dimension,
      tiers: t.tiers.map((tier) => ({
        up_to: tier.up_to === null ? null : BigInt(tier.up_to),
        unit_price_nanos: usd(tier.unit_price_usd),
      })),
    })),
  };
}
