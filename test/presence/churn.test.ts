import { describe, expect, it } from 'vitest';
import { backendCases } from '../support/backends.js';
import { useTestGateway } from '../support/gateway.js';
import { sleep, waitFor } from '../support/wait.js';

const GRACE_S = 2;
const USERS = 12;
const CLIENTS_PER_USER = 2;
const TOPICS = ['churn:a', 'churn:b', 'churn:c'];
const CHURN_MS = 4_000;

interface PresenceEvent {
  topic: string;
  user: string;
  event: 'join' | 'leave';
  at: string;
}

/**
 * Re-poll churn over HTTP: clients that poll as fast as they can (short polls, and long polls cut
 * short by their own topic traffic) must never flap. Each (user, topic) joins once, never leaves
 * while any of its clients keeps polling, and leaves once, after the grace, when all stop.
 * (The same checker catches a tracker without a grace: test/presence/tracker.test.ts.)
 */
describe.each(backendCases('presence churn'))('presence under re-poll churn on $name', ({ make }) => {
  const gw = useTestGateway(make, { PRESENCE_GRACE_S: String(GRACE_S), POLL_MAX_PER_USER: '8', PUBLISH_RATE_PER_USER: '0', PUBLISH_RATE_PER_IP: '0' });

  it('joins each user to each topic once, with no leave while it re-polls, and one leave per pair after the grace', async () => {
    const prefix = `c${Date.now().toString(36)}`;
    const topics = TOPICS.map((topic) => `${topic}-${prefix}`);
    const grants = Object.fromEntries(topics.map((topic) => [topic, ['read', 'publish', 'presence'] as const]));
    const users = Array.from({ length: USERS }, (_, index) => `${prefix}-u${index}`);
    const tokens = await Promise.all(users.map((user) => gw.gateway.issueToken(user, { topics: grants as never })));
    const watcherToken = await gw.gateway.issueToken(`${prefix}-watcher`, { topics: grants as never });
    const events: Array<PresenceEvent & { receivedAt: number }> = [];
    let watching = true;
    const watcher = (async () => {
      const query = topics.map((topic) => `topic=${topic}`).join('&');
      while (watching) {
        const answer = (await (await gw.request(`/v1/poll?wait=1&client=watcher&presence=1&${query}`, { token: watcherToken })).json()) as { presence?: PresenceEvent[] };
        for (const event of answer.presence ?? []) events.push({ ...event, receivedAt: Date.now() });
      }
    })();

    let polls = 0;
    let churning = true;
    const lastPollEnd = new Map<string, number>();
    const clients = users.flatMap((user, userIndex) =>
      Array.from({ length: CLIENTS_PER_USER }, async (_, clientIndex) => {
        // Each client reads one or all topics, so every (user, topic) pair has a client.
        const mine = clientIndex === 0 ? topics : [topics[userIndex % topics.length]!];
        const query = mine.map((topic) => `topic=${topic}`).join('&');
        let round = 0;
        while (churning) {
          round += 1;
          // Mostly short polls; every third a long poll that other clients' publishes cut short.
          const wait = round % 3 === 0 ? 1 : 0;
          const response = await gw.request(`/v1/poll?wait=${wait}&client=k${clientIndex}&${query}`, { token: tokens[userIndex]! });
          await response.arrayBuffer();
          polls += 1;
          for (const topic of mine) lastPollEnd.set(`${user}|${topic}`, Date.now());
          if (round % 10 === 0) await gw.request('/v1/messages', { method: 'POST', token: tokens[userIndex]!, json: { topic: mine[0], body: round } });
          if (round % 4 === 0) await sleep(Math.floor(Math.random() * 20));
        }
      }),
    );
    await sleep(CHURN_MS);
    churning = false;
    await Promise.all(clients);
    const stoppedAt = Date.now();
    const pairs = users.flatMap((user) => topics.map((topic) => `${user}|${topic}`));
    expect(polls).toBeGreaterThan(pairs.length * 4);

    // During the churn: exactly one join per pair (the watcher's own aside), no leave.
    const during = events.filter((event) => event.user !== `${prefix}-watcher` && event.receivedAt < stoppedAt);
    expect(during.filter((event) => event.event === 'leave')).toEqual([]);
    const joins = during.filter((event) => event.event === 'join').map((event) => `${event.user}|${event.topic}`);
    expect(joins.sort()).toEqual([...pairs].sort());

    // After it: one leave per pair, each at least the grace after that pair's last poll ended.
    await waitFor(() => events.filter((event) => event.event === 'leave').length >= pairs.length, (GRACE_S + 5) * 1000);
    await sleep(500);
    watching = false;
    await watcher;
    const leaves = events.filter((event) => event.event === 'leave');
    expect(leaves.map((event) => `${event.user}|${event.topic}`).sort()).toEqual([...pairs].sort());
    for (const leave of leaves) {
      const after = leave.receivedAt - lastPollEnd.get(`${leave.user}|${leave.topic}`)!;
      expect(after, `${leave.user} ${leave.topic}`).toBeGreaterThanOrEqual(GRACE_S * 1000 - 50);
    }
    // And no join came back after the stop.
    expect(events.filter((event) => event.event === 'join' && event.receivedAt >= stoppedAt && event.user !== `${prefix}-watcher`)).toEqual([]);
  }, 30_000);
});
