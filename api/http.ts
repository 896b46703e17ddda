import type { OpenAPIRegistry, ResponseConfig } from '@asteasolutions/zod-to-openapi';
import express, { type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import { ApiError, invalid } from './errors';
import { type IdempotencyKeys, MAX_KEY_LENGTH, requestHash } from './idempotency';
import { CustomerId, ErrorResponse, identifier, PRINTABLE_ASCII, ResourceId } from './schemas';

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
  /** Routes declared `raw_body` only: the body exactly as received (signatures are over these bytes) and headers. */
  raw?: { body: Buffer; header(name: string): string | undefined };
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
  /**
   * The handler gets the body unparsed (`ctx.raw`), as the app's `express.raw` for this path left it, and runs without
   * Idempotency-Key handling (the caller's own ids deduplicate: Stripe's event ids). `body` then only documents it.
   */
  raw_body?: boolean;
  handler: (
    ctx: RouteContext<
      BS extends z.ZodType ? z.output<BS> : undefined,
      QS extends z.ZodType ? z.output<QS> : undefined
    >,
  ) => Promise<RouteResult>;
}

const IdempotencyHeader = z.object({
  'Idempotency-Key': identifier(
    MAX_KEY_LENGTH,
    'Makes a retried POST safe; printable ASCII, no spaces.',
  ).optional(),
});

const NoQuery = z.object({}).strict();

/**
 * What a path parameter must be, by the collection it indexes: a customer id under `/customers/`, any other id
 * elsewhere. Either way never a control character, so a `%00` in a path is a 400 naming the parameter rather than
 * a value PostgreSQL refuses with a 500.
 */
function pathParamsSchema(path: string) {
  const shape: Record<string, z.ZodType> = {};
  for (const match of path.matchAll(/([^/]+)\/:([a-z_]+)/g)) {
    shape[match[2]!] = match[1] === 'customers' ? CustomerId : ResourceId;
  }
  return z.object(shape);
}

/** The methods one path template answers, and the pattern that recognises a request path as that template. */
interface KnownPath {
  pattern: RegExp;
  methods: Set<string>;
}

export class RouteTable {
  readonly router = express.Router();
  private readonly paths = new Map<string, KnownPath>();

  constructor(
    private readonly registry: OpenAPIRegistry,
    private readonly keys: IdempotencyKeys,
  ) {}

  add<BS extends z.ZodType | undefined = undefined, QS extends z.ZodType | undefined = undefined>(
    spec: RouteSpec<BS, QS>,
  ): void {
    const paramsSchema = pathParamsSchema(spec.path);
    this.remember(spec.path, spec.method);
    this.document(spec, paramsSchema);
    this.router[spec.method](spec.path, async (req: Request, res: Response, next: NextFunction) => {
      try {
        // Path first, then query, then body: the first bad part of the request is the one named.
        const params = parse(paramsSchema, req.params, 'path') as Record<string, string>;
        // No body at all reads as `{}`; a body that is JSON `null` is refused like any other non-object.
        const body: unknown = req.body === undefined ? {} : req.body;
        // A route without a query schema takes no query parameters: unknown ones are a 400, never ignored.
        const query = parse(spec.query ?? NoQuery, req.query, 'query');
        if (spec.raw_body) {
          const raw = {
            body: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0),
            header: (name: string) => req.header(name),
          };
          const ctx = {
            body: undefined,
            query: undefined,
            params,
            principal: 'public',
            idempotencyKey: undefined,
            raw,
          };
          const result = await spec.handler(ctx as Parameters<RouteSpec<BS, QS>['handler']>[0]);
          res.status(result.status).json(result.body);
          return;
        }
        const ctx = {
          body: spec.body ? parse(spec.body, body, 'body') : undefined,
          query: spec.query ? query : undefined,
          params,
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
      const final = error instanceof ApiError && isFinalOutcome(error.status);
      await this.settleKey(ctx.principal, key, final ? { status: error.status, body: error.toBody() } : null);
      throw error;
    }
    await this.settleKey(ctx.principal, key, isFinalOutcome(result.status) ? result : null);
    return result;
  }

  /**
   * Stores the final answer under the key, or gives the key back. If storing fails (the database blinked), the key
   * is given back rather than left claimed by this live process, which would answer 409 `idempotency_key_in_use`
   * to every retry until it restarts; running the retry again is safe, since the ids underneath derive from the
   * key. The answer itself still goes to the caller.
   */
  private async settleKey(principal: string, key: string, answer: RouteResult | null): Promise<void> {
    try {
      if (answer) await this.keys.store(principal, key, answer);
      else await this.keys.release(principal, key);
    } catch {
      await this.keys.release(principal, key).catch(() => undefined);
    }
  }

  /**
   * Answers requests for a path this table knows with a method it does not serve: 405 with `Allow` (HEAD wherever
   * GET is served, as Express answers HEAD with the GET route), or 204 with `Allow` for OPTIONS. Other requests
   * pass. Mounted before the body is read, so a wrong method costs no parsing.
   */
  methodGuard() {
    return (req: Request, res: Response, next: NextFunction) => {
      const known = this.match(req.path);
      if (!known) return next();
      const method = req.method.toLowerCase();
      if (known.methods.has(method) || (method === 'head' && known.methods.has('get'))) return next();
      refuseMethod(req, res, [...known.methods]);
    };
  }

  /** Whether a request path is one of this table's templates (the router's rules: any case, optional final "/"). */
  knows(path: string): boolean {
    return this.match(path) !== undefined;
  }

  /** The template a request path matches (`/v1/customers/:id`), for requests refused before the router ran. */
  templateOf(path: string): string | undefined {
    for (const [template, known] of this.paths) if (known.pattern.test(path)) return template;
    return undefined;
  }

  private match(path: string): KnownPath | undefined {
    for (const known of this.paths.values()) if (known.pattern.test(path)) return known;
    return undefined;
  }

  private remember(path: string, method: string): void {
    let known = this.paths.get(path);
    if (!known) {
      const source = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:([a-z_]+)/g, '[^/]+');
      known = { pattern: new RegExp(`^${source}/?$`, 'i'), methods: new Set() };
      this.paths.set(path, known);
    }
    known.methods.add(method);
  }

  private document<BS extends z.ZodType | undefined, QS extends z.ZodType | undefined>(
    spec: RouteSpec<BS, QS>,
    paramsSchema: z.ZodObject,
  ) {
    const responses: Record<number, ResponseConfig> = {};
    for (const [status, response] of Object.entries(spec.responses)) {
      responses[Number(status)] = {
        description: response.description,
        ...(response.schema ? { content: { 'application/json': { schema: response.schema } } } : {}),
      };
    }
    const hasParams = Object.keys(paramsSchema.shape).length > 0;
    this.registry.registerPath({
      method: spec.method,
      path: spec.path.replace(/:([a-z_]+)/g, '{$1}'),
      summary: spec.summary,
      tags: [spec.tag],
      security: spec.public ? [] : [{ bearerAuth: [] }],
      request: {
        ...(hasParams ? { params: paramsSchema } : {}),
        ...(spec.body
          ? {
              body: {
                description: 'JSON (Content-Type application/json, UTF-8); any other media type is a 415.',
                content: { 'application/json': { schema: spec.body } },
                required: true,
              },
            }
          : {}),
        ...(spec.query ? { query: spec.query as unknown as z.ZodObject } : {}),
        ...(spec.method === 'post' && !spec.raw_body ? { headers: IdempotencyHeader } : {}),
      },
      responses: {
        ...responses,
        default: { description: 'Error', content: { 'application/json': { schema: ErrorResponse } } },
      },
    });
  }
}

/**
 * The answer to a method a path does not serve, given the methods it does (lower case, as in RouteSpec): a 405
 * naming them in `Allow`, or for OPTIONS a 204 with that header. HEAD is allowed wherever GET is, as Express
 * answers HEAD with the GET route.
 */
export function refuseMethod(req: Request, res: Response, methods: readonly string[]): void {
  const allow = methods.flatMap((m) => (m === 'get' ? ['GET', 'HEAD'] : [m.toUpperCase()]));
  res.setHeader('Allow', allow.join(', '));
  if (req.method === 'OPTIONS') {
    res.status(204).end();
    return;
  }
  throw new ApiError(
    'method_not_allowed',
    `${req.method} is not allowed on ${req.path}; use ${allow.join(', ')}`,
  );
}

/**
 * Which responses a key remembers: what happened (2xx, and a 402 such as a declined card: money was attempted).
 * Not a 202: the request is still running, and a retry with the same key should hear how it ended.
 * A refusal that changed nothing (400, 404, 409 such as "no payment method yet") and a server error are not kept,
 * so the client can fix the cause and retry with the same key, as Stripe does for requests that never executed.
 */
function isFinalOutcome(status: number): boolean {
  return (status < 400 && status !== 202) || status === 402;
}

function idempotencyKeyOf(req: Request): string | undefined {
  const key = req.header('Idempotency-Key');
  if (key === undefined) return undefined;
  if (key.length === 0 || key.length > MAX_KEY_LENGTH || !PRINTABLE_ASCII.test(key)) {
    throw invalid(
      'Idempotency-Key',
      `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} printable ASCII characters`,
    );
  }
  return key;
}

/**
 * A request that carries a body must say it is JSON: anything else is a 415 before a byte of it is parsed. A
 * request without a body (no Content-Length or zero, no Transfer-Encoding) needs no Content-Type.
 */
export function requireJsonBody(req: Request, _res: Response, next: NextFunction): void {
  const hasBody =
    req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (hasBody && !req.is('application/json')) {
    const sent = req.headers['content-type'];
    throw new ApiError(
      'unsupported_media_type',
      sent === undefined
        ? 'the request has a body but no Content-Type; send it as application/json'
        : `the request body must be application/json, not ${sent}`,
      { param: 'Content-Type' },
    );
  }
  next();
}

/** Validates one part of the request; the first problem becomes a 400 whose `param` names the field. */
export function parse<S extends z.ZodType>(
  schema: S,
  value: unknown,
  part: 'body' | 'query' | 'path',
): z.output<S> {
  if (part === 'body' && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw invalid(undefined, 'the request body must be a JSON object');
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problem = describeIssue(parsed.error.issues[0]!, [], part === 'query' ? 'query parameter' : 'field');
  throw invalid(problem.param, problem.message);
}

/**
 * One validation issue as the field it names (`metadata.plan`, `events[3].feature`) and a message. Names taken
 * from the request (unknown fields, record keys) have their control characters escaped as `\uXXXX`, so an error
 * never echoes raw control characters back; a bad record key names the record and quotes the key.
 */
export function describeIssue(
  issue: z.core.$ZodIssue,
  prefix: string[],
  what: 'field' | 'query parameter' = 'field',
): { param: string | undefined; message: string } {
  const path = [...prefix, ...issue.path.map((p) => escapeControls(String(p)))];
  if (issue.code === 'unrecognized_keys') {
    const param = [...path, escapeControls(issue.keys[0] ?? '')].join('.');
    return { param, message: `unknown ${what} '${param}'` };
  }
  if (issue.code === 'invalid_key') {
    const key = path.pop() ?? '';
    const param = path.join('.') || undefined;
    const reason = issue.issues[0]?.message ?? issue.message;
    return { param, message: `${param ?? 'body'}: the key "${key}" ${reason}` };
  }
  const param = path.join('.') || undefined;
  return { param, message: param ? `${param}: ${issue.message}` : issue.message };
}

function escapeControls(text: string): string {
  return text.replace(
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
