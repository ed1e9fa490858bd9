import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ACK_INTERVAL_MS, createStreamAcks } from '../../src/client/transports/acks.js';

describe('stream acks', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  function acksWith(outcomes: Array<'ok' | 'fail'> = []) {
    const posted: number[] = [];
    const acks = createStreamAcks({
      post: async (cursor) => {
        posted.push(cursor);
        if (outcomes.shift() === 'fail') throw new Error('network down');
      },
      retryDelayMs: () => 1000,
    });
    acks.resume();
    return { acks, posted };
  }

  it('sends the first ack at once and coalesces the ones after it to one per interval, the latest cursor', async () => {
    const { acks, posted } = acksWith();
    acks.ack(1);
    await vi.advanceTimersByTimeAsync(0);
    for (const cursor of [2, 3, 4, 5]) acks.ack(cursor);
    await vi.advanceTimersByTimeAsync(ACK_INTERVAL_MS - 1);
    expect(posted).toEqual([1]);
    await vi.advanceTimersByTimeAsync(1);
    expect(posted).toEqual([1, 5]);
    acks.ack(5);
    acks.ack(4);
    await vi.advanceTimersByTimeAsync(ACK_INTERVAL_MS * 3);
    expect(posted).toEqual([1, 5]);
  });

  it('acks through an open WebSocket instead while it is there, and again by POST after it closed', async () => {
    const { acks, posted } = acksWith();
    const frames: number[] = [];
    acks.sendFrames((cursor) => (frames.push(cursor), true));
    acks.opened(0);
    acks.ack(7);
    await vi.advanceTimersByTimeAsync(ACK_INTERVAL_MS);
    expect(frames).toEqual([7]);
    // The frame may have been lost with its socket: the next connection acks it again.
    acks.sendFrames(undefined);
    acks.opened(7);
    await vi.advanceTimersByTimeAsync(ACK_INTERVAL_MS);
    expect(posted).toEqual([7]);
    // Confirmed by the gateway's answer: not again.
    acks.opened(7);
    await vi.advanceTimersByTimeAsync(ACK_INTERVAL_MS);
    expect(posted).toEqual([7]);
  });

  it('retries a POST that failed, with the latest cursor; stops retrying when the run ends', async () => {
    const { acks, posted } = acksWith(['fail', 'fail', 'ok']);
    acks.ack(3);
    await vi.advanceTimersByTimeAsync(0);
    acks.ack(4);
    await vi.advanceTimersByTimeAsync(1000);
    expect(posted).toEqual([3, 4]);
    acks.pause();
    await vi.advanceTimersByTimeAsync(0);
    // What was owed is sent when the run ends, once.
    expect(posted).toEqual([3, 4, 4]);
    acks.ack(9);
    acks.pause();
    await vi.advanceTimersByTimeAsync(5000);
    expect(posted).toEqual([3, 4, 4, 9]);
  });
});
