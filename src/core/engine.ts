import type { Bus } from '../bus/types.js';
import { GatewayError } from '../errors.js';
import type { MessageStore } from '../store/types.js';
import { systemClock, topicKey, topicOfKey, type Clock, type DeliveryBatch, type InsertResult, type MailboxSummary, type MessageDraft, type MessageStatus, type StoredMessage, type TopicPage } from './model.js';
import { createTickBatcher } from '../batching/tick-batcher.js';
import { MailboxHeads } from './mailbox-heads.js';
import { TopicTails } from './topic-tails.js';
import { Waiter } from './waiter.js';
import { PresenceGaps } from './presence-gaps.js';
import type { PresenceEvent } from '../presence/types.js';
import type { PresenceTracker } from '../presence/tracker.js';

const STORE_METHODS = [
  'insertMessage',
  'insertMessages',
  'ackThrough',
  'acknowledge',
  'readPending',
  'readTopic',
  'mailboxSummary',
  'takeDueReceipts',
  'noteDelivered',
  'messageStatus',
  'ping',
  'close',
] as const satisfies ReadonlyArray<keyof MessageStore>;

/** Receipts made per pump transaction. */
const RECEIPT_BATCH = 200;

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
  /**
   * How long a mailbox head learned from a wake, a publish or a read may spare a poll its store
   * read (default 10 s): what a lost wake can delay a poll by, at most one wait more.
   */
  headTrustMs?: number;
  /** Mailbox heads remembered (default 100,000). */
  maxKnownHeads?: number;
  /**
   * How often the engine looks for receipts that fell due but were not made (a process that
   * crashed between an ack and its receipt); default 5 s. Receipts are otherwise made right after
   * the ack that makes them due.
   */
  receiptSweepMs?: number;
  /** Topics whose recent messages this process keeps to answer their readers without a read (default 1,000). */
  maxTailTopics?: number;
  /** How long presence events heard between two `presence=1` polls of a client wait for its next one (default 15 s). */
  presenceGapMs?: number;
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

/** What a poll needs of an AbortSignal (an AbortSignal is one). */
export interface CancelSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** A topic a poll reads, from `position` (`seq > position`), or from its head when null ("from now"). */
export interface TopicCursor {
  name: string;
  position: number | null;
}

/** What a poll answer brings of one topic it reads. */
export interface TopicDelivery {
  topic: string;
  /** In topic order. Readers at one position may share this array: never mutate it. */
  messages: readonly StoredMessage[];
  /** The reader's next position (also when nothing came: "from now" learns the head this way). */
  position: number;
  /** Set when the position fell outside the retained history: `earliest - 1` is where it continued. */
  earliest?: number;
}

export interface PollRequest {
  cursor: number;
  /** The poller instance (presence counts clients); absent: the user's anonymous client. */
  client?: string;
  /** Topics (of `topics`) whose presence joins and leaves answer this poll as they happen. */
  presence?: readonly string[];
  /** Topics read beside the mailbox; `limit` bounds the mailbox's and theirs together. */
  topics?: readonly TopicCursor[];
  /** 0 = short poll: answer at once. */
  waitMs: number;
  /**
   * False: `cursor` is only where to read from, nothing is acked (a stream, whose client acks what
   * it received with POST /v1/ack, so that a lost stream delivers it again). Default true.
   */
  acknowledge?: boolean;
  limit: number;
  /** Aborted when the client goes away: the waiter is released at once. */
  signal?: CancelSignal;
}

export interface PollResult extends DeliveryBatch {
  /** True when a newer poll from the same user took this one's place. */
  superseded?: boolean;
  /** One entry per topic the poll asked for, in its order; absent when it asked for none. */
  topics?: TopicDelivery[];
  /** Joins and leaves of its `presence` topics heard while the poll was held; absent when none. */
  presence?: PresenceEvent[];
}

export interface Engine {
  publish(draft: MessageDraft): Promise<InsertResult>;
  publishMany(drafts: readonly MessageDraft[]): Promise<InsertResult[]>;
  /** Acks through `cursor`, then answers with pending messages, holding while there are none. */
  holdPoll(userId: string, request: PollRequest): Promise<PollResult>;
  ackThrough(userId: string, cursor: number): Promise<number>;
  /**
   * Acks through `cursor` in the background, folded with the other acks of the moment into one
   * statement (as a poll's cursor is): for a stream's acks, which nobody waits on.
   */
  acknowledge(userId: string, cursor: number): void;
  /** A message's delivery state (for its sender); undefined when there is none. */
  messageStatus(id: number): Promise<MessageStatus | undefined>;
  /** Unacked, unexpired messages waiting for the user and the oldest one's time. */
  mailboxSummary(userId: string): Promise<MailboxSummary>;
  /** Answers every held poll now (empty) and makes later polls short: used on shutdown. */
  drain(): void;
  readonly heldPolls: number;
  heldPollsOf(userId: string): number;
  /** Held polls here that read the topic. */
  readersOf(topic: string): number;
  /** Sends topic presence events to the polls that asked for them, on every process (through the bus). */
  announcePresence(events: readonly PresenceEvent[]): void;
}

/** Whether an answer brings anything: mailbox messages, topic messages, a topic's reset, or presence events. */
export function hasNews(result: PollResult): boolean {
  if (result.messages.length > 0 || result.presence) return true;
  if (result.topics) for (const topic of result.topics) if (topic.messages.length > 0 || topic.earliest !== undefined) return true;
  return false;
}

/** The mailbox's and the topics' messages of one answer. */
function allMessages(result: PollResult): StoredMessage[] {
  return result.messages.concat(...(result.topics ?? []).map((topic) => topic.messages));
}

/**
 * The poll engine: depends only on the MessageStore and Bus interfaces.
 *
 * @example
 * const engine = createEngine({ store, bus }, { maxPollsPerUser: 2 });
 * const { messages, cursor } = await engine.holdPoll('bob', { cursor: 0, waitMs: 25_000, limit: 100 });
 */
export function createEngine(
  dependencies: { store: MessageStore; bus: Bus; clock?: Clock; presence?: PresenceTracker },
  options: EngineOptions = {},
): Engine {
  const { store, bus, presence } = dependencies;
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
  // Every method is required (an embedder's store written in JavaScript is not type-checked): say
  // which are missing now, rather than answer polls with 500s later.
  const missing = STORE_METHODS.filter((method) => typeof (store as unknown as Record<string, unknown>)[method] !== 'function');
  if (missing.length > 0) throw new TypeError(`Expected the store to implement ${missing.map((method) => `\`${method}\``).join(', ')}`);

  /** Oldest first, so the cap supersedes the poll most likely to belong to a dead connection. */
  const waitersByUser = new Map<string, Waiter[]>();
  let heldPolls = 0;
  let draining = false;

  /** Held polls by the topics they read (keyed by topic key): one wake of a topic reaches all its readers here. */
  const waitersByTopic = new Map<string, Set<Waiter>>();
  const tails = new TopicTails(options.maxTailTopics ?? 1_000);
  /**
   * Topic reads in flight, by key, position and limit: readers at one position share one. Each
   * remembers `topicWakes` when it began: a reader may join it only if no topic wake came since,
   * or it could share a snapshot older than a commit whose wake it was registered too late to hear.
   */
  const topicReads = new Map<string, { read: Promise<TopicPage>; wakes: number }>();
  let topicWakes = 0;

  const heads = new MailboxHeads(clock, options.headTrustMs ?? 10_000, options.maxKnownHeads ?? 100_000);
  // Every process hears every wake: a wake that names the head it committed tells this process
  // what is new in that mailbox (one that does not makes what it knew stale), then wakes the polls
  // of that user held here. One observer for all users: a held poll costs no subscription.
  // A topic's wake (its key, `#<name>`) wakes the polls reading it, from the topic index.
  const stopHearingWakes = bus.onWake((key, head) => {
    const topic = topicOfKey(key) !== undefined;
    if (topic) topicWakes += 1;
    if (head === undefined) heads.forget(key);
    else {
      heads.raise(key, head);
      if (topic) tails.heard(key, head);
    }
    const waiters = topic ? waitersByTopic.get(key) : waitersByUser.get(key);
    if (waiters) for (const waiter of waiters) waiter.wake();
  });
  // Wakes published while the bus was disconnected are gone: forget the heads they would have
  // raised, and every held poll looks again.
  const stopHearingResyncs = bus.onResync(() => {
    heads.clear();
    tails.clear();
    for (const waiters of waitersByUser.values()) for (const waiter of waiters) waiter.wake();
  });

  /** Presence events go to the held polls here that read their topic and asked for its presence. */
  const presenceGaps = new PresenceGaps(clock, options.presenceGapMs ?? 15_000);
  function hearPresence(events: readonly PresenceEvent[]): void {
    for (const event of events) {
      presenceGaps.hear(event);
      const readers = waitersByTopic.get(topicKey(event.topic));
      if (readers) for (const waiter of readers) if (waiter.presenceTopics?.has(event.topic)) waiter.offerPresence(event);
    }
  }
  const stopHearingPresence = bus.onPresence?.(hearPresence);

  function register(userId: string, topicKeys: readonly string[], presenceTopics: ReadonlySet<string> | undefined): Waiter {
    const waiter = new Waiter(userId, presenceTopics);
    for (const key of topicKeys) {
      let readers = waitersByTopic.get(key);
      if (!readers) waitersByTopic.set(key, (readers = new Set()));
      readers.add(waiter);
    }
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

  function release(waiter: Waiter, topicKeys: readonly string[]): void {
    heldPolls -= 1;
    for (const key of topicKeys) {
      const readers = waitersByTopic.get(key);
      if (readers?.delete(waiter) && readers.size === 0) waitersByTopic.delete(key);
    }
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
  const wakeCoalesced = createTickBatcher<{ userIds: readonly string[]; heads: ReadonlyMap<string, number> }, void>(async (wakes) => {
    const merged = new Map<string, number>();
    for (const wake of wakes) for (const [userId, head] of wake.heads) merged.set(userId, Math.max(head, merged.get(userId) ?? head));
    // A user woken without a head (an idempotent repeat) is sent without one: receivers then
    // forget what they knew instead of trusting a head that may be stale.
    const headless = new Set(wakes.flatMap((wake) => wake.userIds.filter((userId) => !wake.heads.has(userId))));
    for (const userId of headless) merged.delete(userId);
    await bus.wake([...new Set(wakes.flatMap((wake) => wake.userIds))], merged);
    return wakes.map(() => ({ status: 'fulfilled', value: undefined }));
  });

  /**
   * After a commit: polls of the recipients held here get the stored rows at once (no store read),
   * this process learns the new heads, and every process is woken, told the heads.
   */
  async function announce(userIds: readonly string[], results: readonly InsertResult[]): Promise<void> {
    const committed = new Map<string, StoredMessage[]>();
    const newHeads = new Map<string, number>();
    for (const result of results) {
      if (result.duplicate) continue;
      const { message } = result;
      const list = committed.get(message.userId);
      if (list) list.push(message);
      else committed.set(message.userId, [message]);
      newHeads.set(message.userId, Math.max(message.seq, newHeads.get(message.userId) ?? message.seq));
    }
    for (const [key, head] of newHeads) heads.raise(key, head);
    for (const [key, messages] of committed) {
      if (topicOfKey(key) === undefined) {
        for (const waiter of waitersByUser.get(key) ?? []) waiter.offer(messages);
        continue;
      }
      // Kept for the topic's readers (they take their page from it), who are woken here at once.
      topicWakes += 1;
      tails.append(key, messages);
      for (const waiter of waitersByTopic.get(key) ?? []) waiter.wake();
    }
    try {
      await wakeCoalesced({ userIds: [...new Set(userIds)], heads: newHeads });
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
    await announce([draft.userId], [result]);
    return result;
  }

  async function publishMany(drafts: readonly MessageDraft[]): Promise<InsertResult[]> {
    // All or nothing (one transaction), in the given order: one sender's messages get ids in the
    // order they were given.
    const results = await store.insertMessages(drafts);
    const duplicates = results.filter((result) => result.duplicate).length;
    observer.published?.(results.length - duplicates, duplicates);
    await announce(
      drafts.map((draft) => draft.userId),
      results,
    );
    return results;
  }

  function holdPoll(userId: string, request: PollRequest): Promise<PollResult> {
    const answered = answerPoll(userId, request);
    const { pollEnded } = observer;
    if (!pollEnded) return answered;
    // Chained rather than awaited: one suspended frame fewer for each of tens of thousands of polls.
    return answered.then(
      (result) => {
        pollEnded(outcomeOf(result, request.signal), result.topics ? allMessages(result) : result.messages);
        return result;
      },
      (error: unknown) => {
        pollEnded('error', []);
        throw error;
      },
    );
  }

  function outcomeOf(result: PollResult, signal: CancelSignal | undefined): PollOutcome {
    if (hasNews(result)) return 'messages';
    if (result.superseded) return 'superseded';
    if (signal?.aborted) return 'aborted';
    return draining ? 'drained' : 'timeout';
  }

  /**
   * The next answer for a poll: what this process just committed for it when that continues the
   * cursor; nothing when the mailbox is known to hold nothing after the cursor; otherwise a store
   * read (batched with the other reads of the tick). Reads are pure and a cursor acks only what it
   * covers, so two polls of one user, here or on another process, may run side by side.
   */
  function nextBatch(userId: string, waiter: Waiter | undefined, cursor: number, limit: number): DeliveryBatch | Promise<DeliveryBatch> {
    const offered = waiter?.takeOffered(cursor, limit, clock.now());
    if (offered) return { messages: offered, cursor: offered[offered.length - 1]!.seq };
    if (bus.healthy && heads.nothingAfter(userId, cursor)) return { messages: [], cursor };
    const forgets = heads.forgets;
    return store.readPending(userId, cursor, limit).then((batch) => {
      if (heads.forgets !== forgets) return batch;
      // A partial answer ends at the head; a full one may stop short of it. An empty mailbox read
      // from 0 holds nothing after 0 either (no cursor is below it): polls that read topics and
      // never get a mailbox message are woken by every topic message, and must not read their
      // mailboxes each time.
      if (batch.messages.length < limit && (batch.messages.length > 0 || cursor === 0)) heads.raise(userId, batch.cursor);
      return batch;
    });
  }

  /** Records, in the background, how far the answer carried the mailbox (for "delivered"). */
  function noteDeliveredInBackground(userId: string, batch: DeliveryBatch): DeliveryBatch {
    if (batch.messages.length > 0) {
      store.noteDelivered(userId, batch.cursor).catch((error: unknown) => onError(error, 'store.noteDelivered'));
    }
    return batch;
  }

  function acknowledgeInBackground(userId: string, cursor: number): void {
    // Not awaited: the answer does not depend on it (reads ask for `seq > cursor`), and an ack
    // that fails is covered by the client's next, higher cursor.
    if (cursor > 0) {
      store.acknowledge(userId, cursor).then(pumpReceipts, (error: unknown) => onError(error, 'store.acknowledge'));
    }
  }

  /**
   * Makes the receipts the last acks made due and announces them like publishes (held polls of
   * the senders get them at once, every process is woken). One pump at a time; a request while it
   * runs makes it go round once more.
   */
  let pumping: Promise<void> | undefined;
  let pumpAgain = false;
  function pumpReceipts(): void {
    if (pumping) {
      pumpAgain = true;
      return;
    }
    pumping = (async () => {
      do {
        pumpAgain = false;
        for (;;) {
          const receipts = await store.takeDueReceipts(RECEIPT_BATCH);
          if (receipts.length > 0) await announce(receipts.map((receipt) => receipt.userId), receipts.map((message): InsertResult => ({ id: message.id, duplicate: false, message })));
          if (receipts.length < RECEIPT_BATCH) break;
        }
      } while (pumpAgain);
    })()
      .catch((error: unknown) => onError(error, 'receipts'))
      .finally(() => {
        pumping = undefined;
      });
  }
  const receiptSweep = setInterval(pumpReceipts, options.receiptSweepMs ?? 5_000);
  receiptSweep.unref();

  /** A topic a held poll reads: its key, and its position once known ("from now" learns it on the first look). */
  interface TopicReader {
    name: string;
    key: string;
    position: number | null;
  }

  /**
   * Reads of one topic at one position share one store read, and so one page object, as long as
   * no topic wake came since it began (see `topicReads`).
   */
  function sharedTopicRead(key: string, after: number | null, limit: number): Promise<TopicPage> {
    const id = `${after ?? 'now'}:${limit}:${key}`;
    const inFlight = topicReads.get(id);
    if (inFlight && inFlight.wakes === topicWakes) return inFlight.read;
    const forgets = heads.forgets;
    const read = store.readTopic({ key, after, limit }).then((page) => {
      if (heads.forgets !== forgets) return page;
      // A page that stops short of `limit` ends at the head ("from now": is the head).
      if (page.earliest === undefined && (after === null || (page.messages.length > 0 && page.messages.length < limit))) heads.raise(key, page.position);
      return page;
    });
    const entry = { read, wakes: topicWakes };
    topicReads.set(id, entry);
    const forget = () => {
      if (topicReads.get(id) === entry) topicReads.delete(id);
    };
    read.then(forget, forget);
    return read;
  }

  /**
   * A topic's next page for a reader: from the messages this process just committed to it when
   * they continue its position; nothing when the topic is known to hold nothing after it;
   * otherwise a store read shared with every reader at the same position.
   */
  function nextTopicPage(reader: TopicReader, limit: number): TopicPage | Promise<TopicPage> {
    const { key, position } = reader;
    if (position === null) {
      const head = bus.healthy ? heads.trusted(key) : undefined;
      return head === undefined ? sharedTopicRead(key, null, 0) : { messages: [], position: head };
    }
    const committed = tails.take(key, position, limit, clock.now());
    if (committed) return committed;
    if (bus.healthy && heads.nothingAfter(key, position)) return { messages: [], position };
    return sharedTopicRead(key, position, limit);
  }

  /** The mailbox's next batch, and with it each topic's next page, within one `limit`. */
  function nextAnswer(userId: string, waiter: Waiter | undefined, cursor: number, limit: number, readers: readonly TopicReader[] | undefined): PollResult | Promise<PollResult> {
    const mailbox = nextBatch(userId, waiter, cursor, limit);
    return readers ? withTopics(mailbox, readers, limit) : mailbox;
  }

  async function withTopics(pendingMailbox: DeliveryBatch | Promise<DeliveryBatch>, readers: readonly TopicReader[], limit: number): Promise<PollResult> {
    const pages = readers.map((reader) => nextTopicPage(reader, limit));
    const mailbox = await pendingMailbox;
    let room = limit - mailbox.messages.length;
    const topics: TopicDelivery[] = [];
    for (let index = 0; index < readers.length; index++) {
      const reader = readers[index]!;
      const page = await pages[index]!;
      // "From now" is fixed at the first look: later looks continue from it, missing nothing.
      reader.position ??= page.position;
      let { messages, position } = page;
      if (messages.length > room) {
        messages = messages.slice(0, Math.max(room, 0));
        position = messages.length > 0 ? messages[messages.length - 1]!.seq : page.earliest !== undefined ? page.earliest - 1 : reader.position;
      }
      room -= messages.length;
      topics.push(page.earliest === undefined ? { topic: reader.name, messages, position } : { topic: reader.name, messages, position, earliest: page.earliest });
    }
    return { ...mailbox, topics };
  }

  /** An answer without news: the cursor and every topic's position as they stand. */
  function standing(cursor: number, readers: readonly TopicReader[] | undefined, superseded: boolean): PollResult {
    const result: PollResult = { messages: [], cursor };
    if (superseded) result.superseded = true;
    if (readers) result.topics = readers.map((reader) => ({ topic: reader.name, messages: [], position: reader.position ?? 0 }));
    return result;
  }

  function answerPoll(userId: string, request: PollRequest): Promise<PollResult> {
    if (!presence) return answerPresentPoll(userId, request);
    // Present from the poll's start until the grace after its end, whatever the answer. Chained,
    // not awaited: no second suspended frame per held poll.
    const exit = presence.enter(userId, request.client ?? '', request.topics ? request.topics.map((topic) => topic.name) : []);
    const answered = answerPresentPoll(userId, request);
    answered.then(exit, exit);
    return answered;
  }

  async function answerPresentPoll(userId: string, request: PollRequest): Promise<PollResult> {
    const { cursor, limit, signal } = request;
    const readers = request.topics && request.topics.length > 0 ? request.topics.map((topic) => ({ name: topic.name, key: topicKey(topic.name), position: topic.position })) : undefined;
    if (request.acknowledge !== false) acknowledgeInBackground(userId, cursor);
    const presenceTopics = request.presence && request.presence.length > 0 ? new Set(request.presence) : undefined;
    // Only a named client can be told what it missed between its polls.
    const gapClient = presenceTopics && request.client !== undefined ? request.client : undefined;
    if (request.waitMs <= 0 || draining) {
      let answer: PollResult = await nextAnswer(userId, undefined, cursor, limit, readers);
      if (gapClient !== undefined) {
        const missed = presenceGaps.take(userId, gapClient, presenceTopics!);
        if (missed) answer = { ...answer, presence: missed };
        if (!draining) presenceGaps.park(userId, gapClient, presenceTopics!);
      }
      return noteDeliveredInBackground(userId, answer);
    }
    if (heldPolls >= maxHeldPolls) {
      throw new GatewayError('too_many_polls', 'This gateway holds as many polls as it may; retry shortly.', { retryAfterSeconds: 1 });
    }

    const deadline = clock.now() + request.waitMs;
    const topicKeys = readers ? readers.map((reader) => reader.key) : [];
    const waiter = register(userId, topicKeys, presenceTopics);
    if (gapClient !== undefined) for (const event of presenceGaps.take(userId, gapClient, presenceTopics!) ?? []) waiter.offerPresence(event);
    const onAbort = () => waiter.end('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) waiter.end('aborted');
    try {
      // Registered (above) BEFORE the first look: a message stored after the look but before the
      // sleep wakes this waiter through the wake observer, and `woken` stays set until the loop
      // looks again. The bus's wake channels were subscribed when it was created.
      for (;;) {
        waiter.woken = false;
        let batch = await nextAnswer(userId, waiter, cursor, limit, readers);
        const events = waiter.takePresence();
        if (events) batch = { ...batch, presence: events };
        if (hasNews(batch)) return noteDeliveredInBackground(userId, batch);
        if (waiter.ended) return standing(cursor, readers, waiter.ended === 'superseded');
        const remaining = deadline - clock.now();
        if (remaining <= 0) return batch;
        await waiter.sleep(bus.healthy ? remaining : Math.min(remaining, busDownRecheckMs));
        // Ended while asleep (drain, superseded, client gone): answer without another store read.
        // A drain of thousands of held polls would otherwise queue that many reads, and on a busy
        // machine run past SHUTDOWN_GRACE_MS, cutting the connections still waiting.
        if (waiter.ended) return standing(cursor, readers, waiter.ended === 'superseded');
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      release(waiter, topicKeys);
      if (gapClient !== undefined && !draining) presenceGaps.park(userId, gapClient, presenceTopics!);
    }
  }

  return {
    publish,
    publishMany,
    holdPoll,
    async ackThrough(userId, cursor) {
      const acked = await store.ackThrough(userId, cursor);
      if (acked > 0) pumpReceipts();
      return acked;
    },
    acknowledge: acknowledgeInBackground,
    messageStatus: (id) => store.messageStatus(id),
    mailboxSummary: (userId) => store.mailboxSummary(userId),
    drain() {
      if (draining) return;
      draining = true;
      clearInterval(receiptSweep);
      // The bus may be the host's and outlive this gateway: stop listening to it.
      stopHearingWakes();
      stopHearingResyncs();
      stopHearingPresence?.();
      for (const waiters of waitersByUser.values()) for (const waiter of [...waiters]) waiter.end('draining');
    },
    get heldPolls() {
      return heldPolls;
    },
    heldPollsOf(userId) {
      return waitersByUser.get(userId)?.length ?? 0;
    },
    readersOf(topic) {
      return waitersByTopic.get(topicKey(topic))?.size ?? 0;
    },
    announcePresence(events) {
      if (events.length === 0) return;
      // A bus written before presence reaches this process's polls only.
      if (!bus.announcePresence) hearPresence(events);
      else bus.announcePresence(events).catch((error: unknown) => onError(error, 'bus.announcePresence'));
    },
  };
}
