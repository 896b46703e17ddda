import { addDuration, parseIsoDuration } from './durations';

/**
 * Pure rules for credit grants: which grant pays first, how consumption is allocated to grants, and what
 * expires. The hot path only moves the wallet balance; these rules attribute that movement to grants whenever
 * it matters (a new grant, an expiry, a refund, a void, a balance read).
 *
 * All amounts are bigint nanos (1e-9 USD).
 */

export interface GrantSlice {
  id: string;
  amount_nanos: bigint;
  remaining_nanos: bigint;
  granted_at: Date;
  /** null: never expires. A grant is expired at and after this instant. */
  expires_at: Date | null;
}

/** What the consumption order looks at. */
export type OrderKey = Pick<GrantSlice, 'id' | 'granted_at' | 'expires_at'>;

/**
 * Consumption order: soonest expiry first (grants that never expire last), then the oldest grant, then id so
 * that the order is total and stable. Returns a negative number when `a` pays before `b`.
 */
export function compareConsumptionOrder(a: OrderKey, b: OrderKey): number {
  const aExpiry_ms = a.expires_at?.getTime() ?? Number.POSITIVE_INFINITY;
  const bExpiry_ms = b.expires_at?.getTime() ?? Number.POSITIVE_INFINITY;
  if (aExpiry_ms !== bExpiry_ms) return aExpiry_ms < bExpiry_ms ? -1 : 1;
  const grantedDiff_ms = a.granted_at.getTime() - b.granted_at.getTime();
  if (grantedDiff_ms !== 0) return grantedDiff_ms < 0 ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function isExpired(grant: Pick<GrantSlice, 'expires_at'>, now: Date): boolean {
  return grant.expires_at !== null && grant.expires_at.getTime() <= now.getTime();
}

export interface Allocation {
  /** New remaining amount per grant id, only for grants whose remaining changed. */
  changes: Map<string, bigint>;
  /** How much consumption was attributed to grants by this allocation. */
  allocated_nanos: bigint;
}

/**
 * Attributes consumption that has not yet been attributed to grants.
 *
 * `grants` are the customer's open grants (not expired-and-written-off, not voided) with their remaining as of
 * the last allocation. `unconsumed_nanos` is what the customer still owns right now: available + held from the
 * wallet. Every nano that left the wallet since the last allocation is `sum(remaining) - unconsumed`, clamped at
 * zero from below when the wallet is in debt (post-paid usage beyond all grants: every grant is then spent).
 *
 * Throws when the wallet owns more than its grants hold: money without a source is a ledger defect, not a
 * business outcome.
 */
export function allocateConsumption(grants: readonly GrantSlice[], unconsumed_nanos: bigint): Allocation {
  const totalRemaining_nanos = grants.reduce((sum, g) => sum + g.remaining_nanos, 0n);
  const owned_nanos = unconsumed_nanos > 0n ? unconsumed_nanos : 0n;
  if (owned_nanos > totalRemaining_nanos) {
    throw new Error(
      `wallet owns ${owned_nanos} nanos but its open grants hold only ${totalRemaining_nanos}: ledger defect`,
    );
  }
  let toAllocate_nanos = totalRemaining_nanos - owned_nanos;
  const allocated_nanos = toAllocate_nanos;
  const changes = new Map<string, bigint>();
  for (const grant of [...grants].sort(compareConsumptionOrder)) {
    if (toAllocate_nanos === 0n) break;
    const take_nanos = grant.remaining_nanos < toAllocate_nanos ? grant.remaining_nanos : toAllocate_nanos;
    if (take_nanos === 0n) continue;
    changes.set(grant.id, grant.remaining_nanos - take_nanos);
    toAllocate_nanos -= take_nanos;
  }
  return { changes, allocated_nanos };
}

/** Applies an allocation to grant slices, returning new objects (the inputs are left as they were). */
export function applyAllocation<T extends GrantSlice>(grants: readonly T[], allocation: Allocation): T[] {
  return grants.map((g) => {
    const remaining_nanos = allocation.changes.get(g.id);
    return remaining_nanos === undefined ? g : { ...g, remaining_nanos };
  });
}

export interface ExpiryWriteOff {
  grant_id: string;
  amount_nanos: bigint;
}

/**
 * Which grants expire at `now` and how much of each is written off, given grants already allocated up to now.
 * A grant whose remaining is zero still closes (with a zero write-off, so no ledger entry is needed).
 */
export function planExpiry(allocated: readonly GrantSlice[], now: Date): ExpiryWriteOff[] {
  return allocated
    .filter((g) => isExpired(g, now))
    .sort(compareConsumptionOrder)
    .map((g) => ({ grant_id: g.id, amount_nanos: g.remaining_nanos }));
}

/** The earliest future expiry among open grants, so the account workflow knows when to wake up. */
export function nextExpiry(grants: readonly Pick<GrantSlice, 'expires_at'>[], now: Date): Date | null {
  let soonest: Date | null = null;
  for (const g of grants) {
    if (g.expires_at === null || g.expires_at.getTime() <= now.getTime()) continue;
    if (soonest === null || g.expires_at.getTime() < soonest.getTime()) soonest = g.expires_at;
  }
  return soonest;
}

/**
 * Paid credit's expiry: `granted_at` plus the configured validity (`TOP_UP_CREDIT_VALIDITY`, an ISO-8601 duration;
 * years and months on the UTC calendar), or null when the validity is null (bought credit never expires). Each
 * purchase computes its own, so buying again never moves the expiry of credit bought earlier. Throws on a validity
 * that is not an ISO-8601 duration (the configuration is validated at startup, so that is a programmer error).
 */
export function paidCreditExpiry(granted_at: Date, validity: string | null): Date | null {
  if (validity === null) return null;
  const duration = parseIsoDuration(validity);
  if (duration === null) throw new Error(`credit validity ${validity} is not an ISO-8601 duration`);
  const expires_at = addDuration(granted_at, duration);
  if (expires_at.getTime() <= granted_at.getTime())
    throw new Error(`credit validity ${validity} is not positive`);
  return expires_at;
}

// ---- Retiring a grant (expiry, void) without ever charging a hold twice ----
//
// A grant retires when it expires or is voided. What is left of it then is written off, except the part that backs
// authorizations still held at that instant: that part is *claimed* by those holds (one claim per grant and hold)
// and stays with the grant until each hold settles. A capture then pays from the claim (the customer pays once), and
// what the hold gives back (a release, the unused part of a capture) is written off. A retiring grant takes no other
// consumption: holds taken after it retired were taken against the other grants' credit.

/** An open grant as the ledger keeps it; `retiring`: expired or voided, with claims on holds still to settle. */
export interface OpenGrant extends GrantSlice {
  retiring: boolean;
}

/** Part of a retired grant's remainder reserved for one hold that was open when the grant retired. */
export interface HoldClaim {
  grant_id: string;
  authorization_id: string;
  amount_nanos: bigint;
}

/** How one claim ended once its hold settled: `paid` by the capture, `written_off` (given back by the hold). */
export interface ClaimSettlement extends HoldClaim {
  paid_nanos: bigint;
  written_off_nanos: bigint;
}

/**
 * Settles the claims whose hold has settled. `consumed` maps each settled authorization to what its capture took
 * out of the hold (`hold - released`: zero for a release, never more than the hold). A hold's consumption pays its
 * claims in the consumption order of their grants (soonest expiry first, then oldest), each up to its amount; the
 * rest of every claim is written off. Claims of holds still held are left out of the result.
 */
export function settleClaims(
  claims: readonly HoldClaim[],
  grants: readonly GrantSlice[],
  consumed: ReadonlyMap<string, bigint>,
): ClaimSettlement[] {
  const byId = new Map(grants.map((g) => [g.id, g]));
  const grantOf = (claim: HoldClaim): GrantSlice => {
    const grant = byId.get(claim.grant_id);
    if (!grant) throw new Error(`claim on ${claim.authorization_id} of unknown grant ${claim.grant_id}`);
    return grant;
  };
  const settled = claims.filter((c) => consumed.has(c.authorization_id));
  for (const c of settled) grantOf(c);
  const leftByHold = new Map<string, bigint>();
  for (const [authorization_id, consumed_nanos] of consumed) {
    if (consumed_nanos < 0n) throw new Error(`hold ${authorization_id} consumed a negative amount`);
    leftByHold.set(authorization_id, consumed_nanos);
  }
  const ordered = [...settled].sort(
    (a, b) =>
      (a.authorization_id < b.authorization_id ? -1 : a.authorization_id > b.authorization_id ? 1 : 0) ||
      compareConsumptionOrder(grantOf(a), grantOf(b)),
  );
  return ordered.map((claim) => {
    const left_nanos = leftByHold.get(claim.authorization_id)!;
    const paid_nanos = left_nanos < claim.amount_nanos ? left_nanos : claim.amount_nanos;
    leftByHold.set(claim.authorization_id, left_nanos - paid_nanos);
    return { ...claim, paid_nanos, written_off_nanos: claim.amount_nanos - paid_nanos };
  });
}

export interface Reconciliation {
  /** Claims whose hold has settled, and how (to write off and record). */
  settlements: ClaimSettlement[];
  /** Claims still waiting for their hold. */
  open_claims: HoldClaim[];
  /** Consumption attributed to the grants that are not retiring (see `allocateConsumption`). */
  allocation: Allocation;
  /** Every open grant's remaining after settlement and allocation. */
  remaining: Map<string, bigint>;
  /** Retiring grants with no claim left: they close now. */
  closing: string[];
}

/**
 * Brings a customer's open grants up to date: settles the claims whose hold has settled, then attributes all other
 * consumption since the last allocation to the grants that are not retiring. `owned_nanos` is the wallet's
 * available + held (before the settlements' write-offs are posted). A retiring grant's remaining is always the sum
 * of its open claims; anything else is a ledger defect and throws.
 */
export function reconcileGrants(
  grants: readonly OpenGrant[],
  claims: readonly HoldClaim[],
  consumed: ReadonlyMap<string, bigint>,
  owned_nanos: bigint,
): Reconciliation {
  const settlements = settleClaims(claims, grants, consumed);
  const open_claims = claims.filter((c) => !consumed.has(c.authorization_id));
  const claimed = new Map<string, bigint>();
  for (const c of claims) claimed.set(c.grant_id, (claimed.get(c.grant_id) ?? 0n) + c.amount_nanos);
  const stillClaimed = new Map<string, bigint>();
  for (const c of open_claims) {
    stillClaimed.set(c.grant_id, (stillClaimed.get(c.grant_id) ?? 0n) + c.amount_nanos);
  }
  const remaining = new Map<string, bigint>();
  const closing: string[] = [];
  for (const g of grants.filter((x) => x.retiring)) {
    if ((claimed.get(g.id) ?? 0n) !== g.remaining_nanos) {
      throw new Error(
        `retiring grant ${g.id} keeps ${g.remaining_nanos} but its claims are ${claimed.get(g.id) ?? 0n}`,
      );
    }
    const left_nanos = stillClaimed.get(g.id) ?? 0n;
    remaining.set(g.id, left_nanos);
    if (left_nanos === 0n) closing.push(g.id);
  }
  const orphan = claims.find((c) => !grants.some((g) => g.retiring && g.id === c.grant_id));
  if (orphan)
    throw new Error(`claim on ${orphan.authorization_id} of grant ${orphan.grant_id}, which is not retiring`);
  const reserved_nanos = open_claims.reduce((sum, c) => sum + c.amount_nanos, 0n);
  const writtenOff_nanos = settlements.reduce((sum, s) => sum + s.written_off_nanos, 0n);
  const normal = grants.filter((g) => !g.retiring);
  const allocation = allocateConsumption(normal, owned_nanos - reserved_nanos - writtenOff_nanos);
  for (const g of normal) remaining.set(g.id, allocation.changes.get(g.id) ?? g.remaining_nanos);
  return { settlements, open_claims, allocation, remaining, closing };
}

/** A hold open at the instant a grant retires; `claimed_nanos` of it already backs grants that retired earlier. */
export interface OpenHold {
  authorization_id: string;
  hold_nanos: bigint;
  claimed_nanos: bigint;
}

export interface RetirementPlan {
  grant_id: string;
  /** Written off now: the part of the remainder no open hold can still capture. */
  write_off_nanos: bigint;
  /** The rest, reserved for the holds open now (the grant keeps it until they settle). */
  claims: HoldClaim[];
}

/**
 * How grants retire now. `grants` are the open grants that are not retiring, as allocated up to now; `retiring` the
 * ids of those that retire (expired or voided); `holds` the authorizations held right now, oldest first.
 *
 * The held money not yet claimed is attributed to the grants in consumption order (soonest expiry first, then
 * oldest), exactly as a capture of it would consume them; a retiring grant's share of it becomes claims on the holds
 * (taking their unclaimed parts in the order given), and only the rest of its remainder is written off now. So no
 * nano a hold may still capture is ever written off, and every nano no hold can capture is written off at once.
 */
export function planRetirement(
  grants: readonly GrantSlice[],
  retiring: ReadonlySet<string>,
  holds: readonly OpenHold[],
): RetirementPlan[] {
  const free = holds.map((h) => ({ id: h.authorization_id, free_nanos: h.hold_nanos - h.claimed_nanos }));
  if (free.some((h) => h.free_nanos < 0n)) throw new Error('a hold is claimed beyond its amount');
  let cursor = 0;
  const plans: RetirementPlan[] = [];
  for (const grant of [...grants].sort(compareConsumptionOrder)) {
    let share_nanos = grant.remaining_nanos;
    const claims: HoldClaim[] = [];
    while (share_nanos > 0n && cursor < free.length) {
      const hold = free[cursor]!;
      const take_nanos = hold.free_nanos < share_nanos ? hold.free_nanos : share_nanos;
      if (take_nanos > 0n && retiring.has(grant.id)) {
        claims.push({ grant_id: grant.id, authorization_id: hold.id, amount_nanos: take_nanos });
      }
      hold.free_nanos -= take_nanos;
      share_nanos -= take_nanos;
      if (hold.free_nanos === 0n) cursor++;
    }
    if (!retiring.has(grant.id)) continue;
    // What the holds left of this grant's remainder (share_nanos) is free credit: written off now.
    plans.push({ grant_id: grant.id, write_off_nanos: share_nanos, claims });
  }
  return plans;
}

// ---- Grant statements: which debits consumed which grant ----

/** A grant as the statement replays it. */
export interface StatementGrant extends Omit<GrantSlice, 'remaining_nanos'> {
  /** The ledger entry that funded it. */
  entry_id: bigint;
  /** The customer's last entry when it retired (expired or voided); null while it has not. */
  retired_after_entry_id: bigint | null;
}

/** A ledger entry as the statement replays it, in id order. */
export interface StatementEntry {
  id: bigint;
  kind: string;
  ref: string;
  /** Its change to what the customer owns (available + held): negative for a debit, zero for a hold or release. */
  owned_delta_nanos: bigint;
  /** Its change to held: a capture's is minus the hold it settled. */
  held_delta_nanos: bigint;
  /**
   * A debit that names its grant (a refund's claim: the payment's own grant) and how much of the debit that grant
   * gave; the rest of the debit is consumption like any other. Absent for every other entry.
   */
  from_grant?: { grant_id: string; amount_nanos: bigint } | null;
}

/** What one entry took from one grant. */
export interface GrantDebit {
  entry_id: bigint;
  grant_id: string;
  amount_nanos: bigint;
}

/** Entry kinds that write off one grant's credit (ref: the grant id, or `<grant id>/hold/<authorization id>`). */
export const WRITE_OFF_KINDS: ReadonlySet<string> = new Set(['expiry', 'void']);

/** The grant a write-off entry's ref names. */
export function writeOffGrantId(ref: string): string {
  const at = ref.indexOf('/hold/');
  return at === -1 ? ref : ref.slice(0, at);
}

/**
 * Replays a customer's ledger to say which debits consumed which grant, by the rules the ledger allocates with:
 * - a debit (a capture's cost, a usage batch) is taken from the grants live at that point in consumption order
 *   (soonest expiry first, then oldest); a debit beyond every live grant is debt, paid by the next grants granted;
 * - a write-off (`expiry`, `void`) takes from the grant its ref names; a refund's claim takes what it took of the
 *   payment's grant (`from_grant`) from that grant, and the rest like any debit;
 * - from its retirement on, a grant takes no ordinary debit: only captures of the holds it claimed pay from it (each
 *   hold's capture, up to the hold, pays its claims in consumption order; the rest is live credit's).
 * Holds and releases consume nothing. Entries must be in id order; the result is in entry order.
 */
export function attributeDebits(
  grants: readonly StatementGrant[],
  entries: readonly StatementEntry[],
  claims: readonly HoldClaim[],
): GrantDebit[] {
  const byId = new Map(grants.map((g) => [g.id, g]));
  const fundedBy = new Map(grants.map((g) => [g.entry_id, g]));
  const toRetire = grants
    .filter((g) => g.retired_after_entry_id !== null)
    .sort((a, b) => (a.retired_after_entry_id! < b.retired_after_entry_id! ? -1 : 1));
  const claimsByHold = new Map<string, HoldClaim[]>();
  for (const c of claims)
    claimsByHold.set(c.authorization_id, [...(claimsByHold.get(c.authorization_id) ?? []), c]);
  const live = new Map<string, bigint>();
  const remaining = new Map<string, bigint>();
  let debts: { entry_id: bigint; amount_nanos: bigint }[] = [];
  const debits: GrantDebit[] = [];
  const take = (entry_id: bigint, grant_id: string, amount_nanos: bigint) => {
    if (amount_nanos <= 0n) return;
    remaining.set(grant_id, (remaining.get(grant_id) ?? 0n) - amount_nanos);
    if (live.has(grant_id)) live.set(grant_id, remaining.get(grant_id)!);
    debits.push({ entry_id, grant_id, amount_nanos });
  };
  /** Takes up to `amount` from live grants in consumption order; returns what no live grant could pay. */
  const allocate = (entry_id: bigint, amount_nanos: bigint): bigint => {
    let left_nanos = amount_nanos;
    const order = [...live.keys()].map((id) => byId.get(id)!).sort(compareConsumptionOrder);
    for (const g of order) {
      if (left_nanos === 0n) break;
      const has_nanos = live.get(g.id)!;
      const part_nanos = has_nanos < left_nanos ? has_nanos : left_nanos;
      take(entry_id, g.id, part_nanos);
      left_nanos -= part_nanos;
    }
    return left_nanos;
  };
  let retireCursor = 0;
  for (const entry of entries) {
    while (retireCursor < toRetire.length && toRetire[retireCursor]!.retired_after_entry_id! < entry.id) {
      const g = toRetire[retireCursor++]!;
      live.delete(g.id);
    }
    const funded = fundedBy.get(entry.id);
    if (funded) {
      live.set(funded.id, funded.amount_nanos);
      remaining.set(funded.id, funded.amount_nanos);
      // Debt left by earlier debits is paid by the credit that comes next.
      const owed = debts;
      debts = [];
      for (const debt of owed) {
        const unpaid_nanos = allocate(debt.entry_id, debt.amount_nanos);
        if (unpaid_nanos > 0n) debts.push({ entry_id: debt.entry_id, amount_nanos: unpaid_nanos });
      }
      continue;
    }
    const consumed_nanos = -entry.owned_delta_nanos;
    if (consumed_nanos <= 0n) continue;
    if (WRITE_OFF_KINDS.has(entry.kind)) {
      const grant_id = writeOffGrantId(entry.ref);
      if (remaining.has(grant_id)) take(entry.id, grant_id, consumed_nanos);
      continue;
    }
    let left_nanos = consumed_nanos;
    if (entry.from_grant && remaining.has(entry.from_grant.grant_id)) {
      const part_nanos =
        entry.from_grant.amount_nanos < left_nanos ? entry.from_grant.amount_nanos : left_nanos;
      take(entry.id, entry.from_grant.grant_id, part_nanos);
      left_nanos -= part_nanos;
    }
    const holdClaims = entry.kind === 'capture' ? claimsByHold.get(entry.ref) : undefined;
    if (holdClaims) {
      const hold_nanos = -entry.held_delta_nanos;
      let fromHold_nanos = consumed_nanos < hold_nanos ? consumed_nanos : hold_nanos;
      const ordered = [...holdClaims].sort((a, b) =>
        compareConsumptionOrder(byId.get(a.grant_id)!, byId.get(b.grant_id)!),
      );
      for (const claim of ordered) {
        const part_nanos = fromHold_nanos < claim.amount_nanos ? fromHold_nanos : claim.amount_nanos;
        take(entry.id, claim.grant_id, part_nanos);
        fromHold_nanos -= part_nanos;
        left_nanos -= part_nanos;
      }
    }
    const unpaid_nanos = allocate(entry.id, left_nanos);
    if (unpaid_nanos > 0n) debts.push({ entry_id: entry.id, amount_nanos: unpaid_nanos });
  }
  return debits;
}
