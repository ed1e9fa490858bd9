/**
 * The topic delivery guarantee, as a check over what publishers and readers saw:
 *
 *   every 2xx-answered topic publish reaches every reader whose position was before it, once per
 *   reader after de-dup by message id and in topic order, unless that reader was told of a reset.
 *
 * A reader's history is every answer it got for one topic, in the order it got them: the answers
 * it kept (its position moved to theirs) and the ones it threw away (lost responses, the second of
 * two polls sent with the same position) alike. Every answer must be a page after the position it
 * was asked for; only kept answers count as received. A reset excuses the messages between the
 * position that was sent and the `earliest` the reader was told of, and nothing else.
 */
import type { TopicPage, TopicRead as TopicReadRequest } from '../../src/core/model.js';
import type { MessageStore } from '../../src/store/types.js';

/** A topic publish the server answered 2xx, with what it answered. */
export interface TopicAck {
  /** The publisher's idempotency key (`id` of the request). */
  clientId: string;
  topic: string;
  sender: string;
  /** The publisher's own counter: one sender's publishes to one topic go out in `n` order, each after the last was answered. */
  n: number;
  /** Message id and topic sequence from the answer. */
  id: number;
  seq: number;
}

/** A topic message as an answer carried it. */
export interface TopicDelivered {
  id: number;
  seq: number;
  /** The idempotency key of the publish it came from, as its body names it; undefined when the body names none. */
  clientId: string | undefined;
  /** The sender the answer names. */
  from: string;
}

/** One answer's part for one topic. */
export interface TopicRead {
  /** The reader moved on to this answer's position (false: the answer was thrown away). */
  kept: boolean;
  /** The position sent; null = "from now". */
  sent: number | null;
  messages: TopicDelivered[];
  /** The position the answer gave for the topic. */
  position: number;
  /** From the answer's `resets`: the history now starts here, and the answer continued from `earliest - 1`. */
  earliest?: number | undefined;
}

export interface TopicReaderHistory {
  reader: string;
  topic: string;
  reads: TopicRead[];
}

export interface TopicVerdict {
  violations: string[];
  /** Distinct messages kept, over all readers. */
  received: number;
  /** Messages kept a second time (same id), over all readers. */
  duplicates: number;
  /** Resets in kept answers. */
  resets: number;
  /** Acknowledged messages readers were excused from by a reset they were told of. */
  excused: number;
  /** Acknowledged messages owed to readers (each reader's count, summed). */
  owed: number;
}

export interface TopicCheckInput {
  acks: readonly TopicAck[];
  /** Every idempotency key a publisher sent (acknowledged or not), with where and as whom: what may legitimately arrive. */
  attempted: ReadonlyMap<string, { topic: string; sender: string }>;
  readers: readonly TopicReaderHistory[];
  /** Whether the topics were trimmed during the run: without a trim, any reset is a violation. */
  trimmed: boolean;
}

/** Checks the guarantee; an empty `violations` means it held for every reader. */
export function checkTopicGuarantee(input: TopicCheckInput): TopicVerdict {
  const violations: string[] = [];
  const verdict: TopicVerdict = { violations, received: 0, duplicates: 0, resets: 0, excused: 0, owed: 0 };
  /** The messages each publish was answered with, in the order of the answers: one, unless it was stored twice. */
  const storedAs = new Map<string, TopicAck[]>();
  for (const ack of input.acks) {
    const known = storedAs.get(ack.clientId) ?? [];
    if (known.some((k) => k.id === ack.id && k.seq === ack.seq)) continue;
    const previous = known[known.length - 1];
    if (previous) {
      // Also after its message was trimmed: trimmed messages keep their idempotency keys.
      violations.push(`publish ${ack.clientId} was answered as id ${previous.id} seq ${previous.seq} and as id ${ack.id} seq ${ack.seq}`);
      continue;
    }
    storedAs.set(ack.clientId, [...known, ack]);
  }
  const owedOf = new Map<string, TopicAck[]>();
  for (const stored of storedAs.values()) {
    for (const ack of stored) {
      const list = owedOf.get(ack.topic);
      if (list) list.push(ack);
      else owedOf.set(ack.topic, [ack]);
    }
  }
  for (const list of owedOf.values()) list.sort((a, b) => a.seq - b.seq);
  checkPublishOrder(owedOf, storedAs, violations);

  for (const history of input.readers) checkReader(history, input, storedAs, owedOf.get(history.topic) ?? [], verdict);
  return verdict;
}

/**
 * No `seq` of a topic is answered for two messages, and one sender's publishes to a topic (each
 * sent after the last was answered) got rising `seq`s in `n` order, as first stored.
 */
function checkPublishOrder(owedOf: ReadonlyMap<string, TopicAck[]>, storedAs: ReadonlyMap<string, TopicAck[]>, violations: string[]): void {
  for (const [topic, acks] of owedOf) {
    const seqs = new Map<number, string>();
    const bySender = new Map<string, TopicAck[]>();
    for (const ack of acks) {
      const other = seqs.get(ack.seq);
      if (other !== undefined) violations.push(`${topic} seq ${ack.seq} was answered to ${other} and to ${ack.clientId}`);
      seqs.set(ack.seq, ack.clientId);
      if (storedAs.get(ack.clientId)![0] !== ack) continue;
      const list = bySender.get(ack.sender);
      if (list) list.push(ack);
      else bySender.set(ack.sender, [ack]);
    }
    for (const [sender, list] of bySender) {
      const inOrder = [...list].sort((a, b) => a.n - b.n);
      for (let i = 1; i < inOrder.length; i++) {
        if (inOrder[i]!.seq <= inOrder[i - 1]!.seq) {
          violations.push(`${sender} on ${topic}: n=${inOrder[i]!.n} got seq ${inOrder[i]!.seq}, after n=${inOrder[i - 1]!.n} got seq ${inOrder[i - 1]!.seq}`);
          break;
        }
      }
    }
  }
}

function checkReader(history: TopicReaderHistory, input: TopicCheckInput, storedAs: ReadonlyMap<string, TopicAck[]>, acks: readonly TopicAck[], verdict: TopicVerdict): void {
  const { violations } = verdict;
  const who = `${history.reader} on ${history.topic}`;
  /** Where the reader's obligation starts: the position it first sent in an answer it kept. */
  let from: number | undefined;
  let position: number | undefined;
  const excusedRanges: Array<[low: number, high: number]> = [];
  const seen = new Set<number>();
  let lastSeq = -Infinity;

  history.reads.forEach((read, index) => {
    const at = `${who}, answer ${index + 1}${read.kept ? '' : ' (thrown away)'}`;
    if (read.kept && position !== undefined && read.sent !== position) {
      violations.push(`${at}: sent position ${read.sent} while holding ${position} (the test reader's own mistake)`);
    }
    // Where the answer continued from.
    let start: number;
    if (read.sent === null) {
      if (read.messages.length > 0) violations.push(`${at}: a "from now" read answered ${read.messages.length} message(s) before it knew where now was`);
      if (read.earliest !== undefined) violations.push(`${at}: a "from now" read answered a reset`);
      start = read.position;
    } else if (read.earliest !== undefined) {
      if (!input.trimmed) violations.push(`${at}: reset to earliest ${read.earliest} from position ${read.sent}, but nothing was trimmed`);
      if (read.earliest - 1 < read.sent) violations.push(`${at}: reset from position ${read.sent} back to earliest ${read.earliest} (below a position the reader was given)`);
      start = read.earliest - 1;
      if (read.kept) {
        verdict.resets += 1;
        if (start > read.sent) excusedRanges.push([read.sent + 1, start]);
      }
    } else {
      start = read.sent;
    }

    // The answer is a page after `start`: rising seqs above it, and the position of its last message.
    let previous = start;
    for (const message of read.messages) {
      if (message.seq <= previous) {
        violations.push(`${at}: seq ${message.seq} (id ${message.id}) after ${previous === start ? `position ${start}` : `seq ${previous}`}`);
      }
      previous = Math.max(previous, message.seq);
      const stored = message.clientId === undefined ? undefined : storedAs.get(message.clientId);
      const attempt = message.clientId === undefined ? undefined : input.attempted.get(message.clientId);
      if (attempt === undefined) violations.push(`${at}: id ${message.id} seq ${message.seq} from ${message.from} is no message anyone published`);
      else if (attempt.topic !== history.topic) violations.push(`${at}: ${message.clientId} was published to ${attempt.topic}`);
      else if (attempt.sender !== message.from) violations.push(`${at}: ${message.clientId} of ${attempt.sender} arrived as from ${message.from}`);
      if (stored && !stored.some((ack) => ack.id === message.id && ack.seq === message.seq)) {
        const answered = stored.map((ack) => `id ${ack.id} seq ${ack.seq}`).join(' and ');
        violations.push(`${at}: ${message.clientId} arrived as id ${message.id} seq ${message.seq}, answered to its publisher as ${answered}`);
      }
    }
    const expected = read.messages.length > 0 ? read.messages[read.messages.length - 1]!.seq : start;
    if (read.position !== expected) violations.push(`${at}: position ${read.position}, expected ${expected}`);

    if (!read.kept) return;
    // A reader owes everything after the position it first sent (a "from now" reader: after where now was).
    from ??= read.sent ?? start;
    position = read.position;
    for (const message of read.messages) {
      if (seen.has(message.id)) {
        verdict.duplicates += 1;
        continue;
      }
      seen.add(message.id);
      verdict.received += 1;
      if (message.seq <= lastSeq) violations.push(`${who}: seq ${message.seq} (id ${message.id}) first arrived after seq ${lastSeq}`);
      lastSeq = Math.max(lastSeq, message.seq);
    }
  });

  if (from === undefined) {
    if (acks.length > 0) violations.push(`${who}: never kept an answer`);
    return;
  }
  const lost: TopicAck[] = [];
  for (const ack of acks) {
    if (ack.seq <= from) continue;
    if (excusedRanges.some(([low, high]) => ack.seq >= low && ack.seq <= high)) {
      verdict.excused += 1;
      continue;
    }
    verdict.owed += 1;
    if (!seen.has(ack.id)) lost.push(ack);
  }
  if (lost.length > 0) {
    const shown = lost
      .slice(0, 5)
      .map((ack) => `${ack.clientId} (seq ${ack.seq})`)
      .join(', ');
    violations.push(`${who}: never received ${lost.length} acknowledged message(s) after position ${from}, unexcused by any reset: ${shown}${lost.length > 5 ? ', …' : ''} (stopped at position ${position})`);
  }
}

/**
 * Deliberately wrong topic reads the checks must catch: `seq >= position` reads one position too
 * early (the message at the position comes again), `no reset` leaves resets out (a reader below
 * the trimmed history skips silently).
 */
export type BrokenTopicReads = 'seq >= position' | 'no reset';
export const BROKEN_TOPIC_READS: readonly BrokenTopicReads[] = ['seq >= position', 'no reset'];

/** The store with its topic reads broken as named; everything else is the store's own. */
export function withBrokenTopicReads<Store extends MessageStore>(store: Store, broken: BrokenTopicReads): Store {
  return {
    ...store,
    async readTopic(read: TopicReadRequest): Promise<TopicPage> {
      if (broken === 'seq >= position') return store.readTopic(read.after !== null && read.after > 0 ? { ...read, after: read.after - 1 } : read);
      const { earliest: _left_out, ...page } = await store.readTopic(read);
      return page;
    },
  };
}
