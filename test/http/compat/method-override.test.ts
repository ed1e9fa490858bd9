import { describe, expect, it } from 'vitest';
import { backendCases } from '../../support/backends.js';
import { useTestGateway } from '../../support/gateway.js';

/** Proxies that pass only GET and POST: a POST may stand for a method the API uses, nothing else. */
describe.each(backendCases('method override'))('method override on $name', ({ make }) => {
  const gw = useTestGateway(make, { POLL_WAIT_MAX_S: '5' });

  const post = async (path: string, headers: Record<string, string> = {}) =>
    gw.request(path, { method: 'POST', token: await gw.token('bob'), headers: { 'Content-Type': 'text/plain', ...headers }, body: '{}' });

  it('turns a POST into the poll it stands for, by header or by query', async () => {
    const published = await gw.publish('alice', { to: 'bob', body: 'over POST' });
    expect(published.status).toBe(201);
    for (const response of [await post('/v1/poll?wait=0', { 'X-HTTP-Method-Override': 'GET' }), await post('/v1/poll?wait=0&_method=get')]) {
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-control')).toBe('no-store, no-cache, must-revalidate');
      const page = (await response.json()) as { messages: Array<{ body: unknown }> };
      expect(page.messages.map((message) => message.body)).toEqual(['over POST']);
    }
  });

  it('refuses methods no route uses, without echoing them', async () => {
    for (const response of [await post('/v1/poll', { 'X-HTTP-Method-Override': 'DELETE' }), await post('/v1/poll?_method=%3Cscript%3E')]) {
      expect(response.status).toBe(400);
      const text = await response.text();
      expect(JSON.parse(text)).toMatchObject({ error: { code: 'invalid_method_override' } });
      expect(text).not.toMatch(/DELETE|script/i);
    }
  });

  it('never overrides a GET (links and prefetchers send those)', async () => {
    const response = await gw.request('/v1/poll?wait=0&_method=POST', { token: await gw.token('bob') });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: 'invalid_method_override' } });
  });

  it('refuses a header and a query that disagree, or a repeated query', async () => {
    const disagree = await post('/v1/poll?_method=GET', { 'X-HTTP-Method-Override': 'POST' });
    expect(disagree.status).toBe(400);
    const repeated = await post('/v1/poll?_method=GET&_method=GET');
    expect(repeated.status).toBe(400);
    expect(await repeated.json()).toMatchObject({ error: { code: 'invalid_method_override' } });
  });

  it('treats an override to POST as a plain POST', async () => {
    const response = await gw.request('/v1/messages?_method=POST', {
      method: 'POST',
      token: await gw.token('alice'),
      headers: { 'Content-Type': 'text/plain' },
      body: JSON.stringify({ to: 'bob', body: 2 }),
    });
    expect(response.status).toBe(201);
  });
});
