import type { TopicCursor } from '../core/engine.js';
import { TOPIC_NAME_PATTERN } from '../core/model.js';
import { GatewayError } from '../errors.js';

/**
 * The topics a poll reads, from `topic=<name>@<position>` / `topic=<name>` query parameters or a
 * POST body's `"topics": {"<name>": <position> | null}`. Checked in this order, so the answer is
 * the same whichever way they came: how many (400 `too_many_topics`), each name (400
 * `invalid_topic`), each position and repeats (400 `invalid_cursor`).
 */
function checked(entries: ReadonlyArray<readonly [name: unknown, position: unknown]>, max: number): TopicCursor[] {
  if (entries.length > max) throw new GatewayError('too_many_topics', `A poll may read at most ${max} topics (POLL_TOPICS_MAX); this one names ${entries.length}.`);
  const seen = new Set<string>();
  return entries.map(([name, position]) => {
    if (typeof name !== 'string' || !TOPIC_NAME_PATTERN.test(name)) {
      throw new GatewayError('invalid_topic', `Topic ${JSON.stringify(name)} is not a topic name (1-128 characters of A-Z a-z 0-9 . _ : -).`);
    }
    if (position !== null && !(typeof position === 'number' && Number.isSafeInteger(position) && position >= 0)) {
      throw new GatewayError('invalid_cursor', `The position of topic ${JSON.stringify(name)} must be a whole number from 0, or absent (from now).`);
    }
    if (seen.has(name)) throw new GatewayError('invalid_cursor', `Topic ${JSON.stringify(name)} is named twice.`);
    seen.add(name);
    return { name, position };
  });
}

/** `topic` query values: `<name>@<position>` (messages after it; `@0` from the start of the history) or `<name>` (from now). */
export function topicCursorsFromQuery(values: string | string[] | undefined, max: number): TopicCursor[] {
  if (values === undefined) return [];
  const list = Array.isArray(values) ? values : [values];
  return checked(
    list.map((value) => {
      const at = value.indexOf('@');
      if (at === -1) return [value, null] as const;
      const position = value.slice(at + 1);
      // A topic name holds no `@`: everything after the first one is the position.
      return [value.slice(0, at), /^\d{1,16}$/.test(position) ? Number(position) : Number.NaN] as const;
    }),
    max,
  );
}

/** A POST poll's `topics`: an object of name → position (or null: from now). */
export function topicCursorsFromBody(value: unknown, max: number): TopicCursor[] {
  if (value === undefined) return [];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GatewayError('invalid_request', '`topics` must be an object of topic name → position (or null: from now).');
  }
  return checked(Object.entries(value), max);
}
