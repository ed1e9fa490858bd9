import { setTimeout as sleep } from 'node:timers/promises';
import type { ModeRunOptions } from '../../src/bench/runner.js';
import { BenchRequestError, type BenchTarget, type PublishItem } from '../../src/bench/target.js';

export interface MemoryTarget extends BenchTarget {
  batchSizes: number[];
  readonly stored: number;
  /** performance.now() of each client's first poll (undefined until it polled). */
  firstPollAt: Array<number | undefined>;
  /** performance.now() of every publish request, in order. */
  publishedAt: number[];
}

/**
 * An in-memory server behind the BenchTarget interface: idempotent by key, like the gateway, and
 * able to lose the answer to a batch after storing it (the case a retry must survive), to fail
 * the first polls, and to count the bytes it "sent" and "received" like the gateway target does.
 */
export function memoryTarget(options: {
  clients: number;
  loseAnswersOfFirstBatches?: number;
  batch?: boolean;
  /** The first n held polls (wait > 0: not the settling before a mode) fail with a 503. */
  failFirstPolls?: number;
  /** Count traffic: every poll sends 100 bytes and receives 200; every publish sends 300, receives 50. */
  traffic?: boolean;
}): MemoryTarget {
  const mailboxes = Array.from({ length: options.clients }, () => [] as Array<{ serverId: number; seq: number }>);
  const byKey = new Map<string, number>();
  let nextId = 1;
  let answersToLose = options.loseAnswersOfFirstBatches ?? 0;
  let pollsToFail = options.failFirstPolls ?? 0;
  const traffic = { bytesSent: 0, bytesReceived: 0 };
  const count = (sent: number, received: number) => {
    traffic.bytesSent += sent;
    traffic.bytesReceived += received;
  };
  const store = (item: PublishItem) => {
    if (byKey.has(item.key)) return;
    byKey.set(item.key, nextId);
    mailboxes[item.client]!.push({ serverId: nextId, seq: item.body.seq });
    nextId += 1;
  };
  const target: MemoryTarget = {
    batchSizes: [],
    firstPollAt: new Array<number | undefined>(options.clients).fill(undefined),
    publishedAt: [],
    get stored() {
      return byKey.size;
    },
    pollWaitMaxS: undefined,
    ...(options.traffic ? { traffic } : {}),
    async poll(client, cursor, waitS, signal) {
      target.firstPollAt[client] ??= performance.now();
      if (options.traffic) count(100, 200);
      if (pollsToFail > 0 && waitS > 0) {
        pollsToFail -= 1;
        throw new BenchRequestError('503', 'failing on purpose', true);
      }
      const deadline = performance.now() + waitS * 1000;
      for (;;) {
        const messages = mailboxes[client]!.filter((message) => message.serverId > cursor);
        if (messages.length > 0 || performance.now() >= deadline || signal.aborted) {
          return { messages, cursor: messages.at(-1)?.serverId ?? cursor, bytes: 0, superseded: false };
        }
        await sleep(5);
      }
    },
    async publish(client, key, body) {
      target.publishedAt.push(performance.now());
      if (options.traffic) count(300, 50);
      store({ client, key, body });
    },
    async close() {},
  };
  if (options.batch !== false) {
    target.publishBatch = async (items) => {
      target.publishedAt.push(performance.now());
      target.batchSizes.push(items.length);
      for (const item of items) store(item);
      if (answersToLose > 0) {
        answersToLose -= 1;
        throw new BenchRequestError('502', 'the answer was lost after the batch was stored', true);
      }
    };
  }
  return target;
}

/** A small, fast run against the memory target; tests override what they look at. */
export const modeOptions = (overrides: Partial<ModeRunOptions>): ModeRunOptions => ({
  clients: 5,
  rate: 100,
  durationS: 0.25,
  drainTimeoutS: 5,
  maxRequests: 100_000,
  seed: 1,
  publishConnections: 4,
  publishBatch: 1,
  serverPid: undefined,
  ...overrides,
});

export const longPoll = { kind: 'long', waitS: 1, label: 'long wait=1s' } as const;
