import type { Client } from '@temporalio/client';
import { z } from 'zod';
import { type Db, ping } from '../../db/connection';
import type { RouteTable } from '../http';

const READY_TIMEOUT_MS = 2_000;

const Health = z.object({ status: z.literal('ok') });
const Readiness = z.object({
  status: z.enum(['ready', 'not_ready']),
  checks: z.object({ database: z.boolean(), temporal: z.boolean() }),
});

/** Liveness, readiness (database and Temporal reachable) and the OpenAPI document; no auth. */
export function operationRoutes(
  routes: RouteTable,
  deps: { db: Db; temporal: Client; openapi: () => unknown },
): void {
  routes.add({
    method: 'get',
    path: '/healthz',
    tag: 'Operations',
    summary: 'Liveness: the process answers.',
    public: true,
    responses: { 200: { description: 'Alive', schema: Health } },
    handler: async () => ({ status: 200, body: { status: 'ok' } }),
  });

  routes.add({
    method: 'get',
    path: '/readyz',
    tag: 'Operations',
    summary: 'Readiness: PostgreSQL and Temporal both answer within 2 s.',
    public: true,
    responses: {
      200: { description: 'Ready', schema: Readiness },
      503: { description: 'Not ready', schema: Readiness },
    },
    handler: async () => {
      const [database, temporal] = await Promise.all([
        succeeds(() => ping(deps.db)),
        succeeds(() =>
          deps.temporal.connection.withDeadline(Date.now() + READY_TIMEOUT_MS, () =>
            deps.temporal.workflowService.getSystemInfo({}),
          ),
        ),
      ]);
      const ready = database && temporal;
      return {
        status: ready ? 200 : 503,
        body: { status: ready ? 'ready' : 'not_ready', checks: { database, temporal } },
      };
    },
  });

  routes.add({
    method: 'get',
    path: '/openapi.json',
    tag: 'Operations',
    summary: 'This OpenAPI 3.1 document, generated from the same schemas that validate requests.',
    public: true,
    responses: { 200: { description: 'OpenAPI 3.1' } },
    handler: async () => ({ status: 200, body: deps.openapi() }),
  });
}

async function succeeds(fn: () => Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), READY_TIMEOUT_MS);
    });
    await Promise.race([fn(), timeout]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
