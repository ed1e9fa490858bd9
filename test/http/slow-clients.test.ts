import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { backendCases } from '../support/backends.js';
import { useTestGateway } from '../support/gateway.js';

/** Opens a raw socket, sends `head` and nothing more; resolves with what the server sent and when it closed. */
function sendAndStall(url: string, head: string): Promise<{ received: string; closedAfterMs: number }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let received = '';
    const socket = connect(Number(port), hostname, () => socket.write(head));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => {});
    socket.on('close', () => resolve({ received, closedAfterMs: Date.now() - started }));
    setTimeout(() => {
      socket.destroy();
      reject(new Error('the server kept a stalled socket open for 10 s'));
    }, 10_000).unref();
  });
}

describe.each(backendCases('slow clients'))('slow clients on $name', ({ make }) => {
  const gw = useTestGateway(make, { HEADERS_TIMEOUT_MS: '1000', POLL_WAIT_MAX_S: '3' });

  it('closes a socket whose headers never finish (slow loris) with 408', async () => {
    const { received, closedAfterMs } = await sendAndStall(gw.url, 'GET /v1/poll?wait=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    expect(received).toMatch(/^HTTP\/1\.1 408/);
    expect(closedAfterMs).toBeLessThan(5_000);
  });

  it('does not cut a held poll that outlasts the headers timeout', async () => {
    const token = await gw.token(gw.nextUser());
    const started = Date.now();
    const response = await gw.request('/v1/poll?wait=3', { token });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ messages: [], cursor: 0 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_900);
  });
});
