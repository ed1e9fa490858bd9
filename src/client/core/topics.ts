/**
 * The topics a poller reads beside its mailbox, and where it stands in each, written once for both
 * builds. The gateway keeps no state per reader and nobody acks a topic: like the mailbox cursor,
 * each topic's position lives in the client (and its checkpoint) and travels with every poll.
 *
 * One rule decides where a topic is read from: a position the poller holds wins over the `from`
 * it was subscribed with. So a restarted poller resumes each topic exactly where it stopped, and
 * `from` only says where to begin a topic it holds no position for. ES5 only (no Map, no
 * Object.keys): the legacy bundle runs this very code.
 */
import { TOPIC_NAME_PATTERN } from '../../topic-name.js';
import { pollFieldFailure, type FailureSpec } from './failures.js';
import type { PollMessage, PollResponse, TopicReset } from './types.js';
import { hasOwn, invalid, isArray, isObject, isWholeNumber, requireMatch } from './validate.js';

/**
 * Where reading a topic begins: after this position (its messages with a greater `seq`; 0 = all it
 * still holds), or `'now'` (only what is published from the next poll on).
 *
 * @example
 * const from: TopicStart = 'now';
 */
export type TopicStart = number | 'now';

/**
 * Each topic's position: the `seq` of its last message handed over (or where reading began).
 *
 * @example
 * const positions: TopicPositions = { 'room:1': 42, announcements: 7 };
 */
export interface TopicPositions {
  [topic: string]: number;
}

/** Topic name → position, or null: "from now", not learned yet. What POST /v1/poll's `topics` says. */
export interface TopicStarts {
  [topic: string]: number | null;
}

/** A position or a cursor: a whole number from 0 that survives JSON (at most 2^53 - 1). */
export function isPosition(value: unknown): value is number {
  return isWholeNumber(value) && value >= 0 && value <= 9007199254740991;
}

export function requireTopicName(name: string, value: unknown): string {
  return requireMatch(name, value, TOPIC_NAME_PATTERN, 'a topic name');
}

/** A checked TopicStart (only a position unless `now`), as the wire says it: null is "from now". */
function startPosition(name: string, value: unknown, now: boolean): number | null {
  if (now && value === 'now') return null;
  if (!isPosition(value)) throw invalid(name, 'a whole number from 0' + (now ? " or 'now'" : ''), value);
  return value;
}

/**
 * Checks an object of topic name → position (or 'now', when `now`), as the `topics` option and a
 * checkpoint hold them, and calls `visit` with each.
 */
export function eachTopic(path: string, value: unknown, now: boolean, visit: (name: string, position: number | null) => void): void {
  if (!isObject(value) || isArray(value)) throw invalid(path, 'an object', value);
  for (const name in value) {
    if (!hasOwn(value, name)) continue;
    const where = path + '[' + JSON.stringify(name) + ']';
    visit(requireTopicName(where, name), startPosition(where, (value as { [name: string]: unknown })[name], now));
  }
}

/**
 * An object to key by topic name: without a prototype, so that a topic named `__proto__` is an
 * entry like any other (on `{}`, assigning it would set the prototype). IE8 has no Object.create,
 * and no `__proto__` either. Membership is always asked with hasOwn, for IE8's sake.
 */
function byTopic<Value>(): { [topic: string]: Value } {
  return Object.create ? Object.create(null) : {};
}

function hasEntries(value: object): boolean {
  for (const key in value) if (hasOwn(value, key)) return true;
  return false;
}

/** A plain-object copy (JSON keeps a `__proto__` entry as an own property). */
function copy<Value>(value: Value): Value {
  return JSON.parse(JSON.stringify(value));
}

/** An answer, read against the topics its poll asked for. */
export interface TopicAnswer {
  /** What is wrong with it (a topic asked for without a position), or undefined. */
  failure: FailureSpec | undefined;
  /** The mailbox's messages, in order: the seen-id window sorts out repeats. */
  mailbox: PollMessage[];
  /** The topics' messages beyond the positions held, in order. */
  fresh: PollMessage[];
  /** The resets of the topics still read. */
  resets: TopicReset[];
  /** Moves the topics to the answer's positions: call it once the messages were handed over. */
  take(): void;
}

export interface TopicSubscriptions {
  subscribe(name: string, from: TopicStart): void;
  /** Stops reading the topic and forgets its position: a later subscribe begins at its `from`. */
  unsubscribe(name: string): void;
  /**
   * Takes a loaded checkpoint's positions: they win over the `from` of the topics subscribed so
   * far, and of those subscribed later, until the first answer is saved (see `positions`).
   */
  restore(saved: TopicPositions | undefined): void;
  /**
   * The topics the next poll reads (a copy: what it sends, and what its answer is read against);
   * undefined when it reads none.
   */
  reading(): TopicStarts | undefined;
  /**
   * Reads an answer back. A topic message is new when its `seq` lies above the position held:
   * positions move only after a hand-over, so that is exact and costs no memory. (The mailbox's
   * id window would not do: topics interleave with it and with each other, and may replay old
   * history, so their ids do not ascend.) After a reset the held position means nothing (the
   * topic may have been recreated, its `seq` starting over), so its messages are taken as they
   * come. A topic changed since the poll was sent (unsubscribed, or subscribed anew) is left
   * alone: its messages are dropped, its position is not taken.
   */
  answer(asked: TopicStarts, response: PollResponse): TopicAnswer;
  /**
   * The positions to save (undefined when there are none). From the first call on, restored
   * positions no longer apply: a checkpoint keeps only the topics read.
   */
  positions(): TopicPositions | undefined;
}

/** The topics of the `topics` option (checked here, so a bad one throws when the poller is created). */
export function createTopicSubscriptions(topics: unknown): TopicSubscriptions {
  /** In subscription order. */
  const held = byTopic<number | null>();
  /** A loaded checkpoint's positions, until the first answer is saved. */
  let restored: TopicPositions | undefined;
  if (topics !== undefined) eachTopic('topics', topics, true, subscribe);

  function subscribe(name: string, from: number | null): void {
    if (!hasOwn(held, name)) held[name] = restored && hasOwn(restored, name) ? (restored[name] as number) : from;
  }

  return {
    subscribe: function (name, from) {
      subscribe(requireTopicName('topic', name), startPosition('from', from, true));
    },
    unsubscribe: function (name) {
      delete held[requireTopicName('topic', name)];
      if (restored) delete restored[name];
    },
    restore: function (saved) {
      restored = saved;
      for (const name in held) if (saved && hasOwn(saved, name)) held[name] = saved[name] as number;
    },
    reading: function () {
      return hasEntries(held) ? copy(held) : undefined;
    },
    answer: function (asked, response) {
      const positions = response.positions as { [topic: string]: unknown };
      /** Per topic still read: the `seq` a message must exceed to be new (-1: any). */
      const floors = byTopic<number>();
      const answer: TopicAnswer = {
        failure: undefined,
        mailbox: [],
        fresh: [],
        resets: [],
        take: function () {
          // Only topics still read as the poll read them: not one unsubscribed (or subscribed anew) meanwhile.
          for (const name in asked) if (held[name] === asked[name]) held[name] = positions[name] as number;
        },
      };
      for (const name in asked) {
        // Inherited keys (`constructor`, `__proto__`) are no positions either: a plain lookup will do.
        if (!isPosition(positions[name])) answer.failure = pollFieldFailure('positions[' + JSON.stringify(name) + ']', 'a position');
        // Still read as the poll read it? (A topic not held reads as undefined, or as IE8's inherited
        // method: neither equals a position or null.)
        if (held[name] === asked[name]) floors[name] = asked[name] === null ? -1 : (asked[name] as number);
      }
      for (let index = 0; index < response.resets.length; index++) {
        const reset = response.resets[index] as TopicReset;
        if (!hasOwn(floors, reset.topic)) continue;
        floors[reset.topic] = -1;
        answer.resets.push(reset);
      }
      for (let index = 0; index < response.messages.length; index++) {
        const message = response.messages[index] as PollMessage;
        const topic = message.topic as string;
        if (message.topic === undefined) answer.mailbox.push(message);
        // Repeats inside one answer are dropped too: the floor rises with each message taken.
        else if (hasOwn(floors, topic) && (message.seq as number) > (floors[topic] as number)) {
          floors[topic] = message.seq as number;
          answer.fresh.push(message);
        }
      }
      return answer;
    },
    positions: function () {
      const positions = byTopic<number>();
      restored = undefined;
      for (const name in held) if (held[name] !== null) positions[name] = held[name] as number;
      return hasEntries(positions) ? copy(positions) : undefined;
    },
  };
}
