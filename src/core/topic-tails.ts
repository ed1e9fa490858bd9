import type { StoredMessage, TopicPage } from './model.js';

/** Messages kept per topic; a reader further behind reads the store. */
const TAIL_MESSAGES = 256;
/** How recent the first message of a page from the tail must be. */
const TAIL_MAX_AGE_MS = 10_000;

interface Tail {
  /** Consecutive `seq`s, oldest first. */
  run: StoredMessage[];
  /** Pages already cut from `run`, by `after:limit`: readers at one position share one page. */
  pages: Map<string, TopicPage>;
}

/**
 * The recent messages this process committed to each topic, as one unbroken run per topic. After
 * a publish, thousands of readers of the topic held here sit at the position just before it: they
 * are answered from this run without a store read, and all those at one position get the same
 * page object, so the HTTP layer serialises its messages once (it memoises by page).
 *
 * Only what this process committed is here; a commit of another process (or one announced out of
 * order) breaks the run, and the run starts again from it: readers it does not continue read the
 * store, as they would without it.
 */
export class TopicTails {
  private readonly tails = new Map<string, Tail>();

  constructor(private readonly maxTopics: number) {}

  /** Adds messages just committed to a topic (consecutive, in `seq` order, as one commit stores them). */
  append(key: string, messages: readonly StoredMessage[]): void {
    if (messages.length === 0) return;
    const known = this.tails.get(key);
    this.tails.delete(key);
    if (this.tails.size >= this.maxTopics) this.tails.delete(this.tails.keys().next().value!);
    const continues = known !== undefined && known.run[known.run.length - 1]!.seq + 1 === messages[0]!.seq;
    const run = continues ? known.run.concat(messages) : [...messages];
    this.tails.set(key, { run: run.length > TAIL_MESSAGES ? run.slice(run.length - TAIL_MESSAGES) : run, pages: new Map() });
  }

  /**
   * The page a read after `after` would answer, when the run holds the very next message (and, as
   * far as this process heard, reaches the head: see `heard`); undefined otherwise, or when a
   * message of it has expired (a read then decides what the reader gets).
   */
  take(key: string, after: number, limit: number, now: number): TopicPage | undefined {
    const tail = this.tails.get(key);
    if (!tail) return undefined;
    const { run } = tail;
    const start = after + 1 - run[0]!.seq;
    if (start < 0 || start >= run.length) return undefined;
    // Only what was committed moments ago: a reader further behind reads the store, which knows
    // whether the history it wants was trimmed since (and tells it so).
    if (run[start]!.createdAt < now - TAIL_MAX_AGE_MS) return undefined;
    const memo = `${after}:${limit}`;
    const known = tail.pages.get(memo);
    if (known) return known.messages.every((message) => message.expiresAt === null || message.expiresAt > now) ? known : undefined;
    const messages = start === 0 && run.length <= limit ? run : run.slice(start, start + limit);
    if (!messages.every((message) => message.expiresAt === null || message.expiresAt > now)) return undefined;
    const page: TopicPage = { messages, position: messages[messages.length - 1]!.seq };
    tail.pages.set(memo, page);
    return page;
  }

  /**
   * A wake told the topic's head. A run that ends below it no longer reaches the head (another
   * process committed after it), and a page cut from it would stop short of what a read answers:
   * it is dropped, and its readers read the store. This process's own wakes name no head beyond
   * its run (it appends its commits before it announces them), unless its announces crossed.
   */
  heard(key: string, head: number): void {
    const tail = this.tails.get(key);
    if (tail && tail.run[tail.run.length - 1]!.seq < head) this.tails.delete(key);
  }

  clear(): void {
    this.tails.clear();
  }
}
