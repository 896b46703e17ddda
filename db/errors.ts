/**
 * Failures that will never succeed on retry, told apart from those that may (a lost connection, a deadlock, a
 * timeout). Activities turn the first kind into a non-retryable Temporal failure with the `type` below, and the
 * account workflow turns that into a refusal of the one command that caused it, so a bad command never blocks the
 * commands queued behind it.
 */

/** A failure that no retry can fix; `type` names it across Temporal (e.g. `conflict`, `payment_refused`). */
export class PermanentError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
    this.name = 'PermanentError';
  }
}

/** The SQLSTATE of a PostgreSQL error (`pg`'s DatabaseError, also as knex rethrows it), if it is one. */
export function sqlStateOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * The permanent type of a failure, or undefined when a retry may succeed. PostgreSQL's class 22 (data exception:
 * a NUL byte in text, a value out of range) and class 23 (integrity constraint violation) are properties of the
 * statement's input, so the same input fails the same way forever.
 */
export function permanentTypeOf(error: unknown): string | undefined {
  if (error instanceof PermanentError) return error.type;
  const state = sqlStateOf(error);
  if (state?.startsWith('22')) return 'invalid_data';
  if (state?.startsWith('23')) return 'constraint_violation';
  return undefined;
}
