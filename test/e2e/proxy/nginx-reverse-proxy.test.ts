import { readFileSync } from 'node:fs';
import http from 'node:http';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLongPoller, publish, type PollerStatus } from '../../../src/client/index.js';
import { backendCases } from '../../support/backends.js';
import { useTestGateway } from '../../support/gateway.js';
import { waitFor } from '../../support/wait.js';
import { NGINX_BINARY, proxyAvailability, startNginx, type RunningProxy } from './support/proxies.js';

/**
 * The gateway behind Debian's nginx configured like a restrictive deployment: response buffering
 * on and a 20 s read timeout. The gateway's POLL_WAIT_MAX_S (6) stays below that timeout, and the
 * client, asking for its default 25 s, learns the limit from X-Poll-Wait-Max through the proxy.
 *
 * Timing checks are deliberately loose: they only tell "answered on publish" apart from
 * "answered when the 6 s hold or the 20 s proxy timeout ran out".
 */
const nginx = proxyAvailability(NGINX_BINARY, 'nginx-reverse-proxy.test.ts');
const POLL_WAIT_MAX_S = 6;
/** Far below the 6 s hold: a message that took this long was not delivered by its wake-up. */
const PROMPT_DELIVERY_MS = 3000;

function restrictiveProxy(gatewayPort: number) {
  return (port: number) => `
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${gatewayPort};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
      proxy_read_timeout 20s;
      proxy_send_timeout 20s;
    }
    # Control: a proxy that cuts earlier than the gateway's hold, to show the cut is real.
    location /impatient/ {
      proxy_pass http://127.0.0.1:${gatewayPort}/;
      proxy_buffering on;
      proxy_read_timeout 2s;
    }
  }`;
}

/**
 * The README's "Deploying behind proxies" nginx snippet, made runnable here: same directives, with
 * the TLS listener replaced by a loopback port and the upstream pointed at the test gateway.
 */
function readmeSnippet(gatewayPort: number) {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Deploying behind proxies'));
  const snippet = /```nginx\n([\s\S]*?)```/.exec(section)?.[1];
  if (!snippet) throw new Error('README.md has no nginx snippet under "Deploying behind proxies"');
  return (port: number) => {
    const runnable = snippet
      .replace(/listen 443 ssl;/, `listen 127.0.0.1:${port};`)
      .replace(/server 127\.0\.0\.1:8080;/, `server 127.0.0.1:${gatewayPort};`);
    expect(runnable).toContain(`127.0.0.1:${port}`);
    expect(runnable).toContain(`127.0.0.1:${gatewayPort}`);
    return runnable;
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

describe.skipIf(!nginx.run).each(backendCases('nginx reverse proxy'))('behind nginx (buffering on, 20 s read timeout) on $name', ({ make }) => {
  const gw = useTestGateway(make, { POLL_WAIT_MAX_S: String(POLL_WAIT_MAX_S) });
  const { backend } = gw;
  let proxy: RunningProxy;

  beforeAll(async () => {
    if (nginx.missing) throw new Error(`CI=true but ${NGINX_BINARY} is missing: run \`bash scripts/proxies.sh\` first.`);
    proxy = await startNginx(restrictiveProxy(Number(new URL(gw.url).port)));
  });
  afterAll(async () => {
    await proxy?.stop();
  });

  /**
   * Runs the shipped long poller against `baseUrl` and publishes `count` messages through the same
   * URL, one at a time, each after the poll had time to be held. Returns per-message latency.
   */
  async function deliverThrough(baseUrl: string, recipient: string, count: number) {
    const sender = await gw.token(`${recipient}-sender`);
    const received = new Map<string, number>();
    const order: string[] = [];
    const statuses: PollerStatus[] = [];
    const poller = createLongPoller<{ n: string }>({
      url: baseUrl,
      token: await gw.token(recipient),
      onMessages: (messages) => {
        for (const message of messages) {
          order.push(message.body.n);
          received.set(message.body.n, performance.now());
        }
      },
      onStatus: (status) => statuses.push(status),
    });
    const running = poller.start();
    const latencies: number[] = [];
    try {
      for (let index = 0; index < count; index += 1) {
        // Long enough for the previous answer to come back and the next poll to be held.
        await new Promise((resolve) => setTimeout(resolve, 250));
        const n = `m${index}`;
        const sent = performance.now();
        await publish({ url: baseUrl, token: sender, to: recipient, id: n, body: { n } });
        const deadline = Date.now() + 15_000;
        while (!received.has(n) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
        expect(received.has(n), `message ${n} arrived`).toBe(true);
        latencies.push(received.get(n)! - sent);
      }
    } finally {
      await poller.stop();
    }
    expect(await running).toMatchObject({ type: 'stopped', reason: 'stop' });
    expect(order).toEqual(Array.from({ length: count }, (_, index) => `m${index}`));
    // Never a failed poll (504, reset) that needed a retry.
    expect(statuses.filter((status) => status.type === 'retrying')).toEqual([]);
    return latencies;
  }

  it('delivers every message to the client through nginx as promptly as directly', async () => {
    const viaProxy = await deliverThrough(proxy.url, 'carol', 12);
    const direct = await deliverThrough(gw.url, 'dave', 12);
    console.info(
      `nginx-reverse-proxy (${backend.name}): publish→delivery median ${median(viaProxy).toFixed(1)} ms via nginx, ${median(direct).toFixed(1)} ms direct; max via nginx ${Math.max(...viaProxy).toFixed(1)} ms`,
    );
    expect(Math.max(...viaProxy)).toBeLessThan(PROMPT_DELIVERY_MS);
    expect(median(viaProxy)).toBeLessThan(median(direct) + 500);
  }, 90_000);

  it('ends an idle held poll itself before the proxy would cut it', async () => {
    const token = await gw.token('erin');
    const held = async (path: string) => {
      const started = performance.now();
      const response = await fetch(`${proxy.url}${path}?wait=${POLL_WAIT_MAX_S}&access_token=${token}`);
      return { response, body: await response.text(), seconds: (performance.now() - started) / 1000 };
    };
    // Concurrently: the same idle poll through the real location and through the impatient one.
    const [kept, cut] = await Promise.all([held('/v1/poll'), held('/impatient/v1/poll')]);

    expect(kept.response.status).toBe(200);
    expect(JSON.parse(kept.body)).toMatchObject({ messages: [] });
    expect(kept.seconds).toBeGreaterThan(POLL_WAIT_MAX_S - 1);
    expect(kept.seconds).toBeLessThan(20);
    expect(kept.response.headers.get('x-poll-wait-max')).toBe(String(POLL_WAIT_MAX_S));
    // nginx consumed X-Accel-Buffering (it never forwards X-Accel-* headers): it was honoured.
    expect(kept.response.headers.get('x-accel-buffering')).toBeNull();
    const direct = await fetch(`${gw.url}/v1/poll?wait=0&access_token=${token}`);
    expect(direct.headers.get('x-accel-buffering')).toBe('no');

    // The control shows the proxy does cut polls that outlive its timeout.
    expect(cut.response.status).toBe(504);
  }, 30_000);

  it('works with the nginx configuration the README tells users to copy', async () => {
    const documented = await startNginx(readmeSnippet(Number(new URL(gw.url).port)));
    try {
      const latencies = await deliverThrough(documented.url, 'frank', 3);
      expect(Math.max(...latencies)).toBeLessThan(PROMPT_DELIVERY_MS);
      const token = await gw.token('frank');
      const idle = await fetch(`${documented.url}/v1/poll?wait=1&access_token=${token}`);
      expect(idle.status).toBe(200);
      expect(idle.headers.get('cache-control')).toBe('no-store, no-cache, must-revalidate');
    } finally {
      await documented.stop();
    }
  }, 30_000);

  it('carries Server-Sent Events and WebSockets with the README\'s configuration', async () => {
    const documented = await startNginx(readmeSnippet(Number(new URL(gw.url).port)));
    try {
      const token = await gw.token('grace');
      // SSE: each event comes through as it is written (no buffering), with its id.
      const events: string[] = [];
      const request = http.get(`${documented.url}/v1/stream?access_token=${token}`, (response) => {
        expect(response.statusCode).toBe(200);
        expect(response.headers['content-type']).toBe('text/event-stream; charset=utf-8');
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => events.push(chunk));
      });
      request.on('error', () => {});
      await waitFor(() => events.join('').includes('retry: 2000'), 5_000);
      const sent = Date.now();
      expect((await gw.publish('alice', { to: 'grace', body: 'through sse' })).status).toBe(201);
      await waitFor(() => events.join('').includes('through sse'), PROMPT_DELIVERY_MS);
      expect(Date.now() - sent).toBeLessThan(PROMPT_DELIVERY_MS);
      expect(events.join('')).toMatch(/\nid: \d+\ndata: \{"messages":\[\{/);
      request.destroy();

      // WebSocket: the upgrade passes through, and so do the frames both ways.
      const socket = new WebSocket(`${documented.url.replace(/^http/, 'ws')}/v1/ws?access_token=${token}`);
      const frames: Array<{ type: string; cursor?: number; messages?: Array<{ body: unknown }> }> = [];
      socket.on('message', (data) => frames.push(JSON.parse(data.toString())));
      await new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      });
      expect((await gw.publish('alice', { to: 'grace', body: 'through ws' })).status).toBe(201);
      await waitFor(() => frames.some((frame) => frame.messages?.some((message) => message.body === 'through ws')), PROMPT_DELIVERY_MS);
      socket.send(JSON.stringify({ type: 'ack', cursor: frames[frames.length - 1]!.cursor }));
      await waitFor(async () => ((await (await fetch(`${gw.url}/v1/mailbox?access_token=${token}`)).json()) as { pending: number }).pending === 0, 5_000);
      socket.close();
    } finally {
      await documented.stop();
    }
  }, 30_000);
});
