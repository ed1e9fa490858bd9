import type { DeliveryReceipt, FetchLike, PollMessage } from '../../../src/client/index.js';

/**
 * An in-memory stand-in for the gateway's HTTP API, served through an injected `fetch`: one
 * mailbox, cumulative acknowledgement by cursor (cursor = highest sequence number delivered; a
 * message's id is its sequence number, receipts take sequence numbers too), long polls held until
 * something arrives or `holdMs` passes, and a queue of scripted faults.
 */
export interface RecordedRequest {
  method: string;
  url: URL;
  headers: Headers;
  body: unknown;
  at: number;
  signal: AbortSignal | undefined;
}

/** Returns a Response to answer with, 'lose-response' to process normally but fail the fetch, or throws. */
export type Fault = (request: RecordedRequest) => Response | 'lose-response' | Promise<Response | 'lose-response'>;

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

export function errorResponse(status: number, code: string, headers: Record<string, string> = {}): Response {
  return jsonResponse(status, { error: { code, message: `fake ${code}` } }, headers);
}

export function createFakeGateway(options: { holdMs?: number; waitMax?: number; waitMaxOnErrors?: boolean } = {}) {
  const holdMs = options.holdMs ?? 200;
  const waitMax = options.waitMax ?? 30;
  const entries: Array<{ seq: number; message?: PollMessage; receipt?: DeliveryReceipt }> = [];
  const requests: RecordedRequest[] = [];
  const faults: Fault[] = [];
  const waiters = new Set<() => void>();
  let acknowledged = 0;
  let nextSeq = 1;

  function deliver(body: unknown, from = 'alice'): number {
    const id = nextSeq++;
    entries.push({ seq: id, message: { id, from, body, createdAt: new Date().toISOString() } });
    for (const wake of [...waiters]) wake();
    return id;
  }

  /** Puts a receipt for message `id` (one this mailbox's user sent to `to`) into the mailbox; returns its sequence number. */
  function deliverReceipt(id: number, to = 'bob'): number {
    const seq = nextSeq++;
    entries.push({ seq, receipt: { id, to, status: 'acked', at: new Date().toISOString() } });
    for (const wake of [...waiters]) wake();
    return seq;
  }

  /** Entries are appended in seq order, so the unacknowledged ones start at the first seq above the ack. */
  function pending(limit: number) {
    let low = 0;
    let high = entries.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (entries[middle]!.seq <= acknowledged) low = middle + 1;
      else high = middle;
    }
    return entries.slice(low, low + limit);
  }

  async function poll(request: RecordedRequest): Promise<Response> {
    const cursor = Number(request.url.searchParams.get('cursor'));
    const wait = Number(request.url.searchParams.get('wait'));
    const limit = Number(request.url.searchParams.get('limit'));
    if (!Number.isInteger(wait) || wait < 0 || wait > waitMax) {
      return errorResponse(400, 'invalid_wait', options.waitMaxOnErrors === false ? {} : { 'X-Poll-Wait-Max': String(waitMax) });
    }
    acknowledged = Math.max(acknowledged, cursor);
    if (pending(limit).length === 0 && wait > 0) {
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(done);
          request.signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          clearTimeout(timer);
          waiters.delete(done);
          reject(request.signal?.reason);
        };
        const timer = setTimeout(done, holdMs);
        waiters.add(done);
        request.signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    const batch = pending(limit);
    const nextCursor = batch.length > 0 ? batch[batch.length - 1]!.seq : cursor;
    const receipts = batch.flatMap((entry) => (entry.receipt ? [entry.receipt] : []));
    const body = { messages: batch.flatMap((entry) => (entry.message ? [entry.message] : [])), cursor: nextCursor };
    // Like the gateway: the key is there only when there are receipts.
    return jsonResponse(200, receipts.length > 0 ? { ...body, receipts } : body, { 'X-Poll-Wait-Max': String(waitMax) });
  }

  const fetch: FetchLike = async (input, init) => {
    const request: RecordedRequest = {
      method: init.method ?? 'GET',
      url: new URL(input),
      headers: new Headers(init.headers),
      body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined,
      at: Date.now(),
      signal: init.signal ?? undefined,
    };
    requests.push(request);
    if (request.signal?.aborted) throw request.signal.reason;
    const fault = faults.shift();
    let lose = false;
    if (fault) {
      const outcome = await fault(request);
      if (outcome !== 'lose-response') return outcome;
      lose = true;
    }
    const response = request.url.pathname.endsWith('/v1/poll') ? await poll(request) : errorResponse(404, 'not_found');
    if (lose) throw new TypeError('fetch failed');
    return response;
  };

  return {
    fetch,
    deliver,
    deliverReceipt,
    requests,
    /** Requests to /v1/poll, in order. */
    polls: () => requests.filter((request) => request.url.pathname.endsWith('/v1/poll')),
    /** Queue faults for the next requests, one per request. */
    failNext(...next: Fault[]) {
      faults.push(...next);
    },
    get acknowledged() {
      return acknowledged;
    },
  };
}

/** Resolves once `predicate` holds, polling every few ms; fails the test after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

export const FAST_BACKOFF = { minDelayMs: 1, maxDelayMs: 4, factor: 2, jitter: 0.5 } as const;
