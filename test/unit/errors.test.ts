import { toApiError } from '../../api/app';
import { ContentionError } from '../../db/hot-path';

/**
 * What a request answers when the hot path gives up on a statement that kept conflicting with concurrent ones
 * (after its bounded deadlock or stale-floor retries): nothing was written and a retry is safe, so it is a 503
 * with Retry-After, not an internal error.
 */
test('a hot-path statement that exhausted its retries is a 503 contention, not a 500', () => {
  for (const error of [new ContentionError(3, '40P01'), new ContentionError(10, 'WF001')]) {
    const mapped = toApiError(error);
    expect(mapped.status).toBe(503);
    expect(mapped.toBody().error).toMatchObject({ type: 'unavailable', code: 'contention' });
  }
});

test('an unknown error is still a 500 that reveals nothing', () => {
  const mapped = toApiError(new Error('secret detail'));
  expect(mapped.status).toBe(500);
  expect(JSON.stringify(mapped.toBody())).not.toContain('secret');
});
