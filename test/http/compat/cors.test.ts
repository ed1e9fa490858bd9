import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config.js';
import { backendCases } from '../../support/backends.js';
import { useTestGateway, type TestGatewayFixture } from '../../support/gateway.js';

const LISTED = 'https://app.example.com';
const OTHER = 'https://evil.example.net';

describe('CORS_ORIGINS configuration', () => {
  it('parses a comma-separated list of origins and *', () => {
    expect(loadConfig({ CORS_ORIGINS: ` ${LISTED}, http://127.0.0.1:3000 ,*` }).http.corsOrigins).toEqual([LISTED, 'http://127.0.0.1:3000', '*']);
    expect(loadConfig({}).http.corsOrigins).toEqual([]);
    expect(loadConfig({}).http.corsMaxAgeSeconds).toBe(600);
  });

  it.each(['https://app.example.com/', 'https://app.example.com/path', 'app.example.com', 'ftp://files.example.com', 'null'])(
    'refuses %j, naming the variable',
    (entry) => {
      expect(() => loadConfig({ CORS_ORIGINS: entry })).toThrow(ConfigError);
      expect(() => loadConfig({ CORS_ORIGINS: entry })).toThrow(/CORS_ORIGINS/);
    },
  );
});

describe.each(backendCases('CORS'))('CORS allow-list on $name', ({ make }) => {
  // Three gateways, one per CORS setting, each on a backend of its own.
  const listedOnly = useTestGateway(make, { CORS_ORIGINS: LISTED, CORS_MAX_AGE_S: '900' });
  const withWildcard = useTestGateway(make, { CORS_ORIGINS: `${LISTED},*` });
  const closed = useTestGateway(make);

  const preflight = (gw: TestGatewayFixture, origin: string) =>
    gw.request('/v1/messages', {
      method: 'OPTIONS',
      headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' },
    });

  it('answers a preflight from a listed origin with credentials and a cache lifetime', async () => {
    const response = await preflight(listedOnly, LISTED);
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe(LISTED);
    expect(response.headers.get('access-control-allow-credentials')).toBe('true');
    expect(response.headers.get('access-control-max-age')).toBe('900');
    expect(response.headers.get('access-control-allow-methods')?.split(', ').sort()).toEqual(['GET', 'HEAD', 'POST']);
    expect(response.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    expect(response.headers.get('vary')).toContain('Origin');
  });

  it('gives an unlisted origin no CORS headers, preflight or not', async () => {
    const refused = await preflight(listedOnly, OTHER);
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    const poll = await listedOnly.request('/v1/poll?wait=0', { token: await listedOnly.token('bob'), headers: { Origin: OTHER } });
    expect(poll.status).toBe(200);
    expect(poll.headers.get('access-control-allow-origin')).toBeNull();
    expect(poll.headers.get('vary')).toContain('Origin');
  });

  it('lets any origin in through * without credentials, and listed ones with', async () => {
    const wildcard = await preflight(withWildcard, OTHER);
    expect(wildcard.status).toBe(204);
    expect(wildcard.headers.get('access-control-allow-origin')).toBe('*');
    expect(wildcard.headers.get('access-control-allow-credentials')).toBeNull();
    const listed = await preflight(withWildcard, LISTED);
    expect(listed.headers.get('access-control-allow-origin')).toBe(LISTED);
    expect(listed.headers.get('access-control-allow-credentials')).toBe('true');
  });

  it('exposes the poll limit, Retry-After and the request id, on errors too', async () => {
    const token = await withWildcard.token('bob');
    const ok = await withWildcard.request('/v1/poll?wait=0', { token, headers: { Origin: LISTED } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe(LISTED);
    expect(ok.headers.get('access-control-expose-headers')?.split(', ').sort()).toEqual(['Retry-After', 'X-Poll-Wait-Max', 'X-Request-Id']);
    const refused = await withWildcard.request('/v1/poll?wait=999', { token, headers: { Origin: OTHER } });
    expect(refused.status).toBe(400);
    expect(refused.headers.get('access-control-allow-origin')).toBe('*');
    expect(refused.headers.get('access-control-expose-headers')).toContain('X-Poll-Wait-Max');
  });

  it('sends no CORS headers at all when CORS_ORIGINS is unset', async () => {
    const response = await preflight(closed, LISTED);
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    expect(response.headers.get('access-control-max-age')).toBeNull();
  });
});
