import { randomBytes } from 'node:crypto';
import type { EventRecord } from '../billing/events';
import { queryRows, type Db } from './connection';

/**
 * The outbox of outbound events (`events`). Emitters record an event with `recordEvent` inside the transaction
 * that makes the change it reports (a grant, an expiry, a decline), so it exists exactly when the change does; the
 * webhook dispatcher reads the outbox afterwards. A second record of the same occurrence key changes nothing.
 */

export interface RecordedEvent {
  id: string;
  /** false when the occurrence was recorded before (a retried step): nothing was written now. */
  created: boolean;
}

/** A public event id: `evt_` and 24 random hex characters (the Standard Webhooks `webhook-id`). */
export function newEventId(): string {
  return `evt_${randomBytes(12).toString('hex')}`;
}

/** Records one occurrence; `db` is the transaction of the change it reports (or the pool for a standalone event). */
export async function recordEvent(db: Db, event: EventRecord): Promise<RecordedEvent> {
  const inserted = await queryRows<{ id: string }>(
    db,
    `INSERT INTO events (id, customer_id, type, data, occurrence_key) VALUES (?, ?, ?, ?::jsonb, ?)
     ON CONFLICT (occurrence_key) DO NOTHING RETURNING id`,
    [newEventId(), event.customer_id, event.type, JSON.stringify(event.data), event.occurrence_key],
  );
  if (inserted[0]) return { id: inserted[0].id, created: true };
  const [existing] = await queryRows<{ id: string }>(db, `SELECT id FROM events WHERE occurrence_key = ?`, [
    event.occurrence_key,
  ]);
  if (!existing) throw new Error(`event ${event.occurrence_key} neither inserted nor found`);
  return { id: existing.id, created: false };
}
