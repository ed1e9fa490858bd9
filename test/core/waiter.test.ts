import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { StoredMessage } from '../../src/core/model.js';
import { Waiter } from '../../src/core/waiter.js';

/** Whether a promise has settled after pending microtasks ran, without advancing (fake) time. */
async function isSettled(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => (settled = true));
  await vi.advanceTimersByTimeAsync(0);
  return settled;
}

function message(seq: number, expiresAt: number | null = null): StoredMessage {
  return { id: 100 + seq, userId: 'u1', senderId: 'u2', clientMessageId: null, body: '{}', createdAt: 0, seq, expiresAt };
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('Waiter.sleep', () => {
  it('resolves after timeoutMs when nothing happens, and not before', async () => {
    const waiter = new Waiter('u1');

    const sleep = waiter.sleep(1000);
    await vi.advanceTimersByTimeAsync(999);
    expect(await isSettled(sleep)).toBe(false);

    await vi.advanceTimersByTimeAsync(1);
    expect(await isSettled(sleep)).toBe(true);
    expect(waiter.woken).toBe(false);
    expect(waiter.ended).toBeUndefined();
  });

  it('resolves on a wake before the timeout, and clears its timer', async () => {
    const waiter = new Waiter('u1');

    const sleep = waiter.sleep(25_000);
    expect(vi.getTimerCount()).toBe(1);
    waiter.wake();

    expect(await isSettled(sleep)).toBe(true);
    expect(waiter.woken).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('returns at once, without a timer, for a wake that came before the sleep', async () => {
    const waiter = new Waiter('u1');
    waiter.wake();

    const sleep = waiter.sleep(25_000);

    expect(vi.getTimerCount()).toBe(0);
    expect(await isSettled(sleep)).toBe(true);
  });

  it('sleeps again once the caller has cleared woken', async () => {
    const waiter = new Waiter('u1');
    waiter.wake();
    await waiter.sleep(25_000);

    waiter.woken = false;
    const sleep = waiter.sleep(25_000);

    expect(await isSettled(sleep)).toBe(false);
    waiter.wake();
    expect(await isSettled(sleep)).toBe(true);
  });

  it.each(['superseded', 'aborted', 'draining'] as const)('resolves on end(%s), records the reason, and clears its timer', async (reason) => {
    const waiter = new Waiter('u1');

    const sleep = waiter.sleep(25_000);
    waiter.end(reason);

    expect(await isSettled(sleep)).toBe(true);
    expect(waiter.ended).toBe(reason);
    expect(waiter.woken).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('returns at once, without a timer, after an end', async () => {
    const waiter = new Waiter('u1');
    waiter.end('aborted');

    const sleep = waiter.sleep(25_000);

    expect(vi.getTimerCount()).toBe(0);
    expect(await isSettled(sleep)).toBe(true);
  });

  it('keeps the first end reason', () => {
    const waiter = new Waiter('u1');

    waiter.end('superseded');
    waiter.end('draining');

    expect(waiter.ended).toBe('superseded');
  });

  it('leaves no timer behind after a timeout, and ignores wakes and ends that come later', async () => {
    const waiter = new Waiter('u1');

    const sleep = waiter.sleep(50);
    await vi.advanceTimersByTimeAsync(50);
    await sleep;
    expect(vi.getTimerCount()).toBe(0);

    // The released sleep must not be released again (it no longer holds a release function).
    expect(() => {
      waiter.wake();
      waiter.end('aborted');
    }).not.toThrow();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not let a finished sleep release the next one', async () => {
    const waiter = new Waiter('u1');
    const first = waiter.sleep(50);
    await vi.advanceTimersByTimeAsync(50);
    await first;

    const second = waiter.sleep(1000);
    // The first sleep's timer is spent; only the second's may remain.
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(await isSettled(second)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await isSettled(second)).toBe(true);
  });
});

describe('Waiter offered messages', () => {
  it('wakes a sleeping poll when messages are offered', async () => {
    const waiter = new Waiter('u1');

    const sleep = waiter.sleep(25_000);
    waiter.offer([message(1)]);

    expect(await isSettled(sleep)).toBe(true);
    expect(waiter.woken).toBe(true);
  });

  it('hands over the offered run that continues the cursor, in seq order', () => {
    const waiter = new Waiter('u1');
    waiter.offer([message(7), message(5)]);
    waiter.offer([message(6)]);

    expect(waiter.takeOffered(4, 10, 0)?.map((m) => m.seq)).toEqual([5, 6, 7]);
  });

  it('drops offered messages the cursor already covers', () => {
    const waiter = new Waiter('u1');
    waiter.offer([message(3), message(4), message(5)]);

    expect(waiter.takeOffered(4, 10, 0)?.map((m) => m.seq)).toEqual([5]);
  });

  it('stops the run at a gap', () => {
    const waiter = new Waiter('u1');
    waiter.offer([message(5), message(6), message(8)]);

    expect(waiter.takeOffered(4, 10, 0)?.map((m) => m.seq)).toEqual([5, 6]);
  });

  it('hands over at most limit messages', () => {
    const waiter = new Waiter('u1');
    waiter.offer([message(1), message(2), message(3)]);

    expect(waiter.takeOffered(0, 2, 0)?.map((m) => m.seq)).toEqual([1, 2]);
  });

  it('answers undefined when the offered messages do not continue the cursor', () => {
    const waiter = new Waiter('u1');
    waiter.offer([message(6), message(7)]);

    expect(waiter.takeOffered(4, 10, 0)).toBeUndefined();
  });

  it('answers undefined when nothing was offered', () => {
    expect(new Waiter('u1').takeOffered(0, 10, 0)).toBeUndefined();
  });

  it('never hands over an expired message, so one makes a gap', () => {
    const waiter = new Waiter('u1');
    waiter.offer([message(1, 2000), message(2, 1000), message(3)]);

    // At now = 1000, seq 2 has expired (expiresAt is not after now).
    expect(waiter.takeOffered(0, 10, 1000)?.map((m) => m.seq)).toEqual([1]);
  });

  it('hands over offered messages only once', () => {
    const waiter = new Waiter('u1');
    waiter.offer([message(1)]);

    expect(waiter.takeOffered(0, 10, 0)).toHaveLength(1);
    expect(waiter.takeOffered(0, 10, 0)).toBeUndefined();
  });
});
