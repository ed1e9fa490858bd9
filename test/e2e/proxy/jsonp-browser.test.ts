import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendCases } from '../../support/backends.js';
import { browserTestsEnabled, launchChromium } from '../../support/chromium.js';
import { useTestGateway } from '../../support/gateway.js';

/**
 * JSONP in Debian's chromium: a page on one loopback origin polls the gateway on another through
 * `<script>` tags, the only cross-origin channel the oldest browsers have. Valid callbacks round-trip
 * (messages, a held poll woken by a publish, errors in the body); hostile ones never run.
 */
/**
 * The test page: `lp.inbox.receive` records what it is called with; `loadScript` adds a script tag
 * and records whether it loaded or failed. Everything lands in the DOM for the test to read.
 */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>JSONP</title>
<script>
  var lp = { inbox: { receive: function (payload) { record('call', JSON.stringify(payload)); } } };
  function record(kind, text) {
    var item = document.createElement('li');
    item.className = kind;
    item.textContent = text;
    document.getElementById('log').appendChild(item);
  }
  function loadScript(src, label) {
    var script = document.createElement('script');
    script.src = src;
    script.onload = function () { record('loaded', label); };
    script.onerror = function () { record('failed', label); };
    document.getElementsByTagName('head')[0].appendChild(script);
  }
</script></head>
<body><ul id="log"></ul></body></html>`;

interface Payload {
  messages?: Array<{ from: string; body: unknown }>;
  cursor?: number;
  error?: { code: string; message: string };
  status?: number;
}

describe.runIf(browserTestsEnabled('jsonp-browser.test.ts')).each(backendCases('JSONP in a browser'))('JSONP through <script> tags in chromium on $name', ({ make }) => {
  const gw = useTestGateway(make, { POLL_WAIT_MAX_S: '5' });
  let pageServer: Server;
  let pageUrl: string;
  let context: BrowserContext;
  let closeBrowser: (() => Promise<void>) | undefined;
  let page: Page;
  const dialogs: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    pageServer = createServer((_request, response) => {
      response.setHeader('Content-Type', 'text/html; charset=utf-8');
      response.end(PAGE);
    });
    await new Promise<void>((resolve) => pageServer.listen(0, '127.0.0.1', resolve));
    pageUrl = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}/jsonp.html`;
    ({ context, close: closeBrowser } = await launchChromium('jsonp-chromium-'));
    page = context.pages()[0] ?? (await context.newPage());
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(pageUrl);
  }, 60_000);

  afterAll(async () => {
    await closeBrowser?.();
    await new Promise((resolve) => (pageServer ? pageServer.close(resolve) : resolve(undefined)));
  });

  const loadScript = (src: string, label: string) => page.evaluate(([url, name]) => (window as unknown as { loadScript(u: string, n: string): void }).loadScript(url!, name!), [src, label]);
  const entries = (kind: string) => page.locator(`#log li.${kind}`).allTextContents();
  const calls = async () => (await entries('call')).map((text) => JSON.parse(text) as Payload);
  const pollSrc = (query: string) => `${gw.url}/v1/poll?${query}`;

  it('round-trips messages, a held poll and an error through a valid callback', async () => {
    const [alice, bob] = [gw.nextUser(), gw.nextUser()];
    const bobToken = await gw.token(bob);
    expect((await gw.publish(alice, { to: bob, body: { text: 'first <b>' } })).status).toBe(201);

    await loadScript(pollSrc(`callback=lp.inbox.receive&wait=0&access_token=${bobToken}&_=${Date.now()}`), 'short');
    await expect.poll(calls, { timeout: 10_000 }).toHaveLength(1);
    const [first] = await calls();
    expect(first!.messages!.map((message) => [message.from, message.body])).toEqual([[alice, { text: 'first <b>' }]]);

    // A held poll: the script tag stays pending until the publish wakes it.
    await loadScript(pollSrc(`callback=lp.inbox.receive&wait=5&cursor=${first!.cursor}&access_token=${bobToken}&_=${Date.now()}`), 'held');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await calls()).toHaveLength(1);
    expect((await gw.publish(alice, { to: bob, body: { text: 'second' } })).status).toBe(201);
    await expect.poll(calls, { timeout: 10_000 }).toHaveLength(2);
    expect((await calls())[1]!.messages!.map((message) => message.body)).toEqual([{ text: 'second' }]);

    // Errors arrive as a call too: a script tag would never see a 400.
    await loadScript(pollSrc(`callback=lp.inbox.receive&wait=999&access_token=${bobToken}`), 'error');
    await expect.poll(calls, { timeout: 10_000 }).toHaveLength(3);
    expect((await calls())[2]).toMatchObject({ error: { code: 'invalid_wait' }, status: 400 });
    expect(await entries('loaded')).toEqual(['short', 'held', 'error']);
  }, 60_000);

  it('never runs a hostile callback', async () => {
    const bob = await gw.token(gw.nextUser());
    const hostile = [
      'alert(1)//',
      '<script>alert(1)</script>',
      `lp.inbox.${'r'.repeat(10 * 1024)}`,
      'ŀp.inbox.receive',
      'lp.inbox.receive\u2028alert(1)',
      'lp.inbox.receive;alert(1)',
    ];
    const before = (await calls()).length;
    for (const [index, callback] of hostile.entries()) {
      await loadScript(pollSrc(`callback=${encodeURIComponent(callback)}&wait=0&access_token=${bob}`), `hostile-${index}`);
    }
    await expect.poll(async () => (await entries('failed')).length, { timeout: 10_000 }).toBe(hostile.length);
    expect(await entries('failed')).toEqual(hostile.map((_, index) => `hostile-${index}`));
    expect((await calls()).length).toBe(before);
    expect(dialogs).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 30_000);
});
