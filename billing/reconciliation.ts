import { MS_PER_DAY } from './durations';
import { formatUsd, NANOS_PER_CENT } from './money';

/**
 * Reconciliation's rules (README "Reconciliation"), pure: which window a run checks, and what counts as a mismatch
 * between our books (`payments`, `refunds`) and the gateway's (its charges and refunds) for that window.
 *
 * Only money that moved is compared: a succeeded item on one side must be a succeeded item of the same amount on the
 * other. Failed attempts on both sides are nobody's money; an item still `pending` on one side (a refund under way,
 * a payment the bank is still processing) is in flight and is left for a later run.
 */

/** A window of creation times, [from, to). */
export interface TimeWindow {
  from: Date;
  to: Date;
}

/** An item's state as both books can say it: money moved, did not, or not yet decided. */
export type BookStatus = 'succeeded' | 'failed' | 'pending';

/** A charge or refund as the gateway keeps it. Amounts are the gateway's own unit, whole cents. */
export interface GatewayRecord {
  /** The gateway's id (`ch_sim_…`, `pi_…`, `re_…`): what our rows store as `gateway_charge_id` / `gateway_refund_id`. */
  id: string;
  /** The idempotency key we sent with the request, when the gateway kept it. */
  idempotency_key: string | null;
  amount_cents: number;
  status: BookStatus;
  created_at: Date;
  /** For a refund: the gateway's id of the charge it refunds. */
  charge_id?: string | null;
}

/** A payment or refund as we keep it. */
export interface OurRecord {
  /** Our id (`payments.id`, `refunds.id`). */
  id: string;
  customer_id: string;
  /** The idempotency key the gateway was (or would be) called with. */
  idempotency_key: string;
  /** The gateway's id of it, once the gateway answered. */
  gateway_id: string | null;
  amount_nanos: bigint;
  status: BookStatus;
  created_at: Date;
  /** For a refund: the gateway's id of the charge it refunds (its payment's `gateway_charge_id`). */
  charge_id?: string | null;
}

export type MismatchKind =
  /** The gateway moved money we have no record of (charged, and we never recorded it: a crash in between). */
  | 'missing_ours'
  /** We recorded money moved that the gateway does not have. */
  | 'missing_at_gateway'
  | 'amount_mismatch'
  /** One side says the money moved, the other that it did not. */
  | 'status_mismatch'
  /** A refund that returns money of another charge than the one our refund names. */
  | 'charge_mismatch'
  /** The gateway listed as many items as a run reads: the rest of the window was not compared. */
  | 'listing_truncated';

/** One difference, as stored in `reconciliation_runs.mismatches` and shown by the API (money as USD strings). */
export interface Mismatch {
  subject: 'charge' | 'refund';
  kind: MismatchKind;
  /** Our payment or refund id (null when we have none). */
  id: string | null;
  gateway_id: string | null;
  idempotency_key: string | null;
  customer_id: string | null;
  amount_usd: string | null;
  gateway_amount_usd: string | null;
  status: BookStatus | null;
  gateway_status: BookStatus | null;
  /** When the earlier of the two sides was created, ISO-8601. */
  created_at: string | null;
  /** What is wrong, in a sentence for the operator. */
  detail: string;
}

/** What a run's workflow answers: its report's id and what the report says (the report itself is in PostgreSQL). */
export interface ReconcileResult {
  run_id: string;
  status: 'ok' | 'mismatches';
  mismatches: number;
  ledger_violations: number;
}

/** Bounds of a window asked for by hand (`POST /v1/reports/reconciliation/runs`): at most 93 days, one quarter. */
export const MAX_WINDOW_MS = 93 * MS_PER_DAY;

/**
 * How far beyond the window the gateway's side is listed to find the counterpart of an item in it: our payment is
 * recorded after the gateway's charge (a day later if its worker was down that long), and our refund before the
 * gateway's. Counterparts on our side are looked up by id and key, without a time bound.
 */
export const COUNTERPART_SLACK_MS = MS_PER_DAY;

/**
 * The window of a scheduled run at `run_at`: the interval before it plus `margin_ms`, so consecutive runs overlap by
 * the margin and an item recorded while a run was late or just after its gateway call is never between two windows.
 * Whole seconds (Stripe filters by seconds), so the window is the same whichever second fraction the run started at.
 */
export function scheduledWindow(run_at: Date, interval_ms: number, margin_ms: number): TimeWindow {
  const to = new Date(Math.floor(run_at.getTime() / 1000) * 1000);
  return { from: new Date(to.getTime() - interval_ms - margin_ms), to };
}

/** Why a window asked for by hand is refused, or null when it is fine. */
export function windowProblem(window: TimeWindow, now: Date): string | null {
  if (window.to.getTime() <= window.from.getTime()) return 'window_to must be later than window_from';
  if (window.to.getTime() - window.from.getTime() > MAX_WINDOW_MS) return 'a window spans at most 93 days';
  if (window.to.getTime() > now.getTime() + 60_000) return 'window_to must not be in the future';
  return null;
}

/** The window widened by the counterpart slack on both sides, never past `now`: what the gateway is asked for. */
export function gatewayListingWindow(window: TimeWindow, now: Date): TimeWindow {
  const to = Math.min(window.to.getTime() + COUNTERPART_SLACK_MS, now.getTime() + 1000);
  return {
    from: new Date(window.from.getTime() - COUNTERPART_SLACK_MS),
    to: new Date(Math.max(to, window.to.getTime())),
  };
}

const inWindow = (at: Date, window: TimeWindow) =>
  at.getTime() >= window.from.getTime() && at.getTime() < window.to.getTime();

/**
 * Compares our records with the gateway's over a window, for one subject (charges or refunds). `ours` and `theirs`
 * may hold records from outside the window (the counterparts of records inside it); a pair is compared when either
 * side was created in the window, and an unmatched record when it was. A pair is found by the gateway's id, else by
 * the idempotency key. Returns the mismatches, in order of creation, and how many items (a pair counts once) were
 * compared.
 */
export function compareBooks(
  subject: 'charge' | 'refund',
  window: TimeWindow,
  ours: readonly OurRecord[],
  theirs: readonly GatewayRecord[],
): { mismatches: Mismatch[]; checked: number } {
  const byId = new Map(theirs.map((t) => [t.id, t]));
  const byKey = new Map(theirs.flatMap((t) => (t.idempotency_key === null ? [] : [[t.idempotency_key, t]])));
  const matched = new Set<GatewayRecord>();
  const found: Mismatch[] = [];
  let checked = 0;
  for (const our of ours) {
    const their =
      (our.gateway_id === null ? undefined : byId.get(our.gateway_id)) ?? byKey.get(our.idempotency_key);
    if (their) matched.add(their);
    if (!inWindow(our.created_at, window) && !(their && inWindow(their.created_at, window))) continue;
    checked++;
    const kind = pairKind(our, their);
    if (kind !== null) found.push(mismatchOf(subject, kind, our, their));
  }
  for (const their of theirs) {
    if (matched.has(their) || !inWindow(their.created_at, window)) continue;
    checked++;
    if (their.status === 'succeeded') found.push(mismatchOf(subject, 'missing_ours', undefined, their));
  }
  const mismatches = found.sort((a, b) => (a.created_at ?? '').localeCompare(b.created_at ?? ''));
  return { mismatches, checked };
}

/** What is wrong with one of our records and its gateway counterpart (if any), or null when they agree. */
function pairKind(our: OurRecord, their: GatewayRecord | undefined): MismatchKind | null {
  if (!their) return our.status === 'succeeded' ? 'missing_at_gateway' : null;
  if (our.status === 'pending' || their.status === 'pending') {
    // In flight on one side: only a gateway that has not moved money we say moved is wrong already.
    return our.status === 'succeeded' && their.status === 'failed' ? 'status_mismatch' : null;
  }
  if (our.status !== their.status) return 'status_mismatch';
  if (our.status !== 'succeeded') return null;
  if (our.amount_nanos !== centsToNanos(their.amount_cents)) return 'amount_mismatch';
  const their_charge = their.charge_id ?? null;
  const our_charge = our.charge_id ?? null;
  if (their_charge !== null && our_charge !== null && their_charge !== our_charge) return 'charge_mismatch';
  return null;
}

function mismatchOf(
  subject: 'charge' | 'refund',
  kind: MismatchKind,
  our: OurRecord | undefined,
  their: GatewayRecord | undefined,
): Mismatch {
  const created = [our?.created_at, their?.created_at].filter((d): d is Date => d !== undefined);
  const earliest = created.length === 0 ? null : new Date(Math.min(...created.map((d) => d.getTime())));
  return {
    subject,
    kind,
    id: our?.id ?? null,
    gateway_id: their?.id ?? our?.gateway_id ?? null,
    idempotency_key: our?.idempotency_key ?? their?.idempotency_key ?? null,
    customer_id: our?.customer_id ?? null,
    amount_usd: our ? formatUsd(our.amount_nanos) : null,
    gateway_amount_usd: their ? formatUsd(centsToNanos(their.amount_cents)) : null,
    status: our?.status ?? null,
    gateway_status: their?.status ?? null,
    created_at: earliest?.toISOString() ?? null,
    detail: DETAILS[kind](subject),
  };
}

const DETAILS: Record<MismatchKind, (subject: 'charge' | 'refund') => string> = {
  missing_ours: (s) => `the gateway made this ${s} and we have no record of it`,
  missing_at_gateway: (s) => `we recorded this ${s} as succeeded and the gateway has no such ${s}`,
  amount_mismatch: (s) => `the ${s}'s amount differs between our books and the gateway's`,
  status_mismatch: (s) => `one side says the ${s} succeeded, the other that it did not`,
  charge_mismatch: () => 'the gateway refunded another charge than the one our refund names',
  listing_truncated: (s) =>
    `the gateway listed the most ${s}s a run reads: the rest of the window was not compared`,
};

/** A truncated listing as a mismatch: the run could not see the whole window, so it is not a clean run. */
export function truncatedListing(subject: 'charge' | 'refund', max_items: number): Mismatch {
  return {
    subject,
    kind: 'listing_truncated',
    id: null,
    gateway_id: null,
    idempotency_key: null,
    customer_id: null,
    amount_usd: null,
    gateway_amount_usd: null,
    status: null,
    gateway_status: null,
    created_at: null,
    detail: `${DETAILS.listing_truncated(subject)} (${max_items} ${subject}s)`,
  };
}

function centsToNanos(cents: number): bigint {
  return BigInt(cents) * NANOS_PER_CENT;
}
