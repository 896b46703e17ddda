import { DefaultLogger, Runtime } from '@temporalio/worker';

// The Temporal SDK logs every worker state change at INFO; test output only wants warnings and errors.
// The runtime is a per-process singleton, so a second install in the same process is ignored.
try {
  Runtime.install({ logger: new DefaultLogger('WARN') });
} catch {
  // Installed already by an earlier test file in this jest worker.
}
