import { SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { backendCases } from '../support/backends.js';
import { useTestGateway, type TestGateway } from '../support/gateway.js';

interface BadInputCase {
  name: string;
  status: number;
  code: string;
  /** Builds the request; `ctx` holds tokens and the cursor of a delivered-but-unacked message. */
  send(ctx: { gw: TestGateway; alice: string; cursor: number }): Promise<Response>;
}

const raw = (gw: TestGateway, path: string, init: RequestInit) => fetch(`${gw.url}${path}`, init);
const post = (gw: TestGateway, path: string, token: string, body: string | Blob, type = 'application/json') =>
  raw(gw, path, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': type }, body });
const get = (gw: TestGateway, path: string, token?: string) =>
  raw(gw, path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });

async function signed(secret: string, claims: { sub?: string; exp?: number }): Promise<string> {
  const jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (claims.sub) jwt.setSubject(claims.sub);
  if (claims.exp) jwt.setExpirationTime(claims.exp);
  return jwt.sign(new TextEncoder().encode(secret));
}

const MAX_MESSAGE_BYTES = 1024;

const cases: BadInputCase[] = [
  { name: 'malformed JSON', status: 400, code: 'invalid_json', send: ({ gw, alice }) => post(gw, '/v1/messages', alice, '{"to": "bob", ') },
  { name: 'empty body', status: 400, code: 'invalid_json', send: ({ gw, alice }) => post(gw, '/v1/messages', alice, '') },
  { name: 'invalid UTF-8', status: 400, code: 'invalid_json', send: ({ gw, alice }) => post(gw, '/v1/messages', alice, new Blob([new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])])) },
  { name: 'JSON that is not an object', status: 400, code: 'invalid_request', send: ({ gw, alice }) => post(gw, '/v1/messages', alice, '[1,2]') },
  { name: 'wrong type for `to`', status: 400, code: 'invalid_request', send: ({ gw, alice }) => post(gw, '/v1/messages', alice, '{"to":5,"body":1}') },
  { name: 'recipient id with spaces', status: 400, code: 'invalid_request', send: ({ gw, alice }) => post(gw, '/v1/messages', alice, '{"to":"bob smith","body":1}') },
  { name: 'missing body', status: 400, code: 'invalid_request', send: ({ gw, alice }) => post(gw, '/v1/messages', alice, '{"to":"bob"}') },
  { name: 'wrong type for `id`', status: 400, code: 'invalid_request', send: ({ gw, alice }) => post(gw, '/v1/messages', alice, '{"to":"bob","id":7,"body":1}') },
  { name: 'client id over 128 chars', status: 400, code: 'invalid_request', send: ({ gw, alice }) => post(gw, '/v1/messages', alice, JSON.stringify({ to: 'bob', id: 'x'.repeat(129), body: 1 })) },
  { name: 'unknown field', status: 400, code: 'unknown_field', send: ({ gw, alice }) => post(gw, '/v1/messages', alice, '{"to":"bob","body":1,"from":"mallory"}') },
  { name: 'unsupported content type', status: 415, code: 'unsupported_media_type', send: ({ gw, alice }) => post(gw, '/v1/messages', alice, '{"to":"bob","body":1}', 'application/x-www-form-urlencoded') },
  { name: 'message body over the size limit', status: 413, code: 'message_too_large', send: ({ gw, alice }) => post(gw, '/v1/messages', alice, JSON.stringify({ to: 'bob', body: 'x'.repeat(MAX_MESSAGE_BYTES + 10) })) },
  { name: 'request over the size limit', status: 413, code: 'payload_too_large', send: ({ gw, alice }) => post(gw, '/v1/messages', alice, JSON.stringify({ to: 'bob', body: 'x'.repeat(MAX_MESSAGE_BYTES + 8 * 1024) })) },
  { name: 'batch over the count limit', status: 400, code: 'invalid_request', send: ({ gw, alice }) => post(gw, '/v1/messages/batch', alice, JSON.stringify({ messages: Array.from({ length: 6 }, () => ({ to: 'bob', body: 1 })) })) },
  { name: 'batch with one bad item stores none', status: 400, code: 'invalid_request', send: ({ gw, alice }) => post(gw, '/v1/messages/batch', alice, JSON.stringify({ messages: [{ to: 'bob', body: 1 }, { to: '', body: 2 }] })) },
  { name: 'non-numeric cursor', status: 400, code: 'invalid_cursor', send: ({ gw, alice }) => get(gw, '/v1/poll?wait=0&cursor=abc', alice) },
  { name: 'negative cursor', status: 400, code: 'invalid_cursor', send: ({ gw, alice }) => get(gw, '/v1/poll?wait=0&cursor=-1', alice) },
  { name: 'fractional cursor', status: 400, code: 'invalid_cursor', send: ({ gw, alice }) => get(gw, '/v1/poll?wait=0&cursor=1.5', alice) },
  { name: 'cursor beyond 2^53', status: 400, code: 'invalid_cursor', send: ({ gw, alice }) => get(gw, '/v1/poll?wait=0&cursor=99999999999999999999', alice) },
  { name: 'cursor sent twice', status: 400, code: 'invalid_cursor', send: ({ gw, alice, cursor }) => get(gw, `/v1/poll?wait=0&cursor=${cursor}&cursor=1`, alice) },
  { name: 'wait above the maximum', status: 400, code: 'invalid_wait', send: ({ gw, alice, cursor }) => get(gw, `/v1/poll?cursor=${cursor}&wait=11`, alice) },
  { name: 'non-numeric wait', status: 400, code: 'invalid_wait', send: ({ gw, alice, cursor }) => get(gw, `/v1/poll?cursor=${cursor}&wait=soon`, alice) },
  { name: 'negative wait', status: 400, code: 'invalid_wait', send: ({ gw, alice, cursor }) => get(gw, `/v1/poll?cursor=${cursor}&wait=-1`, alice) },
  { name: 'limit of zero', status: 400, code: 'invalid_limit', send: ({ gw, alice, cursor }) => get(gw, `/v1/poll?cursor=${cursor}&wait=0&limit=0`, alice) },
  { name: 'ack with a string cursor', status: 400, code: 'invalid_request', send: ({ gw, alice, cursor }) => post(gw, '/v1/ack', alice, JSON.stringify({ cursor: String(cursor) })) },
  { name: 'ack with an unknown field', status: 400, code: 'unknown_field', send: ({ gw, alice, cursor }) => post(gw, '/v1/ack', alice, JSON.stringify({ cursor, all: true })) },
  { name: 'missing token', status: 401, code: 'missing_token', send: ({ gw, cursor }) => get(gw, `/v1/poll?wait=0&cursor=${cursor}`) },
  { name: 'garbage token', status: 401, code: 'invalid_token', send: ({ gw, cursor }) => get(gw, `/v1/poll?wait=0&cursor=${cursor}`, 'not.a.jwt') },
  { name: 'non-Bearer Authorization', status: 401, code: 'invalid_token', send: ({ gw, cursor }) => raw(gw, `/v1/poll?wait=0&cursor=${cursor}`, { headers: { Authorization: 'Basic YWxpY2U6eA==' } }) },
  { name: 'token signed with another secret', status: 401, code: 'invalid_token', send: async ({ gw, cursor }) => get(gw, `/v1/poll?wait=0&cursor=${cursor}`, await signed('another-secret-another-secret-another', { sub: 'alice-bad' })) },
  { name: 'token without sub', status: 401, code: 'invalid_token', send: async ({ gw, cursor }) => get(gw, `/v1/poll?wait=0&cursor=${cursor}`, await signed(gw.config.auth.jwtSecret!, {})) },
  { name: 'expired token', status: 401, code: 'token_expired', send: async ({ gw, cursor }) => get(gw, `/v1/poll?wait=0&cursor=${cursor}`, await signed(gw.config.auth.jwtSecret!, { sub: 'alice-bad', exp: Math.floor(Date.now() / 1000) - 3600 })) },
  { name: 'expired token on publish', status: 401, code: 'token_expired', send: async ({ gw }) => post(gw, '/v1/messages', await signed(gw.config.auth.jwtSecret!, { sub: 'alice-bad', exp: Math.floor(Date.now() / 1000) - 3600 }), '{"to":"bob","body":1}') },
  { name: "polling another user's mailbox", status: 403, code: 'forbidden', send: ({ gw, alice, cursor }) => get(gw, `/v1/poll?wait=0&cursor=${cursor}&user=bob`, alice) },
  { name: "acking another user's mailbox", status: 403, code: 'forbidden', send: ({ gw, alice, cursor }) => post(gw, '/v1/ack', alice, JSON.stringify({ cursor, user: 'bob' })) },
  { name: 'unknown route', status: 404, code: 'not_found', send: ({ gw, alice }) => get(gw, '/v1/nope', alice) },
  { name: 'wrong method', status: 405, code: 'method_not_allowed', send: ({ gw, alice }) => raw(gw, '/v1/poll', { method: 'DELETE', headers: { Authorization: `Bearer ${alice}` } }) },
];

describe.each(backendCases('bad input'))('bad input on $name', ({ make }) => {
  const gw = useTestGateway(make, { POLL_WAIT_MAX_S: '10', MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES), MAX_BATCH_MESSAGES: '5' });
  let alice: string;
  let cursor: number;

  async function snapshot(): Promise<Array<{ id: number; status: string }>> {
    return gw.knex('messages').select('id', 'status').orderBy('id');
  }

  beforeAll(async () => {
    alice = await gw.token('alice-bad');
    // One message delivered to alice but not acked: a bad request carrying its cursor must not ack it.
    await gw.publish('carol', { to: 'alice-bad', body: 'keep me' });
    const polled = await gw.poll('alice-bad');
    expect(polled.messages).toHaveLength(1);
    cursor = polled.cursor;
  });

  it.each(cases)('$name → $status $code, nothing stored or acked', async ({ send, status, code }) => {
    const before = await snapshot();
    const response = await send({ gw: gw.gateway, alice, cursor });
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(code);
    expect(body.error.message.length).toBeGreaterThan(0);
    expect(await snapshot()).toEqual(before);
    // The received message is still unacked: a refused request carrying its cursor acked nothing.
    expect(before.some((row) => row.status === 'pending')).toBe(true);
  });

  it('tells a client whose wait was refused the maximum it may use', async () => {
    const response = await get(gw.gateway, '/v1/poll?wait=99', alice);
    expect(response.status).toBe(400);
    expect(response.headers.get('x-poll-wait-max')).toBe('10');
  });

  it('still accepts a good request afterwards (the table is not passing because everything fails)', async () => {
    const response = await gw.publish('alice-bad', { to: 'bob', body: 'x'.repeat(MAX_MESSAGE_BYTES - 2) });
    expect(response.status).toBe(201);
  });
});
