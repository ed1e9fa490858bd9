import type { DeliveryReceipt, FetchLike, PollMessage, TopicReset } from '../../../src/client/index.js';
import { TOPIC_NAME_PATTERN } from '../../../src/topic-name.js';

/**
 * An in-memory stand-in for the gateway's HTTP API, served through an injected `fetch`: one
 * mailbox, cumulative acknowledgement by cursor (cursor = highest sequence number delivered; a
 * message's id is its sequence number, receipts take sequence numbers too), long polls held until
 * something arrives or `holdMs` passes, and a queue of scripted faults.
 *
 * Topics as the gateway keeps them: each its own sequence (`seq`), read by `POST /v1/poll` with
 * `{"topics": {"<name>": <position> | null}}` ("from now" is fixed at the first look), a position
 * for every topic asked in the answer, a reset when a position fell below the trimmed history,
 * and the same 400 / 403 refusals. Topic message ids come from their own counter (from 10001
 * unless a test names one), so they never meet the mailbox's.
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

/** The query of a poll, whichever way it was sent (GET query or POST body). */
export interface PollParams {
  cursor: number;
  wait: number;
  limit: number;
  /** The poller instance's id (`client`), when the poll named one. */
  client?: string;
  /** The topics asked for, as POST /v1/poll names them; undefined for a poll that reads none. */
  topics?: Record<string, number | null>;
  /** Joins and leaves asked for (`presence: true` in a POST, `presence=1` in a GET). */
  presence?: true;
}

export function pollParams(request: RecordedRequest): PollParams {
  if (request.method === 'POST') return request.body as PollParams;
  const query = request.url.searchParams;
  const number = (name: string) => Number(query.get(name));
  const params: PollParams = { cursor: number('cursor'), wait: number('wait'), limit: number('limit') };
  if (query.has('client')) params.client = query.get('client')!;
  if (query.get('presence') === '1') params.presence = true;
  return params;
}

interface FakeTopic {
  messages: PollMessage[];
  /** The last `seq` issued, and the last one trimmed away (history starts after it). */
  lastSeq: number;
  trimmedSeq: number;
}

export function createFakeGateway(
  options: { holdMs?: number; waitMax?: number; waitMaxOnErrors?: boolean; topicsMax?: number; forbiddenTopics?: string[] } = {},
) {
  const holdMs = options.holdMs ?? 200;
  const waitMax = options.waitMax ?? 30;
  const topicsMax = options.topicsMax ?? 64;
  const topics = new Map<string, FakeTopic>();
  let nextTopicMessageId = 10_001;
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

  function topic(name: string): FakeTopic {
    let found = topics.get(name);
    if (!found) topics.set(name, (found = { messages: [], lastSeq: 0, trimmedSeq: 0 }));
    return found;
  }

  /** Publishes to a topic; returns the message's id and its `seq` there. */
  function publishToTopic(name: string, body: unknown, from = 'alice', id = nextTopicMessageId++): { id: number; seq: number } {
    const stream = topic(name);
    const seq = ++stream.lastSeq;
    stream.messages.push({ id, from, body, createdAt: new Date().toISOString(), topic: name, seq });
    for (const wake of [...waiters]) wake();
    return { id, seq };
  }

  /** Forgets a topic's messages up to `throughSeq`, as the gateway's retention does. */
  function trimTopic(name: string, throughSeq: number): void {
    const stream = topic(name);
    stream.messages = stream.messages.filter((message) => message.seq! > throughSeq);
    stream.trimmedSeq = Math.max(stream.trimmedSeq, throughSeq);
  }

  /** One topic's page after `position`, within `room` messages: as the gateway reads it. */
  function topicPage(name: string, position: number, room: number): { messages: PollMessage[]; position: number; earliest?: number } {
    const stream = topic(name);
    const reset = position < stream.trimmedSeq || position > stream.lastSeq;
    const from = reset ? stream.trimmedSeq : position;
    const messages = stream.messages.filter((message) => message.seq! > from).slice(0, Math.max(room, 0));
    const last = messages.length > 0 ? messages[messages.length - 1]!.seq! : from;
    return reset ? { messages, position: last, earliest: stream.trimmedSeq + 1 } : { messages, position: last };
  }

  /** The gateway's refusals of a poll's topics, in its order: how many, each name, each right. */
  function refuseTopics(asked: Record<string, number | null>): Response | undefined {
    const names = Object.keys(asked);
    if (names.length > topicsMax) return errorResponse(400, 'too_many_topics');
    if (names.some((name) => !TOPIC_NAME_PATTERN.test(name))) return errorResponse(400, 'invalid_topic');
    if (names.some((name) => options.forbiddenTopics?.includes(name))) return errorResponse(403, 'forbidden_topic');
    return undefined;
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
    const { cursor, wait, limit, topics: askedTopics } = pollParams(request);
    if (!Number.isInteger(wait) || wait < 0 || wait > waitMax) {
      return errorResponse(400, 'invalid_wait', options.waitMaxOnErrors === false ? {} : { 'X-Poll-Wait-Max': String(waitMax) });
    }
    const refusal = askedTopics && refuseTopics(askedTopics);
    if (refusal) return refusal;
    // "From now" is fixed at the first look, as on the gateway.
    const reading = Object.entries(askedTopics ?? {}).map(([name, position]) => ({ name, position: position ?? topic(name).lastSeq }));
    acknowledged = Math.max(acknowledged, cursor);
    const topicNews = () => reading.some((reader) => topicPage(reader.name, reader.position, 1).messages.length > 0 || topicPage(reader.name, reader.position, 0).earliest !== undefined);
    if (pending(limit).length === 0 && !topicNews() && wait > 0) {
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
    const body: Record<string, unknown> = { messages: batch.flatMap((entry) => (entry.message ? [entry.message] : [])), cursor: nextCursor };
    // Like the gateway: the key is there only when there are receipts.
    if (receipts.length > 0) body.receipts = receipts;
    if (askedTopics) {
      // `limit` bounds the whole answer: the mailbox's entries first, then each topic in turn.
      let room = limit - batch.length;
      const positions: Record<string, number> = {};
      const resets: TopicReset[] = [];
      for (const reader of reading) {
        const page = topicPage(reader.name, reader.position, room);
        room -= page.messages.length;
        (body.messages as PollMessage[]).push(...page.messages);
        positions[reader.name] = page.position;
        if (page.earliest !== undefined) resets.push({ topic: reader.name, earliest: page.earliest });
      }
      body.positions = positions;
      if (resets.length > 0) body.resets = resets;
    }
    return jsonResponse(200, body, { 'X-Poll-Wait-Max': String(waitMax) });
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
    publishToTopic,
    trimTopic,
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
