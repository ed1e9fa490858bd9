/**
 * Shared plumbing of the benchmarks: peers (the gateway, bare node:http and minimal Koa holders,
 * Nchan), an isolated MariaDB database + Redis prefix per run, /proc sampling, tables and JSON.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import knexFactory from 'knex';
import { formatTable } from '../src/bench/report.js';
import { spawnGateway, spawnNodeUntilListening } from '../test/support/process.js';
import { startNchan } from './peers/nchan.js';

// Ctrl-C or a timeout's SIGTERM must still run the 'exit' handlers that kill the peers we spawned.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

export type PeerKind = 'gateway' | 'bare' | 'koa' | 'nchan' | 'socketio';

export interface Peer {
  kind: PeerKind;
  name: string;
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export const PEER_NAMES: Record<PeerKind, string> = {
  gateway: 'longpoll-gateway',
  bare: 'bare node:http holder',
  koa: 'minimal Koa + @koa/router holder',
  nchan: 'Nchan (nginx)',
  socketio: 'Socket.IO (polling transport only)',
};

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Waits until RSS stops growing (polls still being parsed and registered count otherwise). */
export async function settledRssKiB(pid: number, maxMs = 15_000): Promise<number> {
  let previous = rssKiB(pid);
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    await sleep(700);
    const current = rssKiB(pid);
    if (Math.abs(current - previous) <= previous * 0.005) return current;
    previous = current;
  }
  return rssKiB(pid);
}

export function realServers(): { mysqlUrl: string; redisUrl: string } | undefined {
  const { MYSQL_URL: mysqlUrl, REDIS_URL: redisUrl } = process.env;
  return mysqlUrl && redisUrl ? { mysqlUrl, redisUrl } : undefined;
}

/** A fresh database and Redis prefix for one benchmark run; `drop()` removes the database. */
export async function benchDatabase(): Promise<{ env: Record<string, string>; mysqlUrl: string; drop(): Promise<void> }> {
  const servers = realServers();
  if (!servers) throw new Error('MYSQL_URL / REDIS_URL are not set: run eval "$(bash scripts/services.sh up)"');
  const name = `lpg_bench_${randomBytes(4).toString('hex')}`;
  const admin = knexFactory({ client: 'mysql2', connection: servers.mysqlUrl, pool: { min: 0, max: 1 } });
  await admin.raw('CREATE DATABASE ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_bin', [name]);
  const url = new URL(servers.mysqlUrl);
  url.pathname = `/${name}`;
  return {
    mysqlUrl: url.toString(),
    env: { MYSQL_URL: url.toString(), REDIS_URL: servers.redisUrl, REDIS_PREFIX: `${name}:` },
    async drop() {
      try {
        await admin.raw('DROP DATABASE IF EXISTS ??', [name]);
      } finally {
        await admin.destroy();
      }
    },
  };
}

const PEER_DIR = fileURLToPath(new URL('./peers/', import.meta.url));

async function spawnNodePeer(kind: 'bare' | 'koa' | 'socketio'): Promise<Peer> {
  const peer = await spawnNodeUntilListening([`${PEER_DIR}${kind}-holder.mjs`, '0'], {}, { label: `${kind} holder` });
  return {
    kind,
    name: PEER_NAMES[kind],
    url: peer.url,
    pid: peer.child.pid!,
    async stop() {
      await peer.stop('SIGTERM');
    },
  };
}

/**
 * Starts one peer. The gateway is the built CLI (`npm run build` first) on MariaDB + Redis when
 * MYSQL_URL / REDIS_URL are set, else on the embedded defaults; `gatewayEnv` adds variables.
 */
export async function startPeer(kind: PeerKind, secret: string, gatewayEnv: Record<string, string> = {}): Promise<Peer & { backend?: string }> {
  if (kind === 'bare' || kind === 'koa' || kind === 'socketio') return spawnNodePeer(kind);
  if (kind === 'nchan') {
    const nchan = await startNchan();
    return { kind, name: PEER_NAMES.nchan, url: nchan.url, pid: nchan.pid, stop: () => nchan.stop() };
  }
  const database = realServers() ? await benchDatabase() : undefined;
  const gateway = await spawnGateway({
    GATEWAY_JWT_SECRET: secret,
    LOG_LEVEL: 'error',
    POLL_WAIT_MAX_S: '120',
    // One process: `start` would otherwise fork one worker per core on MariaDB + Redis.
    GATEWAY_WORKERS: '1',
    // The publisher is one user on one address: per-user / per-IP publish limits would measure themselves.
    PUBLISH_RATE_PER_USER: '0',
    PUBLISH_RATE_PER_IP: '0',
    MAX_HELD_POLLS: '60000',
    ...(database ? database.env : { SQLITE_FILE: ':memory:' }),
    ...gatewayEnv,
  });
  return {
    kind,
    name: PEER_NAMES.gateway,
    backend: database ? 'MariaDB + Redis' : 'embedded (SQLite + in-process bus)',
    url: gateway.url,
    pid: gateway.child.pid!,
    async stop() {
      await gateway.stop();
      await database?.drop();
    },
  };
}

export function machine(): string {
  return `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
}

export function parseKinds(raw: string, allowed: readonly string[]): string[] {
  const kinds = raw.split(',').map((kind) => kind.trim()).filter(Boolean);
  for (const kind of kinds) if (!allowed.includes(kind)) throw new Error(`unknown peer ${JSON.stringify(kind)}; expected some of ${allowed.join(', ')}`);
  return kinds;
}

/** Prints a table (stdout) and one JSON line, the format every benchmark ends with. */
export function report(benchmark: string, header: string[], rows: Array<Array<string | number>>, json: Record<string, unknown>): void {
  process.stdout.write(`\n${formatTable([header, ...rows.map((row) => row.map(String))])}\n\n`);
  process.stdout.write(`${JSON.stringify({ benchmark, date: new Date().toISOString(), machine: machine(), ...json })}\n`);
}

export const fmt = (value: number | null | undefined, digits = 1): string =>
  value === null || value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);

/**
 * The built gateway with extra node flags (`--cpu-prof`, which NODE_OPTIONS refuses). Stops with
 * SIGTERM, so the gateway drains and exits normally (profiles are written at exit).
 */
export async function spawnGatewayWithFlags(flags: string[], env: Record<string, string>): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const gateway = await spawnGateway({ LOG_LEVEL: 'error', ...env }, { nodeFlags: flags });
  return {
    url: gateway.url,
    pid: gateway.child.pid!,
    async stop() {
      await gateway.stop('SIGTERM');
    },
  };
}
