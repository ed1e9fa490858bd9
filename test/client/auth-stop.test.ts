import { describe, expect, it } from 'vitest';
import { ClientHttpError, createLongPoller, type PollerStatus } from '../../src/client/index.js';
import { createFakeGateway, errorResponse, FAST_BACKOFF } from './support/fake-gateway.js';
import { pollerOptions } from './support/pollers.js';
import { ANY_CLIENT_ID } from './support/client-id.js';

async function runAgainst(response: Response) {
  const gateway = createFakeGateway();
  gateway.failNext(() => response);
  const statuses: PollerStatus[] = [];
  const poller = createLongPoller(
    pollerOptions(gateway, {
      url: 'http://gateway.test/base',
      token: 'expired.jwt.token',
      backoff: FAST_BACKOFF,
      onMessages: () => {},
      onStatus: (status) => void statuses.push(status),
    }),
  );
  const result = await poller.start();
  return { gateway, statuses, result };
}

describe('non-retryable answers stop the poller', () => {
  it('stops on 401 with the server error code and does not retry', async () => {
    const { gateway, statuses, result } = await runAgainst(errorResponse(401, 'token_expired'));
    expect(result).toMatchObject({ type: 'stopped', reason: 'error', error: { code: 'token_expired', status: 401, retryable: false } });
    expect(result.error).toBeInstanceOf(ClientHttpError);
    expect(statuses).toEqual([result]);
    expect(gateway.polls()).toHaveLength(1);
  });

  it('sends the token as a Bearer header to <url>/v1/poll', async () => {
    const { gateway } = await runAgainst(errorResponse(401, 'invalid_token'));
    const [request] = gateway.polls();
    expect(request!.headers.get('authorization')).toBe('Bearer expired.jwt.token');
    expect(request!.url.pathname).toBe('/base/v1/poll');
    expect(Object.fromEntries(request!.url.searchParams)).toEqual({ cursor: '0', wait: '25', limit: '100', client: ANY_CLIENT_ID });
  });

  it.each([
    [403, 'forbidden'],
    [400, 'invalid_cursor'],
    [404, 'not_found'],
  ])('stops on %i %s', async (status, code) => {
    const { gateway, result } = await runAgainst(errorResponse(status, code));
    expect(result).toMatchObject({ reason: 'error', error: { code, status } });
    expect(gateway.polls()).toHaveLength(1);
  });
});

describe('token functions', () => {
  it('are asked before every request, so a rotated token is picked up', async () => {
    const gateway = createFakeGateway({ holdMs: 10 });
    let issued = 0;
    const poller = createLongPoller(pollerOptions(gateway, { token: async () => `token-${++issued}`, onMessages: () => {} }));
    void poller.start();
    await new Promise((resolve) => setTimeout(resolve, 60));
    await poller.stop();
    const sent = gateway.polls().map((request) => request.headers.get('authorization'));
    expect(sent.length).toBeGreaterThanOrEqual(2);
    expect(sent.slice(0, 2)).toEqual(['Bearer token-1', 'Bearer token-2']);
  });

  it('that fail are retried with backoff as token_unavailable', async () => {
    const gateway = createFakeGateway({ holdMs: 10 });
    const statuses: PollerStatus[] = [];
    let calls = 0;
    const poller = createLongPoller(
      pollerOptions(gateway, {
        token: () => {
          if (++calls === 1) throw new Error('auth server unreachable');
          return 'fresh';
        },
        backoff: FAST_BACKOFF,
        onMessages: () => {},
        onStatus: (status) => void statuses.push(status),
      }),
    );
    void poller.start();
    await new Promise((resolve) => setTimeout(resolve, 40));
    await poller.stop();
    expect(statuses[0]).toMatchObject({ type: 'retrying', attempt: 1, error: { code: 'token_unavailable', retryable: true } });
    expect(gateway.polls()[0]!.headers.get('authorization')).toBe('Bearer fresh');
  });
});
