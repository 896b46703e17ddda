import type { Server } from 'node:http';

/**
 * Orderly shutdown for the API, the worker and `npm start`. The first SIGINT or SIGTERM starts `stop` once; later
 * signals (npm forwards its own SIGTERM to a child that already got one, and Ctrl-C reaches every process of the
 * group) are noted and ignored, so nothing is closed twice. The process exits 0 when `stop` finishes, 1 if it
 * fails, and 1 if it is still running `limit_ms` after the first signal: a shutdown never hangs.
 */
export function stopOnSignals(options: {
  stop: (signal: NodeJS.Signals) => Promise<void>;
  limit_ms: number;
  log: (line: string) => void;
}): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      options.log(`${signal} received while stopping; still stopping`);
      return;
    }
    stopping = true;
    options.log(`${signal} received: stopping`);
    setTimeout(() => {
      options.log(`still stopping after ${options.limit_ms} ms; exiting`);
      process.exit(1);
    }, options.limit_ms).unref();
    options.stop(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        options.log(`shutdown failed: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/**
 * Stops accepting connections and lets the requests in flight finish for up to `grace_ms`, then closes every
 * connection that is left. Idle keep-alive connections are closed as soon as they are idle, so clients reconnect
 * to another instance instead of waiting. Resolves when the server is closed; safe to call more than once.
 */
export async function drainHttpServer(server: Server, grace_ms: number): Promise<void> {
  if (!server.listening) return;
  // Responses to requests arriving from now on tell keep-alive clients to go elsewhere (prepended: Express may
  // answer synchronously, before a listener added after it would run).
  server.prependListener('request', (_req, res) => res.setHeader('Connection', 'close'));
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const deadline_ms = Date.now() + grace_ms;
  let done = false;
  void closed.then(() => (done = true));
  // A connection becomes idle when its request is answered; close those as they appear, until none is left.
  while (!done && Date.now() < deadline_ms) {
    server.closeIdleConnections();
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 50))]);
  }
  server.closeAllConnections();
  await closed;
}
