import { Cluster, Redis } from 'ioredis';
import { parseClusterNodes } from '../../src/config.js';
import { createMemoryPresenceRegistry } from '../../src/presence/memory-registry.js';
import { createRedisPresenceRegistry } from '../../src/presence/redis-registry.js';
import type { PresenceRegistry } from '../../src/presence/types.js';
import { uniqueName } from './backends.js';
import { sleep } from './wait.js';

/**
 * Where the presence of several gateway processes meets, for the registry contract: the memory
 * registry (on fake clocks) and the Redis registry on REDIS_URL and on REDIS_CLUSTER_NODES, each
 * on a prefix of its own so parallel suites never see each other's keys. The registry needs
 * Redis only (no MySQL), so these cases ask for REDIS_URL / REDIS_CLUSTER_NODES alone; with
 * CI=true a missing server fails the run, locally its variant is skipped, loudly.
 */
export interface PresenceWorld {
  name: PresenceCaseName;
  /** The registry one gateway process talks to: its own connection on Redis, the one shared registry in memory. */
  connect(): Promise<PresenceRegistry>;
  /**
   * Lets liveness time pass: the fake monotonic clock (and the wall clock with it) in memory, a
   * real wait on Redis, whose liveness runs on its own TIME.
   */
  elapse(ms: number): Promise<void>;
  /** The wall clock the registry stamps with (the fake one in memory, the host's on Redis). */
  wallNow(): number;
  /** Loses every entry and liveness, as a Redis restarted without persistence does. */
  loseData(): Promise<void>;
  /** Closes every registry connected and deletes the keys. */
  cleanup(): Promise<void>;
}

/** A memory world also lets its wall clock step on its own (an NTP correction, a VM resume). */
export interface MemoryPresenceWorld extends PresenceWorld {
  stepWallClock(ms: number): void;
}

export type PresenceCaseName = 'memory' | 'redis' | 'redis-cluster';

export function createMemoryWorld(): MemoryPresenceWorld {
  let monotonic = 1_000;
  let wall = Date.UTC(2030, 0, 1);
  const make = () => createMemoryPresenceRegistry({ now: () => monotonic, wallClock: () => wall });
  let current = make();
  // Every process holds this one handle, so losing the data (a fresh registry) reaches them all.
  const shared: PresenceRegistry = {
    join: (...args) => current.join(...args),
    leave: (...args) => current.leave(...args),
    heartbeat: (...args) => current.heartbeat(...args),
    users: (...args) => current.users(...args),
    topicMembers: (...args) => current.topicMembers(...args),
    close: async () => {},
  };
  return {
    name: 'memory',
    connect: async () => shared,
    async elapse(ms) {
      monotonic += ms;
      wall += ms;
    },
    wallNow: () => wall,
    async loseData() {
      current = make();
    },
    stepWallClock(ms) {
      wall += ms;
    },
    async cleanup() {},
  };
}

/** A Redis world also names the key its scripts are called with, and connects to its servers directly. */
export interface RedisPresenceWorld extends PresenceWorld {
  name: 'redis' | 'redis-cluster';
  /** KEYS[1] of every script the registry runs: `{<prefix>presence}:`. */
  scriptKey: string;
  /** A plain connection to each server (every cluster node), e.g. to MONITOR it; closed by `cleanup`. */
  connectToEachServer(): Redis[];
}

/** Deletes every key of a registry prefix (they share one hash tag, so one slot, so one node). */
async function deletePrefixKeys(admin: Redis | Cluster, prefix: string): Promise<number> {
  const match = `{${prefix}presence}:*`;
  // The cluster client learns its masters once it is ready; a command waits for that.
  if (admin instanceof Cluster) await admin.ping();
  const nodes = admin instanceof Cluster ? admin.nodes('master') : [admin];
  let deleted = 0;
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1_000);
      cursor = next;
      if (keys.length > 0) deleted += await node.del(...keys);
    } while (cursor !== '0');
  }
  return deleted;
}

function redisWorld(kind: 'redis' | 'redis-cluster'): RedisPresenceWorld {
  const prefix = `${uniqueName('presence')}:`;
  const registries: PresenceRegistry[] = [];
  const servers: Redis[] = [];
  const nodes = parseClusterNodes(process.env.REDIS_CLUSTER_NODES ?? '');
  const admin = kind === 'redis' ? new Redis(process.env.REDIS_URL!) : new Cluster(nodes.map(({ host, port }) => ({ host, port })));
  return {
    name: kind,
    scriptKey: `{${prefix}presence}:`,
    connectToEachServer() {
      const connected = kind === 'redis' ? [new Redis(process.env.REDIS_URL!)] : nodes.map(({ host, port }) => new Redis({ host, port }));
      servers.push(...connected);
      return connected;
    },
    async connect() {
      const registry = await createRedisPresenceRegistry(kind === 'redis' ? { url: process.env.REDIS_URL!, prefix } : { nodes, prefix });
      registries.push(registry);
      return registry;
    },
    elapse: (ms) => sleep(ms),
    wallNow: () => Date.now(),
    async loseData() {
      await deletePrefixKeys(admin, prefix);
    },
    async cleanup() {
      await Promise.all(registries.splice(0).map((registry) => registry.close()));
      for (const server of servers.splice(0)) server.disconnect();
      try {
        await deletePrefixKeys(admin, prefix);
      } finally {
        admin.disconnect();
      }
    },
  };
}

const warned = new Set<string>();
function redisVariantWanted(variable: 'REDIS_URL' | 'REDIS_CLUSTER_NODES', what: string): boolean {
  if (process.env[variable]) return true;
  if (process.env.CI === 'true') throw new Error(`CI=true but ${variable} is not set: ${what} cannot run. Start it with scripts/services.sh up (scripts/redis-cluster.sh up for the cluster).`);
  if (warned.has(variable)) return false;
  warned.add(variable);
  console.warn(`\n!!! SKIPPED ${variable === 'REDIS_URL' ? 'Redis' : 'Redis Cluster'} variant (${what}): ${variable} not set.\n`);
  return false;
}

/**
 * Cases for `describe.each(presenceRegistryCases('...'))('$name', ({ makeWorld }) => …)`: memory
 * always, Redis and Redis Cluster when configured (required in CI). Each test makes its own world.
 */
export function presenceRegistryCases(what: string): Array<{ name: PresenceCaseName; makeWorld: () => PresenceWorld }> {
  return [{ name: 'memory', makeWorld: createMemoryWorld }, ...redisPresenceRegistryCases(what)];
}

/** The Redis and Redis Cluster cases alone (empty locally without the servers, loudly; a failure with CI=true). */
export function redisPresenceRegistryCases(what: string): Array<{ name: 'redis' | 'redis-cluster'; makeWorld: () => RedisPresenceWorld }> {
  const cases: Array<{ name: 'redis' | 'redis-cluster'; makeWorld: () => RedisPresenceWorld }> = [];
  if (redisVariantWanted('REDIS_URL', what)) cases.push({ name: 'redis', makeWorld: () => redisWorld('redis') });
  if (redisVariantWanted('REDIS_CLUSTER_NODES', what)) cases.push({ name: 'redis-cluster', makeWorld: () => redisWorld('redis-cluster') });
  return cases;
}
