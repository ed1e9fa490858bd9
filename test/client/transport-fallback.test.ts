import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { createLongPoller, publish, type LongPollerOptions, type Poller, type PollerStatus, type PollMessage } from '../../src/client/index.js';
import { waitFor } from './support/fake-gateway.js';
import { startTransportProxy, type TransportProxy } from './support/transport-proxy.js';
import { backendCases } from '../support/backends.js';
import { useTestGateway } from '../support/gateway.js';

const FAST = { minDelayMs: 5, maxDelayMs: 50 };
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const connections = (statuses: PollerStatus[]) => statuses.flatMap((status) => (status.type === 'connected' ? [status.transport] : []));

/** A WebSocket from a page of another origin: the gateway refuses its upgrade with 403 forbidden. */
class CrossOriginWebSocket extends WebSocket {
  constructor(url: string) {
    super(url, { origin: 'https://elsewhere.example' });
  }
}

/**
 * Choosing a transport and falling back, against a real gateway, with a proxy in front of it for
 * what a network does to a transport: refuse it, buffer it, swallow it, cut it.
 */
describe.each(backendCases('transport fallback'))('transport fallback on $name', ({ make }) => {
  const gw = useTestGateway(make, { JWT_CLOCK_TOLERANCE_S: '0' });
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function proxy(): Promise<TransportProxy> {
    const started = await startTransportProxy(gw.url);
    cleanups.push(() => started.close());
    return started;
  }

  async function receiver(user: string, options: Partial<LongPollerOptions> = {}) {
    const received: PollMessage[] = [];
    const statuses: PollerStatus[] = [];
    const poller: Poller = createLongPoller({
      url: gw.url,
      token: await gw.token(user),
      WebSocket,
      wait: 4,
      backoff: FAST,
      onMessages: (messages) => void received.push(...messages),
      onStatus: (status) => void statuses.push(status),
      ...options,
    });
    const stopped = poller.start();
    cleanups.push(() => poller.stop());
    return { poller, received, statuses, stopped };
  }

  async function send(to: string, body: unknown) {
    return publish({ url: gw.url, token: await gw.token('sender'), to, body, backoff: FAST });
  }

  it('uses the WebSocket where it works, and says so', async () => {
    const reader = await receiver(gw.nextUser());
    await waitFor(() => reader.statuses.length > 0, 5000, 'the connection');
    expect(reader.statuses[0]).toMatchObject({ type: 'connected', transport: 'websocket' });
  });

  it('falls back to SSE at once when the gateway refuses the upgrade (403: an origin it does not allow)', async () => {
    const user = gw.nextUser();
    const reader = await receiver(user, { WebSocket: CrossOriginWebSocket });
    await waitFor(() => reader.statuses.length > 0, 5000, 'the connection');
    await send(user, 'over SSE');
    await waitFor(() => reader.received.length === 1, 5000, 'the message');
    expect(connections(reader.statuses)).toEqual(['sse']);
    expect(reader.statuses.filter((status) => status.type === 'retrying')).toEqual([]);
  });

  it('falls back from a refused upgrade and a refused stream (404 from a proxy) to long polls', async () => {
    const user = gw.nextUser();
    const between = await proxy();
    between.mode.websocket = 'refuse';
    between.mode.stream = 'refuse';
    const reader = await receiver(user, { url: between.url });
    await send(user, 'polled');
    await waitFor(() => reader.received.length === 1, 5000, 'the message');
    expect(connections(reader.statuses)).toEqual(['long-poll']);
    expect(reader.statuses.filter((status) => status.type === 'retrying')).toEqual([]);
    expect(between.seen.slice(0, 2)).toEqual(['UPGRADE /v1/ws', 'GET /v1/poll']);
    expect(between.seen).toContain('GET /v1/stream');
  });

  it('falls back after fallbackAfterMs from a stream a proxy buffers (headers, then not a byte)', async () => {
    const user = gw.nextUser();
    const between = await proxy();
    between.mode.stream = 'buffer';
    await send(user, 'sent before');
    const started = Date.now();
    const reader = await receiver(user, { url: between.url, transports: ['sse', 'long-poll'], fallbackAfterMs: 400 });
    await waitFor(() => reader.received.length === 1, 5000, 'the message');
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    expect(connections(reader.statuses)).toEqual(['long-poll']);
    expect(reader.statuses.filter((status) => status.type === 'retrying')).toEqual([]);
  });

  it('falls back after fallbackAfterMs from a WebSocket whose upgrade is never answered', async () => {
    const user = gw.nextUser();
    const between = await proxy();
    between.mode.websocket = 'silent';
    const started = Date.now();
    const reader = await receiver(user, { url: between.url, fallbackAfterMs: 400 });
    await waitFor(() => reader.statuses.length > 0, 5000, 'the connection');
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    expect(connections(reader.statuses)).toEqual(['sse']);
    await send(user, 'over SSE');
    await waitFor(() => reader.received.length === 1, 5000, 'the message');
  });

  it('where nothing answers at all, silence on the last transport is a failure to retry, not a refusal', async () => {
    const silent: Server = createServer((socket: Socket) => void cleanups.push(() => void socket.destroy()));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`;
    const reader = await receiver(gw.nextUser(), { url, transports: ['websocket', 'sse'], fallbackAfterMs: 150 });
    await waitFor(() => reader.statuses.some((status) => status.type === 'retrying'), 5000, 'a retry');
    expect(reader.statuses[0]).toMatchObject({ type: 'retrying', attempt: 1, error: { code: 'request_timeout' } });
  });

  it('probes upward: back on the WebSocket once it gets through again, nothing lost or repeated across the switch', async () => {
    const user = gw.nextUser();
    const between = await proxy();
    between.mode.websocket = 'refuse';
    const reader = await receiver(user, { url: between.url, probeIntervalMs: 300 });
    await waitFor(() => reader.statuses.length > 0, 5000, 'the connection');
    expect(connections(reader.statuses)).toEqual(['sse']);
    for (let index = 1; index <= 3; index++) await send(user, index);
    // The first probes still meet the refusal: SSE goes on (and `connected` is not repeated).
    await pause(700);
    expect(connections(reader.statuses)).toEqual(['sse']);
    between.mode.websocket = 'pass';
    const sending = (async () => {
      for (let index = 4; index <= 12; index++) {
        await send(user, index);
        await pause(40);
      }
    })();
    await waitFor(() => connections(reader.statuses).includes('websocket'), 5000, 'the switch to the WebSocket');
    await sending;
    await waitFor(() => reader.received.length >= 12, 5000, 'all twelve');
    await pause(200);
    expect(reader.received.map((message) => message.body)).toEqual(Array.from({ length: 12 }, (_unused, index) => index + 1));
    expect(connections(reader.statuses)).toEqual(['sse', 'websocket']);
    expect(reader.statuses.filter((status) => status.type === 'retrying')).toEqual([]);
    // Once on the best transport, no more probing.
    const upgrades = between.seen.filter((request) => request === 'UPGRADE /v1/ws').length;
    await pause(700);
    expect(between.seen.filter((request) => request === 'UPGRADE /v1/ws').length).toBe(upgrades);
  });

  it('leaves a transport that worked after repeated failures, not at the first one', async () => {
    const user = gw.nextUser();
    const between = await proxy();
    const reader = await receiver(user, { url: between.url });
    await waitFor(() => reader.statuses.length > 0, 5000, 'the connection');
    expect(connections(reader.statuses)).toEqual(['websocket']);
    between.mode.websocket = 'refuse';
    between.dropWebSockets();
    await waitFor(() => connections(reader.statuses).length === 2, 5000, 'the fallback');
    await send(user, 'after the fallback');
    await waitFor(() => reader.received.length === 1, 5000, 'the message');
    expect(reader.statuses.map((status) => status.type).filter((type) => type !== 'messages')).toEqual(['connected', 'retrying', 'retrying', 'retrying', 'connected']);
    expect(reader.statuses.filter((status) => status.type === 'retrying').map((status) => status.error.code)).toEqual(['network_error', 'network_error', 'network_error']);
    expect(connections(reader.statuses)).toEqual(['websocket', 'sse']);
  });

  it('reconnects with a fresh token when the WebSocket closes with 4401 token_expired, without a failure', async () => {
    const user = gw.nextUser();
    let issued = 0;
    const reader = await receiver(user, {
      transports: ['websocket'],
      token: () => {
        issued += 1;
        return gw.gateway.issueToken(user, { expiresInSeconds: 1 });
      },
    });
    await waitFor(() => issued >= 3, 6000, 'two reconnections');
    await send(user, 'still here');
    await waitFor(() => reader.received.length === 1, 5000, 'the message');
    expect(reader.statuses.filter((status) => status.type !== 'messages')).toEqual([{ type: 'connected', cursor: 0, transport: 'websocket' }]);
  });

  it('asks the token function again after a 401 refusal of a stream, and stops on the second', async () => {
    const user = gw.nextUser();
    const tokens = ['expired.jwt.token', await gw.token(user)];
    const reader = await receiver(user, { transports: ['sse'], token: () => tokens.shift() ?? 'expired.jwt.token' });
    await waitFor(() => reader.statuses.length > 0, 5000, 'the connection');
    expect(reader.statuses[0]).toMatchObject({ type: 'connected', transport: 'sse' });

    const refused = await receiver(user, { transports: ['sse'], token: () => 'expired.jwt.token' });
    expect(await refused.stopped).toMatchObject({ type: 'stopped', reason: 'error', error: { status: 401, code: 'invalid_token' } });
    expect(refused.statuses.map((status) => status.type)).toEqual(['stopped']);
  });
});
