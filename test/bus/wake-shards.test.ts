import { describe, expect, it } from 'vitest';
import { USER_ID_PATTERN } from '../../src/auth/tokens.js';
import { allShardChannels, DEFAULT_WAKE_SHARDS, shardChannel, shardOf } from '../../src/bus/channels.js';
import { WakeObservers } from '../../src/bus/wake-observers.js';
import { notifyWokenUsers, resolveWakeShards, wakePayloadsByShard } from '../../src/bus/wake-payload.js';

describe('wake shards', () => {
  it('hashes user ids with FNV-1a 32-bit, so other tools can compute the same shard', () => {
    // Published FNV-1a test vectors, taken modulo 2^32 (the largest "shard count").
    expect(shardOf('', 2 ** 32)).toBe(0x811c9dc5);
    expect(shardOf('a', 2 ** 32)).toBe(0xe40c292c);
    expect(shardOf('foobar', 2 ** 32)).toBe(0xbf9cf968);
    expect(shardOf('foobar', DEFAULT_WAKE_SHARDS)).toBe(0xbf9cf968 % DEFAULT_WAKE_SHARDS);
  });

  it('spreads user ids over all shards', () => {
    const used = new Set(Array.from({ length: 2_000 }, (_, i) => shardOf(`user-${i}`, DEFAULT_WAKE_SHARDS)));
    expect(used.size).toBe(DEFAULT_WAKE_SHARDS);
  });

  it('names shard channels under the prefix, without a {hash tag}', () => {
    expect(shardChannel('lpg:', 7)).toBe('lpg:wake-shard:7');
    const channels = allShardChannels('lpg:', DEFAULT_WAKE_SHARDS);
    expect(new Set(channels).size).toBe(DEFAULT_WAKE_SHARDS);
    for (const channel of channels) expect(channel).not.toMatch(/[{}]/);
  });

  it('sends one payload per shard, naming each user once', () => {
    const users = ['a', 'b', 'c', 'd', 'e', 'a'];
    const payloads = wakePayloadsByShard(users, 4);
    expect(payloads.size).toBe(new Set(users.map((u) => shardOf(u, 4))).size);
    const named = [...payloads.values()].flatMap((payload) => payload.split('\n'));
    expect(named.sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    for (const [shard, payload] of payloads) for (const user of payload.split('\n')) expect(shardOf(user, 4)).toBe(shard);
  });

  it('relies on user ids never containing a newline, and refuses one rather than wake the wrong users', () => {
    expect(USER_ID_PATTERN.test('bob\n')).toBe(false);
    expect(USER_ID_PATTERN.test('bob\nalice')).toBe(false);
    expect(() => wakePayloadsByShard(['bob\nalice'], 4)).toThrow(/without a newline/);
  });

  it('tells the observers every user of a payload, with the head where one is given', () => {
    const observers = new WakeObservers();
    const heard: Array<[string, number | undefined]> = [];
    const stop = observers.observe((userId, head) => heard.push([userId, head]));
    notifyWokenUsers(observers, 'alice\nbob 12\ndave x');
    expect(heard).toEqual([
      ['alice', undefined],
      ['bob', 12],
      ['dave', undefined],
    ]);
    stop();
    stop();
    notifyWokenUsers(observers, 'bob');
    expect(heard).toHaveLength(3);
  });

  it('validates the wakeShards option up front', () => {
    expect(resolveWakeShards(undefined)).toBe(DEFAULT_WAKE_SHARDS);
    expect(resolveWakeShards(16)).toBe(16);
    for (const bad of [0, -1, 1.5, Number.NaN, 1_025]) {
      expect(() => resolveWakeShards(bad)).toThrow('Expected `wakeShards` to be an integer between 1 and 1024');
    }
  });
});
