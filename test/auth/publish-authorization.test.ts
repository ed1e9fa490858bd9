import { SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { PUBLISH_DEFAULTS, type PublishDefault } from '../../src/auth/publish-policy.js';
import type { TokenIssueOptions } from '../../src/auth/tokens.js';
import { backendCases, TEST_SECRET } from '../support/backends.js';
import { useTestGateway, type TestGatewayFixture } from '../support/gateway.js';

/**
 * Who may publish to whom, over every route × token kind × PUBLISH_DEFAULT, on both backends.
 * A refusal is a 403 with a stable code and changes nothing in the store: no row of a refused
 * publish or batch, no ack of a refused ack.
 */

type RecipientKey = 'exact' | 'prefixed' | 'nearMiss' | 'other' | 'self';
const RECIPIENT_KEYS: RecipientKey[] = ['exact', 'prefixed', 'nearMiss', 'other', 'self'];
const recipientId = (key: RecipientKey, self: string): string =>
  ({ exact: 'pa-bob', prefixed: 'pa-team-7', nearMiss: 'pa-team', other: 'pa-carol', self })[key];

interface TokenKind {
  name: string;
  subject: string;
  claims: TokenIssueOptions;
  mayPoll: boolean;
  /** Recipients it may write to; PUBLISH_DEFAULT when the token has no `pub`; no publish scope at all. */
  publishes: RecipientKey[] | 'PUBLISH_DEFAULT' | 'no publish scope';
}

const KINDS: TokenKind[] = [
  { name: 'no claims (a token minted before pub/scope)', subject: 'pa-plain', claims: {}, mayPoll: true, publishes: 'PUBLISH_DEFAULT' },
  { name: 'pub exact id', subject: 'pa-exact', claims: { pub: ['pa-bob'] }, mayPoll: true, publishes: ['exact'] },
  { name: 'pub prefix*', subject: 'pa-prefix', claims: { pub: ['pa-team-*'] }, mayPoll: true, publishes: ['prefixed'] },
  { name: 'pub *', subject: 'pa-any', claims: { pub: ['*'] }, mayPoll: true, publishes: RECIPIENT_KEYS },
  { name: 'scope poll only (device)', subject: 'pa-device', claims: { scope: ['poll'] }, mayPoll: true, publishes: 'no publish scope' },
  { name: 'scope publish only, no pub', subject: 'pa-backend', claims: { scope: ['publish'] }, mayPoll: false, publishes: 'PUBLISH_DEFAULT' },
  { name: 'service token (svc:billing, pub *, scope publish)', subject: 'svc:billing', claims: { pub: ['*'], scope: ['publish'] }, mayPoll: false, publishes: RECIPIENT_KEYS },
];

const ALLOWED_BY_DEFAULT: Record<PublishDefault, RecipientKey[]> = { any: RECIPIENT_KEYS, none: [], self: ['self'] };

type Outcome = 'stored' | 'forbidden_scope' | 'forbidden_recipient';

function allowedRecipients(kind: TokenKind, publishDefault: PublishDefault): RecipientKey[] | undefined {
  if (kind.publishes === 'no publish scope') return undefined;
  return kind.publishes === 'PUBLISH_DEFAULT' ? ALLOWED_BY_DEFAULT[publishDefault] : kind.publishes;
}

function expectedPublish(kind: TokenKind, keys: RecipientKey[], publishDefault: PublishDefault): Outcome {
  const allowed = allowedRecipients(kind, publishDefault);
  if (allowed === undefined) return 'forbidden_scope';
  return keys.every((key) => allowed.includes(key)) ? 'stored' : 'forbidden_recipient';
}

interface Row {
  id: number;
  user_id: string;
  sender_id: string;
  status: string;
}

async function snapshot(gw: TestGatewayFixture): Promise<Row[]> {
  return gw.knex('messages').select('id', 'user_id', 'sender_id', 'status').orderBy('id');
}

async function expectError(response: Response, status: number, code: string): Promise<{ message: string }> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await response.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error;
}

interface PollRoute {
  name: string;
  send(gw: TestGatewayFixture, token: string, cursor: number): Promise<Response>;
  /** JSONP answers 200 and carries the status in the body. */
  jsonp?: boolean;
}

const POLL_ROUTES: PollRoute[] = [
  { name: 'GET /v1/poll', send: (gw, token) => gw.request('/v1/poll?wait=0', { token }) },
  { name: 'POST /v1/ack', send: (gw, token, cursor) => gw.request('/v1/ack', { method: 'POST', token, json: { cursor } }) },
  { name: 'GET /v1/poll?callback= (JSONP, token in the query)', jsonp: true, send: (gw, token) => fetch(`${gw.url}/v1/poll?wait=0&callback=app.onPoll&access_token=${token}`) },
  { name: 'POST /v1/poll with X-HTTP-Method-Override: GET', send: (gw, token) => gw.request('/v1/poll?wait=0', { method: 'POST', token, headers: { 'X-HTTP-Method-Override': 'GET' } }) },
  { name: 'POST /v1/poll?_method=GET', send: (gw, token) => gw.request('/v1/poll?wait=0&_method=GET', { method: 'POST', token }) },
];

describe.each(backendCases('publish authorization'))('who may publish to whom on $name', ({ make }) => {
  describe.each(PUBLISH_DEFAULTS.map((publishDefault) => ({ publishDefault })))('PUBLISH_DEFAULT=$publishDefault', ({ publishDefault }) => {
    const gw = useTestGateway(make, { PUBLISH_DEFAULT: publishDefault });
    const tokens = new Map<string, string>();
    /** Cursor of the one message seeded into each kind's mailbox. */
    const cursors = new Map<string, number>();

    beforeAll(async () => {
      const { gateway } = gw;
      expect(gateway.config.auth.publishDefault).toBe(publishDefault);
      for (const kind of KINDS) tokens.set(kind.name, await gateway.issueToken(kind.subject, kind.claims));
      // One unacked message in every kind's mailbox, so a refused ack can be seen to ack nothing.
      const seeder = await gateway.issueToken('pa-seeder', { pub: ['*'] });
      for (const kind of KINDS) {
        const published = await gw.request('/v1/messages', { method: 'POST', token: seeder, json: { to: kind.subject, body: 'seed' } });
        expect(published.status).toBe(201);
        const reader = await gateway.issueToken(kind.subject, { scope: ['poll'] });
        const polled = (await (await gw.request('/v1/poll?wait=0', { token: reader })).json()) as { cursor: number; messages: unknown[] };
        expect(polled.messages).toHaveLength(1);
        cursors.set(kind.subject, polled.cursor);
      }
    });

    const singleCases = KINDS.flatMap((kind) =>
      RECIPIENT_KEYS.map((key) => ({ kind, key, expected: expectedPublish(kind, [key], publishDefault) })),
    );

    it.each(singleCases)('POST /v1/messages: $kind.name → $key: $expected', async ({ kind, key, expected }) => {
      const to = recipientId(key, kind.subject);
      const before = await snapshot(gw);
      const response = await gw.request('/v1/messages', { method: 'POST', token: tokens.get(kind.name)!, json: { to, body: { key } } });
      if (expected === 'stored') {
        expect(response.status).toBe(201);
        const added = (await snapshot(gw)).slice(before.length);
        expect(added.map((row) => [row.user_id, row.sender_id])).toEqual([[to, kind.subject]]);
        return;
      }
      const error = await expectError(response, 403, expected);
      if (expected === 'forbidden_recipient') expect(error.message).toContain(JSON.stringify(to));
      if (expected === 'forbidden_scope') expect(response.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="publish"');
      expect(await snapshot(gw)).toEqual(before);
    });

    it.each(singleCases)('POST /v1/messages/batch: $kind.name → $key twice: $expected', async ({ kind, key, expected }) => {
      const to = recipientId(key, kind.subject);
      const before = await snapshot(gw);
      const response = await gw.request('/v1/messages/batch', {
        method: 'POST',
        token: tokens.get(kind.name)!,
        json: { messages: [{ to, body: 1 }, { to, body: 2 }] },
      });
      if (expected === 'stored') {
        expect(response.status).toBe(201);
        const added = (await snapshot(gw)).slice(before.length);
        expect(added.map((row) => row.user_id)).toEqual([to, to]);
        return;
      }
      await expectError(response, 403, expected);
      expect(await snapshot(gw)).toEqual(before);
    });

    const mixedCases = KINDS.map((kind) => {
      // Allowed recipients first: a refused item later in the batch must take them down with it.
      const allowed = allowedRecipients(kind, publishDefault) ?? [];
      const keys = [...RECIPIENT_KEYS].sort((a, b) => Number(allowed.includes(b)) - Number(allowed.includes(a)));
      return { kind, keys, expected: expectedPublish(kind, keys, publishDefault), firstRefused: keys.findIndex((key) => !allowed.includes(key)) };
    });

    it.each(mixedCases)('POST /v1/messages/batch to every kind of recipient: $kind.name: $expected, all or nothing', async ({ kind, keys, expected, firstRefused }) => {
      const before = await snapshot(gw);
      const response = await gw.request('/v1/messages/batch', {
        method: 'POST',
        token: tokens.get(kind.name)!,
        json: { messages: keys.map((key) => ({ to: recipientId(key, kind.subject), body: key })) },
      });
      if (expected === 'stored') {
        expect(response.status).toBe(201);
        expect((await snapshot(gw)).length - before.length).toBe(keys.length);
        return;
      }
      const error = await expectError(response, 403, expected);
      if (expected === 'forbidden_recipient') expect(error.message).toContain(`messages.${firstRefused}.to`);
      expect(await snapshot(gw)).toEqual(before);
    });

    const pollCases = POLL_ROUTES.flatMap((route) => KINDS.map((kind) => ({ route, kind, expected: kind.mayPoll ? 'allowed' : 'forbidden_scope' })));

    it.each(pollCases)('$route.name: $kind.name: $expected', async ({ route, kind, expected }) => {
      const before = await snapshot(gw);
      const response = await route.send(gw, tokens.get(kind.name)!, cursors.get(kind.subject)!);
      if (route.jsonp) {
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toMatch(/^application\/javascript/);
        const script = await response.text();
        expect(script.startsWith('/**/app.onPoll(')).toBe(true);
        const payload = JSON.parse(script.slice('/**/app.onPoll('.length, -2)) as { error?: { code: string }; status?: number; messages?: unknown[] };
        if (expected === 'allowed') expect(payload.messages).toBeInstanceOf(Array);
        else expect(payload).toMatchObject({ error: { code: 'forbidden_scope' }, status: 403 });
      } else if (expected === 'allowed') {
        expect(response.status).toBe(200);
        return;
      } else {
        await expectError(response, 403, 'forbidden_scope');
        expect(response.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="poll"');
      }
      if (expected === 'forbidden_scope') {
        // The seeded message is still unacked: the refused request carried its cursor.
        const after = await snapshot(gw);
        expect(after).toEqual(before);
        expect(after.some((row) => row.user_id === kind.subject && row.status === 'pending')).toBe(true);
      }
    });
  });
});

/** Claims the verifier must refuse as a 401 invalid_token (never a 500, never a guess). */
const BAD_CLAIMS: Array<{ name: string; claims: Record<string, unknown> }> = [
  { name: 'pub is a string, not an array', claims: { pub: 'pa-bob' } },
  { name: 'pub holds a number', claims: { pub: ['pa-bob', 7] } },
  { name: 'pub holds null', claims: { pub: [null] } },
  { name: 'pub is an object', claims: { pub: { 'pa-bob': true } } },
  { name: 'pub has a * in the middle', claims: { pub: ['pa-*-bob'] } },
  { name: 'pub has an entry with a space', claims: { pub: ['pa bob'] } },
  { name: 'pub has an empty entry', claims: { pub: [''] } },
  { name: 'pub has 257 entries', claims: { pub: Array.from({ length: 257 }, (_, index) => `pa-${index}`) } },
  { name: 'scope names an unknown value', claims: { scope: 'admin' } },
  { name: 'scope mixes a known and an unknown value', claims: { scope: 'poll admin' } },
  { name: 'scope is an array (the claim is a space-separated string)', claims: { scope: ['poll'] } },
  { name: 'scope is empty', claims: { scope: '' } },
  { name: 'scope is a number', claims: { scope: 1 } },
];

const ALL_ROUTES: Array<{ name: string; send(gw: TestGatewayFixture, token: string): Promise<Response>; jsonp?: boolean }> = [
  { name: 'POST /v1/messages', send: (gw, token) => gw.request('/v1/messages', { method: 'POST', token, json: { to: 'pa-bob', body: 1 } }) },
  { name: 'POST /v1/messages/batch', send: (gw, token) => gw.request('/v1/messages/batch', { method: 'POST', token, json: { messages: [{ to: 'pa-bob', body: 1 }] } }) },
  ...POLL_ROUTES.map((route) => ({ name: route.name, jsonp: route.jsonp, send: (gw: TestGatewayFixture, token: string) => route.send(gw, token, 1) })),
];

describe.each(backendCases('publish authorization'))('malformed pub / scope claims on $name', ({ make }) => {
  const gw = useTestGateway(make, { PUBLISH_DEFAULT: 'any' });
  beforeAll(async () => {
    // Something to ack, so that a refused ack would show.
    await gw.publish('pa-seeder', { to: 'pa-bad', body: 'seed' });
  });

  const cases = BAD_CLAIMS.flatMap((bad) => ALL_ROUTES.map((route) => ({ ...bad, route })));

  it.each(cases)('$route.name with $name → 401 invalid_token, nothing stored or acked', async ({ claims, route }) => {
    const token = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('pa-bad').setIssuedAt().sign(new TextEncoder().encode(TEST_SECRET));
    const before = await snapshot(gw);
    const response = await route.send(gw, token);
    if (route.jsonp) {
      expect(response.status).toBe(200);
      expect(await response.text()).toMatch(/^\/\*\*\/app\.onPoll\(\{"error":\{"code":"invalid_token","message":"[^"]+"\},"status":401\}\);$/);
    } else {
      await expectError(response, 401, 'invalid_token');
      expect(response.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    }
    expect(await snapshot(gw)).toEqual(before);
  });
});
