import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../../src/start-from-env.js';
import { mysqlRedisCases, TEST_SECRET } from '../support/backends.js';
import { sleep, waitFor } from '../support/wait.js';

const GRACE_S = 3;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** A Redis of our own, without persistence: a restart loses every key, as a crash of a cache would. */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const { Redis } = await import('ioredis');
  await waitFor(async () => {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    try {
      await probe.connect();
      return (await probe.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      probe.disconnect();
    }
  }, 10_000);
  return child;
}

// Needs redis-server (the real servers' machine; CI=true makes them mandatory).
const realCases = mysqlRedisCases('presence after a Redis restart');

describe.skipIf(realCases.length === 0)('presence after a Redis restart that lost every key', () => {
  let redis: ChildProcess | undefined;
  let gateway: RunningGateway | undefined;
  afterAll(async () => {
    await gateway?.close();
    redis?.kill('SIGKILL');
  });

  it('has every process announce its clients again within one grace, with no leave', async () => {
    const port = await freePort();
    redis = await startRedis(port);
    gateway = await startGateway({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SQLITE_FILE: ':memory:', GATEWAY_JWT_SECRET: TEST_SECRET, REDIS_URL: `redis://127.0.0.1:${port}`, PRESENCE_GRACE_S: String(GRACE_S) });
    const running = gateway;
    const topic = 'restart:room';
    const users = ['rr-a', 'rr-b', 'rr-c'];
    const tokens = await Promise.all(users.map((user) => running.issueToken(user, { topics: { [topic]: ['read', 'presence'] } })));
    let stopped = false;
    const leaves: string[] = [];
    // Live pages: each user keeps a poll held (re-polling through the outage), watching the topic.
    const pages = tokens.map(async (token, index) => {
      while (!stopped) {
        const response = await fetch(`${running.url}/v1/poll?wait=1&client=page${index}&presence=1&topic=${topic}`, { headers: { Authorization: `Bearer ${token}` } }).catch(() => undefined);
        const answer = (await response?.json().catch(() => undefined)) as { presence?: Array<{ user: string; event: string }> } | undefined;
        for (const event of answer?.presence ?? []) if (event.event === 'leave') leaves.push(event.user);
        if (!response) await sleep(100);
      }
    });
    const members = async () => {
      const response = await fetch(`${running.url}/v1/topics/${topic}/presence`, { headers: { Authorization: `Bearer ${tokens[0]}` } });
      return response.status === 200 ? ((await response.json()) as { count: number }).count : -1;
    };
    try {
      await waitFor(async () => (await members()) === 3, 5_000);

      redis.kill('SIGKILL');
      await new Promise((resolve) => redis!.once('exit', resolve));
      await sleep(500);
      redis = await startRedis(port);
      const back = Date.now();
      // Everything was lost with the old Redis: the registry answers nothing until the gateway
      // announces its clients again, which it must do within one grace.
      await waitFor(async () => (await members().catch(() => -1)) === 3, GRACE_S * 1000);
      expect(Date.now() - back).toBeLessThan(GRACE_S * 1000);
      await sleep(GRACE_S * 1000);
      expect(await members()).toBe(3);
      expect(leaves).toEqual([]);
    } finally {
      stopped = true;
      await Promise.all(pages);
    }
  }, 40_000);
});
