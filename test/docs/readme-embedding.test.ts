import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenIssuer } from '../../src/auth/tokens.js';
import { TEST_SECRET } from '../support/backends.js';
import { assertBuilt, ROOT, spawnNodeUntilListening, type GatewayProcess } from '../support/process.js';

/**
 * The README's embedding examples, run exactly as written: each fenced block after an
 * `<!-- embedding-example: name -->` marker is written to a file inside the package (so that
 * `import 'longpoll-gateway'` resolves through the package's own `exports` to dist/), started with
 * tsx, and driven over HTTP.
 */
function readmeExample(name: string): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const match = new RegExp(`<!-- embedding-example: ${name} -->\\n\`\`\`ts\\n([\\s\\S]*?)\\n\`\`\`\\n`).exec(readme);
  if (!match) throw new Error(`README.md has no \`embedding-example: ${name}\` block`);
  return match[1]!;
}

let directory: string;
beforeAll(() => {
  assertBuilt();
  // Inside the package: a package can import itself by name only from within its own folder.
  directory = mkdtempSync(join(ROOT, '.readme-examples-'));
});
afterAll(() => rmSync(directory, { recursive: true, force: true }));

async function runExample(name: string, env: Record<string, string> = {}): Promise<GatewayProcess> {
  const file = join(directory, `${name}.ts`);
  writeFileSync(file, readmeExample(name));
  return spawnNodeUntilListening(['--import', 'tsx', file], { PORT: '0', ...env }, { label: `README example ${name}`, timeoutMs: 30_000 });
}

const json = (body: unknown) => ({ method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

describe('README: embedding under a prefix of a Koa app', () => {
  let example: GatewayProcess;
  beforeAll(async () => {
    example = await runExample('koa', { GATEWAY_JWT_SECRET: TEST_SECRET });
  });
  afterAll(async () => {
    expect(await example.stop()).toBe(0);
  });

  it('round-trips a publish and a held poll through /realtime, and leaves the host routes alone', async () => {
    const issuer = createTokenIssuer({ secret: TEST_SECRET });
    const bob = { Authorization: `Bearer ${await issuer.issue('bob')}` };
    const held = fetch(`${example.url}/realtime/v1/poll?wait=10`, { headers: bob });
    // Give the poll time to be held, so that the answer usually comes from the wake-up.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const published = await fetch(`${example.url}/realtime/v1/messages`, {
      ...json({ to: 'bob', body: { text: 'through the prefix' } }),
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await issuer.issue('alice')}` },
    });
    expect(published.status).toBe(201);
    expect(await (await held).json()).toMatchObject({ messages: [{ from: 'alice', body: { text: 'through the prefix' } }] });

    expect(await (await fetch(`${example.url}/`)).text()).toBe('the host application');
    expect((await fetch(`${example.url}/v1/poll?wait=0`, { headers: bob })).status).toBe(404);
    expect(await (await fetch(`${example.url}/realtime/healthz`)).json()).toEqual({ status: 'ok' });
    const unauthenticated = await fetch(`${example.url}/realtime/v1/poll?wait=0`);
    expect(unauthenticated.status).toBe(401);
  });
});

describe("README: embedding in a node:http server with the application's sessions", () => {
  let example: GatewayProcess;
  beforeAll(async () => {
    example = await runExample('node-http');
  });
  afterAll(async () => {
    expect(await example.stop()).toBe(0);
  });

  it('round-trips a publish and a poll for callers with a session cookie', async () => {
    const published = await fetch(`${example.url}/v1/messages`, {
      ...json({ to: 'bob', body: 'hi bob' }),
      headers: { 'Content-Type': 'application/json', Cookie: 'sid=sid-alice-7f3a' },
    });
    expect(published.status).toBe(201);
    const poll = await fetch(`${example.url}/v1/poll?wait=1`, { headers: { Cookie: 'lang=en; sid=sid-bob-91c2' } });
    expect(await poll.json()).toMatchObject({ messages: [{ from: 'alice', body: 'hi bob' }] });
  });

  it('refuses requests without a session, whatever token they carry', async () => {
    const attempts: Array<Record<string, string>> = [{}, { Cookie: 'sid=sid-stolen' }, { Authorization: `Bearer ${await createTokenIssuer({ secret: TEST_SECRET }).issue('alice')}` }];
    for (const headers of attempts) {
      const response = await fetch(`${example.url}/v1/poll?wait=0`, { headers });
      expect(response.status).toBe(401);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('unauthenticated');
    }
    const publish = await fetch(`${example.url}/v1/messages`, json({ to: 'bob', body: 'no session' }));
    expect(publish.status).toBe(401);
  });
});
