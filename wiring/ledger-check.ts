import { loadConfig } from './config';
import { createDb } from '../db/connection';
import { checkLedger } from '../db/ledger-check';

/** `npm run ledger:check`: verifies the ledger invariants on DATABASE_URL (`npm start` prints the embedded one). */
async function main(): Promise<number> {
  const config = loadConfig();
  const databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    console.error('set DATABASE_URL (for the embedded run, start `npm start` and use the URL it prints)');
    return 2;
  }
  const db = createDb({ databaseUrl, pool_max: 1 });
  try {
    const violations = await checkLedger(db);
    for (const v of violations) console.log(`VIOLATION ${v.invariant}: ${v.subject} (${v.detail})`);
    console.log(
      violations.length === 0 ? 'ledger OK: every invariant holds' : `${violations.length} violation(s)`,
    );
    return violations.length === 0 ? 0 : 1;
  } finally {
    await db.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(2);
  },
);
