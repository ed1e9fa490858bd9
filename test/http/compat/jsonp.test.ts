import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { backendCases } from '../../support/backends.js';
import { useTestGateway } from '../../support/gateway.js';

/**
 * JSONP callback-polling over plain HTTP: the answer is a script that calls the named function,
 * always 200, errors in the body; a bad callback is a JSON 400 that never reflects its input.
 */

/** Runs a JSONP answer the way a script tag would and returns what the callback received. */
function runJsonp(script: string, callbackPath: string): unknown {
  const received: unknown[] = [];
  const root: Record<string, unknown> = {};
  let cursor = root;
  const parts = callbackPath.split('.');
  for (const part of parts.slice(0, -1)) cursor = (cursor[part] = {}) as Record<string, unknown>;
  cursor[parts.at(-1)!] = (payload: unknown) => received.push(payload);
  runInNewContext(script, root, { timeout: 1000 });
  expect(received).toHaveLength(1);
  return received[0];
}

const HOSTILE_CALLBACKS: Array<[string, string]> = [
  ['script injection', 'alert(1)//'],
  ['markup', '<script>alert(1)</script>'],
  ['10 KiB name', 'a'.repeat(10 * 1024)],
  ['65 characters (one over the limit)', 'a'.repeat(65)],
  ['unicode identifier', 'cällback'],
  ['line separator', 'cb\u2028alert(1)'],
  ['leading digit', '1cb'],
  ['empty path segment', 'a..b'],
  ['trailing dot', 'a.'],
  ['bracket access', 'a["b"]'],
  ['empty', ''],
  ['spaces', 'a b'],
];

describe.each(backendCases('JSONP polling'))('JSONP callback-polling on $name', ({ make }) => {
  const gw = useTestGateway(make, { POLL_WAIT_MAX_S: '5' });
  /** Bob's token, for the query string (a script tag cannot set headers). */
  const bob = () => gw.token('bob');

  const jsonpPoll = (query: string) => gw.request(`/v1/poll?${query}`);

  it('answers a poll as a no-store, nosniff script calling the named function', async () => {
    const published = await gw.publish('alice', { to: 'bob', body: { text: 'hi\u2028there' } });
    expect(published.status).toBe(201);
    const response = await jsonpPoll(`callback=app.inbox_1.$receive&wait=0&access_token=${await bob()}&_=1`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/javascript; charset=utf-8');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('cache-control')).toBe('no-store, no-cache, must-revalidate');
    expect(response.headers.get('x-poll-wait-max')).toBe('5');
    const script = await response.text();
    expect(script.startsWith('/**/app.inbox_1.$receive(')).toBe(true);
    expect(script.endsWith(');')).toBe(true);
    // Escaped so that pre-ES2019 engines, which end a line at U+2028, still parse the script.
    expect(script).not.toContain('\u2028');
    const payload = runJsonp(script, 'app.inbox_1.$receive') as { messages: Array<{ from: string; body: unknown }>; cursor: number };
    expect(payload.messages.map((message) => [message.from, message.body])).toEqual([['alice', { text: 'hi\u2028there' }]]);
    expect(payload.cursor).toBeGreaterThan(0);
  });

  it('delivers errors as 200 scripts carrying code, message and the HTTP status', async () => {
    const cases: Array<[string, number, string]> = [
      [`callback=cb&wait=6&access_token=${await bob()}`, 400, 'invalid_wait'],
      ['callback=cb&wait=0', 401, 'missing_token'],
      ['callback=cb&wait=0&access_token=not.a.jwt', 401, 'invalid_token'],
      [`callback=cb&wait=0&user=alice&access_token=${await bob()}`, 403, 'forbidden'],
    ];
    for (const [query, status, code] of cases) {
      const response = await jsonpPoll(query);
      expect(response.status, query).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/javascript; charset=utf-8');
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      const payload = runJsonp(await response.text(), 'cb') as { error: { code: string; message: string }; status: number };
      expect(payload, query).toMatchObject({ error: { code }, status });
      expect(typeof payload.error.message).toBe('string');
    }
  });

  it.each(HOSTILE_CALLBACKS)('rejects a hostile callback (%s) with a JSON 400 that does not reflect it', async (_name, callback) => {
    const response = await jsonpPoll(`callback=${encodeURIComponent(callback)}&wait=0&access_token=${await bob()}`);
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    const text = await response.text();
    expect(JSON.parse(text)).toMatchObject({ error: { code: 'invalid_callback' } });
    if (callback.length > 0) {
      expect(text).not.toContain(callback);
      expect(text).not.toContain(encodeURIComponent(callback));
    }
  });

  it('rejects a callback sent twice, before authenticating', async () => {
    const response = await jsonpPoll('callback=a&callback=b&wait=0');
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: 'invalid_callback' } });
  });

  it('keeps JSONP to polling: publish and ack ignore `callback` and answer JSON', async () => {
    const response = await gw.publish('alice', { to: 'bob', body: 1 }, '/v1/messages?callback=cb');
    expect(response.status).toBe(201);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await response.json()).toMatchObject({ duplicate: false });
  });
});
