import { useHarness } from './support/harness';
import { waitFor } from './support/eventually';
import { callApi, startApi } from './support/processes';

/**
 * An idempotency claim dies with the process that held it. A real API process (`npm run api`) claims a key for a
 * credit grant that cannot finish (no worker yet) and is killed with SIGKILL mid-request. While it lived, a retry
 * was told the key is in use; right after its death, the retry on another API process takes the claim over at once
 * (not after a timeout) and the grant happens exactly once.
 */
const h = useHarness({ worker: false });

test('a keyed request caught by kill -9 is retried at once on another process and grants exactly once', async () => {
  await h.customer('cus_ic_1');
  const path = '/v1/customers/cus_ic_1/credit-grants';
  const body = { amount_usd: '7.00', reason: 'crash test' };
  const headers = { 'Idempotency-Key': 'crash-1' };

  const doomed = await startApi(h, { UPDATE_WAIT_TIMEOUT_MS: '60000' });
  // The request waits for a worker that is not there, holding the claim.
  void callApi(doomed.baseUrl, 'POST', path, body, headers).catch(() => undefined);
  await waitFor('the doomed process to claim the key', async () => {
    const rows = await h.db('idempotency_keys').where({ key: 'crash-1' });
    return rows.length === 1 && rows[0].status_code === null;
  });

  // Alive, its claim holds: a concurrent retry is told to come back later.
  const whileAlive = await h.call('POST', path, body, headers);
  expect(whileAlive.status).toBe(409);
  expect(whileAlive.body.error.code).toBe('idempotency_key_in_use');

  doomed.process.kill('SIGKILL');
  expect((await doomed.exited).signal).toBe('SIGKILL');
  await h.startWorker();

  // The retry proceeds at once: the claim's process session is gone with the process.
  const started_ms = Date.now();
  const retried = await h.call('POST', path, body, headers);
  const elapsed_ms = Date.now() - started_ms;
  expect(retried.status).toBe(201);
  expect(retried.body).toMatchObject({ amount_usd: '7.000000000' });
  expect(elapsed_ms).toBeLessThan(15_000); // the old claim timeout was 60 s

  // Exactly one grant: the dead process's request and the retry derive the same grant id from the key, and the
  // account runs a grant id once.
  const grants = await h.db('credit_grants').where({ customer_id: 'cus_ic_1' });
  expect(grants).toHaveLength(1);
  const balance = await h.call('GET', '/v1/customers/cus_ic_1/balance');
  expect(balance.body.available_usd).toBe('7.000000000');
  // And the key now replays.
  const replay = await h.call('POST', path, body, headers);
  expect(replay.status).toBe(201);
  expect(replay.headers.get('Idempotency-Replayed')).toBe('true');
  expect(replay.body.id).toBe(retried.body.id);
});
