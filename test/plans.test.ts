import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadDefaultPlanCatalog } from '../billing/plans';
import { loadDefaultPriceBook } from '../billing/price-book';
import { ConfigError } from '../wiring/config';
import { loadPlanCatalog } from '../wiring/runtime';
import { useHarness } from './support/harness';

/**
 * The plan catalog over HTTP and at startup: `GET /v1/plans` lists the loaded catalog in the documented shape
 * behind the admin key and appears in the OpenAPI document; `PLANS_PATH` replaces the bundled catalog, and a bad
 * file (invalid, not JSON, missing, or naming a model the price book does not price) stops startup with a
 * ConfigError naming PLANS_PATH and the fault, before the API opens any connection.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plans-'));
const write = (name: string, json: unknown) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof json === 'string' ? json : JSON.stringify(json));
  return file;
};

/** A replacement catalog: free and one per-seat team plan with a `period` allowance. */
const REPLACEMENT = {
  plans: [
    {
      id: 'free',
      name: 'Starter',
      price_usd: '0',
      interval: 'month',
      per_seat: false,
      collection: 'charge',
      allowances: [{ models: ['gpt-4o'], limit: 3, window: 'PT1H', downgrade_to: 'gpt-4o-mini' }],
    },
    {
      id: 'team',
      name: 'Team',
      price_usd: '12.50',
      interval: 'year',
      per_seat: true,
      collection: 'charge',
      allowances: [{ models: ['o1', 'gpt-5.4'], limit: 500, window: 'period', downgrade_to: 'gpt-5.4-mini' }],
    },
  ],
};

const h = useHarness({
  worker: false,
  plans: loadPlanCatalog(write('replacement.json', REPLACEMENT)),
  billing_period: 'PT12S',
});

describe('GET /v1/plans', () => {
  it('lists the PLANS_PATH catalog in file order, prices as USD strings, allowances as written', async () => {
    const response = await h.call('GET', '/v1/plans');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      data: [
        {
          id: 'free',
          name: 'Starter',
          price_usd: '0.000000000',
          interval: 'month',
          per_seat: false,
          allowances: [{ models: ['gpt-4o'], limit: 3, window: 'PT1H', downgrade_to: 'gpt-4o-mini' }],
        },
        {
          id: 'team',
          name: 'Team',
          price_usd: '12.500000000',
          interval: 'year',
          per_seat: true,
          allowances: [
            { models: ['o1', 'gpt-5.4'], limit: 500, window: 'period', downgrade_to: 'gpt-5.4-mini' },
          ],
        },
      ],
      has_more: false,
    });
  });

  it('needs the admin key and allows only GET', async () => {
    const anonymous = await fetch(`${h.baseUrl}/v1/plans`);
    expect(anonymous.status).toBe(401);
    expect((await h.call('POST', '/v1/plans', {})).status).toBe(405);
  });

  it('is in the OpenAPI document with the Plan schema', async () => {
    const doc = (await (await fetch(`${h.baseUrl}/openapi.json`)).json()) as {
      paths: Record<string, { get: { responses: Record<string, unknown> } }>;
      components: { schemas: Record<string, { properties: Record<string, unknown> }> };
    };
    expect(doc.paths['/v1/plans']?.get.responses['200']).toBeDefined();
    // The schema's fields are the route's: the document describes what the server sends.
    const plans = await h.call('GET', '/v1/plans');
    expect(Object.keys(doc.components.schemas.Plan?.properties ?? {})).toEqual(
      Object.keys(plans.body.data[0]),
    );
  });

  it('hands the harness billing_period option to the account settings', () => {
    expect(h.settings.billing_period).toBe('PT12S');
  });
});

describe('PLANS_PATH at startup', () => {
  it('is the bundled catalog when unset', () => {
    expect(loadPlanCatalog().plans.map((p) => p.id)).toEqual(loadDefaultPlanCatalog().plans.map((p) => p.id));
  });

  it('stops startup with a ConfigError naming PLANS_PATH and each fault', () => {
    const bad = write('bad.json', { plans: [{ ...REPLACEMENT.plans[1] }] });
    expect(() => loadPlanCatalog(bad)).toThrow(ConfigError);
    expect(() => loadPlanCatalog(bad)).toThrow(
      /PLANS_PATH .*bad\.json: invalid plan catalog:\n.*plans: must include the "free" plan/,
    );
    expect(() => loadPlanCatalog(write('broken.json', '{'))).toThrow(/PLANS_PATH .*broken\.json/);
    expect(() => loadPlanCatalog(path.join(dir, 'missing.json'))).toThrow(/PLANS_PATH .*missing\.json/);
  });

  it('refuses a model the price book does not price, by its path', () => {
    const unpriced = structuredClone(REPLACEMENT);
    unpriced.plans[1]!.allowances[0]!.downgrade_to = 'gpt-9';
    const file = write('unpriced.json', unpriced);
    expect(() => loadPlanCatalog(file, loadDefaultPriceBook())).toThrow(
      /PLANS_PATH .*unpriced\.json: invalid plan catalog:\n {2}plans\.1\.allowances\.0\.downgrade_to: gpt-9 is not in the price book/,
    );
  });

  it('makes `npm run api` exit before connecting to anything, with the fault on stderr', async () => {
    const bad = write('window.json', {
      plans: [
        { ...REPLACEMENT.plans[0], allowances: [{ ...REPLACEMENT.plans[0]!.allowances[0], window: 'P1M' }] },
      ],
    });
    const root = path.join(__dirname, '..');
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', path.join(root, 'api/main.ts')],
        // No DATABASE_URL or TEMPORAL_ADDRESS: the catalog is checked before they are asked for.
        { cwd: root, env: { PATH: process.env.PATH, PLANS_PATH: bad }, timeout: 60_000 },
        (error, stdout, stderr) =>
          resolve({ code: error ? (error.code as number) : 0, output: stdout + stderr }),
      );
    });
    expect(code).toBe(1);
    expect(output).toMatch(
      /PLANS_PATH .*window\.json: invalid plan catalog:\n {2}plans\.0\.allowances\.0\.window/,
    );
  });
});
