import type { PresenceEvent } from '../presence/types.js';
import type { Clock } from './model.js';

interface Gap {
  key: string;
  topics: ReadonlySet<string>;
  events: PresenceEvent[];
  until: number;
}

/**
 * Presence events are ephemeral, but a long poller is between two polls for a moment after every
 * answer: an event in that moment would be lost to a client that never stopped polling. So when a
 * client's `presence=1` poll ends, what its topics hear is kept until its next poll (on this
 * process, for at most `keepMs`), which is answered with it at once. A client that went elsewhere
 * or away resyncs with the GET, as the API says.
 */
export class PresenceGaps {
  /** In park order (a re-park moves to the end): the oldest expire first. */
  private readonly byClient = new Map<string, Gap>();
  private readonly byTopic = new Map<string, Set<Gap>>();

  constructor(
    private readonly clock: Clock,
    private readonly keepMs: number,
    private readonly maxEvents = 100,
  ) {}

  /** A presence poll of this client ended: keep what its topics hear until its next poll. */
  park(userId: string, clientId: string, topics: ReadonlySet<string>): void {
    const key = `${userId}\n${clientId}`;
    this.drop(key);
    this.expire();
    const gap: Gap = { key, topics, events: [], until: this.clock.now() + this.keepMs };
    this.byClient.set(key, gap);
    for (const topic of topics) {
      let gaps = this.byTopic.get(topic);
      if (!gaps) this.byTopic.set(topic, (gaps = new Set()));
      gaps.add(gap);
    }
  }

  hear(event: PresenceEvent): void {
    const gaps = this.byTopic.get(event.topic);
    if (gaps) for (const gap of gaps) if (gap.events.length < this.maxEvents) gap.events.push(event);
  }

  /** The client polls again: what it missed of the topics it asks for now, if anything. */
  take(userId: string, clientId: string, topics: ReadonlySet<string>): PresenceEvent[] | undefined {
    const key = `${userId}\n${clientId}`;
    const gap = this.byClient.get(key);
    if (!gap) return undefined;
    this.drop(key);
    if (gap.until <= this.clock.now()) return undefined;
    const missed = gap.events.filter((event) => topics.has(event.topic));
    return missed.length > 0 ? missed : undefined;
  }

  get size(): number {
    return this.byClient.size;
  }

  private drop(key: string): void {
    const gap = this.byClient.get(key);
    if (!gap) return;
    this.byClient.delete(key);
    for (const topic of gap.topics) {
      const gaps = this.byTopic.get(topic);
      if (gaps?.delete(gap) && gaps.size === 0) this.byTopic.delete(topic);
    }
  }

  private expire(): void {
    const now = this.clock.now();
    for (const gap of this.byClient.values()) {
      if (gap.until > now) break;
      this.drop(gap.key);
    }
  }
}
