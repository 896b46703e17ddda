import { type NativeConnection } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTES } from '../workflows/messages';

const INDEXED_TYPES = {
  Keyword: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  Bool: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
} as const;

/**
 * Registers the account workflow's search attributes on an external Temporal cluster (the dev server gets them as
 * launch flags). Already-registered attributes are fine; a cluster that refuses the call (Temporal Cloud manages
 * them in its console) gets a warning, and workflows then fail to start until an operator adds them.
 */
export async function ensureSearchAttributes(
  connection: NativeConnection,
  namespace: string,
  log: (line: string) => void,
): Promise<void> {
  // One call per attribute: a cluster that has the older ones refuses a call naming them ("already exists"), which
  // must not keep an attribute added later (BillingTier) from being registered.
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
    try {
      await connection.operatorService.addSearchAttributes({
        namespace,
        searchAttributes: { [name]: INDEXED_TYPES[type] },
      });
    } catch (error) {
      const message = (error as Error).message ?? String(error);
      if (/already exists/i.test(message)) continue;
      log(`warning: could not register search attribute ${name}: ${message}`);
    }
  }
}
