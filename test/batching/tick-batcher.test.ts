import { afterEach, describe, expect, it, vi } from 'vitest';
import { createTickBatcher } from '../../src/batching/tick-batcher.js';

type Settled = Array<PromiseSettledResult<string>>;

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const fulfilled = (items: number[]): Settled => items.map((item) => ({ status: 'fulfilled', value: `r${item}` }));

/** A runBatch whose calls stay running until the test finishes them, so concurrency is observable. */
function controlledBatch() {
  const calls: Array<{ items: number[]; done: Deferred<Settled> }> = [];
  const runBatch = vi.fn((items: number[]) => {
    const done = deferred<Settled>();
    calls.push({ items, done });
    return done.promise;
  });
  const finish = (index: number) => calls[index]!.done.resolve(fulfilled(calls[index]!.items));
  return { calls, runBatch, finish };
}

/** Lets the batcher's setImmediate flush (and the promise callbacks before it) run. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Whether a promise has settled yet, without waiting for it. */
async function isSettled(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await nextTurn();
  return settled;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('createTickBatcher', () => {
  it('rejects options that would never run a batch', () => {
    const runBatch = async (items: number[]) => fulfilled(items);
    expect(() => createTickBatcher(runBatch, { maxBatch: 0 })).toThrow(TypeError);
    expect(() => createTickBatcher(runBatch, { maxBatch: 1.5 })).toThrow(TypeError);
    expect(() => createTickBatcher(runBatch, { maxInFlight: 0 })).toThrow(TypeError);
  });

  it('hands the calls of one event-loop turn to a single runBatch call, in call order', async () => {
    const runBatch = vi.fn(async (items: number[]) => fulfilled(items));
    const batcher = createTickBatcher(runBatch);

    const results = await Promise.all([batcher(1), batcher(2), batcher(3)]);

    expect(runBatch).toHaveBeenCalledTimes(1);
    expect(runBatch).toHaveBeenCalledWith([1, 2, 3]);
    expect(results).toEqual(['r1', 'r2', 'r3']);
  });

  it('resolves each caller with the result at its own index', async () => {
    // Results built from the items, so a mix-up of indexes would hand a caller another's value.
    const batcher = createTickBatcher(async (items: number[]) => items.map((item) => ({ status: 'fulfilled' as const, value: item * 10 })));

    const [a, b, c] = await Promise.all([batcher(3), batcher(1), batcher(2)]);

    expect([a, b, c]).toEqual([30, 10, 20]);
  });

  it('does not call runBatch before the turn in which the items were queued ends', async () => {
    const runBatch = vi.fn(async (items: number[]) => fulfilled(items));
    const batcher = createTickBatcher(runBatch);

    const pending = batcher(1);
    await Promise.resolve();
    expect(runBatch).not.toHaveBeenCalled();

    await pending;
    expect(runBatch).toHaveBeenCalledTimes(1);
  });

  it('starts a new batch for calls made in a later turn', async () => {
    const runBatch = vi.fn(async (items: number[]) => fulfilled(items));
    const batcher = createTickBatcher(runBatch);

    await batcher(1);
    await batcher(2);

    expect(runBatch.mock.calls).toEqual([[[1]], [[2]]]);
  });

  it('splits a turn of more than maxBatch items into batches of at most maxBatch, all started at once', async () => {
    const { calls, runBatch } = controlledBatch();
    const batcher = createTickBatcher(runBatch, { maxBatch: 2 });

    const pending = [1, 2, 3, 4, 5].map((item) => batcher(item));
    await nextTurn();

    expect(calls.map((call) => call.items)).toEqual([[1, 2], [3, 4], [5]]);
    for (const call of calls) call.done.resolve(fulfilled(call.items));
    expect(await Promise.all(pending)).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
  });

  describe('per-item results', () => {
    it('rejects only the caller whose item failed', async () => {
      const failure = new Error('bad publish');
      const batcher = createTickBatcher(
        async (items: number[]): Promise<Settled> =>
          items.map((item) => (item === 2 ? { status: 'rejected', reason: failure } : { status: 'fulfilled', value: `r${item}` })),
      );

      const [one, two, three] = await Promise.allSettled([batcher(1), batcher(2), batcher(3)]);

      expect(one).toEqual({ status: 'fulfilled', value: 'r1' });
      expect(two).toEqual({ status: 'rejected', reason: failure });
      expect(three).toEqual({ status: 'fulfilled', value: 'r3' });
    });

    it('rejects the callers left without a result when runBatch returns too few', async () => {
      const batcher = createTickBatcher(async (items: number[]) => fulfilled(items.slice(0, 1)));

      const [one, two] = await Promise.allSettled([batcher(1), batcher(2)]);

      expect(one).toEqual({ status: 'fulfilled', value: 'r1' });
      expect(two.status).toBe('rejected');
      expect((two as PromiseRejectedResult).reason).toBeInstanceOf(Error);
      expect((two as PromiseRejectedResult).reason.message).toMatch(/fewer results than items/);
    });

    it('rejects every caller of a batch whose runBatch throws, and only those', async () => {
      const failure = new Error('database down');
      const runBatch = vi.fn(async (items: number[]): Promise<Settled> => {
        if (items.includes(1)) throw failure;
        return fulfilled(items);
      });
      const batcher = createTickBatcher(runBatch, { maxBatch: 2 });

      const results = await Promise.allSettled([batcher(1), batcher(2), batcher(3)]);

      expect(runBatch.mock.calls).toEqual([[[1, 2]], [[3]]]);
      expect(results).toEqual([
        { status: 'rejected', reason: failure },
        { status: 'rejected', reason: failure },
        { status: 'fulfilled', value: 'r3' },
      ]);
    });

    it('keeps batching after a runBatch that threw', async () => {
      let fail = true;
      const batcher = createTickBatcher(
        async (items: number[]): Promise<Settled> => {
          if (fail) throw new Error('once');
          return fulfilled(items);
        },
        { maxInFlight: 1 },
      );

      await expect(batcher(1)).rejects.toThrow('once');
      fail = false;

      // With maxInFlight 1, a failed batch that never released its slot would leave this hanging.
      await expect(batcher(2)).resolves.toBe('r2');
    });
  });

  describe('maxInFlight', () => {
    it('holds new items while maxInFlight batches run, then runs them together as one batch', async () => {
      const { calls, runBatch, finish } = controlledBatch();
      const batcher = createTickBatcher(runBatch, { maxInFlight: 1 });

      const first = batcher(1);
      await nextTurn();
      const second = batcher(2);
      await nextTurn();
      const third = batcher(3);
      await nextTurn();

      expect(calls.map((call) => call.items)).toEqual([[1]]);

      finish(0);
      expect(await first).toBe('r1');
      await vi.waitFor(() => expect(calls).toHaveLength(2));

      expect(calls.map((call) => call.items)).toEqual([[1], [2, 3]]);
      finish(1);
      expect(await Promise.all([second, third])).toEqual(['r2', 'r3']);
    });

    it('never has more than maxInFlight runBatch calls running', async () => {
      let running = 0;
      let peak = 0;
      const runBatch = vi.fn(async (items: number[]) => {
        running += 1;
        peak = Math.max(peak, running);
        await nextTurn();
        running -= 1;
        return fulfilled(items);
      });
      const batcher = createTickBatcher(runBatch, { maxBatch: 1, maxInFlight: 2 });

      const results = await Promise.all([1, 2, 3, 4, 5].map((item) => batcher(item)));

      expect(results).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
      expect(runBatch).toHaveBeenCalledTimes(5);
      expect(peak).toBe(2);
    });

    it('starts a held batch as soon as one running batch finishes, not when all do', async () => {
      const { calls, runBatch, finish } = controlledBatch();
      const batcher = createTickBatcher(runBatch, { maxBatch: 1, maxInFlight: 2 });

      const pending = [1, 2, 3].map((item) => batcher(item));
      await nextTurn();
      expect(calls.map((call) => call.items)).toEqual([[1], [2]]);

      finish(1);
      await vi.waitFor(() => expect(calls).toHaveLength(3));

      expect(calls.map((call) => call.items)).toEqual([[1], [2], [3]]);
      // Batch 0 is still running: the slot came from batch 1 alone.
      expect(await isSettled(pending[0]!)).toBe(false);
      finish(0);
      finish(2);
      expect(await Promise.all(pending)).toEqual(['r1', 'r2', 'r3']);
    });
  });

  describe('windowMs', () => {
    it('collects for windowMs after the first queued item, then runs one batch', async () => {
      vi.useFakeTimers();
      const runBatch = vi.fn(async (items: number[]) => fulfilled(items));
      const batcher = createTickBatcher(runBatch, { windowMs: 10 });

      const first = batcher(1);
      await vi.advanceTimersByTimeAsync(9);
      const second = batcher(2);
      await vi.advanceTimersByTimeAsync(0);
      expect(runBatch).not.toHaveBeenCalled();

      // The window counts from the first item: the second does not extend it.
      await vi.advanceTimersByTimeAsync(1);
      expect(runBatch.mock.calls).toEqual([[[1, 2]]]);
      expect(await Promise.all([first, second])).toEqual(['r1', 'r2']);
    });

    it('opens a fresh window for items queued after a flush', async () => {
      vi.useFakeTimers();
      const runBatch = vi.fn(async (items: number[]) => fulfilled(items));
      const batcher = createTickBatcher(runBatch, { windowMs: 10 });

      const first = batcher(1);
      await vi.advanceTimersByTimeAsync(10);
      const second = batcher(2);
      await vi.advanceTimersByTimeAsync(9);
      expect(runBatch.mock.calls).toEqual([[[1]]]);

      await vi.advanceTimersByTimeAsync(1);
      expect(runBatch.mock.calls).toEqual([[[1]], [[2]]]);
      expect(await Promise.all([first, second])).toEqual(['r1', 'r2']);
    });

    it('still splits a window of more than maxBatch items', async () => {
      vi.useFakeTimers();
      const runBatch = vi.fn(async (items: number[]) => fulfilled(items));
      const batcher = createTickBatcher(runBatch, { windowMs: 5, maxBatch: 2 });

      const pending = [1, 2, 3].map((item) => batcher(item));
      await vi.advanceTimersByTimeAsync(5);

      expect(runBatch.mock.calls).toEqual([[[1, 2]], [[3]]]);
      expect(await Promise.all(pending)).toEqual(['r1', 'r2', 'r3']);
    });
  });

  describe('settle', () => {
    it('resolves at once when nothing is queued or running', async () => {
      const runBatch = vi.fn(async (items: number[]) => fulfilled(items));
      const batcher = createTickBatcher(runBatch);

      await batcher.settle();

      expect(runBatch).not.toHaveBeenCalled();
    });

    it('waits for running batches to finish', async () => {
      const { runBatch, finish } = controlledBatch();
      const batcher = createTickBatcher(runBatch);

      const item = batcher(1);
      await nextTurn();
      const settled = batcher.settle();

      expect(await isSettled(settled)).toBe(false);
      finish(0);
      await settled;
      expect(await isSettled(item)).toBe(true);
    });

    it('runs queued items without waiting for their window, and leaves no timer behind', async () => {
      vi.useFakeTimers();
      const runBatch = vi.fn(async (items: number[]) => fulfilled(items));
      const batcher = createTickBatcher(runBatch, { windowMs: 60_000 });

      const item = batcher(1);
      expect(vi.getTimerCount()).toBe(1);
      await batcher.settle();

      expect(runBatch.mock.calls).toEqual([[[1]]]);
      await expect(item).resolves.toBe('r1');
      expect(vi.getTimerCount()).toBe(0);
    });

    it('also runs the items held behind maxInFlight before resolving', async () => {
      const { calls, runBatch, finish } = controlledBatch();
      const batcher = createTickBatcher(runBatch, { maxInFlight: 1 });
      const order: string[] = [];

      const first = batcher(1).then(() => order.push('first'));
      await nextTurn();
      const second = batcher(2).then(() => order.push('second'));
      const settled = batcher.settle().then(() => order.push('settled'));

      finish(0);
      await vi.waitFor(() => expect(calls).toHaveLength(2));
      expect(order).toEqual(['first']);
      finish(1);
      await Promise.all([first, second, settled]);

      expect(calls.map((call) => call.items)).toEqual([[1], [2]]);
      expect(order).toEqual(['first', 'second', 'settled']);
    });
  });
});
