import type { Knex } from 'knex';
import { type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from '../../src/start-from-env.js';
import { ensureLegacyBundle } from './support/legacy-bundle.js';
import { browserTestsEnabled, launchChromium } from '../support/chromium.js';

/**
 * The demo desk end to end in Debian's chromium, with fetch, WebSocket, EventSource and Promise
 * removed from `window` before any page script runs, so only the legacy client can make it work.
 * Conversations, the desk and announcements are topics (see demo/demo.js).
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
const PRESENCE_GRACE_S = 4;

describe.runIf(browserTestsEnabled('browser-demo.test.ts'))('demo desk in a browser without fetch/Promise/WebSocket/EventSource', () => {
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
      // Short, so the presence test sees a closed page leave in seconds.
      PRESENCE_GRACE_S: String(PRESENCE_GRACE_S),
    });
    ({ context, close: closeBrowser } = await launchChromium('demo-chromium-'));
    await context.addInitScript(removeModernGlobals, REMOVED_GLOBALS);
  }, 60_000);

  afterAll(async () => {
    await closeBrowser?.();
    await gateway?.close();
  });

  /** A new tab (so a new sessionStorage: every tab is a new customer or agent), or the profile's first blank one. */
  async function open(role: 'customer' | 'agent', inContext: BrowserContext = context): Promise<Page> {
    const page = inContext.pages().find((candidate) => candidate.url() === 'about:blank') ?? (await inContext.newPage());
    page.on('pageerror', (error) => pageErrors.push(`${role}: ${error.message}`));
    await page.goto(`${gateway.url}/demo/?role=${role}`);
    expect(await page.locator('html').getAttribute('data-missing-globals')).toBe(REMOVED_GLOBALS.join(','));
    return page;
  }

  /**
   * Closes the tabs of earlier tests: every open tab holds a poll, and chromium opens at most six
   * connections to one host, which the tabs of one test must have to themselves.
   */
  async function closeAllTabs(): Promise<void> {
    for (const page of context.pages()) await page.close();
  }

  const transcript = (page: Page) => page.locator('#transcript .message .text').allTextContents();
  /** Each bubble's position in the conversation topic, top to bottom: the same on every page. */
  const positions = (page: Page) => page.locator('#transcript .message').evaluateAll((items) => items.map((item) => item.getAttribute('data-seq')));
  // Sent (✓): the gateway has it.
  const pending = (page: Page) => page.locator('#transcript .message.mine:not(.sent)').count();
  const bubbleState = (page: Page, text: string) => page.locator('#transcript .message.mine', { hasText: text }).locator('.state').textContent();
  const sender = (page: Page, text: string) => page.locator('#transcript .message', { hasText: text }).locator('.who').textContent();
  const announcements = (page: Page) => page.locator('#announcements .announcement .text').allTextContents();

  /** The id the tab was given (shown in its header once the token endpoint minted it). */
  async function userOf(page: Page, pattern: RegExp): Promise<string> {
    await expect.poll(() => page.locator('#me').getAttribute('data-user'), { timeout: 10_000 }).toMatch(pattern);
    return (await page.locator('#me').getAttribute('data-user'))!;
  }
  const customerId = (page: Page) => userOf(page, /^demo-customer-[a-z2-9]{12}$/);
  const agentId = (page: Page) => userOf(page, /^demo-agent-[a-z2-9]{12}$/);

  /** What the agent's conversation list shows, top to bottom. */
  const conversations = (agent: Page) =>
    agent.locator('#conversations .conversation').evaluateAll((items) =>
      items.map((item) => ({ customer: item.getAttribute('data-customer'), unread: item.querySelector('.unread')?.textContent ?? '' })),
    );

  async function openConversation(agent: Page, customer: string): Promise<void> {
    const item = agent.locator(`#conversations .conversation[data-customer="${customer}"]`);
    await item.waitFor({ timeout: 15_000 });
    await item.click();
    await expect.poll(() => item.getAttribute('aria-current')).toBe('true');
  }

  async function say(page: Page, text: string): Promise<void> {
    await page.locator('#text').fill(text);
    await page.locator('#send').click();
  }

  async function announce(agent: Page, text: string): Promise<void> {
    await agent.locator('#announce-text').fill(text);
    await agent.locator('#announce-send').click();
  }

  async function expectAll(pages: Page[], expected: string[]): Promise<void> {
    for (const page of pages) await expect.poll(() => transcript(page), { timeout: 15_000 }).toEqual(expected);
  }

  it('shows every message exactly once and in order on both sides, across a reload', async () => {
    const customer = await open('customer');
    const agent = await open('agent');
    const conversation: string[] = [];

    await say(customer, 'Hi, my parcel has not arrived.');
    conversation.push('Hi, my parcel has not arrived.');
    await openConversation(agent, await customerId(customer));
    await expectAll([customer, agent], conversation);

    await say(agent, 'Sorry to hear that! What is the order number?');
    conversation.push('Sorry to hear that! What is the order number?');
    await expectAll([customer, agent], conversation);

    // Two in a row: the outbox publishes them one after the other, so they arrive in order.
    await say(customer, 'It is 4711.');
    await say(customer, 'Ordered last Monday.');
    conversation.push('It is 4711.', 'Ordered last Monday.');
    await expectAll([customer, agent], conversation);

    // The agent reloads while the customer keeps typing: the message sent meanwhile must show once,
    // and nothing from before the reload may repeat (the open conversation stays open, the agent
    // stays the same agent).
    const agentBefore = await agentId(agent);
    const reloading = agent.reload();
    await say(customer, 'Are you still there?');
    conversation.push('Are you still there?');
    await reloading;
    expect(await agent.locator('html').getAttribute('data-missing-globals')).toBe(REMOVED_GLOBALS.join(','));
    expect(await agentId(agent)).toBe(agentBefore);
    await expectAll([customer, agent], conversation);

    await say(agent, 'Yes! It ships today, tracking follows by mail.');
    conversation.push('Yes! It ships today, tracking follows by mail.');
    await expectAll([customer, agent], conversation);

    // And the customer side survives a reload too, as the same customer.
    const before = await customerId(customer);
    await customer.reload();
    expect(await customerId(customer)).toBe(before);
    await say(customer, 'Thanks!');
    conversation.push('Thanks!');
    await expectAll([customer, agent], conversation);

    // Both pages show the topic's positions, 1 to 7, in the same order.
    await expect.poll(() => positions(customer), { timeout: 10_000 }).toEqual(['1', '2', '3', '4', '5', '6', '7']);
    await expect.poll(() => positions(agent), { timeout: 10_000 }).toEqual(['1', '2', '3', '4', '5', '6', '7']);
    await expect.poll(() => pending(customer), { timeout: 10_000 }).toBe(0);
    await expect.poll(() => pending(agent), { timeout: 10_000 }).toBe(0);
    expect(pageErrors).toEqual([]);
  }, 90_000);

  it("keeps a customer's token to its own conversation: others' conversations, the desk, announcing and mailboxes are refused, storing nothing", async () => {
    await closeAllTabs();
    // The token the customer page itself fetched and publishes with, read off the network.
    const tokenResponse = context.waitForEvent('response', (response) => response.url().includes('/demo/token?role=customer&'));
    const customer = await open('customer');
    const { token, user } = (await (await tokenResponse).json()) as { token: string; user: string };
    // A token for the id minted for this tab, which the page shows as its own.
    expect(user).toBe(await customerId(customer));
    const knex = (gateway.store as unknown as { knex: Knex }).knex;
    const stored = async () => (await knex('messages').count({ n: '*' }))[0]!.n;
    const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
    const publishAs = (path: string, json: unknown) => fetch(`${gateway.url}${path}`, { method: 'POST', headers, body: JSON.stringify(json) });
    const refusal = async (response: Response) => ({ status: response.status, code: ((await response.json()) as { error: { code: string } }).error.code });
    const before = await stored();

    const other = 'conv:demo-customer-2a3b4c5d6e7f';
    expect(await refusal(await publishAs('/v1/messages', { topic: other, body: { text: 'psst' } }))).toEqual({ status: 403, code: 'forbidden_topic' });
    expect(await refusal(await publishAs('/v1/messages', { topic: 'announce', body: { text: 'free parcels for all' } }))).toEqual({ status: 403, code: 'forbidden_topic' });
    expect(await refusal(await publishAs('/v1/messages', { to: 'demo-agent-2', body: { text: 'hello' } }))).toEqual({ status: 403, code: 'forbidden_recipient' });
    // A batch that hides one such message behind one to its own conversation is refused whole.
    const batch = await publishAs('/v1/messages/batch', { messages: [{ topic: `conv:${user}`, body: 1 }, { topic: other, body: 2 }] });
    expect(batch.status).toBe(403);
    expect(((await batch.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'forbidden_topic', message: expect.stringContaining('messages.1.topic') });
    expect(await stored()).toBe(before);
    // Nor may it read another conversation, or the desk (which would list every customer).
    for (const topic of [other, 'desk']) {
      const poll = await fetch(`${gateway.url}/v1/poll?wait=0&topic=${topic}@0`, { headers });
      expect(await refusal(poll), topic).toEqual({ status: 403, code: 'forbidden_topic' });
    }

    // Its own conversation is open to it: what it publishes there shows on its page, as its own.
    const own = await publishAs('/v1/messages', { topic: `conv:${user}`, body: { text: 'Sent with my own token' } });
    expect(own.status).toBe(201);
    expect(((await own.json()) as { seq: number }).seq).toBe(1);
    await expect.poll(() => transcript(customer), { timeout: 15_000 }).toEqual(['Sent with my own token']);
    expect(await sender(customer, 'Sent with my own token')).toBe('You');
    // And the page kept working through all of it.
    expect(await customer.locator('#status').getAttribute('data-state')).not.toBe('stopped');
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it('shows the agent whether the customer is online and the customer whether an agent is; a closed customer page leaves after the grace, not before', async () => {
    await closeAllTabs();
    const customer = await open('customer');
    const id = await customerId(customer);
    await say(customer, `Is anyone there? ${Date.now()}`);
    await expect.poll(() => pending(customer), { timeout: 15_000 }).toBe(0);

    const agent = await open('agent');
    const item = agent.locator(`#conversations .conversation[data-customer="${id}"]`);
    await expect.poll(() => item.locator('[data-presence]').getAttribute('data-presence'), { timeout: 15_000 }).toBe('online');
    await openConversation(agent, id);
    await expect.poll(() => agent.locator('#peer').getAttribute('data-presence')).toBe('online');
    expect(await agent.locator('#peer').textContent()).toContain('online');
    // The customer's page asks the desk's presence every few seconds: the agent reads the desk.
    await expect.poll(() => customer.locator('#peer').getAttribute('data-presence'), { timeout: 15_000 }).toBe('online');
    expect(await customer.locator('#peer').textContent()).toBe('An agent is online');

    // The customer closes the page: online through the grace, offline soon after it.
    await customer.close();
    const closedAt = Date.now();
    await agent.waitForTimeout(PRESENCE_GRACE_S * 1000 - 700);
    expect(await item.locator('[data-presence]').getAttribute('data-presence')).toBe('online');
    await expect.poll(() => item.locator('[data-presence]').getAttribute('data-presence'), { timeout: 8_000, interval: 100 }).toBe('offline');
    const leftAfter = Date.now() - closedAt;
    expect(leftAfter).toBeGreaterThanOrEqual(PRESENCE_GRACE_S * 1000 - 700);
    expect(leftAfter).toBeLessThan(PRESENCE_GRACE_S * 1000 + 4_000);
    expect(await agent.locator('#peer').getAttribute('data-presence')).toBe('offline');
    expect(pageErrors).toEqual([]);
  }, 60_000);

  it('gives every customer tab its own conversation; the desk lists them and a reply reaches only its customer', async () => {
    await closeAllTabs();
    const alice = await open('customer');
    const bob = await open('customer');
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

    // Both write while no agent page is open: stored (✓).
    const aliceText = `Alice here, order 1001 ${Date.now()}`;
    const bobText = `Bob here, order 2002 ${Date.now()}`;
    await say(alice, aliceText);
    await expect.poll(() => bubbleState(alice, aliceText), { timeout: 15_000 }).toBe('✓');
    await say(bob, bobText);
    await expect.poll(() => bubbleState(bob, bobText), { timeout: 15_000 }).toBe('✓');
    for (const page of [alice, bob]) {
      expect(await page.locator('#transcript .placeholder').count()).toBe(0);
      // Every bubble carries its time: machine-readable, and shown as hours:minutes.
      const time = page.locator('#transcript .message.mine time');
      expect(await time.getAttribute('datetime')).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/);
      expect(await time.textContent()).toMatch(/^\d{2}:\d{2}$/);
    }

    // The desk lists one conversation per customer, newest activity first, each with one unread
    // (earlier tests' conversations follow: the desk is read from its start).
    const agent = await open('agent');
    await expect.poll(async () => (await conversations(agent)).slice(0, 2), { timeout: 15_000 }).toEqual([
      { customer: bobId, unread: '1' },
      { customer: aliceId, unread: '1' },
    ]);
    expect(await agent.locator('#transcript .placeholder').textContent()).toBe('Choose a conversation');
    expect(await agent.locator('#text').isDisabled()).toBe(true);

    // Picking Alice shows her conversation only, and clears its unread count.
    await openConversation(agent, aliceId);
    expect(await transcript(agent)).toEqual([aliceText]);
    expect(await agent.locator('#transcript .message.theirs time').textContent()).toMatch(/^\d{2}:\d{2}$/);
    expect((await conversations(agent)).slice(0, 2)).toEqual([
      { customer: bobId, unread: '1' },
      { customer: aliceId, unread: '' },
    ]);
    // A topic has no read receipts: Alice's bubble stays ✓ though the agent has read it.
    expect(await bubbleState(alice, aliceText)).toBe('✓');

    // The reply goes to Alice alone; her conversation moves to the top.
    const reply = `Order 1001 ships today ${Date.now()}`;
    await say(agent, reply);
    await expect.poll(() => transcript(alice), { timeout: 15_000 }).toEqual([aliceText, reply]);
    await expect.poll(() => bubbleState(agent, reply), { timeout: 15_000 }).toBe('✓');
    expect((await conversations(agent)).slice(0, 2)).toEqual([
      { customer: aliceId, unread: '' },
      { customer: bobId, unread: '1' },
    ]);
    expect(await alice.locator('#transcript .message.theirs time').textContent()).toMatch(/^\d{2}:\d{2}$/);
    expect(await sender(alice, reply)).toBe(`Agent ${(await agentId(agent)).slice('demo-agent-'.length, 'demo-agent-'.length + 4)}`);
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
    expect(await agent.locator('#conversations .conversation[aria-current="true"]').getAttribute('data-customer')).toBe(bobId);
    expect(await transcript(agent)).toEqual([bobText, 'Hello Bob!']);
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('lets a second agent open a conversation with its whole history, and shows an announcement on every open customer page', async () => {
    await closeAllTabs();
    const carol = await open('customer');
    const dave = await open('customer');
    const agentA = await open('agent');
    const [carolId, daveId, agentAId] = [await customerId(carol), await customerId(dave), await agentId(agentA)];
    const stamp = Date.now();
    const conversation: string[] = [];

    // Carol writes; agent A opens her conversation, sees it and replies; Carol sees the reply.
    conversation.push(`Carol: my card was charged twice ${stamp}`);
    await say(carol, conversation[0]!);
    await openConversation(agentA, carolId);
    await expectAll([agentA], conversation);
    conversation.push(`A: refunding the second charge ${stamp}`);
    await say(agentA, conversation[1]!);
    conversation.push(`Carol: thank you ${stamp}`);
    await say(carol, conversation[2]!);
    await expectAll([carol, agentA], conversation);

    // Agent B is another tab, so another agent; it opens Carol's conversation later and sees all
    // of it, A's reply as someone else's.
    const agentB = await open('agent');
    const agentBId = await agentId(agentB);
    expect(agentBId).not.toBe(agentAId);
    await openConversation(agentB, carolId);
    await expectAll([agentB], conversation);
    expect(await sender(agentB, conversation[1]!)).toBe(`Agent ${agentAId.slice('demo-agent-'.length, 'demo-agent-'.length + 4)}`);
    expect(await sender(agentA, conversation[1]!)).toBe('You');

    // B's reply reaches Carol and A; everybody's next message reaches everybody, in one order.
    conversation.push(`B: the refund is on its way ${stamp}`);
    await say(agentB, conversation[3]!);
    await expectAll([carol, agentA, agentB], conversation);
    conversation.push(`A: anything else? ${stamp}`);
    await say(agentA, conversation[4]!);
    conversation.push(`Carol: no, all good ${stamp}`);
    await say(carol, conversation[5]!);
    await expectAll([carol, agentA, agentB], conversation);
    for (const page of [carol, agentA, agentB]) {
      await expect.poll(() => positions(page), { timeout: 10_000 }).toEqual(['1', '2', '3', '4', '5', '6']);
    }

    // Dave writes: both agents learn of his conversation from the desk, at the top of their lists.
    const daveText = `Dave: where is my parcel? ${stamp}`;
    await say(dave, daveText);
    for (const agent of [agentA, agentB]) {
      await expect.poll(async () => (await conversations(agent)).slice(0, 2).map((item) => item.customer), { timeout: 15_000 }).toEqual([daveId, carolId]);
    }
    await openConversation(agentB, daveId);
    await say(agentB, `B: it ships today ${stamp}`);
    await expectAll([dave, agentB], [daveText, `B: it ships today ${stamp}`]);
    expect(await transcript(carol)).toEqual(conversation);

    // Both customer pages have had a poll answered by now, so they read `announce` from a known
    // position: what is announced from here on reaches them. (A page that opens after an
    // announcement does not show it: announcements are read from now.)
    const first = `Maintenance tonight at 22:00 ${stamp}`;
    await announce(agentA, first);
    for (const page of [carol, dave, agentA, agentB]) await expect.poll(() => announcements(page), { timeout: 15_000 }).toEqual([first]);
    // Announcements stay out of the conversations.
    expect(await transcript(carol)).toEqual(conversation);
    // Customers cannot announce: the form is not theirs (and their token may not, see above).
    expect(await carol.locator('#announce-text').isVisible()).toBe(false);
    expect(await carol.locator('#announce-text').isDisabled()).toBe(true);

    // A reload keeps the announcement, once, and the page resumes from its position: an
    // announcement made right after it still arrives.
    await dave.reload();
    expect(await announcements(dave)).toEqual([first]);
    const second = `Maintenance is over ${stamp}`;
    await announce(agentB, second);
    for (const page of [carol, dave]) await expect.poll(() => announcements(page), { timeout: 15_000 }).toEqual([first, second]);
    const late = await open('customer');
    await expect.poll(() => late.locator('#status').textContent(), { timeout: 10_000 }).toBe('Connected');
    // Its first poll would have brought them at once, were they read from the start.
    await late.waitForTimeout(1500);
    expect(await announcements(late)).toEqual([]);
    expect(pageErrors).toEqual([]);
  }, 150_000);
});
