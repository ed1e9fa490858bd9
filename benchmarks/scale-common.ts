/**
 * Shared helpers of the scale-* benchmarks: a scratch MariaDB database per run, the built CLI as
 * child processes, percentiles, CPU time of a process tree. Loopback only.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import knexFactory from 'knex';
import { assertBuilt, BIN } from '../test/support/process.js';

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

export interface Spawned {
  url: string;
  child: ChildProcess;
  output(): string;
  stop(): Promise<number | null>;
}

/** `longpoll-gateway start [args]` from the build, resolved once the banner names its URL. */
export async function spawnCli(args: string[], env: Record<string, string>): Promise<Spawned> {
  assertBuilt();
  const child = spawn(process.execPath, [BIN, 'start', ...args], {
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'error', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${output}`)), 30_000);
    child.stdout!.on('data', () => {
      const match = /listening on (http:\/\/[\d.:]+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void exited.then((code) => reject(new Error(`gateway exited with ${code}:\n${output}`)));
  });
  return {
    url,
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await exited;
      process.off('exit', kill);
      return code;
    },
  };
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
  let children: number[] = [];
  try {
    children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    children = [];
  }
  return [pid, ...children].reduce((sum, p) => sum + ticks(p), 0) / 100;
}

export function rssMiBOfTree(pid: number): number {
  const rss = (p: number) => {
    try {
      return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))![1]) / 1024;
    } catch {
      return 0;
    }
  };
  let children: number[] = [];
  try {
    children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    children = [];
  }
  return [pid, ...children].reduce((sum, p) => sum + rss(p), 0);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
