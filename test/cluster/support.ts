import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import { childPids, spawnGateway } from '../support/process.js';

export interface WorkersProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  /** Pids of the primary's live children (the workers). */
  workerPids(): number[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs `longpoll-gateway start --workers N` (the built CLI) and waits for the primary's banner. */
export async function spawnWorkers(workers: number, env: Record<string, string>, timeoutMs = 30_000): Promise<WorkersProcess> {
  const gateway = await spawnGateway(
    { SHUTDOWN_GRACE_MS: '3000', ...env }, // --workers wins over the GATEWAY_WORKERS=1 spawnGateway sets
    { args: ['--workers', String(workers)], timeoutMs, listening: /listening on (http:\/\/[\d.:]+) \(\d+ workers/ },
  );
  return {
    ...gateway,
    workerPids: () => childPids(gateway.child.pid!),
  };
}

export interface RawResponse {
  status: number;
  worker: string | undefined;
  body: string;
}

/**
 * One request on a fresh TCP connection (no keep-alive pool), so node:cluster hands each request
 * to the next worker instead of the one that owns a pooled socket. `timeoutMs` fails a request
 * that is not answered in time (a connection the primary accepted while no worker was listening).
 */
export function freshRequest(url: string, init: { method?: string; token?: string; json?: unknown; agent?: http.Agent; timeoutMs?: number } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const body = init.json === undefined ? undefined : JSON.stringify(init.json);
    const request = http.request(
      url,
      {
        method: init.method ?? 'GET',
        agent: init.agent ?? false,
        headers: {
          ...(init.agent ? {} : { Connection: 'close' }),
          ...(init.token ? { Authorization: `Bearer ${init.token}` } : {}),
          ...(body ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } : {}),
        },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, worker: response.headers['x-gateway-worker'] as string | undefined, body: text }));
        // An answer cut short (its worker killed while sending it) fails rather than never settling.
        response.on('close', () => {
          if (!response.complete) reject(new Error('the answer was cut short'));
        });
      },
    );
    request.on('error', reject);
    if (init.timeoutMs !== undefined) request.setTimeout(init.timeoutMs, () => request.destroy(new Error(`no answer in ${init.timeoutMs} ms`)));
    request.end(body);
  });
}

export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * One keep-alive connection per worker: node:cluster gives a connection to one worker for its
 * lifetime, so requests on a pinned agent always reach the same worker. Opens connections until
 * `count` different workers answered (bounded), which does not depend on how the primary happens
 * to spread a burst of connections on a busy machine.
 */
export async function pinOneConnectionPerWorker(url: string, count: number, attempts = 40): Promise<Map<string, http.Agent>> {
  const pinned = new Map<string, http.Agent>();
  for (let attempt = 0; attempt < attempts && pinned.size < count; attempt += 1) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const answer = await freshRequest(`${url}/healthz`, { agent });
    if (answer.worker !== undefined && !pinned.has(answer.worker)) pinned.set(answer.worker, agent);
    else agent.destroy();
  }
  if (pinned.size < count) throw new Error(`only ${pinned.size} of ${count} workers answered in ${attempts} connections`);
  return pinned;
}
