/**
 * Unit tests for credit-grant rules: the consumption order, how unattributed consumption is allocated to
 * grants, and what expires when. Pure; no server needed.
 *
 * Amounts are bigint nanos (1e-9 USD). Small integers are used where the unit does not matter.
 */
import {
  allocateConsumption,
  applyAllocation,
  compareConsumptionOrder,
  isExpired,
  nextExpiry,
  planExpiry,
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
