import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenIssuer } from '../../src/auth/tokens.js';
import { mysqlRedisCases, redisClusterCases, TEST_SECRET, useBackend } from '../support/backends.js';
import { spawnGateway, type GatewayProcess } from '../support/process.js';
import { freshRequest, spawnWorkers, type WorkersProcess } from '../cluster/support.js';
import { sleep, waitFor } from '../support/wait.js';

const GRACE_S = 2;
/** The tracker's sweep with a 2 s grace: a third of it. */
const SWEEP_MS = 667;

interface PresenceEvent {
  topic: string;
  user: string;
  event: 'join' | 'leave';
  at: string;
}

const issuer = createTokenIssuer({ secret: TEST_SECRET });
const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });

/**
 * Collects the presence events a watcher's `presence=1` polls receive, re-polling like a client
 * (with a fixed client id, so what comes between two polls answers the next one).
 */
function watchTopic(url: string, token: string, topic: string): { events: Array<PresenceEvent & { receivedAt: number }>; stop(): Promise<void> } {
  const events: Array<PresenceEvent & { receivedAt: number }> = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const response = await fetch(`${url}/v1/poll?wait=2&client=watcher&presence=1&topic=${encodeURIComponent(topic)}`, bearer(token)).catch(() => undefined);
      if (!response) {
        await sleep(100);
        continue;
      }
      const answer = (await response.json()) as { presence?: PresenceEvent[] };
      for (const event of answer.presence ?? []) events.push({ ...event, receivedAt: Date.now() });
    }
  })();
  return {
    events,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** Holds polls of `client` on `url` one after the other until stopped (a live page). */
function keepPolling(url: string, token: string, client: string, topic: string): { stop(): void } {
  let stopped = false;
  void (async () => {
    while (!stopped) {
      await fetch(`${url}/v1/poll?wait=1&client=${client}&topic=${encodeURIComponent(topic)}`, bearer(token)).catch(() => sleep(100));
    }
  })();
  return {
    stop() {
      stopped = true;
    },
  };
}

const cases = [...mysqlRedisCases('presence across processes'), ...redisClusterCases('presence across processes')];

describe.each(cases)('presence across gateway processes on $name', ({ make }) => {
  const backend = useBackend(make);
  let env: Record<string, string>;
  let survivor: GatewayProcess;

  beforeAll(async () => {
    env = { ...(await backend.gatewayEnv()), PRESENCE_GRACE_S: String(GRACE_S) };
    survivor = await spawnGateway(env);
  });
  afterAll(async () => {
    await survivor?.stop();
  });

  it('takes the clients of a SIGKILLed gateway offline after the grace (not before), with leave events, and keeps a user online through its client on another gateway', async () => {
    const topic = `kill:${Date.now().toString(36)}`;
    const victim = await spawnGateway(env);
    const grants = { topics: { [topic]: ['read' as const, 'presence' as const] } };
    const [leaver, stayer, watcher] = await Promise.all(['kill-leaver', 'kill-stayer', 'kill-watcher'].map((user) => issuer.issue(user, grants)));
    const watching = watchTopic(survivor.url, watcher!, topic);
    // Held on the victim: one user only there, one with a second client on the survivor.
    const pages = [keepPolling(victim.url, leaver!, 'l1', topic), keepPolling(victim.url, stayer!, 's1', topic), keepPolling(survivor.url, stayer!, 's2', topic)];
    try {
      const members = async () => (await (await fetch(`${survivor.url}/v1/topics/${topic}/presence`, bearer(watcher!))).json()) as { count: number; members: Array<{ user: string; clients: number }> };
      await waitFor(async () => (await members()).count === 3, 10_000);
      expect((await members()).members.find((member) => member.user === 'kill-stayer')?.clients).toBe(2);

      victim.child.kill('SIGKILL');
      const killedAt = Date.now();
      await waitFor(() => watching.events.some((event) => event.event === 'leave'), (GRACE_S + 6) * 1000);
      const leave = watching.events.find((event) => event.event === 'leave')!;
      expect(leave.user).toBe('kill-leaver');
      const after = leave.receivedAt - killedAt;
      expect(after).toBeGreaterThanOrEqual(GRACE_S * 1000 - 100);
      expect(after).toBeLessThan(GRACE_S * 1000 + 3 * SWEEP_MS + 1_500);
      // No ghost, and the user with a client elsewhere never left.
      await sleep(2 * SWEEP_MS);
      expect(watching.events.filter((event) => event.event === 'leave').map((event) => event.user)).toEqual(['kill-leaver']);
      expect((await members()).members.map((member) => [member.user, member.clients]).sort()).toEqual([
        ['kill-stayer', 1],
        ['kill-watcher', 1],
      ]);
      const service = await issuer.issue('kill-service', { scope: ['presence'] });
      const users = (await (await fetch(`${survivor.url}/v1/presence?user=kill-leaver&user=kill-stayer`, bearer(service))).json()) as { users: Record<string, { online: boolean; lastSeenAt: string | null }> };
      expect(users.users['kill-leaver']).toEqual({ online: false, lastSeenAt: expect.any(String) });
      expect(users.users['kill-stayer']?.online).toBe(true);
    } finally {
      pages.forEach((page) => page.stop());
      await watching.stop();
      await victim.stop().catch(() => {});
    }
  });
});

const workerCases = mysqlRedisCases('presence through --workers 2');

describe.skipIf(workerCases.length === 0)('presence through `start --workers 2` on MariaDB + Redis', () => {
  const backend = useBackend(() => workerCases[0]!.make());
  let gateway: WorkersProcess;

  beforeAll(async () => {
    gateway = await spawnWorkers(2, { ...(await backend.gatewayEnv()), PRESENCE_GRACE_S: String(GRACE_S), POLL_MAX_PER_USER: '8' });
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it('answers a presence query on one worker with the polls held on the other, and a killed worker\'s clients leave after the grace', async () => {
    const topic = `workers:${Date.now().toString(36)}`;
    const users = ['w-0', 'w-1', 'w-2', 'w-3'];
    const tokens = await Promise.all(users.map((user) => issuer.issue(user, { topics: { [topic]: ['read'] } })));
    const service = await issuer.issue('w-service', { scope: ['presence'], topics: { [topic]: ['presence'] } });
    // Held polls on fresh connections: node:cluster spreads them over both workers.
    const cutAt = new Map<string, number>();
    const held = users.map((user, index) =>
      freshRequest(`${gateway.url}/v1/poll?wait=20&client=c${index}&topic=${topic}`, { token: tokens[index]! }).catch(() => {
        cutAt.set(user, Date.now());
      }),
    );
    const online = async () => {
      const answer = JSON.parse((await freshRequest(`${gateway.url}/v1/presence?${users.map((user) => `user=${user}`).join('&')}`, { token: service })).body) as { users: Record<string, { online: boolean }> };
      return users.filter((user) => answer.users[user]?.online);
    };
    await waitFor(async () => (await online()).length === 4, 10_000);
    // Every worker answers the same: ask on fresh connections until both have.
    const workersAsked = new Set<string>();
    for (let attempt = 0; attempt < 20 && workersAsked.size < 2; attempt++) {
      const response = await freshRequest(`${gateway.url}/v1/topics/${topic}/presence`, { token: service });
      expect(JSON.parse(response.body)).toMatchObject({ count: 4 });
      if (response.worker) workersAsked.add(response.worker);
    }
    expect(workersAsked.size).toBe(2);

    // SIGKILL one worker: its polls are cut, the supervisor replaces it, the other's stay held.
    process.kill(gateway.workerPids()[0]!, 'SIGKILL');
    const killedAt = Date.now();
    await waitFor(() => cutAt.size > 0, 5_000);
    await sleep(300);
    const cut = [...cutAt.keys()];
    expect(cut.length).toBeLessThan(4);
    // Not before the grace…
    await sleep(Math.max(0, GRACE_S * 1000 - 500 - (Date.now() - killedAt)));
    expect((await online()).sort()).toEqual(users);
    // …and gone within it plus the liveness sweep, while the others stay online.
    await waitFor(async () => (await online().catch(() => users)).length === 4 - cut.length, (GRACE_S + 5) * 1000);
    expect(await online()).toEqual(users.filter((user) => !cut.includes(user)));
    void held;
  }, 40_000);
});
