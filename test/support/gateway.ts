import type { Knex } from 'knex';
import { startGateway, type RunningGateway } from '../../src/main.js';
import type { Backend } from './backends.js';

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
