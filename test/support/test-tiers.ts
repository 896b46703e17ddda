import fs from 'node:fs';
import path from 'node:path';
import { parseTierTable, type TierTable } from '../../billing/tiers';

/**
 * The suite's default tier table (test/support/test-tiers.json): OpenAI's tiers and rules without limits, because
 * many tests authorize far more than the free tier's 3 requests a minute. Child processes get it as TIERS_PATH.
 */
export const TEST_TIERS_PATH = path.join(__dirname, 'test-tiers.json');

export function testTierTable(): TierTable {
  return parseTierTable(JSON.parse(fs.readFileSync(TEST_TIERS_PATH, 'utf8')));
}
