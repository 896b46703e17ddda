import { createServer, type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RequestListener } from 'node:http';
import { ApiError } from './errors';

/**
 * The one way to serve the API (api/main.ts, dev/start-all.ts and the test harness): an HTTP server whose
 * requests go to `app`, and whose errors raised by Node before Express ever sees a request (bad bytes in a header,
 * headers over the size limit, a request that does not arrive in time) still answer in the contract's JSON error
 * shape when the connection allows it.
 *
 * Resolves once listening; rejects if the port cannot be bound. `host` defaults to all interfaces.
 */
export function listen(app: RequestListener, port: number, host?: string): Promise<Server> {
  const server = createServer(app);
  server.on('clientError', answerClientError);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const ready = () => {
      server.off('error', reject);
      resolve(server);
    };
    if (host === undefined) server.listen(port, ready);
    else server.listen(port, host, ready);
  });
}

/** How long a refused connection may linger for the client to read the answer before it is closed. */
const CLOSE_AFTER_ANSWER_MS = 1_000;

/**
 * Node's `clientError`: the request could not be parsed, so there is no request object, only the socket. The
 * answer is written as raw HTTP/1.1 and the connection closed, as Node's default handler does, but with a JSON body.
 * Nothing is written when the socket is gone, or when a response on this keep-alive connection has already begun
 * (another status line would corrupt it).
 */
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  // Node's own default handler looks at the same (undocumented) field for the same reason.
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const apiError = clientErrorOf(error);
  const body = JSON.stringify(apiError.toBody());
  socket.end(
    `HTTP/1.1 ${apiError.status} ${STATUS_CODES[apiError.status]}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
  setTimeout(() => socket.destroy(), CLOSE_AFTER_ANSWER_MS).unref();
}

/** Node's parser and server error codes, as the contract's errors. */
function clientErrorOf(error: { code?: string }): ApiError {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new ApiError('headers_too_large', 'the request headers are larger than the server accepts', {
        code: 'headers_too_large',
      });
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return new ApiError('request_timeout', 'the request did not arrive in time', {
        code: 'request_timeout',
      });
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new ApiError('payload_too_large', 'the chunk extensions are too large');
    default:
      // Bad bytes in the request line or a header, a malformed Content-Length or chunk, and the like.
      return new ApiError(
        'invalid_request',
        'the request is not valid HTTP/1.1 (bad request line or header)',
        {
          code: 'malformed_http',
        },
      );
  }
}
