import { describe, expect, it, vi } from 'vitest';
import { createOpenedResources } from '../src/lifecycle.js';

describe('createOpenedResources', () => {
  it('closes what was added, newest first', async () => {
    const closed: string[] = [];
    const opened = createOpenedResources();
    opened.add(() => void closed.push('store'));
    opened.add(() => void closed.push('bus'));
    opened.add(() => void closed.push('timers'));

    await opened.closeAll();

    expect(closed).toEqual(['timers', 'bus', 'store']);
  });

  it('awaits each async close before starting the next', async () => {
    const events: string[] = [];
    const closer = (name: string, ms: number) => async () => {
      events.push(`${name} start`);
      await new Promise((resolve) => setTimeout(resolve, ms));
      events.push(`${name} end`);
    };
    const opened = createOpenedResources();
    // The older closer is the quicker one: without awaiting, its end would come first.
    opened.add(closer('store', 1));
    opened.add(closer('bus', 20));

    await opened.closeAll();

    expect(events).toEqual(['bus start', 'bus end', 'store start', 'store end']);
  });

  it('resolves closeAll only after the last async close finished', async () => {
    let finished = false;
    const opened = createOpenedResources();
    opened.add(async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      finished = true;
    });

    await opened.closeAll();

    expect(finished).toBe(true);
  });

  it('reports a close that throws or rejects to onCloseError and still runs the others', async () => {
    const closed: string[] = [];
    const syncFailure = new Error('bus quit twice');
    const asyncFailure = new Error('pool already destroyed');
    const onCloseError = vi.fn();
    const opened = createOpenedResources({ onCloseError });
    opened.add(() => void closed.push('store'));
    opened.add(async () => {
      throw asyncFailure;
    });
    opened.add(() => void closed.push('bus'));
    opened.add(() => {
      throw syncFailure;
    });

    await expect(opened.closeAll()).resolves.toBeUndefined();

    expect(closed).toEqual(['bus', 'store']);
    expect(onCloseError.mock.calls).toEqual([[syncFailure], [asyncFailure]]);
  });

  it('swallows a failing close when no onCloseError is given', async () => {
    const close = vi.fn();
    const opened = createOpenedResources();
    opened.add(close);
    opened.add(() => {
      throw new Error('ignored');
    });

    await expect(opened.closeAll()).resolves.toBeUndefined();
    expect(close).toHaveBeenCalledTimes(1);
  });

  it('closes each resource once, however often closeAll is called', async () => {
    const close = vi.fn();
    const opened = createOpenedResources();
    opened.add(close);

    await opened.closeAll();
    await opened.closeAll();

    expect(close).toHaveBeenCalledTimes(1);
  });

  it('does not close again a resource whose close failed', async () => {
    const close = vi.fn(() => {
      throw new Error('failed');
    });
    const onCloseError = vi.fn();
    const opened = createOpenedResources({ onCloseError });
    opened.add(close);

    await opened.closeAll();
    await opened.closeAll();

    expect(close).toHaveBeenCalledTimes(1);
    expect(onCloseError).toHaveBeenCalledTimes(1);
  });

  it('closes resources added after a closeAll on the next closeAll', async () => {
    const first = vi.fn();
    const second = vi.fn();
    const opened = createOpenedResources();
    opened.add(first);
    await opened.closeAll();

    opened.add(second);
    await opened.closeAll();

    expect(first).toHaveBeenCalledTimes(1);
    expect(second).toHaveBeenCalledTimes(1);
  });

  it('closes each resource once when two closeAll calls overlap', async () => {
    const slow = vi.fn(() => new Promise<void>((resolve) => setTimeout(resolve, 5)));
    const older = vi.fn();
    const opened = createOpenedResources();
    opened.add(older);
    opened.add(slow);

    await Promise.all([opened.closeAll(), opened.closeAll()]);

    expect(slow).toHaveBeenCalledTimes(1);
    expect(older).toHaveBeenCalledTimes(1);
  });
});
