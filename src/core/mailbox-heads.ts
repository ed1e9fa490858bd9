import type { Clock } from './model.js';

/**
 * What this process knows of each mailbox's head: the highest sequence number known to be
 * committed, learned from wakes (every process hears every wake), its own publishes and partial
 * reads. A poll whose cursor is the known head has nothing to read: it waits for the next wake
 * instead of asking the store. That is safe because the poll registers its waiter before it asks,
 * so a commit whose wake is still on the way wakes it when the wake lands.
 *
 * A wake lost on the way (Redis restarted, a failed PUBLISH) would leave a head too low and
 * polls waiting instead of reading; so a head is trusted only for `trustMs` after it was last
 * confirmed, only while the bus is healthy (the engine checks), and all are forgotten when the bus
 * reconnects.
 */
export class MailboxHeads {
  private readonly heads = new Map<string, { seq: number; knownAt: number }>();
  /**
   * Counts forgets (a wake without a head, a resync). A read that began before one must not teach
   * a head afterwards: it may not have seen what the forgetting wake announced.
   */
  forgets = 0;

  constructor(
    private readonly clock: Clock,
    private readonly trustMs: number,
    private readonly maxEntries: number,
  ) {}

  /** Raises what is known of a mailbox's head (never lowers it) and confirms it now. */
  raise(userId: string, seq: number): void {
    const known = this.heads.get(userId);
    this.heads.delete(userId);
    // Oldest confirmation first out: Map iterates in insertion order.
    if (this.heads.size >= this.maxEntries) this.heads.delete(this.heads.keys().next().value!);
    this.heads.set(userId, { seq: Math.max(seq, known?.seq ?? seq), knownAt: this.clock.now() });
  }

  forget(userId: string): void {
    this.forgets += 1;
    this.heads.delete(userId);
  }

  clear(): void {
    this.forgets += 1;
    this.heads.clear();
  }

  /** True when the mailbox is known, recently, to hold nothing after `cursor`. */
  nothingAfter(userId: string, cursor: number): boolean {
    const known = this.heads.get(userId);
    return known !== undefined && known.seq === cursor && this.clock.now() - known.knownAt <= this.trustMs;
  }

  /** The head, when it is known and was confirmed recently. */
  trusted(userId: string): number | undefined {
    const known = this.heads.get(userId);
    return known !== undefined && this.clock.now() - known.knownAt <= this.trustMs ? known.seq : undefined;
  }

  get size(): number {
    return this.heads.size;
  }
}
