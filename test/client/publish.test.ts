import { describe, expect, it } from 'vitest';
import { ClientHttpError, publish, publishBatch, type FetchLike } from '../../src/client/index.js';
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
    await expect(publish({ ...base, to: 'not valid!' })).rejects.toThrow('Expected `to` to be a user id matching');
    await expect(publish({ ...base, id: 'x'.repeat(129) })).rejects.toThrow('Expected `id` to be at most 128 characters, got 129');
    await expect(publish({ ...base, url: 'ftp://x' })).rejects.toThrow('Expected `url` to be an absolute http(s) URL, got "ftp://x"');
  });
});

describe('publish with a delivery receipt', () => {
  it('sends `receipt: true` only when asked for', async () => {
    const { fetch, bodies } = scriptedFetch(() => jsonResponse(201, { id: 8, duplicate: false }), () => jsonResponse(201, { id: 9, duplicate: false }));
    await publish({ url: 'http://gateway.test', token: 't', to: 'bob', id: 'r-1', body: 'x', receipt: true, fetch });
    await publish({ url: 'http://gateway.test', token: 't', to: 'bob', id: 'r-2', body: 'x', receipt: false, fetch });
    expect(bodies).toEqual([
      { to: 'bob', id: 'r-1', body: 'x', receipt: true },
      { to: 'bob', id: 'r-2', body: 'x' },
    ]);
    await expect(publish({ url: 'http://gateway.test', token: 't', to: 'bob', body: 1, receipt: 'yes' as never, fetch })).rejects.toThrow(
      'Expected `receipt` to be a boolean, got "yes"',
    );
  });

  it('sends `ttl` only when given, and refuses one that is not a positive whole number of seconds', async () => {
    const { fetch, bodies } = scriptedFetch(() => jsonResponse(201, { id: 10, duplicate: false }));
    await publish({ url: 'http://gateway.test', token: 't', to: 'bob', id: 't-1', body: 'x', ttl: 60, fetch });
    expect(bodies).toEqual([{ to: 'bob', id: 't-1', body: 'x', ttl: 60 }]);
    for (const ttl of [0, -1, 1.5]) {
      await expect(publish({ url: 'http://gateway.test', token: 't', to: 'bob', body: 1, ttl, fetch })).rejects.toThrow('Expected `ttl` to be a positive whole number of seconds');
    }
  });

  it('publishBatch sends `receipt` per item, retries the whole batch under the same ids, and answers per item', async () => {
    const urls: string[] = [];
    const { fetch: inner, bodies } = scriptedFetch(
      () => errorResponse(503, 'store_unavailable', { 'Retry-After': '0' }),
      () => jsonResponse(201, { results: [{ id: 11, duplicate: false }, { id: 12, duplicate: true }] }),
    );
    const fetch: FetchLike = (input, init) => {
      urls.push(input);
      return inner(input, init);
    };
    const results = await publishBatch({
      url: 'http://gateway.test',
      token: 't',
      fetch,
      backoff: FAST_BACKOFF,
      messages: [
        { to: 'bob', id: 'b-1', body: 1, receipt: true },
        { to: 'carol', body: 2 },
      ],
    });
    const generated = (bodies[0] as unknown as { messages: Array<{ id: string }> }).messages[1]!.id;
    expect(results).toEqual([
      { id: 11, duplicate: false, clientId: 'b-1' },
      { id: 12, duplicate: true, clientId: generated },
    ]);
    expect(urls).toEqual(['http://gateway.test/v1/messages/batch', 'http://gateway.test/v1/messages/batch']);
    expect(bodies).toEqual([0, 1].map(() => ({ messages: [{ to: 'bob', id: 'b-1', body: 1, receipt: true }, { to: 'carol', id: generated, body: 2 }] })));
  });

  it('publishBatch validates its items and the answer', async () => {
    const base = { url: 'http://gateway.test', token: 't', fetch: (() => {}) as unknown as FetchLike };
    await expect(publishBatch({ ...base, messages: [] })).rejects.toThrow('Expected `messages` to be a non-empty array');
    await expect(publishBatch({ ...base, messages: [{ to: 'bob', body: 1 }, { to: 'x y', body: 2 }] })).rejects.toThrow('Expected `messages[1].to` to be a user id matching');
    const { fetch } = scriptedFetch(() => jsonResponse(201, { results: [{ id: 1, duplicate: false }] }));
    await expect(publishBatch({ ...base, fetch, retries: 0, messages: [{ to: 'bob', body: 1 }, { to: 'carol', body: 2 }] })).rejects.toMatchObject({
      code: 'invalid_response',
    });
  });
});
