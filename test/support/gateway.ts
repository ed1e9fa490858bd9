import type { Knex } from 'knex';
import { afterAll, beforeAll } from 'vitest';
import { startGateway, type RunningGateway } from '../../src/start-from-env.js';
import { useBackend, userIds, type Backend } from './backends.js';

export interface TestGateway extends RunningGateway {
  knex: Knex;
  tokenFor(userId: string): Promise<string>;
  request(path: string, init?: RequestInit & { token?: string; json?: unknown }): Promise<Response>;
}

/** A real gateway on a random loopback port, on the backend's store and bus. */
export async function startTestGateway(backend: Backend, env: Record<string, string> = {}): Promise<TestGateway> {
  const gateway = await startGateway({
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    SHUTDOWN_GRACE_MS: '2000',
    ...(await backend.gatewayEnv()),
    ...env,
  });
  const tokens = new Map<string, string>();
  async function tokenFor(userId: string): Promise<string> {
    let token = tokens.get(userId);
    if (!token) {
      token = await gateway.issueToken(userId);
      tokens.set(userId, token);
    }
    return token;
  }
  return {
    ...gateway,
    knex: gateway.store.knex,
    tokenFor,
    async request(path, init = {}) {
      const { token, json, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (token) headers.set('Authorization', `Bearer ${token}`);
      if (json !== undefined) headers.set('Content-Type', 'application/json');
      return fetch(`${gateway.url}${path}`, { ...rest, headers, ...(json !== undefined ? { body: JSON.stringify(json) } : {}) });
    },
  };
}

/** A message as a poll answer carries it (the fields a test reads; receipts and expiry included). */
export interface PolledMessage {
  id: number;
  from: string;
  body: unknown;
  createdAt: string;
  expiresAt?: string;
}

/** A poll answer, as GET /v1/poll sends it. */
export interface PollAnswer {
  messages: PolledMessage[];
  receipts?: Array<{ type: string; id: number; to: string; status: string; at: string }>;
  cursor: number;
  superseded?: boolean;
}

/** What `useTestGateway` hands a suite: the running gateway and the calls every suite makes. */
export interface TestGatewayFixture {
  /** The gateway of the current suite (started in beforeAll). */
  readonly gateway: TestGateway;
  readonly backend: Backend;
  readonly url: string;
  /** A user id no other test of this file has used. */
  nextUser(): string;
  /** A token for the user (cached per user). */
  token(userId: string): Promise<string>;
  /** A request to the gateway (`token` sets the bearer, `json` the body). */
  request: TestGateway['request'];
  /** The gateway's database, for what a test checks below the API. */
  readonly knex: Knex;
  /** POST `json` as `from` (to /v1/messages unless another path is given). */
  publish(from: string, json: unknown, path?: string): Promise<Response>;
  /** GET /v1/poll as `userId` with the query given (`wait=0` unless it names a wait), answered as JSON. */
  poll(userId: string, query?: string): Promise<PollAnswer>;
}

let fixtureCount = 0;

/**
 * The start-a-gateway scaffold of every HTTP suite, once: call it at the top of a `describe`; it
 * starts a real gateway on the backend before the suite's tests and closes it (and the backend's
 * databases) after them.
 *
 * @example
 * describe.each(backendCases('receipts'))('receipts on $name', ({ make }) => {
 *   const gw = useTestGateway(make, { MESSAGE_TTL_MAX_S: '3600' });
 *   it('…', async () => {
 *     const [alice, bob] = [gw.nextUser(), gw.nextUser()];
 *     await gw.publish(alice, { to: bob, body: 'hi' });
 *     expect((await gw.poll(bob)).messages).toHaveLength(1);
 *   });
 * });
 */
export function useTestGateway(make: () => Backend, env: Record<string, string> = {}): TestGatewayFixture {
  const backend = useBackend(make);
  let gateway: TestGateway | undefined;
  const nextUser = userIds(`g${++fixtureCount}`);
  // Registered after useBackend's hooks: started after the backend is made, closed before it is
  // cleaned up (vitest runs afterAll hooks in reverse order).
  beforeAll(async () => {
    gateway = await startTestGateway(backend, env);
  });
  afterAll(async () => {
    await gateway?.close();
  });
  const started = () => {
    if (!gateway) throw new Error('useTestGateway: the gateway starts in beforeAll; use it inside tests or hooks');
    return gateway;
  };
  return {
    get gateway() {
      return started();
    },
    backend,
    get url() {
      return started().url;
    },
    nextUser,
    token: (userId) => started().tokenFor(userId),
    request: (path, init) => started().request(path, init),
    get knex() {
      return started().knex;
    },
    async publish(from, json, path = '/v1/messages') {
      return started().request(path, { method: 'POST', token: await started().tokenFor(from), json });
    },
    async poll(userId, query = 'wait=0') {
      const search = /(^|&)wait=/.test(query) ? query : `wait=0&${query}`;
      const response = await started().request(`/v1/poll?${search}`, { token: await started().tokenFor(userId) });
      if (response.status !== 200) throw new Error(`poll answered ${response.status}: ${await response.text()}`);
      return (await response.json()) as PollAnswer;
    },
  };
}
