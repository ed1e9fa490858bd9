import { connect } from 'node:net';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { backendCases } from '../support/backends.js';
import { useTestGateway } from '../support/gateway.js';

/**
 * Random and hostile requests against every endpoint, written as raw bytes on a socket so that
 * nothing a client library would refuse (CR/LF in headers, invalid UTF-8 in the path, odd
 * methods) is filtered out before it reaches the server. The gateway must never answer 5xx, must
 * keep serving, and must store exactly the messages it answered 201 for.
 */

interface RawAnswer {
  /** 0 = the connection closed without an answer after we had to half-close it (see below). */
  status: number;
  body: string;
}

const ANSWER_BEFORE_HALF_CLOSE_MS = 1_500;
const REQUEST_TIMEOUT_MS = 5_000;

/**
 * Writes the bytes and reads until the server closes (every request says Connection: close).
 * The socket is not half-closed right away: Node aborts in-flight requests when the client sends
 * FIN, which would turn every async answer into "no answer". Only a request the server is still
 * reading (a chunked body that never comes) gets a FIN, after a pause.
 */
function sendRaw(port: number, request: Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let halfClosed = false;
    const halfCloseTimer = setTimeout(() => {
      halfClosed = true;
      socket.end();
    }, ANSWER_BEFORE_HALF_CLOSE_MS);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms to ${JSON.stringify(request.subarray(0, 200).toString('latin1'))}`));
    }, REQUEST_TIMEOUT_MS);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {}); // a reset after the answer is fine; a missing answer fails below
    socket.on('close', () => {
      clearTimeout(timer);
      clearTimeout(halfCloseTimer);
      const text = Buffer.concat(chunks).toString('latin1');
      // Skip interim answers (100 Continue) to the final one.
      const finalAnswer = /(?:^|\r\n\r\n)HTTP\/1\.1 ([2-5]\d\d)[^\r]*\r\n/.exec(text);
      if (!finalAnswer) {
        if (halfClosed && text === '') return resolve({ status: 0, body: '' });
        return reject(new Error(`no HTTP answer to ${JSON.stringify(request.subarray(0, 200).toString('latin1'))}: ${JSON.stringify(text.slice(0, 200))}`));
      }
      const head = text.slice(text.indexOf('HTTP/1.1', finalAnswer.index));
      const bodyStart = head.indexOf('\r\n\r\n');
      resolve({ status: Number(finalAnswer[1]), body: bodyStart === -1 ? '' : Buffer.from(head.slice(bodyStart + 4), 'latin1').toString('utf8') });
    });
    socket.write(request);
  });
}

const hostileStrings = fc.constantFrom(
  "' OR '1'='1",
  "bob'; DROP TABLE messages; --",
  '1; DELETE FROM messages',
  '" UNION SELECT * FROM messages --',
  '\u0000',
  '\u202e\u200b\ufeff',
  '𝕳𝖊𝖑𝖑𝖔 🎉',
  'bob\r\nX-Injected: 1',
  '../../etc/passwd',
  '%00%ff',
  '__proto__',
  'constructor',
  'a'.repeat(300),
);
const hugeNumbers = fc.constantFrom('1e400', '-1', '9007199254740993', '18446744073709551616', `1${'0'.repeat(400)}`, 'NaN', 'Infinity', '0x10', '1.5', '-0', ' 7', '');
const userIds = fc.oneof(fc.constantFrom('fuzz-bob', 'fuzz-alice'), hostileStrings, fc.string({ maxLength: 20 }), fc.string({ unit: 'grapheme', maxLength: 10 }));

/** A publish body: sometimes valid, often subtly or grossly not. */
const publishValue = fc.record(
  {
    to: userIds,
    id: fc.oneof(fc.string({ maxLength: 20 }), hostileStrings, fc.integer(), fc.constant(null)),
    body: fc.oneof(fc.jsonValue({ maxDepth: 3 }), hostileStrings, fc.constant(undefined)),
    from: fc.constant('mallory'),
  },
  { requiredKeys: [] },
);

const jsonBody = fc.oneof(
  publishValue.map((value) => JSON.stringify(value)),
  fc.array(publishValue, { maxLength: 7 }).map((messages) => JSON.stringify({ messages })),
  fc.record({ cursor: fc.oneof(fc.integer(), fc.double(), hugeNumbers, fc.constant(null)), user: fc.option(userIds) }).map((value) => JSON.stringify(value)),
  fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.stringify(value) ?? 'null'),
  hugeNumbers.map((n) => `{"cursor":${n}}`),
  fc.string({ maxLength: 80 }),
  fc.constantFrom('{', '{"to":', '{"to":"fuzz-bob","body":1', '[]', 'null', '{"__proto__":{"x":1},"to":"fuzz-bob","body":1}', `{"to":"fuzz-bob","body":${'['.repeat(5000)}}`),
);
const bodyBytes = fc.oneof(
  jsonBody.map((text) => Buffer.from(text, 'utf8')),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
  // Invalid UTF-8 inside otherwise plausible JSON.
  fc.constant(Buffer.concat([Buffer.from('{"to":"fuzz-bob","body":"'), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), Buffer.from('"}')])),
);

const paths = fc.constantFrom('/v1/messages', '/v1/messages/batch', '/v1/poll', '/v1/ack', '/healthz', '/readyz', '/metrics', '/', '/v1', '/v2/poll', '/v1/poll/');
const queryValue = fc.oneof(hugeNumbers, hostileStrings.map(encodeURIComponent), fc.constantFrom('%ff%fe', '%', '%zz', '%00', 'ok'));
const query = fc
  .array(fc.tuple(fc.constantFrom('cursor', 'wait', 'limit', 'user', 'access_token', '_', 'cursor[]', '__proto__'), queryValue), { maxLength: 4 })
  .map((pairs) => (pairs.length === 0 ? '' : `?${pairs.map(([key, value]) => `${key}=${value}`).join('&')}`));

type Auth = 'valid' | 'none' | 'garbage' | 'injected' | 'other-user';
const methods = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'get', 'FOO', 'CONNECT', 'PRI');
const contentTypes = fc.constantFrom('application/json', 'text/plain', 'application/json; charset=utf-16', 'multipart/form-data', '', 'application/json\r\nX-Injected: 1', 'application/x-www-form-urlencoded');

interface FuzzRequest {
  method: string;
  path: string;
  query: string;
  auth: Auth;
  contentType: string;
  body: Buffer | undefined;
  extraHeader: string | undefined;
}

const fuzzRequest: fc.Arbitrary<FuzzRequest> = fc.record({
  method: methods,
  path: paths,
  query,
  auth: fc.constantFrom<Auth>('valid', 'valid', 'valid', 'none', 'garbage', 'injected', 'other-user'),
  contentType: contentTypes,
  body: fc.option(bodyBytes, { nil: undefined }),
  extraHeader: fc.option(
    fc.constantFrom('X-Request-Id: ../../\u00ff', 'X-Request-Id: a\r\nSet-Cookie: x=1', 'Content-Length: 5', 'Transfer-Encoding: chunked', 'Expect: 100-continue', 'Host: evil.example', `X-Long: ${'a'.repeat(20_000)}`),
    { nil: undefined },
  ),
});

/** Mostly valid messages with hostile contents: these are the requests that reach the store. */
const nearlyValidMessage = fc.record({
  to: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('fuzz-bob', 'fuzz.bob@x', 'fuzz:bob-2') }, { weight: 1, arbitrary: userIds }),
  id: fc.option(fc.oneof(fc.string({ minLength: 1, maxLength: 20 }), hostileStrings), { nil: undefined }),
  body: fc.oneof(fc.jsonValue({ maxDepth: 3 }), hostileStrings),
});

/** Close to a valid publish, so that the "stored only if valid" half of the property gets exercised. */
const plausiblePublish: fc.Arbitrary<FuzzRequest> = fc.record({
  method: fc.constant('POST'),
  path: fc.constantFrom('/v1/messages', '/v1/messages/batch'),
  query: fc.constantFrom('', '?_=1'),
  auth: fc.constantFrom<Auth>('valid', 'valid', 'valid', 'injected'),
  contentType: fc.constantFrom('application/json', 'text/plain', 'application/json; charset=utf-16'),
  body: fc
    .oneof(
      nearlyValidMessage.map((value) => JSON.stringify(value)),
      fc.array(nearlyValidMessage, { minLength: 1, maxLength: 6 }).map((messages) => JSON.stringify({ messages })),
      publishValue.map((value) => JSON.stringify(value)),
    )
    .map((text) => Buffer.from(text, 'utf8')),
  extraHeader: fc.constantFrom(undefined, undefined, undefined, 'Transfer-Encoding: chunked', 'Expect: 100-continue'),
});

function encodeRequest(request: FuzzRequest, tokens: { valid: string; other: string }): Buffer {
  const lines = [`${request.method} ${request.path}${request.query} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
  if (request.auth === 'valid') lines.push(`Authorization: Bearer ${tokens.valid}`);
  if (request.auth === 'other-user') lines.push(`Authorization: Bearer ${tokens.other}`);
  if (request.auth === 'garbage') lines.push("Authorization: Bearer ' OR 1=1 --");
  if (request.auth === 'injected') lines.push(`Authorization: Bearer ${tokens.valid}\r\nX-Injected: 1`);
  if (request.contentType) lines.push(`Content-Type: ${request.contentType}`);
  if (request.extraHeader) lines.push(request.extraHeader);
  let body = request.body ?? Buffer.alloc(0);
  // Framing stays complete so that every request can be answered: a chunked body is sent
  // chunked, and a lone `Content-Length: 5` gets its 5 bytes.
  if (request.extraHeader === 'Transfer-Encoding: chunked') {
    body = Buffer.concat([body.length > 0 ? Buffer.from(`${body.length.toString(16)}\r\n`) : Buffer.alloc(0), body, Buffer.from(body.length > 0 ? '\r\n0\r\n\r\n' : '0\r\n\r\n')]);
  } else if (request.extraHeader === 'Content-Length: 5' && body.length === 0) {
    body = Buffer.from('{"a":');
  } else if (body.length > 0) {
    lines.push(`Content-Length: ${body.length}`);
  }
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]);
}

describe.each(backendCases('fuzzed endpoints'))('hostile input on every endpoint on $name', ({ make }) => {
  const gw = useTestGateway(make, { POLL_WAIT_MAX_S: '0', MAX_MESSAGE_BYTES: '1024', MAX_BATCH_MESSAGES: '5', PUBLISH_RATE_PER_USER: '0', PUBLISH_RATE_PER_IP: '0' });
  let port: number;
  let tokens: { valid: string; other: string };
  /** Server ids the gateway answered 201 for (new rows): the only rows that may exist. */
  const storedIds = new Set<number>();
  const statuses = new Map<number, number>();

  beforeAll(async () => {
    port = Number(new URL(gw.url).port);
    tokens = { valid: await gw.token('fuzz-alice'), other: await gw.token('fuzz-bob') };
  });

  it('never answers 5xx, never crashes, and stores only what it answered 201 for', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fuzzRequest, plausiblePublish), async (request) => {
        const answer = await sendRaw(port, encodeRequest(request, tokens));
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        expect(answer.status, `${answer.status} ${answer.body.slice(0, 300)}`).toBeLessThan(500);
        if (answer.status >= 400 && answer.body.startsWith('{')) {
          // Every gateway error has the documented shape with a stable code.
          expect(JSON.parse(answer.body)).toEqual({ error: { code: expect.stringMatching(/^[a-z_0-9]+$/), message: expect.any(String) } });
        }
        // Every request is complete (see encodeRequest): each one deserves an answer.
        expect(answer.status, `unanswered: ${request.method} ${request.path}`).toBeGreaterThan(0);
        if (answer.status === 201 && request.method === 'POST') {
          const parsed = JSON.parse(answer.body) as { id?: number; duplicate?: boolean; results?: Array<{ id: number; duplicate: boolean }> };
          for (const result of parsed.results ?? [parsed]) if (result.duplicate === false) storedIds.add(result.id!);
        }
      }),
      { numRuns: 400, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31), endOnFailure: true },
    );

    const rows = (await gw.knex('messages').select('id', 'sender_id', 'body')) as Array<{ id: number | string; sender_id: string; body: string }>;
    expect(new Set(rows.map((row) => Number(row.id)))).toEqual(storedIds);
    for (const row of rows) {
      expect(row.sender_id).toBe('fuzz-alice');
      expect(() => JSON.parse(row.body)).not.toThrow();
    }
    // Still serving, and the run did exercise both the refusals and the stores.
    expect((await gw.request('/healthz')).status).toBe(200);
    expect([...statuses.keys()].some((status) => status >= 400)).toBe(true);
    expect(storedIds.size).toBeGreaterThan(0);
  });

  it('stores nothing of a batch refused with 409 for an idempotency conflict in a later item', async () => {
    const first = await gw.publish('fuzz-dave', { to: 'fuzz-erin', id: 'taken', body: 1 });
    expect(first.status).toBe(201);
    const batch = await gw.publish(
      'fuzz-dave',
      { messages: [{ to: 'fuzz-erin', id: 'fresh-1', body: 'a' }, { to: 'fuzz-erin', id: 'fresh-2', body: 'b' }, { to: 'fuzz-erin', id: 'taken', body: 'changed' }] },
      '/v1/messages/batch',
    );
    expect(batch.status).toBe(409);
    expect(await batch.json()).toMatchObject({ error: { code: 'idempotency_conflict' } });
    const rows = await gw.knex('messages').where({ sender_id: 'fuzz-dave' }).select('client_msg_id');
    expect(rows.map((row: { client_msg_id: string }) => row.client_msg_id)).toEqual(['taken']);
    // The corrected batch then stores both, and repeats of it are duplicates.
    const fixed = { messages: [{ to: 'fuzz-erin', id: 'fresh-1', body: 'a' }, { to: 'fuzz-erin', id: 'fresh-2', body: 'b' }, { to: 'fuzz-erin', id: 'taken', body: 1 }] };
    const stored = (await (await gw.publish('fuzz-dave', fixed, '/v1/messages/batch')).json()) as { results: Array<{ duplicate: boolean }> };
    expect(stored.results.map((result) => result.duplicate)).toEqual([false, false, true]);
    const again = await gw.publish('fuzz-dave', fixed, '/v1/messages/batch');
    expect(again.status).toBe(200);
  });

  it('refuses SQL fragments as user ids and stores hostile bodies verbatim', async () => {
    for (const to of ["bob' OR '1'='1", 'bob; DROP TABLE messages', 'bob\u0000']) {
      const response = await gw.publish('fuzz-alice', { to, body: 1 });
      expect(response.status).toBe(400);
    }
    const body = { text: "'); DROP TABLE messages; -- \u202e 𝕳 \u0000", n: 1e308 };
    const response = await gw.publish('fuzz-alice', { to: 'fuzz-carol', body });
    expect(response.status).toBe(201);
    expect((await gw.poll('fuzz-carol')).messages.map((message) => message.body)).toEqual([body]);
  });
});
