/**
 * Unit tests for credit-grant rules: the consumption order, how unattributed consumption is allocated to
 * grants, and what expires when. Pure; no server needed.
 *
 * Amounts are bigint nanos (1e-9 USD). Small integers are used where the unit does not matter.
 */
import {
  allocateConsumption,
  applyAllocation,
  attributeDebits,
  compareConsumptionOrder,
  type GrantDebit,
  type StatementEntry,
  type StatementGrant,
  writeOffGrantId,
  isExpired,
  nextExpiry,
  paidCreditExpiry,
  planExpiry,
  planRetirement,
  reconcileGrants,
  settleClaims,
  type HoldClaim,
  type OpenGrant,
  type Allocation,
  type GrantSlice,
} from '../../billing/grants';
import { usd } from '../../billing/money';

const T0_MS = Date.parse('2026-11-01T00:00:00.000Z');
const DAY_MS = 86_400_000;

/** An instant `days` days after T0. */
function at(days: number): Date {
  return new Date(T0_MS + days * DAY_MS);
}

function grant(
  id: string,
  remaining_nanos: bigint,
  options: { expires_at?: Date | null; granted_at?: Date; amount_nanos?: bigint } = {},
): GrantSlice {
  return {
    id,
    amount_nanos: options.amount_nanos ?? remaining_nanos,
    remaining_nanos,
    granted_at: options.granted_at ?? at(0),
    expires_at: options.expires_at === undefined ? null : options.expires_at,
  };
}

function sortedIds(grants: readonly GrantSlice[]): string[] {
  return [...grants].sort(compareConsumptionOrder).map((g) => g.id);
}

function sum(values: readonly bigint[]): bigint {
  return values.reduce((a, b) => a + b, 0n);
}

function changesOf(allocation: Allocation): Record<string, bigint> {
  return Object.fromEntries(allocation.changes);
}

describe('compareConsumptionOrder', () => {
  test('the grant that expires soonest pays first, whatever the order of the input', () => {
    const late = grant('late', 1n, { expires_at: at(30) });
    const soon = grant('soon', 1n, { expires_at: at(10) });
    const middle = grant('middle', 1n, { expires_at: at(20) });
    expect(sortedIds([late, soon, middle])).toEqual(['soon', 'middle', 'late']);
    expect(sortedIds([middle, late, soon])).toEqual(['soon', 'middle', 'late']);
  });

  test('a grant that never expires pays after every expiring grant, even one granted later', () => {
    const never = grant('never', 1n, { expires_at: null, granted_at: at(0) });
    const expiringFarAway = grant('far', 1n, { expires_at: at(10_000), granted_at: at(5) });
    expect(sortedIds([never, expiringFarAway])).toEqual(['far', 'never']);
    expect(compareConsumptionOrder(never, expiringFarAway)).toBeGreaterThan(0);
    expect(compareConsumptionOrder(expiringFarAway, never)).toBeLessThan(0);
  });

  test('with the same expiry the older grant pays first', () => {
    const older = grant('z-older', 1n, { expires_at: at(30), granted_at: at(1) });
    const newer = grant('a-newer', 1n, { expires_at: at(30), granted_at: at(2) });
    expect(sortedIds([newer, older])).toEqual(['z-older', 'a-newer']);
  });

  test('among never-expiring grants the older grant pays first', () => {
    const older = grant('z-older', 1n, { granted_at: at(1) });
    const newer = grant('a-newer', 1n, { granted_at: at(2) });
    expect(sortedIds([newer, older])).toEqual(['z-older', 'a-newer']);
  });

  test('a one-millisecond difference in expiry or grant time decides the order', () => {
    const a = grant('b', 1n, { expires_at: new Date(T0_MS + 1000) });
    const b = grant('a', 1n, { expires_at: new Date(T0_MS + 1001) });
    expect(sortedIds([b, a])).toEqual(['b', 'a']);
    const c = grant('b', 1n, { granted_at: new Date(T0_MS) });
    const d = grant('a', 1n, { granted_at: new Date(T0_MS + 1) });
    expect(sortedIds([d, c])).toEqual(['b', 'a']);
  });

  test('with the same expiry and grant time the id decides (by code unit, so the order is total)', () => {
    const ids = ['grant_b', 'grant_a', 'Grant_c', 'grant_aa'];
    const grants = ids.map((id) => grant(id, 1n, { expires_at: at(5) }));
    expect(sortedIds(grants)).toEqual(['Grant_c', 'grant_a', 'grant_aa', 'grant_b']);
  });

  test('a grant compares equal only to itself (same id, expiry and grant time)', () => {
    const g = grant('g', 1n, { expires_at: at(3) });
    expect(compareConsumptionOrder(g, g)).toBe(0);
    expect(compareConsumptionOrder(g, { ...g })).toBe(0);
    expect(compareConsumptionOrder(g, { ...g, id: 'h' })).not.toBe(0);
  });

  test('the order is antisymmetric and transitive over a mixed set, and the same for every input permutation', () => {
    const grants: GrantSlice[] = [
      grant('a', 1n, { expires_at: at(10), granted_at: at(0) }),
      grant('b', 1n, { expires_at: at(10), granted_at: at(0) }),
      grant('c', 1n, { expires_at: at(10), granted_at: at(-1) }),
      grant('d', 1n, { expires_at: at(5), granted_at: at(3) }),
      grant('e', 1n, { expires_at: null, granted_at: at(-5) }),
      grant('f', 1n, { expires_at: null, granted_at: at(-5) }),
    ];
    for (const x of grants) {
      for (const y of grants) {
        expect(Math.sign(compareConsumptionOrder(x, y)) + Math.sign(compareConsumptionOrder(y, x))).toBe(0);
        expect(compareConsumptionOrder(x, y) === 0).toBe(x === y);
        for (const z of grants) {
          if (compareConsumptionOrder(x, y) < 0 && compareConsumptionOrder(y, z) < 0) {
            expect(compareConsumptionOrder(x, z)).toBeLessThan(0);
          }
        }
      }
    }
    const expected = ['d', 'c', 'a', 'b', 'e', 'f'];
    for (const permutation of permutations(grants)) expect(sortedIds(permutation)).toEqual(expected);
  });
});

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]),
  );
}

describe('isExpired', () => {
  const expiry = at(10);
  test('a grant is expired at exactly its expiry instant', () => {
    expect(isExpired({ expires_at: expiry }, new Date(expiry.getTime()))).toBe(true);
  });

  test('a grant is not expired one millisecond before its expiry', () => {
    expect(isExpired({ expires_at: expiry }, new Date(expiry.getTime() - 1))).toBe(false);
  });

  test('a grant stays expired after its expiry', () => {
    expect(isExpired({ expires_at: expiry }, new Date(expiry.getTime() + 1))).toBe(true);
    expect(isExpired({ expires_at: expiry }, at(1000))).toBe(true);
  });

  test('a grant without an expiry never expires', () => {
    expect(isExpired({ expires_at: null }, at(1_000_000))).toBe(false);
  });
});

describe('allocateConsumption', () => {
  const soon = grant('soon', 100n, { expires_at: at(10) });
  const later = grant('later', 200n, { expires_at: at(20) });
  const never = grant('never', 300n, { expires_at: null });
  // Deliberately out of consumption order.
  const grants = [never, later, soon];

  test('nothing consumed (the wallet owns exactly what the grants hold): no changes, nothing allocated', () => {
    const allocation = allocateConsumption(grants, 600n);
    expect(allocation.allocated_nanos).toBe(0n);
    expect(allocation.changes.size).toBe(0);
  });

  test('no grants and nothing owned: nothing allocated', () => {
    const allocation = allocateConsumption([], 0n);
    expect(allocation.allocated_nanos).toBe(0n);
    expect(allocation.changes.size).toBe(0);
  });

  test('consumption within the first grant only reduces the soonest-expiring grant', () => {
    const allocation = allocateConsumption(grants, 600n - 40n);
    expect(allocation.allocated_nanos).toBe(40n);
    expect(changesOf(allocation)).toEqual({ soon: 60n });
  });

  test('consuming exactly one grant empties it and touches no other grant', () => {
    const allocation = allocateConsumption(grants, 500n);
    expect(allocation.allocated_nanos).toBe(100n);
    expect(changesOf(allocation)).toEqual({ soon: 0n });
  });

  test('consumption spanning several grants empties them in order and takes the rest from the next', () => {
    // 100 (soon) + 200 (later) + 50 of never = 350 consumed; 250 left.
    const allocation = allocateConsumption(grants, 250n);
    expect(allocation.allocated_nanos).toBe(350n);
    expect(changesOf(allocation)).toEqual({ soon: 0n, later: 0n, never: 250n });
  });

  test('a wallet that owns nothing consumes every grant', () => {
    const allocation = allocateConsumption(grants, 0n);
    expect(allocation.allocated_nanos).toBe(600n);
    expect(changesOf(allocation)).toEqual({ soon: 0n, later: 0n, never: 0n });
  });

  test('a wallet in debt (negative unconsumed) consumes every grant, and no more than they hold', () => {
    const allocation = allocateConsumption(grants, -1_000n);
    expect(allocation.allocated_nanos).toBe(600n);
    expect(changesOf(allocation)).toEqual({ soon: 0n, later: 0n, never: 0n });
  });

  test('a debt of one nano is still a debt: everything is consumed', () => {
    const allocation = allocateConsumption(grants, -1n);
    expect(allocation.allocated_nanos).toBe(600n);
  });

  test('grants with nothing remaining are skipped and never reported as changed', () => {
    const emptySoonest = grant('empty', 0n, { expires_at: at(1), amount_nanos: 50n });
    const allocation = allocateConsumption([emptySoonest, ...grants], 550n);
    expect(allocation.allocated_nanos).toBe(50n);
    expect(changesOf(allocation)).toEqual({ soon: 50n });
    expect(allocation.changes.has('empty')).toBe(false);
  });

  test('even a wallet in debt does not report already-empty grants as changed', () => {
    const empty = grant('empty', 0n, { expires_at: at(1), amount_nanos: 50n });
    const allocation = allocateConsumption([empty, soon], -5n);
    expect(changesOf(allocation)).toEqual({ soon: 0n });
  });

  test('throws when the wallet owns more than its grants hold (money without a source)', () => {
    expect(() => allocateConsumption(grants, 601n)).toThrow(
      'wallet owns 601 nanos but its open grants hold only 600: ledger defect',
    );
    expect(() => allocateConsumption([], 1n)).toThrow('ledger defect');
  });

  test('owning exactly what the grants hold does not throw', () => {
    expect(() => allocateConsumption(grants, 600n)).not.toThrow();
  });

  test('large amounts are allocated exactly, to the nano', () => {
    const big1 = grant('big1', usd('4000000000.000000001'), { expires_at: at(1) });
    const big2 = grant('big2', usd('5000000000'), { expires_at: at(2) });
    const unconsumed = usd('4999999999.999999999');
    const allocation = allocateConsumption([big2, big1], unconsumed);
    // Consumed: 9000000000.000000001 - 4999999999.999999999 = 4000000000.000000002 USD
    // = all of big1 (4000000000.000000001) + 1 nano of big2.
    expect(allocation.allocated_nanos).toBe(4_000_000_000_000_000_002n);
    expect(changesOf(allocation)).toEqual({ big1: 0n, big2: 4_999_999_999_999_999_999n });
  });

  test('allocation does not depend on the order of the input array', () => {
    const expected = changesOf(allocateConsumption(grants, 250n));
    for (const permutation of permutations(grants)) {
      expect(changesOf(allocateConsumption(permutation, 250n))).toEqual(expected);
    }
  });

  test('allocating twice is idempotent: a second allocation on the result changes nothing', () => {
    const unconsumed = 250n;
    const first = allocateConsumption(grants, unconsumed);
    const afterFirst = applyAllocation(grants, first);
    const second = allocateConsumption(afterFirst, unconsumed);
    expect(second.allocated_nanos).toBe(0n);
    expect(second.changes.size).toBe(0);
    expect(applyAllocation(afterFirst, second)).toEqual(afterFirst);
  });

  test('allocating in two steps gives the same result as allocating once', () => {
    const oneStep = applyAllocation(grants, allocateConsumption(grants, 250n));
    const halfWay = applyAllocation(grants, allocateConsumption(grants, 450n));
    const twoSteps = applyAllocation(halfWay, allocateConsumption(halfWay, 250n));
    expect(twoSteps).toEqual(oneStep);
  });

  test('does not modify its input', () => {
    const input = [never, later, soon];
    const snapshot = input.map((g) => ({ ...g }));
    allocateConsumption(input, 0n);
    expect(input).toEqual(snapshot);
    expect(input.map((g) => g.id)).toEqual(['never', 'later', 'soon']);
  });
});

describe('allocateConsumption, brute force over small cases', () => {
  /**
   * Every combination of up to 4 grants with remaining 0..3 each, with expiries drawn from a small set
   * (including ties and never) so that the tie-breakers matter, and every unconsumed amount from a debt of 2
   * up to the sum. Checks the invariants rather than precomputed answers.
   */
  const EXPIRIES: (Date | null)[] = [at(1), at(2), null];
  const GRANTED: Date[] = [at(-2), at(-1)];

  function* cases(): Generator<GrantSlice[]> {
    for (let count = 0; count <= 4; count++) {
      const total = 4 ** count;
      for (let code = 0; code < total; code++) {
        let rest = code;
        const grants: GrantSlice[] = [];
        for (let i = 0; i < count; i++) {
          const remaining = rest % 4;
          rest = Math.floor(rest / 4);
          // Expiry and grant time vary with the index and the code so that equal expiries occur.
          const expires_at = EXPIRIES[(i + code) % EXPIRIES.length] ?? null;
          const granted_at = GRANTED[(i * 7 + code) % GRANTED.length] ?? at(0);
          grants.push(grant(`g${(count - i) % 4}${i}`, BigInt(remaining), { expires_at, granted_at }));
        }
        yield grants;
      }
    }
  }

  test('invariants hold for every case', () => {
    let checked = 0;
    for (const grants of cases()) {
      const total = sum(grants.map((g) => g.remaining_nanos));
      for (let unconsumed = -2n; unconsumed <= total; unconsumed += 1n) {
        const allocation = allocateConsumption(grants, unconsumed);
        const after = applyAllocation(grants, allocation);
        const owned = unconsumed > 0n ? unconsumed : 0n;

        // Total allocated is what left the wallet: sum - max(unconsumed, 0), and the grants now hold the rest.
        expect(allocation.allocated_nanos).toBe(total - owned);
        expect(sum(after.map((g) => g.remaining_nanos))).toBe(owned);

        // New remaining is never negative nor above the old one; only changed grants are reported.
        after.forEach((g, i) => {
          const before = grants[i];
          if (!before) throw new Error('length mismatch');
          expect(g.id).toBe(before.id);
          expect(g.remaining_nanos >= 0n).toBe(true);
          expect(g.remaining_nanos <= before.remaining_nanos).toBe(true);
          expect(allocation.changes.has(g.id)).toBe(g.remaining_nanos !== before.remaining_nanos);
        });

        // Order rule: a grant is reduced only when every grant earlier in the order is exhausted.
        const ordered = [...grants].sort(compareConsumptionOrder);
        ordered.forEach((g, k) => {
          const newRemaining = allocation.changes.get(g.id) ?? g.remaining_nanos;
          if (newRemaining < g.remaining_nanos) {
            for (const earlier of ordered.slice(0, k)) {
              expect(allocation.changes.get(earlier.id) ?? earlier.remaining_nanos).toBe(0n);
            }
          }
        });

        // Idempotence: allocating again with the same unconsumed amount changes nothing.
        const again = allocateConsumption(after, unconsumed);
        expect(again.allocated_nanos).toBe(0n);
        expect(again.changes.size).toBe(0);
        checked++;
      }
      // One nano more than the grants hold is always a defect.
      expect(() => allocateConsumption(grants, total + 1n)).toThrow('ledger defect');
    }
    // 1 + 4 + 16 + 64 + 256 grant sets, each with several unconsumed amounts.
    expect(checked).toBeGreaterThan(341 * 3);
  });
});

describe('applyAllocation', () => {
  test('returns new objects for changed grants and leaves the inputs unchanged', () => {
    const a = grant('a', 100n, { expires_at: at(1) });
    const b = grant('b', 100n, { expires_at: at(2) });
    const input = [a, b];
    const snapshot = input.map((g) => ({ ...g }));
    const allocation = allocateConsumption(input, 50n);
    const out = applyAllocation(input, allocation);
    expect(out.map((g) => [g.id, g.remaining_nanos])).toEqual([
      ['a', 0n],
      ['b', 50n],
    ]);
    expect(input).toEqual(snapshot);
    expect(out).not.toBe(input);
    expect(out[0]).not.toBe(a);
    expect(a.remaining_nanos).toBe(100n);
    expect(b.remaining_nanos).toBe(100n);
  });

  test('keeps the input order and every other field, including extra fields of a subtype', () => {
    type Row = GrantSlice & { source: string };
    const rows: Row[] = [
      { ...grant('never', 10n), source: 'top_up' },
      { ...grant('soon', 10n, { expires_at: at(1), amount_nanos: 25n }), source: 'promotion' },
    ];
    const out: Row[] = applyAllocation(rows, { changes: new Map([['soon', 3n]]), allocated_nanos: 7n });
    expect(out).toEqual([rows[0], { ...rows[1], remaining_nanos: 3n }]);
    expect(out[1]?.source).toBe('promotion');
    expect(out[1]?.amount_nanos).toBe(25n);
  });

  test('an empty allocation returns the same grants', () => {
    const input = [grant('a', 1n), grant('b', 2n)];
    const out = applyAllocation(input, { changes: new Map(), allocated_nanos: 0n });
    expect(out).toEqual(input);
    out.forEach((g, i) => expect(g).toBe(input[i]));
  });
});

describe('planExpiry', () => {
  const now = at(10);

  test('picks only grants expired at now, each with its remaining, soonest expiry first', () => {
    const grants = [
      grant('future', 5n, { expires_at: new Date(now.getTime() + 1) }),
      grant('exactly-now', 7n, { expires_at: now }),
      grant('never', 9n, { expires_at: null }),
      grant('long-ago', 3n, { expires_at: at(2) }),
    ];
    expect(planExpiry(grants, now)).toEqual([
      { grant_id: 'long-ago', amount_nanos: 3n },
      { grant_id: 'exactly-now', amount_nanos: 7n },
    ]);
  });

  test('a spent expired grant still closes, with a zero write-off', () => {
    expect(planExpiry([grant('spent', 0n, { expires_at: at(1), amount_nanos: 10n })], now)).toEqual([
      { grant_id: 'spent', amount_nanos: 0n },
    ]);
  });

  test('nothing expired: an empty plan', () => {
    expect(planExpiry([grant('a', 1n, { expires_at: at(11) }), grant('b', 1n)], now)).toEqual([]);
    expect(planExpiry([], now)).toEqual([]);
  });

  test('after allocation, the expiring grant paid first, so only what is left of it is written off', () => {
    // 100 expiring + 100 permanent; 130 consumed before expiry -> the expiring grant paid 100, the
    // permanent one 30. Nothing of the expiring grant is left to write off.
    const expiring = grant('expiring', 100n, { expires_at: at(5) });
    const permanent = grant('permanent', 100n);
    const allocated = applyAllocation([permanent, expiring], allocateConsumption([permanent, expiring], 70n));
    expect(planExpiry(allocated, now)).toEqual([{ grant_id: 'expiring', amount_nanos: 0n }]);

    // Only 40 consumed -> the expiring grant paid all 40; 60 of it is written off, the permanent one is whole.
    const allocated2 = applyAllocation(
      [permanent, expiring],
      allocateConsumption([permanent, expiring], 160n),
    );
    expect(planExpiry(allocated2, now)).toEqual([{ grant_id: 'expiring', amount_nanos: 60n }]);
    expect(allocated2.find((g) => g.id === 'permanent')?.remaining_nanos).toBe(100n);
  });

  test('does not modify or reorder its input', () => {
    const input = [grant('b', 1n, { expires_at: at(2) }), grant('a', 1n, { expires_at: at(1) })];
    planExpiry(input, now);
    expect(input.map((g) => g.id)).toEqual(['b', 'a']);
  });
});

describe('nextExpiry', () => {
  const now = at(10);

  test('returns the soonest future expiry, ignoring past, due-now and never-expiring grants', () => {
    const soonest = new Date(now.getTime() + 1);
    expect(
      nextExpiry(
        [
          { expires_at: at(2) },
          { expires_at: null },
          { expires_at: at(30) },
          { expires_at: now },
          { expires_at: soonest },
          { expires_at: at(20) },
        ],
        now,
      ),
    ).toBe(soonest);
  });

  test('null when nothing expires in the future', () => {
    expect(nextExpiry([], now)).toBeNull();
    expect(nextExpiry([{ expires_at: null }], now)).toBeNull();
    expect(nextExpiry([{ expires_at: at(1) }, { expires_at: now }], now)).toBeNull();
  });

  test('the result does not depend on input order', () => {
    const list = [
      { expires_at: at(30) },
      { expires_at: at(12) },
      { expires_at: null },
      { expires_at: at(11) },
    ];
    for (const permutation of permutations(list)) expect(nextExpiry(permutation, now)).toEqual(at(11));
  });
});

describe('paidCreditExpiry', () => {
  test('granted_at plus the validity; years and months on the UTC calendar, clamped to the month end', () => {
    const granted = new Date('2026-01-31T10:00:00.000Z');
    expect(paidCreditExpiry(granted, 'P1Y')).toEqual(new Date('2027-01-31T10:00:00.000Z'));
    expect(paidCreditExpiry(granted, 'P1M')).toEqual(new Date('2026-02-28T10:00:00.000Z'));
    expect(paidCreditExpiry(new Date('2028-01-31T00:00:00Z'), 'P1M')).toEqual(
      new Date('2028-02-29T00:00:00Z'),
    );
    expect(paidCreditExpiry(new Date('2028-02-29T12:00:00Z'), 'P1Y')).toEqual(
      new Date('2029-02-28T12:00:00Z'),
    );
    expect(paidCreditExpiry(granted, 'PT3S')).toEqual(new Date('2026-01-31T10:00:03.000Z'));
    expect(paidCreditExpiry(granted, 'P1DT0.5S')).toEqual(new Date('2026-02-01T10:00:00.500Z'));
  });

  test('null validity: bought credit never expires', () => {
    expect(paidCreditExpiry(at(0), null)).toBeNull();
  });

  test('each purchase keeps its own expiry: a later purchase expires later by exactly the time between them', () => {
    const first = paidCreditExpiry(at(0), 'P1Y')!;
    const second = paidCreditExpiry(at(3), 'P1Y')!;
    expect(second.getTime() - first.getTime()).toBe(3 * DAY_MS);
  });

  test('a validity that is not a positive ISO-8601 duration is a programmer error', () => {
    expect(() => paidCreditExpiry(at(0), '1 year')).toThrow(/ISO-8601/);
    expect(() => paidCreditExpiry(at(0), 'PT0S')).toThrow(/not positive/);
  });
});

/** An open grant for the retirement rules. */
function open(
  id: string,
  remaining_nanos: bigint,
  options: { expires_at?: Date | null; granted_at?: Date; retiring?: boolean; amount_nanos?: bigint } = {},
): OpenGrant {
  return { ...grant(id, remaining_nanos, options), retiring: options.retiring ?? false };
}

const claim = (grant_id: string, authorization_id: string, amount_nanos: bigint): HoldClaim => ({
  grant_id,
  authorization_id,
  amount_nanos,
});

const hold = (authorization_id: string, hold_nanos: bigint, claimed_nanos = 0n) => ({
  authorization_id,
  hold_nanos,
  claimed_nanos,
});

describe('planRetirement', () => {
  const promo = grant('promo', 5n, { expires_at: at(1) });
  const never = grant('never', 10n);

  test('no hold open: the whole remainder is written off and nothing is claimed', () => {
    expect(planRetirement([promo, never], new Set(['promo']), [])).toEqual([
      { grant_id: 'promo', write_off_nanos: 5n, claims: [] },
    ]);
  });

  test('the held part of the soonest-expiring grant is claimed by the holds, the rest written off', () => {
    expect(planRetirement([never, promo], new Set(['promo']), [hold('a', 3n)])).toEqual([
      { grant_id: 'promo', write_off_nanos: 2n, claims: [claim('promo', 'a', 3n)] },
    ]);
  });

  test('holds larger than the grant claim all of it across holds in the order given; nothing is written off', () => {
    expect(
      planRetirement([promo, never], new Set(['promo']), [hold('a', 2n), hold('b', 2n), hold('c', 9n)]),
    ).toEqual([
      {
        grant_id: 'promo',
        write_off_nanos: 0n,
        claims: [claim('promo', 'a', 2n), claim('promo', 'b', 2n), claim('promo', 'c', 1n)],
      },
    ]);
  });

  test('a grant later in consumption order gets only the held money the earlier grants do not back', () => {
    const soon = grant('soon', 4n, { expires_at: at(1) });
    // Voiding the never-expiring grant while 6 is held: 4 of it is `soon`'s, 2 is `never`'s.
    expect(planRetirement([never, soon], new Set(['never']), [hold('a', 6n)])).toEqual([
      { grant_id: 'never', write_off_nanos: 8n, claims: [claim('never', 'a', 2n)] },
    ]);
  });

  test('parts of holds already claimed by grants that retired earlier back nothing else', () => {
    expect(
      planRetirement([promo, never], new Set(['promo']), [hold('a', 3n, 3n), hold('b', 4n, 1n)]),
    ).toEqual([{ grant_id: 'promo', write_off_nanos: 2n, claims: [claim('promo', 'b', 3n)] }]);
  });

  test('several grants retiring at once share the held money in consumption order', () => {
    const first = grant('first', 2n, { expires_at: at(1) });
    const second = grant('second', 5n, { expires_at: at(2) });
    const plans = planRetirement([second, never, first], new Set(['first', 'second']), [hold('a', 4n)]);
    expect(plans).toEqual([
      { grant_id: 'first', write_off_nanos: 0n, claims: [claim('first', 'a', 2n)] },
      { grant_id: 'second', write_off_nanos: 3n, claims: [claim('second', 'a', 2n)] },
    ]);
  });

  test('a depleted grant retires with nothing to write off or claim', () => {
    expect(
      planRetirement([grant('empty', 0n, { expires_at: at(1) })], new Set(['empty']), [hold('a', 5n)]),
    ).toEqual([{ grant_id: 'empty', write_off_nanos: 0n, claims: [] }]);
  });

  test('conservation: for every grant, written off + claimed = remaining; claims never exceed a hold', () => {
    const grants = [
      grant('g1', 3n, { expires_at: at(1) }),
      grant('g2', 4n, { expires_at: at(2) }),
      grant('g3', 5n, { expires_at: at(3) }),
      grant('g4', 6n),
    ];
    const holdSets = [
      [],
      [hold('a', 1n)],
      [hold('a', 7n), hold('b', 2n)],
      [hold('a', 30n)],
      [hold('a', 2n, 1n), hold('b', 9n)],
    ];
    for (const holds of holdSets) {
      for (const retiring of [['g1'], ['g2'], ['g1', 'g3'], ['g4'], ['g1', 'g2', 'g3', 'g4']]) {
        const plans = planRetirement(grants, new Set(retiring), holds);
        expect(plans.map((p) => p.grant_id).sort()).toEqual([...retiring].sort());
        for (const plan of plans) {
          const g = grants.find((x) => x.id === plan.grant_id)!;
          expect(plan.write_off_nanos + sum(plan.claims.map((c) => c.amount_nanos))).toBe(g.remaining_nanos);
          expect(plan.write_off_nanos >= 0n).toBe(true);
        }
        for (const h of holds) {
          const claimed = sum(
            plans
              .flatMap((p) => p.claims)
              .filter((c) => c.authorization_id === h.authorization_id)
              .map((c) => c.amount_nanos),
          );
          expect(claimed <= h.hold_nanos - h.claimed_nanos).toBe(true);
        }
        // Everything held and not yet claimed backs some grant (or all grants are used up).
        const free = sum(holds.map((h) => h.hold_nanos - h.claimed_nanos));
        const backed = sum(plans.flatMap((p) => p.claims).map((c) => c.amount_nanos));
        expect(backed <= free).toBe(true);
      }
    }
  });

  test('a hold claimed beyond its amount is a ledger defect', () => {
    expect(() => planRetirement([promo], new Set(['promo']), [hold('a', 1n, 2n)])).toThrow(/beyond/);
  });
});

describe('settleClaims', () => {
  const promo = grant('promo', 3n, { expires_at: at(1) });
  const later = grant('later', 2n, { expires_at: at(2) });

  test('a hold still held settles nothing', () => {
    expect(settleClaims([claim('promo', 'a', 3n)], [promo], new Map())).toEqual([]);
  });

  test('captured in full: the claim is paid, nothing written off', () => {
    expect(settleClaims([claim('promo', 'a', 3n)], [promo], new Map([['a', 3n]]))).toEqual([
      { ...claim('promo', 'a', 3n), paid_nanos: 3n, written_off_nanos: 0n },
    ]);
  });

  test('captured for less: the capture is paid, the rest written off', () => {
    expect(settleClaims([claim('promo', 'a', 3n)], [promo], new Map([['a', 1n]]))).toEqual([
      { ...claim('promo', 'a', 3n), paid_nanos: 1n, written_off_nanos: 2n },
    ]);
  });

  test('released (nothing consumed): the whole claim is written off', () => {
    expect(settleClaims([claim('promo', 'a', 3n)], [promo], new Map([['a', 0n]]))).toEqual([
      { ...claim('promo', 'a', 3n), paid_nanos: 0n, written_off_nanos: 3n },
    ]);
  });

  test('a hold consumed beyond its claims pays each claim in full (the rest is live credit)', () => {
    expect(settleClaims([claim('promo', 'a', 3n)], [promo], new Map([['a', 9n]]))[0]).toMatchObject({
      paid_nanos: 3n,
      written_off_nanos: 0n,
    });
  });

  test('several claims on one hold are paid in consumption order, whatever the input order', () => {
    const claims = [claim('later', 'a', 2n), claim('promo', 'a', 3n)];
    const result = settleClaims(claims, [later, promo], new Map([['a', 4n]]));
    expect(result).toEqual([
      { ...claim('promo', 'a', 3n), paid_nanos: 3n, written_off_nanos: 0n },
      { ...claim('later', 'a', 2n), paid_nanos: 1n, written_off_nanos: 1n },
    ]);
    expect(settleClaims([...claims].reverse(), [promo, later], new Map([['a', 4n]]))).toEqual(result);
  });

  test('each hold settles on its own: one captured, one released', () => {
    const claims = [claim('promo', 'a', 1n), claim('promo', 'b', 2n)];
    expect(
      settleClaims(
        claims,
        [promo],
        new Map([
          ['a', 1n],
          ['b', 0n],
        ]),
      ),
    ).toEqual([
      { ...claim('promo', 'a', 1n), paid_nanos: 1n, written_off_nanos: 0n },
      { ...claim('promo', 'b', 2n), paid_nanos: 0n, written_off_nanos: 2n },
    ]);
  });

  test('paid + written off = claim for every consumption from 0 to beyond the hold', () => {
    for (let consumed = 0n; consumed <= 7n; consumed++) {
      const result = settleClaims(
        [claim('promo', 'a', 3n), claim('later', 'a', 2n)],
        [promo, later],
        new Map([['a', consumed]]),
      );
      for (const r of result) expect(r.paid_nanos + r.written_off_nanos).toBe(r.amount_nanos);
      expect(sum(result.map((r) => r.paid_nanos))).toBe(consumed < 5n ? consumed : 5n);
    }
  });

  test('a claim of an unknown grant or a negative consumption is a defect', () => {
    expect(() => settleClaims([claim('ghost', 'a', 1n)], [promo], new Map([['a', 1n]]))).toThrow(
      /unknown grant/,
    );
    expect(() => settleClaims([claim('promo', 'a', 1n)], [promo], new Map([['a', -1n]]))).toThrow(/negative/);
  });
});

describe('reconcileGrants', () => {
  test('without retiring grants it is allocateConsumption', () => {
    const grants = [open('a', 5n, { expires_at: at(1) }), open('b', 5n)];
    const result = reconcileGrants(grants, [], new Map(), 7n);
    expect(result.settlements).toEqual([]);
    expect(Object.fromEntries(result.remaining)).toEqual({ a: 2n, b: 5n });
    expect(result.closing).toEqual([]);
  });

  test('a retiring grant takes no ordinary consumption: new debits go to live grants only', () => {
    // promo expired keeping 3 for hold `a` (held 3). Since then 4 was consumed by other debits: owned 3 + 6.
    const grants = [open('promo', 3n, { expires_at: at(1), retiring: true }), open('never', 10n)];
    const result = reconcileGrants(grants, [claim('promo', 'a', 3n)], new Map(), 9n);
    expect(Object.fromEntries(result.remaining)).toEqual({ promo: 3n, never: 6n });
    expect(result.open_claims).toEqual([claim('promo', 'a', 3n)]);
  });

  test('settled claims close the grant; what was given back does not count as live credit', () => {
    // Hold `a` (3) was released: held 0, available 13 (of which 3 is still the promotion's, to write off).
    const grants = [open('promo', 3n, { expires_at: at(1), retiring: true }), open('never', 10n)];
    const result = reconcileGrants(grants, [claim('promo', 'a', 3n)], new Map([['a', 0n]]), 13n);
    expect(result.settlements).toEqual([
      { ...claim('promo', 'a', 3n), paid_nanos: 0n, written_off_nanos: 3n },
    ]);
    expect(result.closing).toEqual(['promo']);
    expect(Object.fromEntries(result.remaining)).toEqual({ promo: 0n, never: 10n });
  });

  test('a capture of the claimed hold beyond the claim charges the excess to live credit', () => {
    // Hold `a` 3 captured for 5: 3 from the hold (the claim pays it), 2 more from available. Owned 13 - 5 = 8.
    const grants = [open('promo', 3n, { expires_at: at(1), retiring: true }), open('never', 10n)];
    const result = reconcileGrants(grants, [claim('promo', 'a', 3n)], new Map([['a', 3n]]), 8n);
    expect(Object.fromEntries(result.remaining)).toEqual({ promo: 0n, never: 8n });
  });

  test('a retiring grant whose remaining is not its claims, or a claim of a grant not retiring, is a defect', () => {
    expect(() =>
      reconcileGrants([open('promo', 4n, { retiring: true })], [claim('promo', 'a', 3n)], new Map(), 4n),
    ).toThrow(/claims are 3/);
    expect(() => reconcileGrants([open('promo', 3n)], [claim('promo', 'a', 3n)], new Map(), 3n)).toThrow(
      /not retiring/,
    );
  });
});

describe('attributeDebits (grant statements)', () => {
  /** A grant funded by entry `entry`, optionally retired after entry `retired_after`. */
  const sg = (
    id: string,
    amount_nanos: bigint,
    entry: number,
    options: { expires_at?: Date | null; granted_at?: Date; retired_after?: number } = {},
  ): StatementGrant => ({
    id,
    amount_nanos,
    granted_at: options.granted_at ?? at(entry),
    expires_at: options.expires_at ?? null,
    entry_id: BigInt(entry),
    retired_after_entry_id: options.retired_after === undefined ? null : BigInt(options.retired_after),
  });
  const funding = (id: number, amount_nanos: bigint): StatementEntry => ({
    id: BigInt(id),
    kind: 'credit_grant',
    ref: `g${id}`,
    owned_delta_nanos: amount_nanos,
    held_delta_nanos: 0n,
  });
  const usage = (id: number, cost_nanos: bigint): StatementEntry => ({
    id: BigInt(id),
    kind: 'usage',
    ref: `b${id}`,
    owned_delta_nanos: -cost_nanos,
    held_delta_nanos: 0n,
  });
  const holdEntry = (id: number, ref: string, hold_nanos: bigint): StatementEntry => ({
    id: BigInt(id),
    kind: 'hold',
    ref,
    owned_delta_nanos: 0n,
    held_delta_nanos: hold_nanos,
  });
  const captureEntry = (id: number, ref: string, hold_nanos: bigint, cost_nanos: bigint): StatementEntry => ({
    id: BigInt(id),
    kind: 'capture',
    ref,
    owned_delta_nanos: -cost_nanos,
    held_delta_nanos: -hold_nanos,
  });
  const writeOff = (
    id: number,
    kind: 'expiry' | 'void',
    ref: string,
    amount_nanos: bigint,
  ): StatementEntry => ({
    id: BigInt(id),
    kind,
    ref,
    owned_delta_nanos: -amount_nanos,
    held_delta_nanos: 0n,
  });
  const d = (entry: number, grant_id: string, amount_nanos: bigint): GrantDebit => ({
    entry_id: BigInt(entry),
    grant_id,
    amount_nanos,
  });
  const totalsOf = (debits: GrantDebit[]) => {
    const totals: Record<string, bigint> = {};
    for (const x of debits) totals[x.grant_id] = (totals[x.grant_id] ?? 0n) + x.amount_nanos;
    return totals;
  };

  test('debits take from the soonest-expiring grant first, then the oldest; split across grants when needed', () => {
    const grants = [
      sg('never', 10n, 1),
      sg('soon', 4n, 2, { expires_at: at(5) }),
      sg('later', 3n, 3, { expires_at: at(9) }),
    ];
    const entries = [
      funding(1, 10n),
      funding(2, 4n),
      funding(3, 3n),
      usage(4, 3n),
      usage(5, 5n),
      usage(6, 1n),
    ];
    expect(attributeDebits(grants, entries, [])).toEqual([
      d(4, 'soon', 3n),
      d(5, 'soon', 1n),
      d(5, 'later', 3n),
      d(5, 'never', 1n),
      d(6, 'never', 1n),
    ]);
  });

  test('a debit before a grant existed never consumes it', () => {
    const grants = [sg('old', 5n, 1), sg('new', 5n, 3, { expires_at: at(2) })];
    const entries = [funding(1, 5n), usage(2, 2n), funding(3, 5n), usage(4, 1n)];
    expect(attributeDebits(grants, entries, [])).toEqual([d(2, 'old', 2n), d(4, 'new', 1n)]);
  });

  test('debt (a debit beyond every grant) is paid by the next grant, attributed to the debit that made it', () => {
    const grants = [sg('a', 2n, 1), sg('b', 10n, 3)];
    const entries = [funding(1, 2n), usage(2, 5n), funding(3, 10n), usage(4, 1n)];
    expect(attributeDebits(grants, entries, [])).toEqual([d(2, 'a', 2n), d(2, 'b', 3n), d(4, 'b', 1n)]);
  });

  test('holds and releases consume nothing; a capture consumes its cost', () => {
    const grants = [sg('a', 10n, 1)];
    const entries = [
      funding(1, 10n),
      holdEntry(2, 'h1', 4n),
      { id: 3n, kind: 'release', ref: 'h1', owned_delta_nanos: 0n, held_delta_nanos: -4n },
      holdEntry(4, 'h2', 4n),
      captureEntry(5, 'h2', 4n, 6n),
    ];
    expect(attributeDebits(grants, entries, [])).toEqual([d(5, 'a', 6n)]);
  });

  test('write-offs take from the grant they name (the grant id, or its claim on a hold)', () => {
    const grants = [sg('a', 5n, 1, { expires_at: at(1), retired_after: 2 }), sg('b', 5n, 2)];
    const entries = [funding(1, 5n), funding(2, 5n), writeOff(3, 'expiry', 'a', 5n), usage(4, 2n)];
    expect(attributeDebits(grants, entries, [])).toEqual([d(3, 'a', 5n), d(4, 'b', 2n)]);
    expect(writeOffGrantId('gr_1/hold/au_2')).toBe('gr_1');
    expect(writeOffGrantId('gr_1')).toBe('gr_1');
  });

  test('a grant expired under a hold: the capture of that hold pays from it once, the rest is written off', () => {
    // promo 5 (expires first), never 10; hold h 3 open at expiry; 2 written off; then h captured for 1 (2 released
    // and written off); a later debit of 4 takes from `never` only.
    const grants = [sg('promo', 5n, 1, { expires_at: at(1), retired_after: 3 }), sg('never', 10n, 2)];
    const claims = [{ grant_id: 'promo', authorization_id: 'h', amount_nanos: 3n }];
    const entries = [
      funding(1, 5n),
      funding(2, 10n),
      holdEntry(3, 'h', 3n),
      writeOff(4, 'expiry', 'promo', 2n),
      usage(5, 4n),
      captureEntry(6, 'h', 3n, 1n),
      writeOff(7, 'expiry', 'promo/hold/h', 2n),
    ];
    const debits = attributeDebits(grants, entries, claims);
    expect(debits).toEqual([d(4, 'promo', 2n), d(5, 'never', 4n), d(6, 'promo', 1n), d(7, 'promo', 2n)]);
    expect(totalsOf(debits)).toEqual({ promo: 5n, never: 4n });
  });

  test('a capture beyond its hold pays the claims up to the hold, the excess from live credit', () => {
    const grants = [sg('promo', 5n, 1, { expires_at: at(1), retired_after: 3 }), sg('never', 10n, 2)];
    const claims = [{ grant_id: 'promo', authorization_id: 'h', amount_nanos: 3n }];
    const entries = [
      funding(1, 5n),
      funding(2, 10n),
      holdEntry(3, 'h', 3n),
      writeOff(4, 'expiry', 'promo', 2n),
      captureEntry(5, 'h', 3n, 7n),
    ];
    expect(attributeDebits(grants, entries, claims)).toEqual([
      d(4, 'promo', 2n),
      d(5, 'promo', 3n),
      d(5, 'never', 4n),
    ]);
  });

  test('captures of holds taken after a grant retired never pay from it', () => {
    const grants = [sg('promo', 5n, 1, { expires_at: at(1), retired_after: 3 }), sg('never', 10n, 2)];
    const claims = [{ grant_id: 'promo', authorization_id: 'h', amount_nanos: 3n }];
    const entries = [
      funding(1, 5n),
      funding(2, 10n),
      holdEntry(3, 'h', 3n),
      writeOff(4, 'expiry', 'promo', 2n),
      holdEntry(5, 'late', 4n),
      captureEntry(6, 'late', 4n, 4n),
    ];
    expect(attributeDebits(grants, entries, claims)).toEqual([d(4, 'promo', 2n), d(6, 'never', 4n)]);
  });

  test('conservation: with enough credit, every debit is attributed in full, and no grant gives more than its amount', () => {
    const grants = [
      sg('g1', 7n, 1, { expires_at: at(3) }),
      sg('g2', 5n, 2, { expires_at: at(2) }),
      sg('g3', 9n, 4),
    ];
    for (const costs of [[1n], [7n, 5n], [3n, 3n, 3n, 3n], [12n, 9n], [21n], [15n, 6n]]) {
      // Two grants, the first debit, the third grant (paying any debt), then the other debits.
      const entries: StatementEntry[] = [
        funding(1, 7n),
        funding(2, 5n),
        usage(3, costs[0]!),
        funding(4, 9n),
        ...costs.slice(1).map((cost, i) => usage(5 + i, cost)),
      ];
      const debits = attributeDebits(grants, entries, []);
      const totals = totalsOf(debits);
      for (const g of grants) expect((totals[g.id] ?? 0n) <= g.amount_nanos).toBe(true);
      expect(sum(debits.map((x) => x.amount_nanos))).toBe(sum(costs));
    }
  });
});
