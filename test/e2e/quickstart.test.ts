import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnGateway, type GatewayProcess } from '../support/process.js';

describe('quick start on embedded defaults (no MYSQL_URL / REDIS_URL / secret)', () => {
  let dataDir: string;
  let gateway: GatewayProcess;
  let env: Record<string, string>;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'lpg-quickstart-'));
    env = { SQLITE_FILE: join(dataDir, 'gateway.sqlite') };
    gateway = await spawnGateway(env);
  });
  afterAll(async () => {
    await gateway?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints its URL and refuses requests without a token (no open mode)', async () => {
    expect(gateway.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const response = await fetch(`${gateway.url}/v1/poll?wait=0`);
    expect(response.status).toBe(401);
  });

  it('mints tokens with `token <user>` that the running gateway accepts', async () => {
    const alice = await runCli(['token', 'alice'], env);
    const bob = await runCli(['token', 'bob'], env);
    expect(alice.code).toBe(0);
    const publish = await fetch(`${gateway.url}/v1/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${alice.stdout.trim()}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ to: 'bob', body: 'hello from the quick start' }),
    });
    expect(publish.status).toBe(201);
    const poll = await fetch(`${gateway.url}/v1/poll?wait=1`, { headers: { Authorization: `Bearer ${bob.stdout.trim()}` } });
    expect(((await poll.json()) as { messages: Array<{ body: unknown }> }).messages.map((m) => m.body)).toEqual(['hello from the quick start']);
  });

  it('stops with a message naming the variable when configuration is bad', async () => {
    const result = await runCli(['start'], { ...env, PORT: 'eighty', POLL_WAIT_MAX_S: '-3' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('PORT must be an integer');
    expect(result.stderr).toContain('POLL_WAIT_MAX_S must be between 0 and 3600');
  });

  it('rejects a bad user id in `token`', async () => {
    const result = await runCli(['token', 'bad user'], env);
    expect(result.code).not.toBe(0);
  });
});
