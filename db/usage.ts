import { type Db, queryRows } from './connection';

export const USAGE_GROUPS = ['model', 'dimension', 'feature', 'day'] as const;
export type UsageGroup = (typeof USAGE_GROUPS)[number];

const GROUP_COLUMNS: Record<UsageGroup, string> = {
  model: 'u.model',
  feature: 'u.feature',
  day: `to_char(u.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`,
  dimension: 'd.key',
};

export interface UsageGroupRow {
  model?: string;
  feature?: string | null;
  day?: string;
  dimension?: string;
  /**
   * Only when grouped by dimension: the exact sum of that dimension's quantities (tokens, images, seconds, calls,
   * or decimal GB-days) as decimal text; `reportedQuantity` in billing/metering.ts turns it into the API's form.
   */
  quantity?: string;
  events: bigint;
  cost_nanos: bigint;
}

/**
 * Usage of one customer in [from, to) by event time, grouped as asked. Sums are exact integer sums of the costs
 * recorded at ingestion (never re-rated), so they equal the ledger's usage debits for the same events. Grouping by
 * dimension splits each event's cost into its per-dimension shares, which add up exactly to the event's cost.
 */
export async function aggregateUsage(
  db: Db,
  customer_id: string,
  window: { from: Date; to: Date },
  groupBy: readonly UsageGroup[],
): Promise<{ groups: UsageGroupRow[]; total: { events: bigint; cost_nanos: bigint } }> {
  const groups = [...new Set(groupBy)];
  const byDimension = groups.includes('dimension');
  const columns = groups.map((g) => `${GROUP_COLUMNS[g]} AS ${g}`);
  const amount = byDimension ? `(d.value->>1)::bigint` : 'u.cost_nanos';
  const select = [
    ...columns,
    'count(*)::bigint AS events',
    `COALESCE(sum(${amount}), 0)::bigint AS cost_nanos`,
    // numeric, not bigint: GB-days of storage are stored as exact decimal strings, counts as integers.
    ...(byDimension ? ['COALESCE(sum((d.value->>0)::numeric), 0)::text AS quantity'] : []),
  ];
  const from = `usage_events u${byDimension ? ' CROSS JOIN LATERAL jsonb_each(u.lines) AS d' : ''}`;
  const where = 'u.customer_id = ? AND u.occurred_at >= ? AND u.occurred_at < ?';
  const grouping = groups.length > 0 ? `GROUP BY ${groups.map((g) => GROUP_COLUMNS[g]).join(', ')}` : '';
  const order = groups.length > 0 ? `ORDER BY ${groups.map((_, i) => i + 1).join(', ')}` : '';
  const bindings = [customer_id, window.from, window.to];
  const rows = await queryRows<UsageGroupRow>(
    db,
    `SELECT ${select.join(', ')} FROM ${from} WHERE ${where} ${grouping} ${order} LIMIT 10000`,
    bindings,
  );
  const [total] = await queryRows<{ events: bigint; cost_nanos: bigint }>(
    db,
    `SELECT count(*)::bigint AS events, COALESCE(sum(u.cost_nanos), 0)::bigint AS cost_nanos
     FROM usage_events u WHERE ${where}`,
    bindings,
  );
  return { groups: groups.length > 0 ? rows : [], total: total! };
}
