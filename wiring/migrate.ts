import { loadConfig } from './config';
import { createDb, migrateLatest } from '../db/connection';

/** `npm run migrate`: applies pending migrations to DATABASE_URL (the compose `migrate` job, production deploys). */
async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.DATABASE_URL)
    throw new Error('DATABASE_URL is required (npm start migrates the embedded database itself)');
  const db = createDb({ databaseUrl: config.DATABASE_URL, pool_max: 1 });
  try {
    await migrateLatest(db);
    console.log('migrations applied');
  } finally {
    await db.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
