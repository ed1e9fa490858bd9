import { availableParallelism } from 'node:os';
import type { GatewayConfig } from '../config.js';

/** Why a worker count cannot run with this configuration; the CLI prints it and exits 2. */
export class WorkersConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkersConfigError';
  }
}

/**
 * How many worker processes `start` runs. Workers are separate processes: they see each other's
 * messages only through a shared MySQL and each other's wake-ups only through Redis. The embedded
 * defaults cannot be shared (the in-process bus reaches one process; SQLite would serialise every
 * worker's writes on one file lock and turn the waits into 503s), so more than one worker needs
 * MYSQL_URL plus REDIS_URL or REDIS_CLUSTER_NODES.
 *
 * @param requested `--workers` (or GATEWAY_WORKERS); 0 or undefined = one per core when the
 *   store and bus can be shared, else 1.
 *
 * @example
 * planWorkers(loadConfig(process.env), undefined); // 2 on a 2-core machine with MySQL + Redis
 */
export function planWorkers(config: GatewayConfig, requested: number | undefined, cores = availableParallelism()): number {
  const shareable = config.store.mysqlUrl !== undefined && (config.redis.url !== undefined || config.redis.clusterNodes !== undefined);
  const wanted = requested ?? config.runtime.workers;
  if (wanted === 0) return shareable ? Math.max(1, cores) : 1;
  if (wanted > 1 && !shareable) {
    const missing = [
      config.store.mysqlUrl === undefined ? 'MYSQL_URL' : undefined,
      config.redis.url === undefined && config.redis.clusterNodes === undefined ? 'REDIS_URL (or REDIS_CLUSTER_NODES)' : undefined,
    ].filter((name) => name !== undefined);
    throw new WorkersConfigError(
      `${wanted} workers need ${missing.join(' and ')}: workers are separate processes that share messages only ` +
        'through MySQL and wake-ups only through Redis (SQLite and the in-process bus serve one process). ' +
        'Set them, or run one process with --workers 1.',
    );
  }
  return wanted;
}

/** Parses the `--workers` value: a positive integer, or `auto` (one per core). */
export function parseWorkersFlag(raw: string): number {
  if (raw === 'auto') return 0;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 1024) {
    throw new WorkersConfigError(`--workers must be an integer from 1 to 1024 or "auto", got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}
