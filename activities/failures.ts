import { ApplicationFailure } from '@temporalio/activity';
import { permanentTypeOf } from '../db/errors';

/**
 * Activities retry without an attempt limit, because every step is idempotent and giving up halfway would leave
 * money half-moved. That is right for failures that pass (a database restart, a processor outage) and wrong for
 * those that never will: retried forever, one bad command would block every command queued behind it. Such a
 * failure (see db/errors.ts: PostgreSQL classes 22 and 23, a PermanentError such as a gateway's permanent refusal)
 * leaves the activity as a non-retryable ApplicationFailure whose `type` names it; the account workflow turns it
 * into that command's refusal.
 */
function toActivityFailure(error: unknown): unknown {
  if (error instanceof ApplicationFailure) return error;
  const type = permanentTypeOf(error);
  if (type === undefined) return error;
  return ApplicationFailure.nonRetryable(safeMessage(error), type);
}

/** Wraps every activity of a set so that permanent failures leave it as non-retryable ApplicationFailures. */
export function withPermanentFailures<T extends object>(activities: T): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args: unknown[]) => {
      try {
        return await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
      } catch (error) {
        throw toActivityFailure(error);
      }
    };
  }
  return wrapped as T;
}

/**
 * A failure's message as it may travel through Temporal and into the database: control characters (the NUL that
 * caused the failure may be quoted in it) become spaces, and it is bounded.
 */
function safeMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 500);
}
