/**
 * Polls `read` until `done` holds or `timeout_ms` passes, and returns the last value read: tests wait on a
 * condition with a deadline, never on a fixed sleep, and then assert on the value (so a missed deadline fails
 * with what was seen).
 */
export async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeout_ms = 20_000,
  interval_ms = 50,
): Promise<T> {
  const deadline = Date.now() + timeout_ms;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, interval_ms));
  }
}

/** Waits until `check` holds, polling every 100 ms; throws naming `what` once `timeout_ms` has passed. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeout_ms = 60_000,
): Promise<void> {
  const held = await eventually(
    async () => await check(),
    (ok) => ok,
    timeout_ms,
    100,
  );
  if (!held) throw new Error(`timed out waiting for ${what}`);
}
