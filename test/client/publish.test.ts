import { describe, expect, it } from 'vitest';
import { ClientHttpError, publish, type FetchLike } from '../../src/client/index.js';
import { errorResponse, FAST_BACKOFF, jsonResponse } from './support/fake-gateway.js';

function scriptedFetch(...answers: Array<() => Response | Promise<Response>>) {
  const bodies: Array<{ to: string; id: string; body: unknown }> = [];
  const headers: Headers[] = [];
  const fetch: FetchLike = async (_input, init) => {
    bodies.push(JSON.parse(init.body as string));
    headers.push(new Headers(init.headers));
    const next = answers.shift();
    if (!next) throw new Error('unexpected request');
    return next();
  };
  return { fetch, bodies, headers };
}

describe('publish', () => {
  it('retries a lost answer with the same client id, so the gateway stores the message once', async () => {
    const { fetch, bodies, headers } = scriptedFetch(
      () => Promise.reject(new TypeError('fetch failed')),
      () => errorResponse(503, 'store_unavailable', { 'Retry-After': '0' }),
      () => jsonResponse(200, { id: 17, duplicate: true }),
    );
    const result = await publish({ url: 'http://gateway.test', token: 't', to: 'bob', id: 'note-1', body: { text: 'hi' }, fetch, backoff: FAST_BACKOFF });
    expect(result).toEqual({ id: 17, duplicate: true, clientId: 'note-1' });
    expect(bodies).toEqual([0, 1, 2].map(() => ({ to: 'bob', id: 'note-1', body: { text: 'hi' } })));
    expect(headers[0]!.get('content-type')).toBe('application/json');
    expect(headers[0]!.get('authorization')).toBe('Bearer t');
  });

  it('generates one client id when none is given and keeps it across retries', async () => {
    const { fetch, bodies } = scriptedFetch(() => errorResponse(500, 'internal_error'), () => jsonResponse(201, { id: 3, duplicate: false }));
    const result = await publish({ url: 'http://gateway.test', token: 't', to: 'bob', body: 'x', fetch, backoff: FAST_BACKOFF });
    expect(result.clientId).toMatch(/\S{8,}/);
    expect(bodies.map((body) => body.id)).toEqual([result.clientId, result.clientId]);
  });

  it('does not retry a 4xx and rejects with the server code', async () => {
    const { fetch, bodies } = scriptedFetch(() => errorResponse(403, 'forbidden'));
    const failure = publish({ url: 'http://gateway.test', token: 't', to: 'bob', body: 'x', fetch, backoff: FAST_BACKOFF });
    await expect(failure).rejects.toBeInstanceOf(ClientHttpError);
    await expect(failure).rejects.toMatchObject({ code: 'forbidden', status: 403 });
    expect(bodies).toHaveLength(1);
  });

  it('gives up after `retries` transient failures', async () => {
    const { fetch, bodies } = scriptedFetch(...Array.from({ length: 3 }, () => () => errorResponse(500, 'internal_error')));
    await expect(publish({ url: 'http://gateway.test', token: 't', to: 'bob', body: 1, fetch, retries: 2, backoff: FAST_BACKOFF })).rejects.toMatchObject({
      code: 'internal_error',
    });
    expect(bodies).toHaveLength(3);
  });

  it('validates its options', async () => {
    const base = { url: 'http://gateway.test', token: 't', to: 'bob', body: 1, fetch: (() => {}) as unknown as FetchLike };
    await expect(publish({ ...base, to: 'not valid!' })).rejects.toThrow('Expected `to` to match');
    await expect(publish({ ...base, id: 'x'.repeat(129) })).rejects.toThrow('Expected `id` to be at most 128 characters, got 129');
    await expect(publish({ ...base, url: 'ftp://x' })).rejects.toThrow('Expected `url` to be an absolute http(s) URL, got "ftp://x"');
  });
});
