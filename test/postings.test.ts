/**
 * The one posting path (db/postings.ts) on real PostgreSQL: the SQL rendering of every movement writes exactly the
 * postings and wallet change that the TypeScript evaluation of the same definition gives, through `postMovement`
 * and through the hot path's own statements; the threshold rule is the same for all of them; and the wallet floor
 * refuses, event by event or capture by capture, what would take a wallet past it, also under concurrency.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { usd } from '../billing/money';
import type { Db } from '../db/connection';
import { claimCrossings, markCrossingsDelivered } from '../db/crossings';
import { createCustomer } from '../db/customers';
import { createHotPathPool, eventKey, HotPath, type IngestRow } from '../db/hot-path';
import { expireGrants, grantCredit, lockWallet } from '../db/ledger';
import { checkLedger } from '../db/ledger-check';
import {
  MOVEMENTS,
  postingsOf,
  postMovement,
  setLowBalanceThreshold,
  walletDelta,
  type MovementDefinition,
  type Posting,
} from '../db/postings';
import { createTestDatabase } from './support/database';
import { eventually } from './support/eventually';

const FLOOR = usd('1.00');
let db: Db;
let hot: HotPath;
let drop: () => Promise<void>;

beforeAll(async () => {
  const created = await createTestDatabase();
  db = created.db;
  drop = created.drop;
  hot = new HotPath(createHotPathPool({ databaseUrl: created.url, pool_max: 12 }), {
    wallet_floor_nanos: FLOOR,
  });
});

afterAll(async () => {
  // Everything committed here went through the real paths, so every ledger invariant must hold.
  expect(await checkLedger(db)).toEqual([]);
  await hot.pool.end();
  await drop();
});

async function customer(id: string, funded_usd?: string): Promise<void> {
  await createCustomer(db, { id, email: null, name: null, metadata: {} });
  if (funded_usd) await fund(id, funded_usd);
}

async function fund(id: string, amount_usd: string, extra: { expires_at?: Date; granted_at?: Date } = {}) {
  const grant_id = `g_${randomUUID()}`;
  return grantCredit(db, {
    grant_id,
    customer_id: id,
    source: 'promotion',
    amount_nanos: usd(amount_usd),
    reason: null,
    expires_at: extra.expires_at ?? null,
    granted_at: extra.granted_at,
    kind: 'credit_grant',
    ref: grant_id,
    funded_by: 'promotions',
  });
}

/** The postings of the entry (kind, ref), as written, in the order written. */
async function writtenPostings(q: Db, kind: string, ref: string): Promise<Posting[]> {
  const rows = await q('ledger_postings as p')
    .join('ledger_entries as e', 'e.id', 'p.entry_id')
    .where({ 'e.kind': kind, 'e.ref': ref })
    .orderBy('p.id')
    .select<{ account: Posting['account']; amount_nanos: bigint }[]>('p.account', 'p.amount_nanos');
  return rows.map((r) => ({ account: r.account, amount_nanos: r.amount_nanos }));
}

async function wallet(id: string) {
  const [row] = await db('wallets').where({ customer_id: id });
  return row as { available_nanos: bigint; held_nanos: bigint; threshold_armed: boolean };
}

class Rollback extends Error {}

test('for every movement and any amounts, the SQL rendering writes exactly the TypeScript postings and wallet change', async () => {
  await customer('cus_po_any', '1000.00');
  const amount = fc.bigInt({ min: 0n, max: usd('100.00') });
  for (const [name, definition] of Object.entries(MOVEMENTS) as [string, MovementDefinition][]) {
    const amounts = fc.record(Object.fromEntries(definition.amounts.map((a) => [a, amount])));
    await fc.assert(
      fc.asyncProperty(amounts, async (values: Record<string, bigint>) => {
        const expected = postingsOf(definition, values);
        fc.pre(expected.length > 0);
        const ref = `prop_${randomUUID()}`;
        // Posted inside a transaction that is rolled back: a hold without its authorization, or usage without
        // its events, would (rightly) break the ledger invariants if it were kept.
        await db
          .transaction(async (trx) => {
            // Something held, so that a capture or a release has a hold to take from.
            await postMovement(trx, await lockWallet(trx, 'cus_po_any'), {
              customer_id: 'cus_po_any',
              definition: MOVEMENTS.hold,
              ref: `pre_${ref}`,
              amounts: { hold: usd('100.00') },
            });
            const before = await lockWallet(trx, 'cus_po_any');
            const posted = await postMovement(trx, before, {
              customer_id: 'cus_po_any',
              definition,
              kind: definition.kind ?? name,
              ref,
              amounts: values,
            });
            expect(posted.created).toBe(true);
            expect(await writtenPostings(trx, definition.kind ?? name, ref)).toEqual(expected);
            const after = await lockWallet(trx, 'cus_po_any');
            const delta = walletDelta(expected);
            expect(after.available_nanos - before.available_nanos).toBe(delta.available_nanos);
            expect(after.held_nanos - before.held_nanos).toBe(delta.held_nanos);
            const [entry] = await trx('ledger_entries').where({ kind: definition.kind ?? name, ref });
            expect(entry).toMatchObject({
              amount_nanos: delta.available_nanos,
              balance_after_nanos: after.available_nanos,
            });
            // Posting it again writes nothing: (kind, ref) is the movement's idempotency key.
            const again = await postMovement(trx, after, {
              customer_id: 'cus_po_any',
              definition,
              kind: definition.kind ?? name,
              ref,
              amounts: values,
            });
            expect(again).toMatchObject({ created: false, entry_id: posted.entry_id });
            expect(await writtenPostings(trx, definition.kind ?? name, ref)).toEqual(expected);
            throw new Rollback();
          })
          .catch((error: unknown) => {
            if (!(error instanceof Rollback)) throw error;
          });
      }),
      { numRuns: 15 },
    );
  }
});

test('the hot path statements write the same postings as the TypeScript definition of hold, capture, release and usage', async () => {
  await customer('cus_po_hot', '10.00');
  const HOLD = usd('0.40');
  const expires_at = new Date(Date.now() + 600_000);
  const capture = (authorization_id: string, cost_nanos: bigint) =>
    hot.capture({
      authorization_id,
      cost_nanos,
      provider_cost_nanos: 0n,
      event_id: `ev_${authorization_id}`,
      occurred_at: new Date(),
      lines: { input_tokens: [1, cost_nanos.toString()] },
      price_version: 'test',
      processing: 'standard',
      feature: null,
    });
  for (const cost of [usd('0.10'), HOLD, usd('0.75'), 0n]) {
    const id = `auth_${randomUUID()}`;
    const held = await hot.authorize({
      customer_id: 'cus_po_hot',
      authorization_id: id,
      model: 'm',
      hold_nanos: HOLD,
      created_at: new Date(),
      expires_at,
    });
    expect(held.ok).toBe(true);
    expect(await writtenPostings(db, 'hold', id)).toEqual(postingsOf(MOVEMENTS.hold, { hold: HOLD }));
    expect((await capture(id, cost)).ok).toBe(true);
    expect(await writtenPostings(db, 'capture', id)).toEqual(
      postingsOf(MOVEMENTS.capture, { hold: HOLD, cost }),
    );
  }
  const voided = `auth_${randomUUID()}`;
  await hot.authorize({
    customer_id: 'cus_po_hot',
    authorization_id: voided,
    model: 'm',
    hold_nanos: HOLD,
    created_at: new Date(),
    expires_at,
  });
  expect(await hot.release(voided, 'voided')).toEqual({ released_nanos: HOLD, claimed: false });
  expect(await writtenPostings(db, 'release', voided)).toEqual(postingsOf(MOVEMENTS.release, { hold: HOLD }));

  const batch = randomUUID();
  const outcome = await hot.ingest(batch, [
    event('cus_po_hot', 'u1', usd('0.30')),
    event('cus_po_hot', 'u2', usd('0.05')),
  ]);
  expect(outcome.recorded.size).toBe(2);
  expect(await writtenPostings(db, 'usage', `usage:${batch}:cus_po_hot`)).toEqual(
    postingsOf(MOVEMENTS.usage, { cost: usd('0.35') }),
  );
  // 10.00 - (0.10 + 0.40 + 0.75 + 0) captured - 0.35 of usage; nothing held any more.
  expect(await wallet('cus_po_hot')).toMatchObject({ available_nanos: usd('8.40'), held_nanos: 0n });
});

function event(customer_id: string, event_id: string, cost_nanos: bigint): IngestRow {
  return {
    customer_id,
    event_id,
    model: 'm',
    feature: null,
    processing: 'standard',
    occurred_at: new Date(),
    cost_nanos,
    provider_cost_nanos: 0n,
    price_version: 'test',
    lines: { input_tokens: [1, cost_nanos.toString()] },
  };
}

test('one threshold rule for all: a debit crosses once and disarms, a released hold does not re-arm, granted credit does, and so does an expiry write-off cross', async () => {
  await customer('cus_po_thr', '10.00');
  const crossings = async () =>
    Number((await db('threshold_crossings').where({ customer_id: 'cus_po_thr' })).length);
  expect(await setLowBalanceThreshold(db, 'cus_po_thr', usd('5.00'))).toBe(true);
  expect(await setLowBalanceThreshold(db, 'cus_po_nobody', usd('5.00'))).toBe(false);
  expect((await wallet('cus_po_thr')).threshold_armed).toBe(true);

  const hold = async () => {
    const id = `auth_${randomUUID()}`;
    const held = await hot.authorize({
      customer_id: 'cus_po_thr',
      authorization_id: id,
      model: 'm',
      hold_nanos: usd('6.00'),
      created_at: new Date(),
      expires_at: new Date(Date.now() + 600_000),
    });
    return { id, held };
  };
  const first = await hold(); // 10 -> 4: crosses
  expect(first.held).toMatchObject({ ok: true, crossed: true });
  expect(await crossings()).toBe(1);
  expect((await wallet('cus_po_thr')).threshold_armed).toBe(false);
  await hot.release(first.id, 'voided'); // back to 10, but a released hold does not re-arm
  expect((await wallet('cus_po_thr')).threshold_armed).toBe(false);
  const second = await hold(); // 10 -> 4 again: disarmed, so no second crossing
  expect(second.held).toMatchObject({ ok: true, crossed: false });
  await hot.release(second.id, 'voided');
  expect(await crossings()).toBe(1);

  await fund('cus_po_thr', '1.00'); // granted credit at or above the threshold re-arms: 11
  expect((await wallet('cus_po_thr')).threshold_armed).toBe(true);

  // A grant that expired a moment ago (7.00): 18, then its write-off takes the balance to 11, below a threshold
  // of 12: the lifecycle path records the crossing exactly as the hot path would.
  const now = Date.now();
  await fund('cus_po_thr', '7.00', { granted_at: new Date(now - 2_000), expires_at: new Date(now - 1_000) });
  expect(await setLowBalanceThreshold(db, 'cus_po_thr', usd('12.00'))).toBe(true);
  expect(await expireGrants(db, 'cus_po_thr', new Date(now))).toEqual([
    expect.objectContaining({ amount_nanos: usd('7.00') }),
  ]);
  expect(await wallet('cus_po_thr')).toMatchObject({ available_nanos: usd('11.00'), threshold_armed: false });
  expect(await crossings()).toBe(2);
});

test('an expiry sweep whose write-offs go below the threshold records one crossing, not one per grant', async () => {
  // 10.00 of credit, then two promotions that expired a moment ago (3.00 and 4.00): 17.00, threshold 12.00. The sweep
  // writes both off in one transaction: 17 -> 14 (above) -> 10 (crosses), or 13 -> 10 in the other order; either
  // way one crossing. Before the fix, every write-off after the crossing in that transaction reported it again.
  await customer('cus_po_sweep', '10.00');
  const now = Date.now();
  await fund('cus_po_sweep', '3.00', {
    granted_at: new Date(now - 3_000),
    expires_at: new Date(now - 2_000),
  });
  await fund('cus_po_sweep', '4.00', {
    granted_at: new Date(now - 3_000),
    expires_at: new Date(now - 1_000),
  });
  expect(await setLowBalanceThreshold(db, 'cus_po_sweep', usd('12.00'))).toBe(true);
  const first = await fund('cus_po_sweep', '0.000000001', {
    granted_at: new Date(now - 3_000),
    expires_at: new Date(now - 500),
  }); // a third, tiny one after the crossing: its write-off must not report the crossing again
  expect(first.amount_nanos).toBe(1n);
  expect(await expireGrants(db, 'cus_po_sweep', new Date(now))).toHaveLength(3);
  expect(await wallet('cus_po_sweep')).toMatchObject({
    available_nanos: usd('10.00'),
    threshold_armed: false,
  });
  expect(await db('threshold_crossings').where({ customer_id: 'cus_po_sweep' })).toHaveLength(1);
});

test('ingestion past the wallet floor rejects events one by one, in the order sent; repeats stay duplicates', async () => {
  await customer('cus_po_floor', '0.50'); // room above the floor: 0.50 + 1.00
  const batch = [
    event('cus_po_floor', 'f1', usd('0.60')), // running 0.60
    event('cus_po_floor', 'f2', usd('0.60')), // 1.20
    event('cus_po_floor', 'f3', usd('0.30')), // 1.50: lands exactly on the floor, which is allowed
    event('cus_po_floor', 'f4', 0n), // costs nothing: never refused
    event('cus_po_floor', 'f5', usd('0.000000001')), // one nano past
    event('cus_po_floor', 'f6', usd('0.000000001')), // and once one is refused, so is every later one that costs
  ];
  const first = await hot.ingest(randomUUID(), batch);
  const key = (id: string) => eventKey('cus_po_floor', id);
  expect([...first.recorded].sort()).toEqual(['f1', 'f2', 'f3', 'f4'].map(key).sort());
  expect([...first.past_floor].sort()).toEqual(['f5', 'f6'].map(key).sort());
  expect((await wallet('cus_po_floor')).available_nanos).toBe(-FLOOR);

  // The same batch again: what was recorded is a duplicate (neither recorded nor refused), the rest still does
  // not fit.
  const again = await hot.ingest(randomUUID(), batch);
  expect(again.recorded.size).toBe(0);
  expect([...again.past_floor].sort()).toEqual(['f5', 'f6'].map(key).sort());
  expect((await wallet('cus_po_floor')).available_nanos).toBe(-FLOOR);

  // An absurd cost (near the bigint limit, alone or summed) is refused like any other, never an overflow.
  const huge = await hot.ingest(randomUUID(), [
    event('cus_po_floor', 'h1', 2n ** 62n),
    event('cus_po_floor', 'h2', 2n ** 62n),
    event('cus_po_floor', 'h3', 2n ** 63n - 1n),
  ]);
  expect(huge.recorded.size).toBe(0);
  expect(huge.past_floor.size).toBe(3);
  expect((await wallet('cus_po_floor')).available_nanos).toBe(-FLOOR);
});

test('a capture whose cost beyond the hold passes the floor is refused and moves nothing; down to the floor it is charged', async () => {
  await customer('cus_po_fcap', '1.00');
  const authorize = async () => {
    const id = `auth_${randomUUID()}`;
    const held = await hot.authorize({
      customer_id: 'cus_po_fcap',
      authorization_id: id,
      model: 'm',
      hold_nanos: usd('0.50'),
      created_at: new Date(),
      expires_at: new Date(Date.now() + 600_000),
    });
    expect(held.ok).toBe(true);
    return id;
  };
  const capture = (authorization_id: string, cost_nanos: bigint) =>
    hot.capture({
      authorization_id,
      cost_nanos,
      provider_cost_nanos: 0n,
      event_id: authorization_id,
      occurred_at: new Date(),
      lines: {},
      price_version: 'test',
      processing: 'standard',
      feature: null,
    });
  const id = await authorize(); // available 0.50, held 0.50
  const counts = async () =>
    JSON.stringify(
      await db.raw(
        `SELECT (SELECT count(*) FROM ledger_entries) AS e, (SELECT count(*) FROM usage_events) AS u`,
      ),
      (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v),
    );
  const before = await counts();
  // 0.50 + 0.50 - 2.000000001 = -1.000000001: one nano past the floor.
  expect(await capture(id, usd('2.000000001'))).toEqual({ ok: false, code: 'wallet_floor_reached' });
  expect(await capture(id, 2n ** 63n - 1n)).toEqual({ ok: false, code: 'wallet_floor_reached' });
  expect(await counts()).toBe(before);
  expect(await hot.getAuthorization(id)).toMatchObject({ status: 'held', event_id: null });
  expect(await wallet('cus_po_fcap')).toMatchObject({
    available_nanos: usd('0.50'),
    held_nanos: usd('0.50'),
  });
  // Exactly to the floor is allowed.
  expect(await capture(id, usd('2.00'))).toMatchObject({ ok: true, available_nanos: -FLOOR });
});

test('a wallet already below the floor still takes movements that add to it, such as a capture under its hold', async () => {
  await customer('cus_po_below', '2.00');
  const id = `auth_${randomUUID()}`;
  const held = await hot.authorize({
    customer_id: 'cus_po_below',
    authorization_id: id,
    model: 'm',
    hold_nanos: usd('1.00'),
    created_at: new Date(),
    expires_at: new Date(Date.now() + 600_000),
  }); // available 1.00, held 1.00
  expect(held.ok).toBe(true);
  // Under a wider floor (an operator since lowered WALLET_FLOOR_USD), usage took the wallet to -2.00: past 1.00.
  const wider = new HotPath(hot.pool, { wallet_floor_nanos: usd('5.00') });
  const used = await wider.ingest(randomUUID(), [event('cus_po_below', 'below-1', usd('3.00'))]);
  expect(used.recorded.size).toBe(1);
  expect((await wallet('cus_po_below')).available_nanos).toBe(-usd('2.00'));
  // The capture costs 0.40 of its 1.00 hold: available rises to -1.40, still below the floor, and that is fine.
  const captured = await hot.capture({
    authorization_id: id,
    cost_nanos: usd('0.40'),
    provider_cost_nanos: 0n,
    event_id: id,
    occurred_at: new Date(),
    lines: {},
    price_version: 'test',
    processing: 'standard',
    feature: null,
  });
  expect(captured).toMatchObject({ ok: true, available_nanos: -usd('1.40') });
  // A debit there is still refused.
  const more = await hot.ingest(randomUUID(), [event('cus_po_below', 'below-2', 1n)]);
  expect(more.past_floor.size).toBe(1);
});

test('crossings are claimed for delivery in order per customer: a newer one waits until the older is delivered', async () => {
  // The workflow ignores a crossing id at or below the last it saw, so delivering a newer one first loses the older.
  await customer('cus_po_order_a');
  await customer('cus_po_order_b');
  const insert = (customer_id: string) =>
    db('threshold_crossings')
      .insert({ customer_id, threshold_nanos: usd('5.00'), balance_after_nanos: usd('4.00') })
      .returning('id');
  const [a1] = await insert('cus_po_order_a');
  const [a2] = await insert('cus_po_order_a');
  const [b1] = await insert('cus_po_order_b');
  const ours = (rows: { id: bigint }[]) =>
    rows.map((r) => r.id).filter((id) => [a1.id, a2.id, b1.id].includes(id));
  // A 1 ms lease, so that rows claimed here come back to be claimed again.
  const reclaim = (until: (ids: bigint[]) => boolean) =>
    eventually(async () => ours(await claimCrossings(db, 100, 1)), until, 5_000);
  expect(ours(await claimCrossings(db, 100, 1))).toEqual([a1.id, b1.id]);
  // While a1 is undelivered, a2 is never claimed, even after a1's lease has lapsed.
  const meanwhile = await reclaim((ids) => ids.includes(a1.id));
  expect(meanwhile).toContain(a1.id);
  expect(meanwhile).not.toContain(a2.id);
  expect(await markCrossingsDelivered(db, [a1.id])).toBe(1);
  expect(await reclaim((ids) => ids.includes(a2.id))).toContain(a2.id);
});

test('concurrent batches on one wallet near its floor never take it past the floor, and fill it exactly', async () => {
  await customer('cus_po_race', '1.00'); // room 2.00: at most 66 events of 0.03 (1.98)
  const EVENT = usd('0.03');
  const batches = Array.from({ length: 10 }, (_, b) =>
    Array.from({ length: 10 }, (_, i) => event('cus_po_race', `r${b}_${i}`, EVENT)),
  );
  const outcomes = await Promise.all(batches.map((rows) => hot.ingest(randomUUID(), rows)));
  const recorded = outcomes.reduce((n, o) => n + o.recorded.size, 0);
  const refused = outcomes.reduce((n, o) => n + o.past_floor.size, 0);
  expect(recorded + refused).toBe(100);
  expect(recorded).toBe(66);
  expect((await wallet('cus_po_race')).available_nanos).toBe(usd('1.00') - 66n * EVENT);
});
