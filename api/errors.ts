/**
 * The API's error shape and its one status table (API.md, extended with the HTTP-level refusals 405, 408, 415 and
 * 431). Expected business refusals and bad input become an ApiError; anything else is a defect and becomes a 500
 * `api_error` with no internals in the body.
 */
export type ErrorType =
  | 'invalid_request'
  | 'authentication_error'
  | 'permission_error'
  | 'card_error'
  | 'insufficient_balance'
  | 'budget_limit_reached'
  | 'not_found'
  | 'method_not_allowed'
  | 'request_timeout'
  | 'idempotency_conflict'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'headers_too_large'
  | 'rate_limit_exceeded'
  | 'api_error'
  | 'unavailable';

export const STATUS_BY_TYPE: Record<ErrorType, number> = {
  invalid_request: 400,
  authentication_error: 401,
  permission_error: 403,
  card_error: 402,
  insufficient_balance: 402,
  budget_limit_reached: 402,
  not_found: 404,
  method_not_allowed: 405, // with an Allow header
  request_timeout: 408, // the request did not arrive in time (raised by Node before Express)
  idempotency_conflict: 409,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415, // a body that is not application/json
  headers_too_large: 431, // raised by Node before Express
  rate_limit_exceeded: 429,
  api_error: 500,
  unavailable: 503,
};

export interface ErrorBody {
  error: {
    type: ErrorType;
    code: string;
    message: string;
    param?: string;
    decline_code?: string;
    [extra: string]: unknown;
  };
}

export class ApiError extends Error {
  readonly status: number;

  constructor(
    readonly type: ErrorType,
    message: string,
    readonly options: {
      code?: string;
      param?: string;
      extra?: Record<string, unknown>;
      /** Response headers the answer needs (`Retry-After` of a 429). */
      headers?: Record<string, string>;
    } = {},
  ) {
    super(message);
    this.status = STATUS_BY_TYPE[type];
  }

  get code(): string {
    return this.options.code ?? this.type;
  }

  toBody(): ErrorBody {
    return {
      error: {
        type: this.type,
        code: this.code,
        message: this.message,
        ...(this.options.param === undefined ? {} : { param: this.options.param }),
        ...this.options.extra,
      },
    };
  }
}

export const invalid = (param: string | undefined, message: string, code = 'invalid_request') =>
  new ApiError('invalid_request', message, { param, code });

export const notFound = (what: string, id: string, param?: string) =>
  new ApiError('not_found', `no ${what} with id '${id}'`, { code: 'resource_missing', param });
