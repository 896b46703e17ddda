import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_TOOLS_DIR } from '../../dev/temporal-cli';

/**
 * stripe-mock (Stripe's own mock API server, installed in `.tools/bin` by scripts/install-tools.sh) on ports the OS
 * picks, for the Stripe gateway tests. It validates every request against Stripe's OpenAPI specification and answers
 * with fixtures; it keeps no state and honours no idempotency key.
 *
 * Its bundled PaymentIntent fixture is `requires_payment_method` (a decline, for us), so it runs with
 * `stripe-mock-fixtures.json`: the resources the gateway touches (customer, payment_method, payment_intent, refund)
 * copied from stripe-mock v0.197.0's `embedded/openapi/fixtures3.json`, with the PaymentIntent's status set to
 * `succeeded`, so that a charge through stripe-mock succeeds as a charge on `pm_card_visa` would.
 */
export interface StripeMock {
  /** The API base, e.g. `http://127.0.0.1:41234` (STRIPE_API_BASE). */
  url: string;
  stop(): Promise<void>;
}

const FIXTURES_PATH = path.join(__dirname, 'stripe-mock-fixtures.json');
const STARTUP_TIMEOUT_MS = 20_000;

export function stripeMockPath(): string {
  const binary = path.join(DEFAULT_TOOLS_DIR, 'bin', 'stripe-mock');
  if (!fs.existsSync(binary)) {
    throw new Error(`tests need stripe-mock at ${binary}: run \`npm run tools:install\``);
  }
  return binary;
}

/** Starts stripe-mock on free ports of 127.0.0.1; resolves once it prints the address it listens on. */
export async function startStripeMock(): Promise<StripeMock> {
  const child = spawn(
    stripeMockPath(),
    ['-http-addr', '127.0.0.1:0', '-https-addr', '127.0.0.1:0', '-fixtures', FIXTURES_PATH],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`stripe-mock did not start within ${STARTUP_TIMEOUT_MS} ms:\n${output}`));
    }, STARTUP_TIMEOUT_MS);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const listening = /Listening for HTTP at address: (\S+)/.exec(output);
      if (!listening) return;
      clearTimeout(timer);
      resolve(`http://${listening[1]}`);
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`stripe-mock exited (${code}) before listening:\n${output}`));
    });
  });
  // Its request log is not read again; keep draining it so that a full pipe never blocks the mock.
  child.stdout!.removeAllListeners('data').resume();
  child.stderr!.removeAllListeners('data').resume();
  return {
    url,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill();
      await exited;
    },
  };
}
