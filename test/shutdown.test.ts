import { useHarness } from './support/harness';
import { waitFor } from './support/eventually';
import { callApi, startApi, startWorker } from './support/processes';

/**
 * Stopping the processes the way npm does (a SIGTERM, then the one npm forwards) is one orderly shutdown: the API
 * stops taking connections, answers the request in flight, closes each pool once and exits 0; the worker likewise.
 */
const h = useHarness({ worker: false });

test('an API process signalled twice drains its in-flight request and exits 0', async () => {
  await h.customer('cus_sd_1');
  // No worker: the grant is recorded and waits UPDATE_WAIT_TIMEOUT_MS for its outcome, then answers 202 pending.
  // That wait is the request in flight.
  const api = await startApi(h, { UPDATE_WAIT_TIMEOUT_MS: '10000', SHUTDOWN_GRACE_MS: '20000' });
  const inFlight = callApi(api.baseUrl, 'POST', '/v1/customers/cus_sd_1/credit-grants', {
    amount_usd: '1.00',
    reason: 'in flight',
  });
  await waitFor('the request to be in flight', () =>
    fetch(`${api.baseUrl}/metrics`)
      .then((r) => r.text())
      .then((text) => /^billing_http_requests_in_flight [1-9]/m.test(text)),
  );

  // The second signal once the first is being handled: two signals sent at once may reach the process as one.
  api.process.kill('SIGTERM');
  await waitFor('the first signal to be handled', () => api.output().includes('SIGTERM received: stopping'));
  api.process.kill('SIGTERM');
  // The listening socket closes at once: a new connection is refused while the request in flight goes on.
  await waitFor('the API to stop accepting connections', () =>
    fetch(`${api.baseUrl}/healthz`).then(
      () => false,
      () => true,
    ),
  );
  const answered = await inFlight;
  expect(answered.status).toBe(202);
  expect(answered.body).toMatchObject({ status: 'pending', amount_usd: '1.000000000' });

  expect(await api.exited).toEqual({ code: 0, signal: null });
  expect(api.output()).toContain('SIGTERM received while stopping');
  expect(api.output()).toContain('API stopped');
  expect(api.output()).not.toMatch(/more than once|unhandled|uncaught/i);
});

test('a worker process signalled twice shuts down once and exits 0', async () => {
  const worker = await startWorker(h, { SHUTDOWN_GRACE_MS: '5000' });
  worker.process.kill('SIGTERM');
  await waitFor('the first signal to be handled', () =>
    worker.output().includes('SIGTERM received: stopping'),
  );
  worker.process.kill('SIGTERM');
  expect(await worker.exited).toEqual({ code: 0, signal: null });
  // An idle worker may finish stopping before the second signal lands, so its note is not asserted here; the API
  // test above, whose shutdown waits on a request, proves the second signal is ignored.
  expect(worker.output()).toContain('worker stopped');
  expect(worker.output()).not.toMatch(/more than once|unhandled|uncaught/i);
});
