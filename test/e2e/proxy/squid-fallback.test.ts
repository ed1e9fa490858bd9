import { connect } from 'node:net';
import { Client, Dispatcher, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLongPoller, type PollerStatus, type WebSocketLike } from '../../../src/client/index.js';
import { backendCases } from '../../support/backends.js';
import { useTestGateway } from '../../support/gateway.js';
import { waitFor } from '../../support/wait.js';
import { proxyAvailability, SQUID_BINARY, startSquid, type RunningProxy } from './support/proxies.js';

/**
 * The modern client behind Debian's squid used as a plain forward proxy, the way a browser sends
 * plain-HTTP requests through one: the absolute URI in the request line, no CONNECT tunnel. Squid
 * does not pass a WebSocket upgrade on that way (it drops `Upgrade`, so the gateway refuses the
 * request), but it passes an event stream through as it comes (measured: squid 5.7). So the
 * client must leave the WebSocket for SSE by itself and lose nothing on the way.
 */
const squid = proxyAvailability(SQUID_BINARY, 'squid-fallback.test.ts');

/** Every request of undici's fetch through the proxy, in absolute form. */
class ForwardProxy extends Dispatcher {
  private readonly client: Client;
  constructor(proxyUrl: string) {
    super();
    this.client = new Client(proxyUrl);
  }
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const origin = String(options.origin).replace(/\/$/, '');
    return this.client.dispatch({ ...options, origin: undefined, path: `${origin}${options.path}`, headers: { ...(options.headers as Record<string, string>), host: new URL(origin).host } }, handler);
  }
  override async close(): Promise<void> {
    await this.client.close();
  }
}

/**
 * A WebSocket opened through the forward proxy like a browser's plain-HTTP request: the upgrade
 * request in absolute form. It reports what a browser does when the upgrade is not accepted: an
 * error and a close (1006) without ever opening; `answers` keeps each status line for the test.
 */
function proxiedWebSocket(proxyPort: number, answers: string[]): new (url: string) => WebSocketLike {
  return class ProxiedWebSocket implements WebSocketLike {
    readyState = 0;
    onopen: ((event: never) => void) | null = null;
    onmessage: ((event: never) => void) | null = null;
    onerror: ((event: never) => void) | null = null;
    onclose: ((event: never) => void) | null = null;
    constructor(url: string) {
      const target = new URL(url.replace(/^ws/, 'http'));
      const socket = connect(proxyPort, '127.0.0.1');
      let head = '';
      socket.on('data', (chunk) => {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n');
        if (end === -1) return;
        answers.push(head.slice(0, end));
        socket.destroy();
      });
      socket.on('close', () => {
        if (this.readyState === 3) return;
        this.readyState = 3;
        // Only a 101 would have opened it; squid never sends one here (asserted by the test).
        this.onerror?.({} as never);
        this.onclose?.({ code: 1006, reason: '' } as never);
      });
      socket.on('error', () => socket.destroy());
      socket.write(
        `GET ${target.href} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
    }
    send(): void {
      throw new Error('not open');
    }
    close(): void {
      this.readyState = 3;
    }
  };
}

describe.skipIf(!squid.run).each(backendCases('squid forward proxy fallback'))('the modern client behind squid as a forward proxy on $name', ({ make }) => {
  const gw = useTestGateway(make, { POLL_WAIT_MAX_S: '5' });
  let proxy: RunningProxy;
  let dispatcher: ForwardProxy;

  beforeAll(async () => {
    if (squid.missing) throw new Error(`CI=true but ${SQUID_BINARY} is missing: run \`bash scripts/proxies.sh\` first.`);
    proxy = await startSquid();
    dispatcher = new ForwardProxy(proxy.url);
  });
  afterAll(async () => {
    await dispatcher?.close();
    await proxy?.stop();
  });

  it('falls back from the refused WebSocket to SSE, which squid streams, with every message once', async () => {
    const [sender, reader] = [gw.nextUser(), gw.nextUser()];
    const token = await gw.token(reader);
    const upgradeAnswers: string[] = [];
    const received: unknown[] = [];
    const statuses: PollerStatus[] = [];
    const poller = createLongPoller({
      url: gw.url,
      token,
      fetch: (input, init) => undiciFetch(input, { ...(init as object), dispatcher }) as unknown as Promise<Response>,
      WebSocket: proxiedWebSocket(proxy.port, upgradeAnswers),
      fallbackAfterMs: 5_000,
      onMessages: (messages) => {
        received.push(...messages.map((message) => message.body));
      },
      onStatus: (status) => statuses.push(status),
    });
    void poller.start();
    try {
      await waitFor(() => statuses.some((status) => status.type === 'connected' && status.transport === 'sse'), 15_000);
      // Squid dropped the upgrade: the gateway saw a plain GET of /v1/ws and refused it.
      expect(upgradeAnswers.length).toBeGreaterThan(0);
      expect(upgradeAnswers[0]).toMatch(/^HTTP\/1\.1 400/);
      for (let n = 1; n <= 5; n++) expect((await gw.publish(sender, { to: reader, id: `sq-${n}`, body: n })).status).toBe(201);
      await waitFor(() => received.length >= 5, 10_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(received).toEqual([1, 2, 3, 4, 5]);
      // Through squid, and acked: nothing left pending.
      await waitFor(async () => ((await (await gw.request('/v1/mailbox', { token })).json()) as { pending: number }).pending === 0, 5_000);
      expect(statuses.filter((status) => status.type === 'connected').map((status) => (status as { transport: string }).transport)).toEqual(['sse']);
    } finally {
      await poller.stop();
    }
  }, 40_000);
});
