import { describe, expect, it } from 'vitest';
import { DeliveryLedger } from '../../src/bench/ledger.js';

describe('delivery accounting', () => {
  it('counts a message received once as delivered, with its latency', () => {
    const ledger = new DeliveryLedger(2);
    ledger.publishing(0, 1, 100);
    ledger.acceptedAs(0);
    expect(ledger.outstanding).toBe(1);
    expect(ledger.receive(1, 501, 0, 112)).toBe('new');
    expect(ledger.outstanding).toBe(0);
    expect(ledger.latenciesMs).toEqual([12]);
    expect(ledger.totals()).toMatchObject({ published: 1, delivered: 1, lost: 0, duplicated: 0, redelivered: 0 });
  });

  it('calls an accepted message that never arrived lost', () => {
    const ledger = new DeliveryLedger(1);
    ledger.publishing(0, 0, 0);
    ledger.acceptedAs(0);
    ledger.publishing(1, 0, 0);
    ledger.acceptedAs(1);
    ledger.receive(0, 10, 1, 5);
    expect(ledger.totals()).toMatchObject({ published: 2, delivered: 1, lost: 1 });
  });

  it('separates a redelivery of the same server id (normal, deduplicated) from a duplicate under a new id (a fault)', () => {
    const ledger = new DeliveryLedger(1);
    ledger.publishing(0, 0, 0);
    ledger.acceptedAs(0);
    expect(ledger.receive(0, 10, 0, 5)).toBe('new');
    expect(ledger.receive(0, 10, 0, 9)).toBe('redelivered');
    expect(ledger.receive(0, 11, 0, 9)).toBe('duplicate');
    expect(ledger.totals()).toMatchObject({ delivered: 1, redelivered: 1, duplicated: 1, lost: 0 });
    expect(ledger.latenciesMs).toEqual([5]);
  });

  it('flags messages at the wrong mailbox and messages this run never published', () => {
    const ledger = new DeliveryLedger(2);
    ledger.publishing(0, 0, 0);
    ledger.acceptedAs(0);
    expect(ledger.receive(1, 10, 0, 1)).toBe('misrouted');
    expect(ledger.receive(1, 11, undefined, 1)).toBe('unknown');
    expect(ledger.receive(0, 12, 99, 1)).toBe('unknown');
    expect(ledger.totals()).toMatchObject({ misrouted: 1, unknown: 2, delivered: 0, lost: 1 });
  });

  it('does not wait for, or call lost, a publish that failed for good, but counts it if it shows up', () => {
    const ledger = new DeliveryLedger(1);
    ledger.publishing(0, 0, 0);
    ledger.publishFailedFor(0);
    expect(ledger.outstanding).toBe(0);
    expect(ledger.totals()).toMatchObject({ publishFailed: 1, lost: 0 });
    expect(ledger.receive(0, 10, 0, 3)).toBe('new');
    expect(ledger.outstanding).toBe(0);
    expect(ledger.totals()).toMatchObject({ delivered: 1, lost: 0 });
  });

  it('counts acceptance once when a retried publish is accepted again (duplicate: true)', () => {
    const ledger = new DeliveryLedger(1);
    ledger.publishing(0, 0, 0);
    ledger.acceptedAs(0);
    ledger.acceptedAs(0);
    expect(ledger.totals().published).toBe(1);
  });

  it('rejects load-generator bugs loudly', () => {
    const ledger = new DeliveryLedger(1);
    ledger.publishing(0, 0, 0);
    expect(() => ledger.publishing(0, 0, 0)).toThrow(/twice/);
    expect(() => ledger.publishing(1, 3, 0)).toThrow(RangeError);
    expect(() => ledger.acceptedAs(7)).toThrow(/never published/);
    expect(() => new DeliveryLedger(0)).toThrow(TypeError);
  });
});
