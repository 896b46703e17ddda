import {
  type Contract,
  decodeOverrides,
  decodeVolumeTiers,
  encodeOverrides,
  encodeVolumeTiers,
  priceUsageGroups,
  type StoredOverride,
  type StoredVolumeTiers,
  type UsageLine,
} from '../billing/contracts';
import { type Db, queryRows } from './connection';
import { aggregateUsage } from './usage';

/** A customer's contract as saved (`customer_contracts`), with its save count and time. */
export interface StoredContract extends Contract {
  readonly customer_id: string;
  /** 1 for the first save, one more for each later one. */
  readonly version: number;
  readonly updated_at: Date;
}

interface ContractRow {
  customer_id: string;
  seat_price_nanos: bigint;
  price_overrides: StoredOverride[];
  volume_tiers: StoredVolumeTiers[];
  version: bigint;
  updated_at: Date;
}

function fromRow(row: ContractRow): StoredContract {
  return {
    customer_id: row.customer_id,
    seat_price_nanos: row.seat_price_nanos,
    price_overrides: decodeOverrides(row.price_overrides),
    volume_tiers: decodeVolumeTiers(row.volume_tiers),
    version: Number(row.version),
    updated_at: row.updated_at,
  };
}

const COLUMNS = 'customer_id, seat_price_nanos, price_overrides, volume_tiers, version, updated_at';

/**
 * Saves a customer's whole contract (a PUT replaces every part) and returns it with its new version; null for an
 * unknown customer. The seat price must be whole cents (the table's check refuses anything else: a PermanentError
 * class 23 failure); the prices and tier tables are stored as given, so the caller validates them first.
 */
export async function putContract(
  db: Db,
  customer_id: string,
  contract: Contract,
): Promise<StoredContract | null> {
  const rows = await queryRows<ContractRow>(
    db,
    `INSERT INTO customer_contracts (customer_id, seat_price_nanos, price_overrides, volume_tiers)
     SELECT id, ?::bigint, ?::jsonb, ?::jsonb FROM customers WHERE id = ?
     ON CONFLICT (customer_id) DO UPDATE SET
       seat_price_nanos = EXCLUDED.seat_price_nanos, price_overrides = EXCLUDED.price_overrides,
       volume_tiers = EXCLUDED.volume_tiers, version = customer_contracts.version + 1, updated_at = now()
     RETURNING ${COLUMNS}`,
    [
      contract.seat_price_nanos,
      JSON.stringify(encodeOverrides(contract.price_overrides)),
      JSON.stringify(encodeVolumeTiers(contract.volume_tiers)),
      customer_id,
    ],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

/**
 * The customer's contract, or null when it has none (or the customer is unknown). `seat_price_nanos` is the
 * enterprise plan's per-seat price (whole cents), for `subscriptions.seat_price_nanos`.
 */
export async function getContract(db: Db, customer_id: string): Promise<StoredContract | null> {
  const rows = await queryRows<ContractRow>(
    db,
    `SELECT ${COLUMNS} FROM customer_contracts WHERE customer_id = ?`,
    [customer_id],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

export interface EnterpriseUsage {
  /** One line per (model, dimension) with a non-zero amount, in the aggregation's order (model, then dimension). */
  readonly lines: UsageLine[];
  /** The sum of the lines' amounts: whole cents. */
  readonly total_nanos: bigint;
  /** The contract version that priced the lines, or null when the customer has none (list prices throughout). */
  readonly contract_version: number | null;
  /**
   * The same usage at list price, unrounded: the sum of the groups' `cost_nanos` read with the lines, which equals
   * the ledger's usage debits for those events (what a prepaid wallet already paid for them; see README "Enterprise
   * contracts" on not charging usage twice).
   */
  readonly list_cost_nanos: bigint;
}

/**
 * The metered-usage lines of an enterprise invoice for usage in [window.from, window.to) by event time: the same
 * aggregation as `GET /v1/customers/:id/usage?group_by=model,dimension`, priced with the customer's contract as it
 * is now (no contract: list prices), each line rounded half-up to the whole cent (billing/contracts.ts
 * `priceUsageGroups`). Reads only; calling it again for the same window gives the same lines unless usage in the
 * window or the contract changed in between, so the caller writes the invoice once (keyed by its period).
 */
export async function enterpriseUsageLines(
  db: Db,
  customer_id: string,
  window: { from: Date; to: Date },
): Promise<EnterpriseUsage> {
  const [usage, contract] = await Promise.all([
    aggregateUsage(db, customer_id, window, ['model', 'dimension']),
    getContract(db, customer_id),
  ]);
  const lines = priceUsageGroups(
    usage.groups.map((group) => ({
      model: group.model!,
      dimension: group.dimension!,
      quantity: group.quantity!,
      cost_nanos: group.cost_nanos,
    })),
    contract,
  );
  const total_nanos = lines.reduce((sum, line) => sum + line.amount_nanos, 0n);
  const list_cost_nanos = usage.groups.reduce((sum, group) => sum + group.cost_nanos, 0n);
  return { lines, total_nanos, contract_version: contract?.version ?? null, list_cost_nanos };
}
