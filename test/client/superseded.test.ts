import { describe, expect, it } from 'vitest';
import { createLongPoller, type PollerStatus } from '../../src/client/index.js';
import { createFakeGateway, jsonResponse, waitFor } from './support/fake-gateway.js';
import { pollerOptions } from './support/pollers.js';

describe('superseded polls', () => {
  it('polls again after a short jittered delay, keeping the cursor, without counting a failure', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.failNext(() => jsonResponse(200, { messages: [], cursor: 0, superseded: true }));
    gateway.deliver('after the takeover');
    const statuses: PollerStatus[] = [];
    const bodies: unknown[] = [];
    const poller = createLongPoller(
      pollerOptions(gateway, {
        backoff: { minDelayMs: 40, maxDelayMs: 40, jitter: 0.5 },
        onMessages: (messages) => void bodies.push(...messages.map((message) => message.body)),
        onStatus: (status) => void statuses.push(status),
      }),
    );
    void poller.start();
    await waitFor(() => bodies.length === 1, 2000, 'delivery after the superseded answer');
    await poller.stop();
    const superseded = statuses.find((status) => status.type === 'superseded');
    expect(superseded).toBeDefined();
    expect(superseded!.type === 'superseded' && superseded!.delayMs).toBeGreaterThanOrEqual(20);
    const [first, second] = gateway.polls();
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(19);
    expect(second!.url.searchParams.get('cursor')).toBe('0');
    expect(statuses.some((status) => status.type === 'retrying')).toBe(false);
  });
});
