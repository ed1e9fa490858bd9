/**
 * Shared helpers of the scale-* benchmarks: a scratch MariaDB database per run, the built CLI as
 * child processes, percentiles, CPU time of a process tree. Loopback only.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import knexFactory from 'knex';
import { childPids, spawnGateway, type GatewayProcess } from '../test/support/process.js';

export function requireEnv(...names: string[]): void {
  const missing = names.filter((name) => !process.env[name]);
  if (missing.length > 0) {
    console.error(`${missing.join(', ')} not set: eval "$(bash scripts/services.sh up)" (and scripts/redis-cluster.sh up for the cluster)`);
    process.exit(2);
  }
}

export async function withScratchDatabase<T>(run: (mysqlUrl: string, name: string) => Promise<T>): Promise<T> {
  const name = `lpg_bench_${randomBytes(4).toString('hex')}`;
  const admin = knexFactory({ client: 'mysql2', connection: process.env.MYSQL_URL!, pool: { min: 0, max: 1 } });
  await admin.raw('CREATE DATABASE ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_bin', [name]);
  const url = new URL(process.env.MYSQL_URL!);
  url.pathname = `/${name}`;
  try {
    return await run(url.toString(), name);
  } finally {
    await admin.raw('DROP DATABASE IF EXISTS ??', [name]);
    await admin.destroy();
  }
}

export type Spawned = GatewayProcess;

/** `longpoll-gateway start [args]` from the build, resolved once the banner names its URL. */
export function spawnCli(args: string[], env: Record<string, string>): Promise<Spawned> {
  return spawnGateway({ LOG_LEVEL: 'error', ...env }, { args, timeoutMs: 30_000 });
}

export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** utime + stime in seconds of a process and its direct children (the workers). */
export function cpuSecondsOfTree(pid: number): number {
  const ticks = (p: number) => {
    try {
      const fields = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(fields[11]) + Number(fields[12]);
    } catch {
      return 0;
    }
  };
  return [pid, ...childPids(pid)].reduce((sum, p) => sum + ticks(p), 0) / 100;
}

export function rssMiBOfTree(pid: number): number {
  const rss = (p: number) => {
    try {
      return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))![1]) / 1024;
    } catch {
      return 0;
    }
  };
  return [pid, ...childPids(pid)].reduce((sum, p) => sum + rss(p), 0);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
