/**
 * Accounting of one mode: which published messages reached which client, once or more. The
 * gateway's contract is at-least-once delivery plus de-duplication by message id in the client,
 * so a redelivery of the same server id is normal (and filtered), while a second server id for the
 * same published message, a message at the wrong mailbox, or a message never received are faults.
 */

export type ReceiptKind = 'new' | 'redelivered' | 'duplicate' | 'misrouted' | 'unknown';

export interface LedgerTotals {
  /** Publishes the gateway accepted (2xx). */
  published: number;
  /** Publishes that failed for good (after retries): not expected anywhere. */
  publishFailed: number;
  /** Distinct published messages received by their recipient. */
  delivered: number;
  /** Accepted but never received. Must be 0. */
  lost: number;
  /** Received under a second server id (idempotency failure): the user would see it twice. Must be 0. */
  duplicated: number;
  /** The same server id received again by the same client (at-least-once; dropped by dedup). */
  redelivered: number;
  /** Received by a client that was not the recipient. Must be 0. */
  misrouted: number;
  /** Messages that the run did not publish (leftovers from another run or producer). */
  unknown: number;
}

interface Published {
  client: number;
  sentAt: number;
  accepted: boolean;
  failed: boolean;
  receivedAt: number | undefined;
}

export class DeliveryLedger {
  private readonly published = new Map<number, Published>();
  private readonly seenByClient: Array<Set<number>>;
  private publishFailed = 0;
  private accepted = 0;
  private delivered = 0;
  private duplicated = 0;
  private redelivered = 0;
  private misrouted = 0;
  private unknown = 0;
  private waitingFor = 0;
  readonly latenciesMs: number[] = [];
  /** When each latency in `latenciesMs` was measured (the delivery), same order. */
  readonly deliveredAtMs: number[] = [];

  constructor(readonly clientCount: number) {
    if (!Number.isInteger(clientCount) || clientCount < 1) throw new TypeError('Expected `clientCount` to be a positive integer');
    this.seenByClient = Array.from({ length: clientCount }, () => new Set<number>());
  }

  /** Call when the publish request is sent: latency runs from here. */
  publishing(seq: number, client: number, sentAt: number): void {
    if (this.published.has(seq)) throw new Error(`message ${seq} was published twice by the load generator`);
    if (!(client >= 0 && client < this.clientCount)) throw new RangeError(`client ${client} is not in 0..${this.clientCount - 1}`);
    this.published.set(seq, { client, sentAt, accepted: false, failed: false, receivedAt: undefined });
    this.waitingFor += 1;
  }

  /** The gateway accepted the publish (201, or 200 `duplicate` on a retry). */
  acceptedAs(seq: number): void {
    const entry = this.published.get(seq);
    if (!entry) throw new Error(`message ${seq} was accepted but never published`);
    if (!entry.accepted) this.accepted += 1;
    entry.accepted = true;
  }

  /**
   * Publishing failed for good (after retries). The gateway may still have stored it (the answer
   * was lost), so a later receipt counts as delivered; it just is not waited for or called lost.
   */
  publishFailedFor(seq: number): void {
    const entry = this.published.get(seq);
    if (!entry || entry.failed || entry.accepted) return;
    entry.failed = true;
    this.publishFailed += 1;
    if (entry.receivedAt === undefined) this.waitingFor -= 1;
  }

  /**
   * One message of a poll response. `seq` is what the load generator put in the body (undefined
   * when the body is not one of ours).
   */
  receive(client: number, serverId: number, seq: number | undefined, at: number): ReceiptKind {
    const seen = this.seenByClient[client];
    if (!seen) throw new RangeError(`client ${client} is not in 0..${this.clientCount - 1}`);
    if (seen.has(serverId)) {
      this.redelivered += 1;
      return 'redelivered';
    }
    seen.add(serverId);
    const entry = seq === undefined ? undefined : this.published.get(seq);
    if (!entry) {
      this.unknown += 1;
      return 'unknown';
    }
    if (entry.client !== client) {
      this.misrouted += 1;
      return 'misrouted';
    }
    if (entry.receivedAt !== undefined) {
      this.duplicated += 1;
      return 'duplicate';
    }
    entry.receivedAt = at;
    this.delivered += 1;
    if (!entry.failed) this.waitingFor -= 1;
    this.latenciesMs.push(at - entry.sentAt);
    this.deliveredAtMs.push(at);
    return 'new';
  }

  /** Messages sent (and not failed) that no client has received yet: what a drain waits for. */
  get outstanding(): number {
    return this.waitingFor;
  }

  totals(): LedgerTotals {
    let lost = 0;
    for (const entry of this.published.values()) if (entry.receivedAt === undefined && entry.accepted) lost += 1;
    return {
      published: this.accepted,
      publishFailed: this.publishFailed,
      delivered: this.delivered,
      lost,
      duplicated: this.duplicated,
      redelivered: this.redelivered,
      misrouted: this.misrouted,
      unknown: this.unknown,
    };
  }
}
