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

/**
 * Consumption order: soonest expiry first (grants that never expire last), then the oldest grant, then id so
 * that the order is total and stable. Returns a negative number when `a` pays before `b`.
 */
export function compareConsumptionOrder(a: GrantSlice, b: GrantSlice): number {
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
