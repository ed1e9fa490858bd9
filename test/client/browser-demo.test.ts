import type { Knex } from 'knex';
import { type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from '../../src/start-from-env.js';
import { ensureLegacyBundle } from './support/legacy-bundle.js';
import { browserTestsEnabled, launchChromium } from '../support/chromium.js';

/**
 * The demo chat end to end in Debian's chromium, with fetch, WebSocket, EventSource and Promise
 * removed from `window` before any page script runs, so only the legacy client can make it work.
 *
 * The harness never evaluates code in the page's main world (where Promise is gone and Playwright's
 * evaluate plumbing would depend on what it finds there): it reads the DOM through locators, which
 * run in Playwright's isolated world with its own intact built-ins. Nothing is stashed for it, and
 * an attribute written at DOMContentLoaded proves the globals were still missing after the page's
 * scripts ran.
 */
const REMOVED_GLOBALS = ['fetch', 'WebSocket', 'EventSource', 'Promise'];

/** Runs in the page before its scripts; also records, at DOMContentLoaded, which globals are really gone. */
function removeModernGlobals(names: string[]): void {
  const page = window as unknown as Record<string, unknown>;
  for (const name of names) {
    try {
      delete page[name];
    } catch {
      // Non-configurable in some engine: shadow it below instead.
    }
    if (typeof page[name] !== 'undefined') Object.defineProperty(window, name, { value: undefined, configurable: true, writable: true });
  }
  document.addEventListener('DOMContentLoaded', () => {
    document.documentElement.setAttribute('data-missing-globals', names.filter((name) => typeof page[name] === 'undefined').join(','));
  });
}

type Gateway = Awaited<ReturnType<typeof startGateway>>;

describe.runIf(browserTestsEnabled('browser-demo.test.ts'))('demo chat in a browser without fetch/Promise/WebSocket/EventSource', () => {
  let gateway: Gateway;
  let context: BrowserContext;
  let closeBrowser: (() => Promise<void>) | undefined;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    ensureLegacyBundle();
    gateway = await startGateway({
      PORT: '0',
      HOST: '127.0.0.1',
      SQLITE_FILE: ':memory:',
      GATEWAY_JWT_SECRET: 'test-secret-0123456789abcdef0123456789',
      GATEWAY_DEMO: '1',
      LOG_LEVEL: 'silent',
    });
    ({ context, close: closeBrowser } = await launchChromium('demo-chromium-'));
    await context.addInitScript(removeModernGlobals, REMOVED_GLOBALS);
  }, 60_000);

  afterAll(async () => {
    await closeBrowser?.();
    await gateway?.close();
  });

  /** A new tab (so a new sessionStorage: a customer tab is a new customer), or the profile's first blank one. */
  async function open(role: 'customer' | 'agent', inContext: BrowserContext = context): Promise<Page> {
    const page = inContext.pages().find((candidate) => candidate.url() === 'about:blank') ?? (await inContext.newPage());
    page.on('pageerror', (error) => pageErrors.push(`${role}: ${error.message}`));
    await page.goto(`${gateway.url}/demo/?role=${role}`);
    expect(await page.locator('html').getAttribute('data-missing-globals')).toBe(REMOVED_GLOBALS.join(','));
    return page;
  }

  const transcript = (page: Page) => page.locator('#transcript .message .text').allTextContents();
  // Sent (✓) or already delivered (✓✓): either way the gateway has it.
  const pending = (page: Page) => page.locator('#transcript .message.mine:not(.sent):not(.delivered)').count();
  const bubbleState = (page: Page, text: string) => page.locator('#transcript .message.mine', { hasText: text }).locator('.state').textContent();

  /** The id the customer tab was given (shown in its header once the token endpoint minted it). */
  async function customerId(page: Page): Promise<string> {
    await expect.poll(() => page.locator('#me').getAttribute('data-user'), { timeout: 10_000 }).toMatch(/^demo-customer-[a-z2-9]{12}$/);
    return (await page.locator('#me').getAttribute('data-user'))!;
  }

  /** What the agent's conversation list shows, top to bottom. */
  const conversations = (agent: Page) =>
    agent.locator('#conversations .conversation').evaluateAll((items) =>
      items.map((item) => ({ peer: item.getAttribute('data-peer'), unread: item.querySelector('.unread')?.textContent ?? '' })),
    );

  async function openConversation(agent: Page, peer: string): Promise<void> {
    const item = agent.locator(`#conversations .conversation[data-peer="${peer}"]`);
    await item.waitFor({ timeout: 15_000 });
    await item.click();
    await expect.poll(() => item.getAttribute('aria-current')).toBe('true');
  }

  async function say(page: Page, text: string): Promise<void> {
    await page.locator('#text').fill(text);
    await page.locator('#send').click();
  }

  async function expectBoth(customer: Page, agent: Page, expected: string[]): Promise<void> {
    await expect.poll(() => transcript(customer), { timeout: 15_000 }).toEqual(expected);
    await expect.poll(() => transcript(agent), { timeout: 15_000 }).toEqual(expected);
  }

  it('shows every message exactly once and in order on both sides, across a reload', async () => {
    const customer = await open('customer');
    const agent = await open('agent');
    const conversation: string[] = [];

    await say(customer, 'Hi, my parcel has not arrived.');
    conversation.push('Hi, my parcel has not arrived.');
    await openConversation(agent, await customerId(customer));
    await expectBoth(customer, agent, conversation);

    await say(agent, 'Sorry to hear that! What is the order number?');
    conversation.push('Sorry to hear that! What is the order number?');
    await expectBoth(customer, agent, conversation);

    // Two in a row: the outbox publishes them one after the other, so they arrive in order.
    await say(customer, 'It is 4711.');
    await say(customer, 'Ordered last Monday.');
    conversation.push('It is 4711.', 'Ordered last Monday.');
    await expectBoth(customer, agent, conversation);

    // The agent reloads while the customer keeps typing: the message sent meanwhile must show once,
    // and nothing from before the reload may repeat (the open conversation stays open).
    const reloading = agent.reload();
    await say(customer, 'Are you still there?');
    conversation.push('Are you still there?');
    await reloading;
    expect(await agent.locator('html').getAttribute('data-missing-globals')).toBe(REMOVED_GLOBALS.join(','));
    await expectBoth(customer, agent, conversation);

    await say(agent, 'Yes! It ships today, tracking follows by mail.');
    conversation.push('Yes! It ships today, tracking follows by mail.');
    await expectBoth(customer, agent, conversation);

    // And the customer side survives a reload too, as the same customer.
    const before = await customerId(customer);
    await customer.reload();
    expect(await customerId(customer)).toBe(before);
    await say(customer, 'Thanks!');
    conversation.push('Thanks!');
    await expectBoth(customer, agent, conversation);

    await expect.poll(() => pending(customer), { timeout: 10_000 }).toBe(0);
    await expect.poll(() => pending(agent), { timeout: 10_000 }).toBe(0);
    expect(pageErrors).toEqual([]);
  }, 90_000);

  it("refuses a customer's token to another customer (403 forbidden_recipient), storing nothing", async () => {
    // The token the customer page itself fetched and publishes with, read off the network.
    const tokenResponse = context.waitForEvent('response', (response) => response.url().includes('/demo/token?role=customer&'));
    const customer = await open('customer');
    const { token, user } = (await (await tokenResponse).json()) as { token: string; user: string };
    // A token for the id minted for this tab, which the page shows as its own.
    expect(user).toBe(await customerId(customer));
    const knex = (gateway.store as unknown as { knex: Knex }).knex;
    const stored = async () => (await knex('messages').count({ n: '*' }))[0]!.n;
    const publishAs = (path: string, json: unknown) =>
      fetch(`${gateway.url}${path}`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(json) });
    const before = await stored();

    const single = await publishAs('/v1/messages', { to: 'demo-customer-2', body: { text: 'psst' } });
    expect(single.status).toBe(403);
    expect(((await single.json()) as { error: { code: string } }).error.code).toBe('forbidden_recipient');
    // A batch that hides one such message behind one to an agent is refused whole.
    const batch = await publishAs('/v1/messages/batch', { messages: [{ to: 'demo-agent-2', body: 1 }, { to: 'demo-customer-2', body: 2 }] });
    expect(batch.status).toBe(403);
    expect(((await batch.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'forbidden_recipient', message: expect.stringContaining('messages.1.to') });
    expect(await stored()).toBe(before);

    // The same token still reaches any agent: the refusal is about the recipient, not the token.
    expect((await publishAs('/v1/messages', { to: 'demo-agent-2', body: { text: 'hello' } })).status).toBe(201);
    // And the page kept working through all of it.
    expect(await customer.locator('#status').getAttribute('data-state')).not.toBe('stopped');
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it("marks the customer's bubble ✓ once the gateway stored it and ✓✓ once the agent's page received it", async () => {
    // Nobody may poll as the agent while the customer sends: only then is "stored, not yet read" observable.
    for (const page of context.pages()) await page.close();
    const customer = await open('customer');
    const text = `Receipt check ${Date.now()}`;
    await say(customer, text);
    await expect.poll(() => bubbleState(customer, text), { timeout: 15_000 }).toBe('✓');
    // Still not read a while later: no receipt without the agent's ack.
    await customer.waitForTimeout(500);
    expect(await bubbleState(customer, text)).toBe('✓');

    // The agent's page receives the message and, by polling again with the new cursor, acks it.
    const agent = await open('agent');
    await openConversation(agent, await customerId(customer));
    await expect.poll(() => transcript(agent), { timeout: 15_000 }).toContain(text);
    await expect.poll(() => bubbleState(customer, text), { timeout: 15_000 }).toBe('✓✓');

    // The other way round too, and the state survives a reload of the sender's page.
    const reply = `Read you ${Date.now()}`;
    await say(agent, reply);
    await expect.poll(() => bubbleState(agent, reply), { timeout: 15_000 }).toBe('✓✓');
    await customer.reload();
    expect(await bubbleState(customer, text)).toBe('✓✓');
    expect(pageErrors).toEqual([]);
  }, 90_000);

  it('gives every customer tab its own id; the agent desk lists their conversations and answers each one privately', async () => {
    // Nobody may poll as the agent while the customers send (so ✓ before ✓✓ is observable), and a
    // fresh profile, so the desk starts empty (earlier tests' conversations are in the other one).
    for (const page of context.pages()) await page.close();
    const fresh = await launchChromium('demo-desk-chromium-');
    try {
      await fresh.context.addInitScript(removeModernGlobals, REMOVED_GLOBALS);
      const alice = await open('customer', fresh.context);
      const bob = await open('customer', fresh.context);
      const aliceId = await customerId(alice);
      const bobId = await customerId(bob);
      expect(aliceId).not.toBe(bobId);

      // An empty chat says so; the badge uses one wording for "connected"; the page has an icon.
      for (const page of [alice, bob]) {
        await expect.poll(() => page.locator('#transcript .placeholder').textContent()).toBe('No messages yet');
        await expect.poll(() => page.locator('#status').textContent(), { timeout: 10_000 }).toBe('Connected');
        expect(await page.locator('#status').getAttribute('data-state')).toBe('connected');
        expect(await page.locator('link[rel="icon"]').count()).toBeGreaterThan(0);
      }

      // Both write while no agent page is open: stored (✓), not delivered.
      const aliceText = `Alice here, order 1001 ${Date.now()}`;
      const bobText = `Bob here, order 2002 ${Date.now()}`;
      await say(alice, aliceText);
      await expect.poll(() => bubbleState(alice, aliceText), { timeout: 15_000 }).toBe('✓');
      await say(bob, bobText);
      await expect.poll(() => bubbleState(bob, bobText), { timeout: 15_000 }).toBe('✓');
      await alice.waitForTimeout(500);
      expect(await bubbleState(alice, aliceText)).toBe('✓');
      expect(await bubbleState(bob, bobText)).toBe('✓');
      for (const page of [alice, bob]) {
        expect(await page.locator('#transcript .placeholder').count()).toBe(0);
        // Every bubble carries its time: machine-readable, and shown as hours:minutes.
        const time = page.locator('#transcript .message.mine time');
        expect(await time.getAttribute('datetime')).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/);
        expect(await time.textContent()).toMatch(/^\d{2}:\d{2}$/);
      }

      // The desk lists one conversation per customer, newest activity first, each with one unread.
      const agent = await open('agent', fresh.context);
      await expect.poll(() => conversations(agent), { timeout: 15_000 }).toEqual([
        { peer: bobId, unread: '1' },
        { peer: aliceId, unread: '1' },
      ]);
      expect(await agent.locator('#transcript .placeholder').textContent()).toBe('Choose a conversation');
      expect(await agent.locator('#text').isDisabled()).toBe(true);
      // Received by the agent's page: both customers now see ✓✓.
      await expect.poll(() => bubbleState(alice, aliceText), { timeout: 15_000 }).toBe('✓✓');
      await expect.poll(() => bubbleState(bob, bobText), { timeout: 15_000 }).toBe('✓✓');

      // Picking Alice shows her conversation only, and clears its unread count.
      await openConversation(agent, aliceId);
      expect(await transcript(agent)).toEqual([aliceText]);
      expect(await agent.locator('#transcript .message.theirs time').textContent()).toMatch(/^\d{2}:\d{2}$/);
      expect(await conversations(agent)).toEqual([
        { peer: bobId, unread: '1' },
        { peer: aliceId, unread: '' },
      ]);

      // The reply goes to Alice alone; her conversation moves to the top.
      const reply = `Order 1001 ships today ${Date.now()}`;
      await say(agent, reply);
      await expect.poll(() => transcript(alice), { timeout: 15_000 }).toEqual([aliceText, reply]);
      await expect.poll(() => bubbleState(agent, reply), { timeout: 15_000 }).toBe('✓✓');
      expect(await conversations(agent)).toEqual([
        { peer: aliceId, unread: '' },
        { peer: bobId, unread: '1' },
      ]);
      expect(await alice.locator('#transcript .message.theirs time').textContent()).toMatch(/^\d{2}:\d{2}$/);
      await bob.waitForTimeout(1000);
      expect(await transcript(bob)).toEqual([bobText]);

      // Bob's conversation holds only Bob's message; the agent answers him too.
      await openConversation(agent, bobId);
      expect(await transcript(agent)).toEqual([bobText]);
      await say(agent, 'Hello Bob!');
      await expect.poll(() => transcript(bob), { timeout: 15_000 }).toEqual([bobText, 'Hello Bob!']);
      expect(await transcript(alice)).toEqual([aliceText, reply]);

      // A reload keeps each tab's identity and the desk's state.
      await alice.reload();
      expect(await customerId(alice)).toBe(aliceId);
      expect(await transcript(alice)).toEqual([aliceText, reply]);
      await agent.reload();
      expect(await agent.locator('#conversations .conversation[aria-current="true"]').getAttribute('data-peer')).toBe(bobId);
      expect(await transcript(agent)).toEqual([bobText, 'Hello Bob!']);
      expect(pageErrors).toEqual([]);
    } finally {
      await fresh.close();
    }
  }, 120_000);
});
