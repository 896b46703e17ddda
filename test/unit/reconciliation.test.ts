/**
 * Unit tests for reconciliation's rules (billing/reconciliation.ts): which window a scheduled run checks, which
 * windows asked for by hand are refused, and what compareBooks calls a mismatch: only money that moved on one side
 * and not (or not as much) on the other; failed attempts and items still in flight are nobody's mismatch; pairs are
 * found by the gateway's id or the idempotency key, also across the window's edge. Pure.
 */
import { usd } from '../../billing/money';
import {
  compareBooks,
  gatewayListingWindow,
  type GatewayRecord,
  type OurRecord,
  scheduledWindow,
  windowProblem,
} from '../../billing/reconciliation';

const window = { from: new Date('2026-12-01T00:00:00Z'), to: new Date('2026-12-02T00:00:00Z') };
const noon = new Date('2026-12-01T12:00:00Z');

const ours = (overrides: Partial<OurRecord> = {}): OurRecord => ({
  id: 'pay_1',
  customer_id: 'cus_1',
  idempotency_key: 'top_up:tu_1',
  gateway_id: 'ch_1',
  amount_nanos: usd('10.00'),
  status: 'succeeded',
  created_at: noon,
  ...overrides,
});

const theirs = (overrides: Partial<GatewayRecord> = {}): GatewayRecord => ({
  id: 'ch_1',
  idempotency_key: 'top_up:tu_1',
  amount_cents: 1000,
  status: 'succeeded',
  created_at: noon,
  ...overrides,
});

const kinds = (our: OurRecord[], their: GatewayRecord[]) =>
  compareBooks('charge', window, our, their).mismatches.map((m) => m.kind);

test('a scheduled window is the interval plus the margin before the run, in whole seconds', () => {
  expect(scheduledWindow(new Date('2026-12-02T00:00:00.750Z'), 86_400_000, 3_600_000)).toEqual({
    from: new Date('2026-11-30T23:00:00Z'),
    to: new Date('2026-12-02T00:00:00Z'),
  });
});

test('a window asked for by hand is refused when unordered, longer than 93 days or in the future', () => {
  const now = new Date('2026-12-02T00:00:00Z');
  expect(windowProblem(window, now)).toBeNull();
  expect(windowProblem({ from: window.to, to: window.from }, now)).toMatch(/later than/);
  expect(windowProblem({ from: window.from, to: window.from }, now)).toMatch(/later than/);
  expect(
    windowProblem({ from: new Date(window.to.getTime() - 94 * 86_400_000), to: window.to }, now),
  ).toMatch(/93 days/);
  expect(windowProblem({ from: window.from, to: new Date(now.getTime() + 61_000) }, now)).toMatch(/future/);
});

test("the gateway is listed a day beyond the window's edges, never past now", () => {
  expect(gatewayListingWindow(window, new Date('2026-12-10T00:00:00Z'))).toEqual({
    from: new Date('2026-11-30T00:00:00Z'),
    to: new Date('2026-12-03T00:00:00Z'),
  });
  expect(gatewayListingWindow(window, new Date('2026-12-02T06:00:00Z')).to).toEqual(
    new Date('2026-12-02T06:00:01Z'),
  );
});

test('books that agree have no mismatch, and each item counts once as checked', () => {
  expect(compareBooks('charge', window, [ours()], [theirs()])).toEqual({ mismatches: [], checked: 1 });
  // Declined on both sides: no money moved anywhere.
  expect(kinds([ours({ status: 'failed' })], [theirs({ status: 'failed' })])).toEqual([]);
  expect(kinds([ours({ status: 'failed', gateway_id: null })], [])).toEqual([]);
});

test('money moved on one side only is missing on the other', () => {
  expect(kinds([], [theirs()])).toEqual(['missing_ours']);
  expect(kinds([ours()], [])).toEqual(['missing_at_gateway']);
  // A declined charge we never recorded moved no money.
  expect(kinds([], [theirs({ status: 'failed' })])).toEqual([]);
});

test('a pair is found by the idempotency key when our record has no gateway id', () => {
  expect(kinds([ours({ gateway_id: null })], [theirs()])).toEqual([]);
});

test('amounts are compared in the gateway unit, and statuses where one side says the money moved', () => {
  expect(kinds([ours()], [theirs({ amount_cents: 999 })])).toEqual(['amount_mismatch']);
  expect(kinds([ours({ status: 'failed' })], [theirs()])).toEqual(['status_mismatch']);
  expect(kinds([ours()], [theirs({ status: 'failed' })])).toEqual(['status_mismatch']);
});

test('an item in flight on one side is left for a later run, unless the gateway already refused it', () => {
  expect(kinds([ours({ status: 'pending' })], [theirs()])).toEqual([]);
  expect(kinds([ours()], [theirs({ status: 'pending' })])).toEqual([]);
  expect(kinds([ours({ status: 'failed' })], [theirs({ status: 'pending' })])).toEqual([]);
  expect(kinds([ours({ status: 'pending' })], [])).toEqual([]);
});

test('a refund of another charge than ours names is a charge mismatch', () => {
  const refund = compareBooks(
    'refund',
    window,
    [ours({ charge_id: 'ch_1' })],
    [theirs({ charge_id: 'ch_2' })],
  ).mismatches;
  expect(refund).toMatchObject([
    { subject: 'refund', kind: 'charge_mismatch', id: 'pay_1', gateway_id: 'ch_1' },
  ]);
});

test('a pair counts when either side is in the window; items outside it alone are not compared', () => {
  const before = new Date('2026-11-30T23:00:00Z');
  // Charged just before the window, recorded in it: compared (and here they disagree).
  expect(kinds([ours()], [theirs({ created_at: before, amount_cents: 1 })])).toEqual(['amount_mismatch']);
  // Charged in the window, recorded before it by clock skew: compared too.
  expect(kinds([ours({ created_at: before })], [theirs({ amount_cents: 1 })])).toEqual(['amount_mismatch']);
  // Both before: another window's business.
  expect(
    compareBooks('charge', window, [ours({ created_at: before })], [theirs({ created_at: before })]),
  ).toEqual({
    mismatches: [],
    checked: 0,
  });
  expect(kinds([], [theirs({ created_at: window.to })])).toEqual([]);
});

test('a mismatch says what each side holds, in USD', () => {
  const [mismatch] = compareBooks('charge', window, [ours()], [theirs({ amount_cents: 999 })]).mismatches;
  expect(mismatch).toEqual({
    subject: 'charge',
    kind: 'amount_mismatch',
    id: 'pay_1',
    gateway_id: 'ch_1',
    idempotency_key: 'top_up:tu_1',
    customer_id: 'cus_1',
    amount_usd: '10.000000000',
    gateway_amount_usd: '9.990000000',
    status: 'succeeded',
    gateway_status: 'succeeded',
    created_at: '2026-12-01T12:00:00.000Z',
    detail: "the charge's amount differs between our books and the gateway's",
  });
});
