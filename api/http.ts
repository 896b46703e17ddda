import type { OpenAPIRegistry, ResponseConfig } from '@asteasolutions/zod-to-openapi';
import express, { type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import { ApiError, invalid } from './errors';
import { type IdempotencyKeys, MAX_KEY_LENGTH, requestHash } from './idempotency';
import { ErrorResponse } from './schemas';

/**
 * One declaration per endpoint: its schemas validate the request and describe it in the OpenAPI document, and its
 * handler returns a plain result. POST endpoints get Idempotency-Key handling here, once for all of them.
 */
export interface RouteContext<B, Q> {
  body: B;
  query: Q;
  params: Record<string, string>;
  /** The authenticated caller (a hash of the API key), the scope of idempotency keys. */
  principal: string;
  idempotencyKey: string | undefined;
}

export interface RouteResult {
  status: number;
  body: unknown;
}

export interface RouteSpec<BS extends z.ZodType | undefined, QS extends z.ZodType | undefined> {
  method: 'get' | 'post' | 'put' | 'delete';
  /** Express-style path, e.g. `/v1/customers/:id`. */
  path: string;
  summary: string;
  tag: string;
  body?: BS;
  query?: QS;
  responses: Record<number, { description: string; schema?: z.ZodType }>;
  /** Omit from auth (health checks, the OpenAPI document). */
  public?: boolean;
  handler: (
    ctx: RouteContext<
      BS extends z.ZodType ? z.output<BS> : undefined,
      QS extends z.ZodType ? z.output<QS> : undefined
    >,
  ) => Promise<RouteResult>;
}

const IdempotencyHeader = z.object({
  'Idempotency-Key': z
    .string()
    .max(MAX_KEY_LENGTH)
    .optional()
    .openapi({ description: 'Makes a retried POST safe' }),
});

const NoQuery = z.object({}).strict();

export class RouteTable {
  readonly router = express.Router();

  constructor(
    private readonly registry: OpenAPIRegistry,
    private readonly keys: IdempotencyKeys,
  ) {}

  add<BS extends z.ZodType | undefined = undefined, QS extends z.ZodType | undefined = undefined>(
    spec: RouteSpec<BS, QS>,
  ): void {
    this.document(spec);
    this.router[spec.method](spec.path, async (req: Request, res: Response, next: NextFunction) => {
      try {
        // No body at all reads as `{}`; a body that is JSON `null` is refused like any other non-object.
        const body: unknown = req.body === undefined ? {} : req.body;
        // A route without a query schema takes no query parameters: unknown ones are a 400, never ignored.
        const query = parse(spec.query ?? NoQuery, req.query, 'query');
        const ctx = {
          body: spec.body ? parse(spec.body, body, 'body') : undefined,
          query: spec.query ? query : undefined,
          params: req.params as Record<string, string>,
          principal: String(res.locals.principal ?? 'public'),
          idempotencyKey: idempotencyKeyOf(req),
        } as Parameters<RouteSpec<BS, QS>['handler']>[0];
        const result =
          spec.method === 'post' ? await this.idempotent(req, ctx, spec) : await spec.handler(ctx);
        res.status(result.status).json(result.body);
      } catch (error) {
        next(error);
      }
    });
  }

  private async idempotent<BS extends z.ZodType | undefined, QS extends z.ZodType | undefined>(
    req: Request,
    claimCtx: Parameters<RouteSpec<BS, QS>['handler']>[0],
    spec: RouteSpec<BS, QS>,
  ): Promise<RouteResult> {
    const key = claimCtx.idempotencyKey;
    if (key === undefined) return spec.handler(claimCtx);
    // The validated body, whose fields come out in schema order: a retry that serialises them in another order
    // is the same request, not a conflict.
    const hash = requestHash(req.method, req.path, claimCtx.body);
    const claim = await this.keys.claim(claimCtx.principal, key, hash);
    if (claim.kind === 'replay') {
      req.res?.setHeader('Idempotency-Replayed', 'true');
      return claim.response;
    }
    // Ids derived in the handler come from the key and the request: a retry names the same top-up or hold even if
    // the stored key is gone (expired, or released after a 5xx), and a key reused for another request after it
    // expired names a new one rather than handing back an old top-up or another customer's authorization.
    const ctx = { ...claimCtx, idempotencyKey: `${key}\n${hash}` };
    let result: RouteResult;
    try {
      result = await spec.handler(ctx);
    } catch (error) {
      if (error instanceof ApiError && isFinalOutcome(error.status)) {
        await this.keys.store(ctx.principal, key, { status: error.status, body: error.toBody() });
      } else {
        await this.keys.release(ctx.principal, key);
      }
      throw error;
    }
    if (isFinalOutcome(result.status)) await this.keys.store(ctx.principal, key, result);
    else await this.keys.release(ctx.principal, key);
    return result;
  }

  private document<BS extends z.ZodType | undefined, QS extends z.ZodType | undefined>(
    spec: RouteSpec<BS, QS>,
  ) {
    const responses: Record<number, ResponseConfig> = {};
    for (const [status, response] of Object.entries(spec.responses)) {
      responses[Number(status)] = {
        description: response.description,
        ...(response.schema ? { content: { 'application/json': { schema: response.schema } } } : {}),
      };
    }
    const params = [...spec.path.matchAll(/:([a-z_]+)/g)].map((m) => m[1]!);
    this.registry.registerPath({
      method: spec.method,
      path: spec.path.replace(/:([a-z_]+)/g, '{$1}'),
      summary: spec.summary,
      tags: [spec.tag],
      security: spec.public ? [] : [{ bearerAuth: [] }],
      request: {
        ...(params.length > 0
          ? { params: z.object(Object.fromEntries(params.map((name) => [name, z.string()]))) }
          : {}),
        ...(spec.body
          ? { body: { content: { 'application/json': { schema: spec.body } }, required: true } }
          : {}),
        ...(spec.query ? { query: spec.query as unknown as z.ZodObject } : {}),
        ...(spec.method === 'post' ? { headers: IdempotencyHeader } : {}),
      },
      responses: {
        ...responses,
        default: { description: 'Error', content: { 'application/json': { schema: ErrorResponse } } },
      },
    });
  }
}

/**
 * Which responses a key remembers: what happened (2xx, and a 402 such as a declined card: money was attempted).
 * A refusal that changed nothing (400, 404, 409 such as "no payment method yet") and a server error are not kept,
 * so the client can fix the cause and retry with the same key, as Stripe does for requests that never executed.
 */
function isFinalOutcome(status: number): boolean {
  return status < 400 || status === 402;
}

function idempotencyKeyOf(req: Request): string | undefined {
  const key = req.header('Idempotency-Key');
  if (key === undefined) return undefined;
  if (key.length === 0 || key.length > MAX_KEY_LENGTH || !/^[\x21-\x7e]+$/.test(key)) {
    throw invalid(
      'Idempotency-Key',
      `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} printable ASCII characters`,
    );
  }
  return key;
}

/** Validates one part of the request; the first problem becomes a 400 whose `param` names the field. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, part: 'body' | 'query'): z.output<S> {
  if (part === 'body' && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw invalid(undefined, 'the request body must be a JSON object');
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    const param = [...path, issue.keys[0] ?? ''].join('.');
    throw invalid(param, `unknown ${part === 'query' ? 'query parameter' : 'field'} '${param}'`);
  }
  const param = path.join('.') || undefined;
  throw invalid(param, param ? `${param}: ${issue.message}` : issue.message);
}
