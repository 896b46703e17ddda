/**
 * Unit tests for the account workflow's pure decisions: validation of top-ups and credit grants, the
 * command queue and its deduplication, the bookkeeping on completion, grant-expiry timers and run hand-over.
 * Pure; no Temporal server needed.
 */
import {
  QUEUE_LIMIT,
  WAKE_REASONS,
  wakeWork,
  RESULTS_KEPT,
  clearDueExpiries,
  completeCommand,
  enqueue,
  findResult,
  initialAccountState,
  isQueued,
  msUntilNextExpiry,
  nextRunState,
  setPaymentMethod,
  toView,
  validateCreditGrant,
  validateTopUp,
  type AccountState,
  type Command,
  type CommandResult,
  type CreditGrantRequest,
  type TopUpRequest,
  type TopUpResult,
  recordThresholdCrossing,
  acceptRequest,
  checkCommand,
  enqueuePending,
  INVALID_REQUEST_REFUSALS,
  noteClaimsSettleBy,
  noteGrantExpiry,
  noteRefusal,
  paidCreditValidity,
  rebuildState,
  refusedOutcome,
  type AccountSnapshot,
  isWellFormedCrossing,
  isWellFormedTopUpRequest,
  notePaymentSettled,
  parkCommand,
} from '../../billing/account';

const NOW_MS = Date.parse('2026-11-15T12:00:00.000Z');

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function topUpCommand(id: string, amount_usd = '20.00'): Command {
  return { kind: 'top_up', id, request: { top_up_id: id, amount_usd }, payment_method: 'pm_card_visa' };
}

function grantCommand(id: string, expires_at: string | null = null): Command {
  return {
    kind: 'grant_credit',
    id,
    request: { grant_id: id, amount_usd: '5.00', source: 'promotion', reason: 'launch', expires_at },
  };
}

function topUpOutcome(
  top_up_id: string,
  status: TopUpResult['status'],
  amount_usd: string,
): Extract<CommandResult, { kind: 'top_up' }> {
  return {
    kind: 'top_up',
    result: {
      top_up_id,
      status,
      amount_usd,
      grant_id: status === 'succeeded' ? `grant_${top_up_id}` : null,
      failure_code: status === 'failed' ? 'card_declined' : null,
      decline_code: status === 'failed' ? 'insufficient_funds' : null,
      failure_message: status === 'failed' ? 'Your card has insufficient funds.' : null,
    },
  };
}

function grantOutcome(
  grant_id: string,
  expires_at: string | null,
): Extract<CommandResult, { kind: 'grant_credit' }> {
  return { kind: 'grant_credit', result: { grant_id, amount_usd: '5.000000000', expires_at } };
}

function withCard(): AccountState {
  return setPaymentMethod(initialAccountState('cus_1'), { payment_method: 'pm_card_visa' });
}

/** A state with `count` commands already queued (ids q0, q1, ...). */
function withQueued(state: AccountState, count: number): AccountState {
  let next = state;
  for (let i = 0; i < count; i++) next = enqueue(next, topUpCommand(`q${i}`));
  return next;
}

/** Enqueues a command and completes it with `outcome`, as the workflow does. */
function run(state: AccountState, command: Command, outcome: CommandResult): AccountState {
  return completeCommand(enqueue(state, command), outcome);
}

function topUp(id: string, amount_usd: string): TopUpRequest {
  return { top_up_id: id, amount_usd };
}

function creditGrant(id: string, expires_at: string | null, amount_usd = '5.00'): CreditGrantRequest {
  return { grant_id: id, amount_usd, source: 'goodwill', reason: 'outage', expires_at };
}

describe('initialAccountState', () => {
  test('a new account is active, has no card, no work, no history, zero totals, and is in run 1', () => {
    expect(initialAccountState('cus_acme')).toEqual({
      customer_id: 'cus_acme',
      status: 'active',
      payment_method: null,
      queue: [],
      results: [],
      grant_expiries: [],
      lifetime_top_ups_usd: '0.000000000',
      top_ups_succeeded: 0,
      top_ups_failed: 0,
      run_number: 1,
      last_crossing: null,
      threshold_crossings: 0,
      refusals: 0,
      last_refusal: null,
      backlog: false,
      auto_recharge: null,
      crossing_events: [],
    });
  });

  test('each call returns fresh arrays, so two accounts never share state', () => {
    const a = initialAccountState('a');
    const b = initialAccountState('b');
    expect(a.queue).not.toBe(b.queue);
    expect(a.results).not.toBe(b.results);
    expect(a.grant_expiries).not.toBe(b.grant_expiries);
  });
});

describe('setPaymentMethod', () => {
  test('sets or replaces the card without touching the rest, and leaves the old state as it was', () => {
    const before = initialAccountState('cus_1');
    const after = setPaymentMethod(before, { payment_method: 'pm_1' });
    expect(after).toEqual({ ...before, payment_method: 'pm_1' });
    expect(before.payment_method).toBeNull();
    expect(setPaymentMethod(after, { payment_method: 'pm_2' }).payment_method).toBe('pm_2');
  });
});

describe('validateTopUp', () => {
  test('a positive whole-cent amount with a card on file and room in the queue is accepted', () => {
    expect(validateTopUp(withCard(), topUp('t1', '20.00'))).toBeNull();
    expect(validateTopUp(withCard(), topUp('t1', '0.01'))).toBeNull();
    expect(validateTopUp(withCard(), topUp('t1', '20.000000000'))).toBeNull();
  });

  test('refused without a payment method, even for a valid amount', () => {
    expect(validateTopUp(initialAccountState('cus_1'), topUp('t1', '20.00'))).toEqual({
      code: 'no_payment_method',
      message: 'the customer has no payment method on file',
    });
  });

  test('the missing payment method is reported before a bad amount', () => {
    expect(validateTopUp(initialAccountState('cus_1'), topUp('t1', 'abc'))?.code).toBe('no_payment_method');
  });

  test.each([
    ['0'],
    ['0.00'],
    ['-5.00'],
    ['0.001'],
    ['20.005'],
    ['0.000000001'],
    ['abc'],
    [''],
    ['1e3'],
    ['20.0000000001'],
    ['9223372036.86'], // Whole cents, but above MAX_NANOS.
    ['9999999999.99'],
  ])('refuses the amount %p as invalid', (amount) => {
    expect(validateTopUp(withCard(), topUp('t1', amount))).toEqual({
      code: 'invalid_amount',
      message: 'a top-up must be a positive amount of whole cents',
    });
  });

  test('accepted with QUEUE_LIMIT - 1 queued, refused with QUEUE_LIMIT queued', () => {
    expect(validateTopUp(withQueued(withCard(), QUEUE_LIMIT - 1), topUp('new', '1.00'))).toBeNull();
    expect(validateTopUp(withQueued(withCard(), QUEUE_LIMIT), topUp('new', '1.00'))).toEqual({
      code: 'queue_full',
      message: `the account already has ${QUEUE_LIMIT} operations in progress`,
    });
  });

  test('a retry of a queued id is accepted even when the queue is full', () => {
    const full = withQueued(withCard(), QUEUE_LIMIT);
    expect(validateTopUp(full, topUp('q7', '20.00'))).toBeNull();
  });

  test('a retry of an answered id is accepted even without a card and with any amount (the first answer wins)', () => {
    const answered = run(withCard(), topUpCommand('t1'), topUpOutcome('t1', 'succeeded', '20.000000000'));
    const noCard = { ...answered, payment_method: null };
    expect(validateTopUp(noCard, topUp('t1', 'abc'))).toBeNull();
    // A different id on the same state is still validated.
    expect(validateTopUp(noCard, topUp('t2', '20.00'))?.code).toBe('no_payment_method');
  });
});

describe('validateCreditGrant', () => {
  const state = initialAccountState('cus_1');

  test('a grant that never expires is accepted, without a payment method', () => {
    expect(validateCreditGrant(state, creditGrant('g1', null), NOW_MS)).toBeNull();
  });

  test('a grant expiring in the future (even one ms from now) is accepted', () => {
    expect(validateCreditGrant(state, creditGrant('g1', iso(NOW_MS + 1)), NOW_MS)).toBeNull();
    expect(validateCreditGrant(state, creditGrant('g1', '2027-11-15T12:00:00Z'), NOW_MS)).toBeNull();
  });

  test.each([
    ['exactly now', iso(NOW_MS)],
    ['one ms ago', iso(NOW_MS - 1)],
    ['a year ago', '2025-11-15T12:00:00Z'],
    ['not a date', 'next tuesday'],
    ['empty', ''],
  ])('an expiry %s is refused', (_label, expires_at) => {
    expect(validateCreditGrant(state, creditGrant('g1', expires_at), NOW_MS)).toEqual({
      code: 'invalid_expiry',
      message: 'expires_at must be a time in the future',
    });
  });

  test.each([['0'], ['-1'], ['abc'], ['1.0000000001'], ['9223372036.854775808'], ['9999999999.999999999']])(
    'the amount %p is refused',
    (amount) => {
      expect(validateCreditGrant(state, creditGrant('g1', null, amount), NOW_MS)).toEqual({
        code: 'invalid_amount',
        message: 'a grant must be positive',
      });
    },
  );

  test('the largest grant the ledger can hold (MAX_NANOS) is accepted', () => {
    expect(validateCreditGrant(state, creditGrant('g1', null, '9223372036.854775807'), NOW_MS)).toBeNull();
  });

  test('a sub-cent grant is accepted (grants are not card charges)', () => {
    expect(validateCreditGrant(state, creditGrant('g1', null, '0.000000001'), NOW_MS)).toBeNull();
  });

  test('refused with QUEUE_LIMIT queued, accepted with one fewer', () => {
    expect(
      validateCreditGrant(withQueued(state, QUEUE_LIMIT - 1), creditGrant('g1', null), NOW_MS),
    ).toBeNull();
    expect(validateCreditGrant(withQueued(state, QUEUE_LIMIT), creditGrant('g1', null), NOW_MS)?.code).toBe(
      'queue_full',
    );
  });

  test('a retry of a queued or answered grant is accepted even if its expiry has since passed', () => {
    const expires_at = iso(NOW_MS + 1000);
    const queued = enqueue(state, grantCommand('g1', expires_at));
    expect(validateCreditGrant(queued, creditGrant('g1', expires_at), NOW_MS + 5000)).toBeNull();
    const answered = completeCommand(queued, grantOutcome('g1', expires_at));
    expect(validateCreditGrant(answered, creditGrant('g1', expires_at), NOW_MS + 5000)).toBeNull();
    expect(validateCreditGrant(answered, creditGrant('g2', expires_at), NOW_MS + 5000)?.code).toBe(
      'invalid_expiry',
    );
  });
});

describe('enqueue', () => {
  test('appends a new command at the tail without modifying the previous state', () => {
    const s0 = withCard();
    const s1 = enqueue(s0, topUpCommand('a'));
    const s2 = enqueue(s1, grantCommand('b'));
    expect(s2.queue.map((c) => c.id)).toEqual(['a', 'b']);
    expect(s1.queue.map((c) => c.id)).toEqual(['a']);
    expect(s0.queue).toEqual([]);
    expect(isQueued(s2, 'a')).toBe(true);
    expect(isQueued(s2, 'c')).toBe(false);
  });

  test('the same id already queued leaves the state unchanged (same object)', () => {
    const s1 = enqueue(withCard(), topUpCommand('a', '20.00'));
    expect(enqueue(s1, topUpCommand('a', '99.00'))).toBe(s1);
  });

  test('the same id already answered leaves the state unchanged (same object), so it never runs twice', () => {
    const answered = run(withCard(), topUpCommand('a'), topUpOutcome('a', 'failed', '20.000000000'));
    expect(answered.queue).toEqual([]);
    expect(enqueue(answered, topUpCommand('a'))).toBe(answered);
  });

  test('dedup is by id across kinds: a grant with a queued top-up id is not queued', () => {
    const s1 = enqueue(withCard(), topUpCommand('x'));
    expect(enqueue(s1, grantCommand('x'))).toBe(s1);
  });
});

describe('completeCommand', () => {
  test('removes the head, records its outcome under the head id, and leaves the previous state as it was', () => {
    const s = enqueue(enqueue(withCard(), topUpCommand('a')), topUpCommand('b'));
    const outcome = topUpOutcome('a', 'succeeded', '20.000000000');
    const next = completeCommand(s, outcome);
    expect(next.queue.map((c) => c.id)).toEqual(['b']);
    expect(next.results).toEqual([{ id: 'a', result: outcome }]);
    expect(findResult(next, 'a')).toEqual(outcome);
    expect(findResult(next, 'b')).toBeUndefined();
    expect(s.queue.map((c) => c.id)).toEqual(['a', 'b']);
    expect(s.results).toEqual([]);
  });

  test('throws on an empty queue', () => {
    expect(() => completeCommand(withCard(), topUpOutcome('a', 'succeeded', '1.000000000'))).toThrow(
      'completed a command that is not at the head of the queue',
    );
  });

  test('throws when the outcome kind differs from the head kind', () => {
    const topUpHead = enqueue(withCard(), topUpCommand('a'));
    expect(() => completeCommand(topUpHead, grantOutcome('a', null))).toThrow('not at the head of the queue');
    const grantHead = enqueue(withCard(), grantCommand('g'));
    expect(() => completeCommand(grantHead, topUpOutcome('g', 'succeeded', '1.000000000'))).toThrow(
      'not at the head of the queue',
    );
  });

  test('throws when the outcome id is not the head id, even when the kind matches and the id is queued', () => {
    const topUps = enqueue(enqueue(withCard(), topUpCommand('a')), topUpCommand('b'));
    expect(() => completeCommand(topUps, topUpOutcome('b', 'succeeded', '20.000000000'))).toThrow(
      'not at the head of the queue',
    );
    expect(() => completeCommand(topUps, topUpOutcome('z', 'failed', '20.000000000'))).toThrow(
      'not at the head of the queue',
    );
    const grants = enqueue(enqueue(withCard(), grantCommand('g1')), grantCommand('g2'));
    expect(() => completeCommand(grants, grantOutcome('g2', null))).toThrow('not at the head of the queue');
    expect(() => completeCommand(grants, grantOutcome('z', null))).toThrow('not at the head of the queue');
    // The state is untouched, and the head's own outcome is still accepted afterwards.
    expect(topUps.queue.map((c) => c.id)).toEqual(['a', 'b']);
    expect(
      completeCommand(topUps, topUpOutcome('a', 'succeeded', '20.000000000')).queue.map((c) => c.id),
    ).toEqual(['b']);
    expect(completeCommand(grants, grantOutcome('g1', null)).queue.map((c) => c.id)).toEqual(['g2']);
  });

  test('a top-up outcome is matched by its top_up_id, not by the id of the grant it created', () => {
    const s = enqueue(withCard(), topUpCommand('a'));
    const mismatched = topUpOutcome('x', 'succeeded', '20.000000000');
    const outcome = { ...mismatched, result: { ...mismatched.result, grant_id: 'a' } };
    expect(() => completeCommand(s, outcome)).toThrow('not at the head of the queue');
  });

  test(`keeps only the newest ${RESULTS_KEPT} results, oldest first`, () => {
    let s = withCard();
    const total = RESULTS_KEPT + 5;
    for (let i = 0; i < total; i++) s = run(s, grantCommand(`g${i}`), grantOutcome(`g${i}`, null));
    expect(s.results).toHaveLength(RESULTS_KEPT);
    expect(s.results[0]?.id).toBe('g5');
    expect(s.results[RESULTS_KEPT - 1]?.id).toBe(`g${total - 1}`);
    expect(findResult(s, 'g4')).toBeUndefined();
    expect(findResult(s, 'g5')).toBeDefined();
  });

  test(`exactly ${RESULTS_KEPT} results are all kept`, () => {
    let s = withCard();
    for (let i = 0; i < RESULTS_KEPT; i++) s = run(s, grantCommand(`g${i}`), grantOutcome(`g${i}`, null));
    expect(s.results).toHaveLength(RESULTS_KEPT);
    expect(s.results[0]?.id).toBe('g0');
  });

  test('lifetime top-ups sum only succeeded top-ups, exactly, and the counters count each status', () => {
    let s = withCard();
    s = run(s, topUpCommand('a'), topUpOutcome('a', 'succeeded', '0.100000000'));
    s = run(s, topUpCommand('b'), topUpOutcome('b', 'failed', '500.000000000'));
    s = run(s, topUpCommand('c'), topUpOutcome('c', 'succeeded', '0.200000000'));
    s = run(s, topUpCommand('d'), topUpOutcome('d', 'succeeded', '9999.990000000'));
    s = run(s, topUpCommand('e'), topUpOutcome('e', 'failed', '0.010000000'));
    // 0.10 + 0.20 + 9999.99 = 10000.29 (no float drift: 0.1 + 0.2 is exactly 0.3 here).
    expect(s.lifetime_top_ups_usd).toBe('10000.290000000');
    expect(s.top_ups_succeeded).toBe(3);
    expect(s.top_ups_failed).toBe(2);
  });

  test('a failed top-up leaves the lifetime total exactly as it was', () => {
    const s = run(withCard(), topUpCommand('a'), topUpOutcome('a', 'succeeded', '20.000000000'));
    const after = run(s, topUpCommand('b'), topUpOutcome('b', 'failed', '30.000000000'));
    expect(after.lifetime_top_ups_usd).toBe(s.lifetime_top_ups_usd);
    expect(after.top_ups_succeeded).toBe(1);
    expect(after.top_ups_failed).toBe(1);
  });

  test('sums large amounts to the nano', () => {
    let s = withCard();
    s = run(s, topUpCommand('a'), topUpOutcome('a', 'succeeded', '4999999999.999999999'));
    s = run(s, topUpCommand('b'), topUpOutcome('b', 'succeeded', '0.000000001'));
    expect(s.lifetime_top_ups_usd).toBe('5000000000.000000000');
  });

  test('a top-up total above MAX_NANOS still sums exactly (workflow totals are not a ledger column)', () => {
    let s = withCard();
    s = run(s, topUpCommand('a'), topUpOutcome('a', 'succeeded', '9223372036.854775807'));
    s = run(s, topUpCommand('b'), topUpOutcome('b', 'succeeded', '0.000000001'));
    expect(s.lifetime_top_ups_usd).toBe('9223372036.854775808');
    s = run(s, topUpCommand('c'), topUpOutcome('c', 'succeeded', '1.000000000'));
    expect(s.lifetime_top_ups_usd).toBe('9223372037.854775808');
  });

  test.each([['20,00'], ['20.00'], ['20'], ['10.00'], [''], ['-'], ['+1.000000000'], ['1.0000000000']])(
    'a top-up outcome whose amount %p is not formatUsd output throws rather than corrupting the total',
    (amount) => {
      const s = enqueue(withCard(), topUpCommand('a'));
      expect(() => completeCommand(s, topUpOutcome('a', 'succeeded', amount))).toThrow(
        `not a formatted USD amount: ${JSON.stringify(amount)}`,
      );
      expect(() => completeCommand(s, topUpOutcome('a', 'failed', amount))).toThrow(
        `not a formatted USD amount: ${JSON.stringify(amount)}`,
      );
    },
  );

  test.each([['lots'], ['10.00'], ['0'], ['']])('a corrupt lifetime total %p throws', (lifetime) => {
    const s = { ...enqueue(withCard(), topUpCommand('a')), lifetime_top_ups_usd: lifetime };
    expect(() => completeCommand(s, topUpOutcome('a', 'succeeded', '1.000000000'))).toThrow(
      `not a formatted USD amount: ${JSON.stringify(lifetime)}`,
    );
  });

  test('a grant completion leaves the top-up total and counters alone', () => {
    const s = run(withCard(), topUpCommand('a'), topUpOutcome('a', 'succeeded', '20.000000000'));
    const after = run(s, grantCommand('g'), grantOutcome('g', null));
    expect(after.lifetime_top_ups_usd).toBe('20.000000000');
    expect(after.top_ups_succeeded).toBe(1);
    expect(after.top_ups_failed).toBe(0);
  });

  test('records an expiry only for a grant that expires, in completion order', () => {
    const e1 = iso(NOW_MS + 10_000);
    const e2 = iso(NOW_MS + 5_000);
    let s = withCard();
    s = run(s, grantCommand('g1', e1), grantOutcome('g1', e1));
    s = run(s, grantCommand('g2', null), grantOutcome('g2', null));
    s = run(s, topUpCommand('t'), topUpOutcome('t', 'succeeded', '1.000000000'));
    s = run(s, grantCommand('g3', e2), grantOutcome('g3', e2));
    expect(s.grant_expiries).toEqual([
      { grant_id: 'g1', expires_at: e1 },
      { grant_id: 'g3', expires_at: e2 },
    ]);
  });
});

describe('msUntilNextExpiry', () => {
  function withExpiries(...expiries_ms: number[]): AccountState {
    return {
      ...initialAccountState('cus_1'),
      grant_expiries: expiries_ms.map((ms, i) => ({ grant_id: `g${i}`, expires_at: iso(ms) })),
    };
  }

  test('undefined when nothing expires', () => {
    expect(msUntilNextExpiry(initialAccountState('cus_1'), NOW_MS)).toBeUndefined();
  });

  test('the time until the soonest expiry, whatever the order', () => {
    expect(msUntilNextExpiry(withExpiries(NOW_MS + 9000, NOW_MS + 3000, NOW_MS + 6000), NOW_MS)).toBe(3000);
    expect(msUntilNextExpiry(withExpiries(NOW_MS + 3000, NOW_MS + 9000), NOW_MS)).toBe(3000);
  });

  test('0 when an expiry is exactly now or already past (due now, never negative)', () => {
    expect(msUntilNextExpiry(withExpiries(NOW_MS), NOW_MS)).toBe(0);
    expect(msUntilNextExpiry(withExpiries(NOW_MS - 60_000, NOW_MS + 3000), NOW_MS)).toBe(0);
  });

  test('one ms before the expiry, it is 1 ms away', () => {
    expect(msUntilNextExpiry(withExpiries(NOW_MS + 1), NOW_MS)).toBe(1);
  });
});

describe('clearDueExpiries', () => {
  test('forgets expiries at or before now and keeps later ones in order', () => {
    const state: AccountState = {
      ...initialAccountState('cus_1'),
      grant_expiries: [
        { grant_id: 'later', expires_at: iso(NOW_MS + 2) },
        { grant_id: 'past', expires_at: iso(NOW_MS - 1) },
        { grant_id: 'now', expires_at: iso(NOW_MS) },
        { grant_id: 'next-ms', expires_at: iso(NOW_MS + 1) },
      ],
    };
    const cleared = clearDueExpiries(state, NOW_MS);
    expect(cleared.grant_expiries.map((e) => e.grant_id)).toEqual(['later', 'next-ms']);
    expect(state.grant_expiries).toHaveLength(4);
    expect(msUntilNextExpiry(cleared, NOW_MS)).toBe(1);
  });

  test('with nothing due, the expiries are kept', () => {
    const state: AccountState = {
      ...initialAccountState('cus_1'),
      grant_expiries: [{ grant_id: 'g', expires_at: iso(NOW_MS + 1) }],
    };
    expect(clearDueExpiries(state, NOW_MS)).toEqual(state);
  });

  test('everything else in the state is kept', () => {
    const state: AccountState = {
      ...withQueued(withCard(), 2),
      grant_expiries: [{ grant_id: 'g', expires_at: iso(NOW_MS) }],
    };
    expect(clearDueExpiries(state, NOW_MS)).toEqual({ ...state, grant_expiries: [] });
  });
});

describe('nextRunState', () => {
  test('increments run_number and keeps everything else (queue, results, expiries, totals)', () => {
    const expiry = iso(NOW_MS + 1000);
    let s = withCard();
    s = run(s, topUpCommand('t'), topUpOutcome('t', 'succeeded', '20.000000000'));
    s = run(s, grantCommand('g', expiry), grantOutcome('g', expiry));
    s = enqueue(s, topUpCommand('pending'));
    const next = nextRunState(s);
    expect(next).toEqual({ ...s, run_number: 2 });
    expect(nextRunState(next).run_number).toBe(3);
    expect(s.run_number).toBe(1);
  });
});

describe('toView', () => {
  test('hides the results, reports how many there are, and keeps every other field', () => {
    let s = withCard();
    s = run(s, topUpCommand('a'), topUpOutcome('a', 'succeeded', '20.000000000'));
    s = run(s, topUpCommand('b'), topUpOutcome('b', 'failed', '20.000000000'));
    s = enqueue(s, grantCommand('g'));
    const view = toView(s);
    expect(view).not.toHaveProperty('results');
    const { results: _results, ...rest } = s;
    expect(view).toEqual({ ...rest, recent_results: 2 });
  });

  test('a new account shows zero recent results', () => {
    expect(toView(initialAccountState('cus_1')).recent_results).toBe(0);
  });
});

describe('recordThresholdCrossing', () => {
  const crossing = (id: string) => ({
    crossing_id: id,
    threshold_usd: '5.000000000',
    balance_usd: '4.990000000',
    crossed_at: '2026-11-25T12:00:00.000Z',
  });

  test('a new crossing is recorded and counted', () => {
    const next = recordThresholdCrossing(initialAccountState('c'), crossing('7'));
    expect(next.last_crossing).toEqual(crossing('7'));
    expect(next.threshold_crossings).toBe(1);
  });

  test('a redelivered or older crossing leaves the state unchanged (ids compare as integers, not text)', () => {
    const once = recordThresholdCrossing(initialAccountState('c'), crossing('10'));
    expect(recordThresholdCrossing(once, crossing('10'))).toBe(once);
    expect(recordThresholdCrossing(once, crossing('9'))).toBe(once);
    expect(recordThresholdCrossing(once, crossing('11')).threshold_crossings).toBe(2);
  });

  test('state carried from a run that predates crossings starts counting from zero', () => {
    const { last_crossing: _l, threshold_crossings: _t, ...old } = initialAccountState('c');
    expect(recordThresholdCrossing(old, crossing('1')).threshold_crossings).toBe(1);
  });
});

/** A request as it arrives by signal: no card of its own (the charge step reads the card on file). */
function signalledTopUp(id: string, amount_usd = '20.00'): Command {
  return { kind: 'top_up', id, request: { top_up_id: id, amount_usd } };
}

function signalledGrant(id: string, expires_at: string | null, accepted_at = iso(NOW_MS)): Command {
  return { ...grantCommand(id, expires_at), accepted_at } as Command;
}

describe('refusals: a command refused is finished, counted and remembered, never retried', () => {
  test('a refused top-up leaves the queue, counts as a failed top-up and as a refusal, and answers retries', () => {
    const state = enqueue(enqueue(withCard(), topUpCommand('t1')), topUpCommand('t2'));
    const refusal = { code: 'invalid_data', message: 'invalid byte sequence' };
    const next = completeCommand(state, refusedOutcome(topUpCommand('t1'), refusal));
    expect(next.queue.map((c) => c.id)).toEqual(['t2']);
    expect(next.top_ups_failed).toBe(1);
    expect(next.top_ups_succeeded).toBe(0);
    expect(next.lifetime_top_ups_usd).toBe('0.000000000');
    expect(next.refusals).toBe(1);
    expect(findResult(next, 't1')).toEqual({ kind: 'refused', id: 't1', command_kind: 'top_up', refusal });
    // A retry of the same id is answered, not queued again.
    expect(enqueue(next, topUpCommand('t1'))).toBe(next);
    expect(acceptRequest(next, signalledTopUp('t1'))).toBe(next);
  });

  test('a refused grant adds no expiry timer and no failed top-up', () => {
    const state = enqueue(withCard(), grantCommand('g1', iso(NOW_MS + 60_000)));
    const next = completeCommand(
      state,
      refusedOutcome(grantCommand('g1'), { code: 'constraint_violation', message: 'x' }),
    );
    expect(next.grant_expiries).toEqual([]);
    expect(next.top_ups_failed).toBe(0);
    expect(next.refusals).toBe(1);
  });

  test('a refusal must match the head of the queue, by id and by kind', () => {
    const state = enqueue(withCard(), topUpCommand('t1'));
    expect(() =>
      completeCommand(state, refusedOutcome(grantCommand('t1'), { code: 'x', message: 'x' })),
    ).toThrow();
    expect(() =>
      completeCommand(state, refusedOutcome(topUpCommand('t2'), { code: 'x', message: 'x' })),
    ).toThrow();
  });

  test('state carried from an older run (no refusal fields) counts from zero', () => {
    const { refusals: _r, last_refusal: _l, backlog: _b, ...old } = enqueue(withCard(), topUpCommand('t1'));
    expect(
      completeCommand(old, refusedOutcome(topUpCommand('t1'), { code: 'x', message: 'x' })).refusals,
    ).toBe(1);
  });

  test('noteRefusal remembers only the latest, with when and what', () => {
    const first = noteRefusal(
      withCard(),
      grantCommand('g1'),
      { code: 'invalid_data', message: 'nul' },
      iso(NOW_MS),
    );
    const second = noteRefusal(
      first,
      topUpCommand('t9'),
      { code: 'payment_refused', message: 'no' },
      iso(NOW_MS + 1),
    );
    expect(second.last_refusal).toEqual({
      id: 't9',
      command_kind: 'top_up',
      code: 'payment_refused',
      message: 'no',
      at: iso(NOW_MS + 1),
    });
  });

  test('malformed-request refusals are told apart from conflicts', () => {
    for (const code of ['invalid_amount', 'invalid_expiry', 'invalid_data', 'constraint_violation']) {
      expect(INVALID_REQUEST_REFUSALS.has(code)).toBe(true);
    }
    for (const code of ['no_payment_method', 'queue_full', 'payment_refused', 'conflict', 'not_found']) {
      expect(INVALID_REQUEST_REFUSALS.has(code)).toBe(false);
    }
  });
});

describe("checkCommand: the account's rules at the head of the queue", () => {
  test.each([
    ['20.00', null],
    ['0.01', null],
    ['0', 'invalid_amount'],
    ['-1.00', 'invalid_amount'],
    ['1.001', 'invalid_amount'],
    ['abc', 'invalid_amount'],
  ])('a top-up of %s -> %s', (amount, code) => {
    expect(checkCommand(signalledTopUp('t', amount))?.code ?? null).toBe(code);
  });

  test('a top-up without a card of its own is not refused here: the charge step reads the card on file', () => {
    expect(checkCommand(signalledTopUp('t'))).toBeNull();
  });

  test.each([
    ['5.00', null, null],
    ['0.000000001', null, null],
    ['0', null, 'invalid_amount'],
    ['5.00', NOW_MS + 1, null],
    ['5.00', NOW_MS, 'invalid_expiry'],
    ['5.00', NOW_MS - 1, 'invalid_expiry'],
  ])('a grant of %s expiring at %s (accepted at NOW) -> %s', (amount, expires_ms, code) => {
    const command = {
      ...signalledGrant('g', expires_ms === null ? null : iso(expires_ms)),
      request: { ...creditGrant('g', expires_ms === null ? null : iso(expires_ms), amount) },
    } as Command;
    expect(checkCommand(command)?.code ?? null).toBe(code);
  });

  test('an unparseable expiry is refused; one carried from an older run without accepted_at is not compared', () => {
    expect(checkCommand(signalledGrant('g', 'not a date'))?.code).toBe('invalid_expiry');
    expect(checkCommand(grantCommand('g', iso(NOW_MS - 1)))).toBeNull();
  });
});

describe('acceptRequest and enqueuePending: the queue is a bounded cache of the requests in PostgreSQL', () => {
  test('a signalled request is queued once; a duplicate (queued or answered) changes nothing', () => {
    const once = acceptRequest(withCard(), signalledTopUp('t1'));
    expect(once.queue.map((c) => c.id)).toEqual(['t1']);
    expect(acceptRequest(once, signalledTopUp('t1'))).toBe(once);
  });

  test('past QUEUE_LIMIT a request is left in the database and the backlog flag is set, never refused', () => {
    const full = withQueued(withCard(), QUEUE_LIMIT);
    const next = acceptRequest(full, signalledTopUp('late'));
    expect(next.queue).toHaveLength(QUEUE_LIMIT);
    expect(next.backlog).toBe(true);
    expect(findResult(next, 'late')).toBeUndefined();
  });

  test('pending requests read back are queued in order, skipping queued and answered ids; a full page keeps the flag', () => {
    let state = run(withCard(), topUpCommand('done'), topUpOutcome('done', 'succeeded', '20.000000000'));
    state = { ...acceptRequest(state, signalledTopUp('queued')), backlog: true };
    const next = enqueuePending(state, {
      commands: [
        signalledTopUp('done'),
        signalledTopUp('queued'),
        signalledTopUp('a'),
        signalledGrant('b', null),
      ],
      more: false,
    });
    expect(next.queue.map((c) => c.id)).toEqual(['queued', 'a', 'b']);
    expect(next.backlog).toBe(false);
    expect(enqueuePending(state, { commands: [], more: true }).backlog).toBe(true);
  });
});

describe('rebuildState: a run without carried state rebuilds its cache from PostgreSQL', () => {
  const snapshot = (over: Partial<AccountSnapshot> = {}): AccountSnapshot => ({
    payment_method: 'pm_card_visa',
    grant_expiries: [{ grant_id: 'g1', expires_at: iso(NOW_MS + 60_000) }],
    lifetime_top_ups_usd: '30.000000000',
    top_ups_succeeded: 2,
    top_ups_failed: 1,
    last_crossing: {
      crossing_id: '5',
      threshold_usd: '1.000000000',
      balance_usd: '0.500000000',
      crossed_at: iso(NOW_MS),
    },
    threshold_crossings: 3,
    pending: { commands: [], more: false },
    ...over,
  });

  test('card, expiries, counters and the latest crossing come from the database', () => {
    const rebuilt = rebuildState(initialAccountState('cus_1'), snapshot());
    expect(rebuilt).toMatchObject({
      payment_method: 'pm_card_visa',
      grant_expiries: [{ grant_id: 'g1', expires_at: iso(NOW_MS + 60_000) }],
      lifetime_top_ups_usd: '30.000000000',
      top_ups_succeeded: 2,
      top_ups_failed: 1,
      threshold_crossings: 3,
      backlog: false,
      queue: [],
      run_number: 1,
    });
    expect(rebuilt.last_crossing?.crossing_id).toBe('5');
    expect(msUntilNextExpiry(rebuilt, NOW_MS)).toBe(60_000);
  });

  test('pending requests run first (they are older), then those signalled to this run, each once', () => {
    const arrived = acceptRequest(
      acceptRequest(initialAccountState('cus_1'), signalledTopUp('p2')),
      signalledTopUp('new'),
    );
    const rebuilt = rebuildState(
      arrived,
      snapshot({ pending: { commands: [signalledTopUp('p1'), signalledTopUp('p2')], more: true } }),
    );
    expect(rebuilt.queue.map((c) => c.id)).toEqual(['p1', 'p2', 'new']);
    expect(rebuilt.backlog).toBe(true);
  });

  test('what this run learned before the snapshot arrived wins: a card saved now, a newer crossing', () => {
    let arrived = setPaymentMethod(initialAccountState('cus_1'), { payment_method: 'pm_card_mastercard' });
    arrived = recordThresholdCrossing(arrived, {
      crossing_id: '9',
      threshold_usd: '1.000000000',
      balance_usd: '0.100000000',
      crossed_at: iso(NOW_MS),
    });
    const rebuilt = rebuildState(arrived, snapshot());
    expect(rebuilt.payment_method).toBe('pm_card_mastercard');
    expect(rebuilt.last_crossing?.crossing_id).toBe('9');
    expect(rebuilt.threshold_crossings).toBe(3);
  });

  test('an empty account (no card, nothing recorded) rebuilds to the initial state', () => {
    const empty = snapshot({
      payment_method: null,
      grant_expiries: [],
      lifetime_top_ups_usd: '0.000000000',
      top_ups_succeeded: 0,
      top_ups_failed: 0,
      last_crossing: null,
      threshold_crossings: 0,
    });
    expect(rebuildState(initialAccountState('cus_1'), empty)).toEqual(initialAccountState('cus_1'));
  });

  test('a redelivered top-up already settled in the database is not counted twice', () => {
    const state = rebuildState(acceptRequest(initialAccountState('cus_1'), signalledTopUp('t1')), snapshot());
    const settled = topUpOutcome('t1', 'succeeded', '20.000000000');
    const next = completeCommand(state, { ...settled, already_settled: true });
    expect(next.top_ups_succeeded).toBe(2);
    expect(next.lifetime_top_ups_usd).toBe('30.000000000');
    expect(next.queue).toEqual([]);
  });
});

describe('paid credit expiry in the account state', () => {
  const withExpiry = (
    outcome: Extract<CommandResult, { kind: 'top_up' }>,
    grant_expires_at: string | null | undefined,
  ): Extract<CommandResult, { kind: 'top_up' }> => ({
    ...outcome,
    result: { ...outcome.result, grant_expires_at },
  });

  test('a succeeded top-up whose credit expires adds its expiry, so the account wakes for it', () => {
    const at = iso(NOW_MS + 1_000);
    const state = enqueue(initialAccountState('c'), topUpCommand('t1'));
    const next = completeCommand(state, withExpiry(topUpOutcome('t1', 'succeeded', '20.000000000'), at));
    expect(next.grant_expiries).toEqual([{ grant_id: 'grant_t1', expires_at: at }]);
    expect(msUntilNextExpiry(next, NOW_MS)).toBe(1_000);
  });

  test('credit that never expires, results recorded before paid credit expired, and failures add nothing', () => {
    for (const outcome of [
      withExpiry(topUpOutcome('t1', 'succeeded', '20.000000000'), null),
      withExpiry(topUpOutcome('t1', 'succeeded', '20.000000000'), undefined),
      withExpiry(topUpOutcome('t1', 'failed', '20.000000000'), iso(NOW_MS)),
    ]) {
      const state = enqueue(initialAccountState('c'), topUpCommand('t1'));
      expect(completeCommand(state, outcome).grant_expiries).toEqual([]);
    }
  });

  test('each purchase keeps its own expiry', () => {
    let state = enqueue(enqueue(initialAccountState('c'), topUpCommand('t1')), topUpCommand('t2'));
    state = completeCommand(
      state,
      withExpiry(topUpOutcome('t1', 'succeeded', '1.000000000'), iso(NOW_MS + 5)),
    );
    state = completeCommand(
      state,
      withExpiry(topUpOutcome('t2', 'succeeded', '1.000000000'), iso(NOW_MS + 9)),
    );
    expect(state.grant_expiries).toEqual([
      { grant_id: 'grant_t1', expires_at: iso(NOW_MS + 5) },
      { grant_id: 'grant_t2', expires_at: iso(NOW_MS + 9) },
    ]);
  });

  test('paidCreditValidity: the setting, P1Y when settings predate it, null for never', () => {
    const base = { activity_timeout_ms: 1, continue_as_new_after_events: null };
    expect(paidCreditValidity(undefined)).toBe('P1Y');
    expect(paidCreditValidity(base)).toBe('P1Y');
    expect(paidCreditValidity({ ...base, top_up_credit_validity: 'PT3S' })).toBe('PT3S');
    expect(paidCreditValidity({ ...base, top_up_credit_validity: null })).toBeNull();
  });
});

describe('noteGrantExpiry and noteClaimsSettleBy', () => {
  test('one entry per grant: a later time for the same grant replaces the earlier one', () => {
    let state = noteGrantExpiry(initialAccountState('c'), 'g', iso(NOW_MS + 1));
    state = noteGrantExpiry(state, 'g', iso(NOW_MS + 7));
    expect(state.grant_expiries).toEqual([{ grant_id: 'g', expires_at: iso(NOW_MS + 7) }]);
  });

  test('a grant waiting for holds wakes the account when they settle at the latest; past times are the sweep’s', () => {
    const state = clearDueExpiries(noteGrantExpiry(initialAccountState('c'), 'g', iso(NOW_MS)), NOW_MS);
    const next = noteClaimsSettleBy(
      state,
      [
        { grant_id: 'g', expires_at: iso(NOW_MS + 600_000) },
        { grant_id: 'old', expires_at: iso(NOW_MS) },
        { grant_id: 'older', expires_at: iso(NOW_MS - 1) },
      ],
      NOW_MS,
    );
    expect(next.grant_expiries).toEqual([{ grant_id: 'g', expires_at: iso(NOW_MS + 600_000) }]);
    expect(msUntilNextExpiry(next, NOW_MS)).toBe(600_000);
    expect(noteClaimsSettleBy(state, [], NOW_MS)).toEqual(state);
  });
});

describe('isWellFormedCrossing', () => {
  const good = {
    crossing_id: '42',
    kind: 'recharge',
    threshold_usd: '5.000000000',
    balance_usd: '-0.010000000',
    crossed_at: '2026-11-30T18:00:00.000Z',
  };

  it('accepts what the notifier sends, with or without a kind and a month spend', () => {
    expect(isWellFormedCrossing(good)).toBe(true);
    const { kind: _kind, ...older } = good;
    expect(isWellFormedCrossing(older)).toBe(true);
    expect(isWellFormedCrossing({ ...good, kind: 'budget_limit', month_spend_usd: '10.000000000' })).toBe(
      true,
    );
  });

  it.each([
    ['null', null],
    ['a string', 'crossing'],
    ['a non-numeric id', { ...good, crossing_id: 'abc' }],
    ['a negative id', { ...good, crossing_id: '-1' }],
    ['an id past int8', { ...good, crossing_id: '12345678901234567890' }],
    ['an unknown kind', { ...good, kind: 'nonsense' }],
    ['a number for money', { ...good, threshold_usd: 5 }],
    ['money without its 9 decimals', { ...good, balance_usd: '1.5' }],
    ['a bad month spend', { ...good, month_spend_usd: 'lots' }],
    ['an unparseable time', { ...good, crossed_at: 'yesterday' }],
  ])('refuses %s', (_what, crossing) => {
    expect(isWellFormedCrossing(crossing)).toBe(false);
  });
});

describe('a top-up whose charge waits for the customer (SCA)', () => {
  const topUp = { top_up_id: 'tu_sca', amount_usd: '25.00' };
  const command = { kind: 'top_up' as const, id: 'tu_sca', request: topUp };
  const other = {
    kind: 'top_up' as const,
    id: 'tu_other',
    request: { top_up_id: 'tu_other', amount_usd: '5.00' },
  };
  const running = { ...initialAccountState('cus_sca'), queue: [command, other] };

  test('parking takes it out of the queue without an outcome, so the account goes on and a settlement can requeue it', () => {
    const parked = parkCommand(running, command);
    expect(parked.queue).toEqual([other]);
    expect(findResult(parked, 'tu_sca')).toBeUndefined();
    expect(notePaymentSettled(parked, topUp).queue).toEqual([other, command]);
  });

  test('a settlement heard while it runs requeues it when it parks (the webhook beat the charge call), once', () => {
    const heard = notePaymentSettled(notePaymentSettled(running, topUp), topUp);
    expect(heard.queue).toEqual(running.queue);
    expect(heard.payment_rechecks).toEqual(['tu_sca']);
    const parked = parkCommand(heard, command);
    expect(parked.queue).toEqual([other, command]);
    expect(parked.payment_rechecks).toEqual([]);
  });

  test('a settlement of an answered top-up changes nothing, and completing one forgets its recheck', () => {
    const heard = notePaymentSettled(running, topUp);
    const done = completeCommand(heard, {
      kind: 'top_up',
      result: {
        top_up_id: 'tu_sca',
        status: 'succeeded',
        amount_usd: '25.000000000',
        grant_id: 'gr_tu_sca',
        failure_code: null,
        decline_code: null,
        failure_message: null,
      },
    });
    expect(done.payment_rechecks).toEqual([]);
    expect(notePaymentSettled(done, topUp)).toBe(done);
  });

  test('parking anything but the head is a defect; malformed settlement signals are recognised', () => {
    expect(() => parkCommand(running, other)).toThrow();
    expect(isWellFormedTopUpRequest(topUp)).toBe(true);
    for (const bad of [
      null,
      {},
      { top_up_id: 'tu x', amount_usd: '1' },
      { top_up_id: 'tu', amount_usd: 1 },
    ]) {
      expect(isWellFormedTopUpRequest(bad)).toBe(false);
    }
  });
});

describe('wakeWork: what a wake from the sweep asks the account for', () => {
  test('each reason asks for its own step; a pending request also reads the subscription changes', () => {
    expect(wakeWork({ reasons: ['expiry_overdue'] })).toEqual({
      expire: true,
      read_requests: false,
      refresh_subscription: false,
      review_tier: false,
    });
    expect(wakeWork({ reasons: ['renewal_overdue'] })).toEqual({
      expire: false,
      read_requests: false,
      refresh_subscription: true,
      review_tier: false,
    });
    expect(wakeWork({ reasons: ['request_pending'] })).toEqual({
      expire: false,
      read_requests: true,
      refresh_subscription: true,
      review_tier: false,
    });
    expect(wakeWork({ reasons: ['expiry_overdue', 'request_pending'] })).toEqual({
      expire: true,
      read_requests: true,
      refresh_subscription: true,
      review_tier: false,
    });
  });

  test.each([
    ['no input', undefined],
    ['null', null],
    ['no reasons', {}],
    ['reasons not a list', { reasons: 'expiry_overdue' }],
    ['an empty list', { reasons: [] }],
    ['only unknown reasons', { reasons: ['reboot', 7] }],
  ])('a malformed wake (%s) asks for every step, each safe when nothing is due', (_name, input) => {
    expect(wakeWork(input)).toEqual({
      expire: true,
      read_requests: true,
      refresh_subscription: true,
      review_tier: true,
    });
  });

  test('unknown reasons next to known ones are ignored', () => {
    expect(wakeWork({ reasons: ['reboot', 'expiry_overdue'] })).toEqual({
      expire: true,
      read_requests: false,
      refresh_subscription: false,
      review_tier: false,
    });
    expect(wakeWork({ reasons: ['tier_review_overdue'] })).toEqual({
      expire: false,
      read_requests: false,
      refresh_subscription: false,
      review_tier: true,
    });
    expect(WAKE_REASONS).toEqual([
      'renewal_overdue',
      'expiry_overdue',
      'request_pending',
      'tier_review_overdue',
    ]);
  });
});
