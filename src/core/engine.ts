import type { Bus, Unsubscribe } from '../bus/types.js';
import { GatewayError } from '../errors.js';
import { systemClock, type Clock, type DeliveryBatch, type InsertResult, type MessageDraft, type MessageStore, type StoredMessage } from '../store/types.js';
import { createTickBatcher } from '../batching/tick-batcher.js';
import { Waiter } from './waiter.js';

export interface EngineOptions {
  /** Held polls per user; beyond it the oldest is answered empty with `superseded: true`. */
  maxPollsPerUser?: number;
  /** Held polls per process; beyond it new long polls get 503 `too_many_polls`. */
  maxHeldPolls?: number;
  /** While the bus is unhealthy, held polls re-read the store this often (a missed wake costs at most this). */
  busDownRecheckMs?: number;
  /** Reports background failures (a wake that could not be published); never thrown to callers. */
  onError?: (error: unknown, context: string) => void;
  /** Told about publishes and finished polls (metrics); must not throw. */
  observer?: EngineObserver;
}

/**
 * How a poll ended: `messages` (answered with messages), `timeout` (empty: the wait ran out, or a
 * short poll found nothing), `superseded`, `aborted` (the client went away), `drained` (answered
 * empty on shutdown), `error` (store failure or a refused poll).
 */
export type PollOutcome = 'messages' | 'timeout' | 'superseded' | 'aborted' | 'drained' | 'error';

/** What the engine reports, so core never depends on a metrics library. */
export interface EngineObserver {
  /** After the store answered a publish: `stored` new rows, `duplicates` idempotent repeats. */
  published?(stored: number, duplicates: number): void;
  /** Once per poll, with the messages it answered with (empty unless outcome is `messages`). */
  pollEnded?(outcome: PollOutcome, messages: readonly StoredMessage[]): void;
}

export interface PollRequest {
  cursor: number;
  /** 0 = short poll: answer at once. */
  waitMs: number;
  limit: number;
  /** Aborted when the client goes away: the waiter is released at once. */
  signal?: AbortSignal;
}

export interface PollResult extends DeliveryBatch {
  /** True when a newer poll from the same user took this one's place. */
  superseded?: boolean;
}

export interface Engine {
  publish(draft: MessageDraft): Promise<InsertResult>;
  publishMany(drafts: readonly MessageDraft[]): Promise<InsertResult[]>;
  /** Acks through `cursor`, then answers with pending messages, holding while there are none. */
  holdPoll(userId: string, request: PollRequest): Promise<PollResult>;
  ackThrough(userId: string, cursor: number): Promise<number>;
  /** Answers every held poll now (empty) and makes later polls short: used on shutdown. */
  drain(): void;
  readonly heldPolls: number;
  heldPollsOf(userId: string): number;
}

/**
 * The poll engine: depends only on the MessageStore and Bus interfaces.
 *
 * @example
 * const engine = createEngine({ store, bus }, { maxPollsPerUser: 2 });
 * const { messages, cursor } = await engine.holdPoll('bob', { cursor: 0, waitMs: 25_000, limit: 100 });
 */
export function createEngine(
  dependencies: { store: MessageStore; bus: Bus; clock?: Clock },
  options: EngineOptions = {},
): Engine {
  const { store, bus } = dependencies;
  const clock = dependencies.clock ?? systemClock;
  const maxPollsPerUser = options.maxPollsPerUser ?? 2;
  const maxHeldPolls = options.maxHeldPolls ?? 50_000;
  const busDownRecheckMs = options.busDownRecheckMs ?? 1_000;
  const onError = options.onError ?? (() => {});
  const observer = options.observer ?? {};
  if (!Number.isInteger(maxPollsPerUser) || maxPollsPerUser < 1) {
    throw new TypeError('Expected `maxPollsPerUser` to be a positive integer');
  }
  if (!Number.isInteger(maxHeldPolls) || maxHeldPolls < 1) {
    throw new TypeError('Expected `maxHeldPolls` to be a positive integer');
  }

  /** Oldest first, so the cap supersedes the poll most likely to belong to a dead connection. */
  const waitersByUser = new Map<string, Waiter[]>();
  let heldPolls = 0;
  let draining = false;

  // Wakes published while the bus was disconnected are gone: every held poll looks again.
  bus.onResync(() => {
    for (const waiters of waitersByUser.values()) for (const waiter of waiters) waiter.wake();
  });

  const acknowledge = store.acknowledge ? store.acknowledge.bind(store) : (userId: string, cursor: number) => store.ackThrough(userId, cursor).then(() => {});

  function register(userId: string): Waiter {
    const waiter = new Waiter(userId);
    let waiters = waitersByUser.get(userId);
    if (!waiters) {
      waiters = [];
      waitersByUser.set(userId, waiters);
    }
    waiters.push(waiter);
    heldPolls += 1;
    while (waiters.length > maxPollsPerUser) waiters.shift()!.end('superseded');
    return waiter;
  }

  function release(waiter: Waiter): void {
    heldPolls -= 1;
    const waiters = waitersByUser.get(waiter.userId);
    if (!waiters) return;
    const index = waiters.indexOf(waiter);
    if (index !== -1) waiters.splice(index, 1);
    if (waiters.length === 0) waitersByUser.delete(waiter.userId);
  }

  /**
   * The wakes of every publish answered in one tick go out as one `bus.wake` (one PUBLISH per wake
   * shard), not one each: a group commit answers many publishes at once.
   */
  const wakeCoalesced = createTickBatcher<readonly string[], void>(async (userIdLists) => {
    await bus.wake([...new Set(userIdLists.flat())]);
    return userIdLists.map(() => ({ status: 'fulfilled', value: undefined }));
  });

  async function wakeRecipients(userIds: readonly string[]): Promise<void> {
    try {
      await wakeCoalesced(userIds);
    } catch (error) {
      // The rows are stored: a held poll elsewhere still finds them on its next read.
      onError(error, 'bus.wake');
    }
  }

  async function publish(draft: MessageDraft): Promise<InsertResult> {
    const result = await store.insertMessage(draft);
    observer.published?.(result.duplicate ? 0 : 1, result.duplicate ? 1 : 0);
    // Woken on duplicates too: if the first attempt stored the row and died before waking, the
    // client's retry is what delivers the wake.
    await wakeRecipients([draft.userId]);
    return result;
  }

  async function publishMany(drafts: readonly MessageDraft[]): Promise<InsertResult[]> {
    // All or nothing where the store offers it (one transaction); otherwise one at a time. Either
    // way in the given order, so one sender's messages get ids in the order they were given.
    let results: InsertResult[] = [];
    if (store.insertMessages) results = await store.insertMessages(drafts);
    else for (const draft of drafts) results.push(await store.insertMessage(draft));
    const duplicates = results.filter((result) => result.duplicate).length;
    observer.published?.(results.length - duplicates, duplicates);
    await wakeRecipients(drafts.map((draft) => draft.userId));
    return results;
  }

  async function holdPoll(userId: string, request: PollRequest): Promise<PollResult> {
    if (!observer.pollEnded) return answerPoll(userId, request);
    let result: PollResult;
    try {
      result = await answerPoll(userId, request);
    } catch (error) {
      observer.pollEnded('error', []);
      throw error;
    }
    observer.pollEnded(outcomeOf(result, request.signal), result.messages);
    return result;
  }

  function outcomeOf(result: PollResult, signal: AbortSignal | undefined): PollOutcome {
    if (result.messages.length > 0) return 'messages';
    if (result.superseded) return 'superseded';
    if (signal?.aborted) return 'aborted';
    return draining ? 'drained' : 'timeout';
  }

  /**
   * Reads are pure and a cursor acks only what it covers, so nothing here needs serialising: two
   * polls of one user, on this process or any other, may run side by side.
   */
  async function answerPoll(userId: string, request: PollRequest): Promise<PollResult> {
    const { cursor, limit, signal } = request;
    // The ack and the first read go out together: the read asks for `seq > cursor` itself, so it
    // does not have to wait for the ack. A failed ack still fails the poll (503), as a client
    // whose acks never land would be sent the same messages forever.
    const acked = cursor > 0 ? acknowledge(userId, cursor) : undefined;
    acked?.catch(() => {});
    if (request.waitMs <= 0 || draining) {
      const batch = await store.readPending(userId, cursor, limit);
      await acked;
      return batch;
    }
    if (heldPolls >= maxHeldPolls) {
      await acked;
      throw new GatewayError('too_many_polls', 'This gateway holds as many polls as it may; retry shortly.', {
        status: 503,
        retryAfterSeconds: 1,
      });
    }

    const deadline = clock.now() + request.waitMs;
    const waiter = register(userId);
    const onAbort = () => waiter.end('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) waiter.end('aborted');
    let unsubscribe: Unsubscribe | undefined;
    try {
      // Subscribe BEFORE the first read: a message stored after the read but before the sleep
      // wakes this waiter, and `woken` stays set until the loop looks again.
      unsubscribe = await bus.subscribe(userId, waiter.wake);
      for (;;) {
        waiter.woken = false;
        const batch = await store.readPending(userId, cursor, limit);
        await acked;
        if (batch.messages.length > 0) return batch;
        if (waiter.ended) return { messages: [], cursor, ...(waiter.ended === 'superseded' ? { superseded: true } : {}) };
        const remaining = deadline - clock.now();
        if (remaining <= 0) return batch;
        await waiter.sleep(bus.healthy ? remaining : Math.min(remaining, busDownRecheckMs));
        // Ended while asleep (drain, superseded, client gone): answer without another store read.
        // A drain of thousands of held polls would otherwise queue that many reads, and on a busy
        // machine run past SHUTDOWN_GRACE_MS, cutting the connections still waiting.
        if (waiter.ended) return { messages: [], cursor, ...(waiter.ended === 'superseded' ? { superseded: true } : {}) };
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      unsubscribe?.();
      release(waiter);
    }
  }

  return {
    publish,
    publishMany,
    holdPoll,
    ackThrough: (userId, cursor) => store.ackThrough(userId, cursor),
    drain() {
      draining = true;
      for (const waiters of waitersByUser.values()) for (const waiter of [...waiters]) waiter.end('draining');
    },
    get heldPolls() {
      return heldPolls;
    },
    heldPollsOf(userId) {
      return waitersByUser.get(userId)?.length ?? 0;
    },
  };
}
