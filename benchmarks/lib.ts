/**
 * Shared plumbing of the benchmarks: peers (the gateway, bare node:http and minimal Koa holders,
 * Nchan), an isolated MariaDB database + Redis prefix per run, /proc sampling, CPU pinning,
 * MariaDB / Redis statement counters per delivered message, tables and JSON.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import knexFactory from 'knex';
import { createConnection } from 'mysql2/promise';
import { formatTable } from '../src/bench/report.js';
import { childPids, spawnGateway, spawnNodeUntilListening } from '../test/support/process.js';
import { cpuSecondsOfTree } from './scale-common.js';
import { startNchan } from './peers/nchan.js';

// Ctrl-C or a timeout's SIGTERM must still run the 'exit' handlers that kill the peers we spawned.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

export type PeerKind = 'gateway' | 'bare' | 'koa' | 'nchan' | 'socketio' | 'ws' | 'durable';

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
  ws: 'minimal ws holder',
  durable: 'durable floor (node:http + one mysql2 INSERT per publish)',
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

async function spawnNodePeer(kind: 'bare' | 'koa' | 'socketio' | 'ws'): Promise<Peer> {
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
/** `nodeFlags` (e.g. `--cpu-prof`) apply to the gateway only; it is stopped with SIGTERM, so a profile is written. */
export async function startPeer(kind: PeerKind, secret: string, gatewayEnv: Record<string, string> = {}, nodeFlags: string[] = []): Promise<Peer & { backend?: string; databaseUrl?: string; redisPrefix?: string }> {
  if (kind === 'bare' || kind === 'koa' || kind === 'socketio' || kind === 'ws') return spawnNodePeer(kind);
  if (kind === 'durable') {
    // Its own database, like the gateway's: one INSERT per publish, nothing else.
    const database = await benchDatabase();
    const peer = await spawnNodeUntilListening([`${PEER_DIR}durable-holder.mjs`, '0'], { MYSQL_URL: database.mysqlUrl }, { label: 'durable floor' });
    return {
      kind,
      name: PEER_NAMES.durable,
      url: peer.url,
      pid: peer.child.pid!,
      databaseUrl: database.mysqlUrl,
      async stop() {
        await peer.stop('SIGTERM');
        await database.drop();
      },
    };
  }
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
  }, nodeFlags.length > 0 ? { nodeFlags } : undefined);
  return {
    kind,
    name: PEER_NAMES.gateway,
    backend: database ? 'MariaDB + Redis' : 'embedded (SQLite + in-process bus)',
    ...(database ? { databaseUrl: database.env.MYSQL_URL, redisPrefix: database.env.REDIS_PREFIX } : {}),
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

/**
 * Prints a table (stdout) and one JSON line, the format every benchmark ends with; `notes` (more
 * tables, verdicts) go between them, so the JSON stays the last line.
 */
export function report(benchmark: string, header: string[], rows: Array<Array<string | number>>, json: Record<string, unknown>, notes: string[] = []): void {
  process.stdout.write(`\n${formatTable([header, ...rows.map((row) => row.map(String))])}\n\n`);
  for (const note of notes) process.stdout.write(`${note}\n\n`);
  process.stdout.write(`${JSON.stringify({ benchmark, date: new Date().toISOString(), machine: machine(), ...json })}\n`);
}

export { formatTable };

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

/**
 * `--pin`: every server under test on CPU 0 (all its threads and worker processes), the load
 * generator (this process) on CPU 1, so the two never take turns on one core and a ratio between
 * two servers is not a ratio between two schedulings. MariaDB and Redis are not pinned: they run
 * wherever the kernel puts them, as in production.
 */
export interface CpuPinning {
  /** What was pinned where, for the JSON; null when pinning is off or not possible here. */
  readonly description: { server: string; loadGenerator: string; tool: string } | null;
  /** Pins a server process, its threads and its child processes (the workers) to the server CPU. */
  server(pid: number): void;
}

const SERVER_CPU = '0';
const LOAD_GENERATOR_CPU = '1';

function taskset(cpu: string, pid: number): void {
  // -a: every thread (libuv's pool, V8's), not only the main one; threads made later inherit it.
  execFileSync('taskset', ['-a', '-p', '-c', cpu, String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Pins this process now (when `enabled`) and returns how to pin each server once it started. */
export function cpuPinning(enabled: boolean): CpuPinning {
  const off: CpuPinning = { description: null, server() {} };
  if (!enabled) return off;
  const skip = (why: string) => {
    process.stderr.write(`warning: --pin skipped: ${why}; servers and load generator share all cores\n`);
    return off;
  };
  if (availableParallelism() < 2) return skip(`only ${availableParallelism()} CPU available`);
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
  } catch {
    return skip('taskset is not installed (util-linux)');
  }
  try {
    taskset(LOAD_GENERATOR_CPU, process.pid);
  } catch (error) {
    return skip(`taskset -c ${LOAD_GENERATOR_CPU} failed: ${String((error as { stderr?: Buffer }).stderr ?? (error as Error).message).trim()}`);
  }
  return {
    description: { server: `CPU ${SERVER_CPU}`, loadGenerator: `CPU ${LOAD_GENERATOR_CPU}`, tool: 'taskset -a -p -c' },
    server(pid) {
      // Children spawned by this process inherit its CPU 1: every server is moved explicitly.
      for (const each of [pid, ...childPids(pid)]) taskset(SERVER_CPU, each);
    },
  };
}

/**
 * Statement counters of the MariaDB and Redis servers, read around a run and divided by the
 * messages delivered in it. Both are server-wide (SHOW GLOBAL STATUS, INFO commandstats): other
 * clients of the same servers (a test suite, another benchmark) add to them, so the figures are an
 * upper bound. A holder run (no database, no Redis) measures that background.
 */
export const SQL_STATEMENT_COUNTERS = [
  'Com_insert',
  'Com_update',
  'Com_select',
  'Com_delete',
  // The same statements in other shapes, so that rewriting one does not make it disappear.
  'Com_insert_select',
  'Com_replace',
  'Com_update_multi',
  'Com_delete_multi',
] as const;
export const MARIADB_COUNTERS = [...SQL_STATEMENT_COUNTERS, 'Com_begin', 'Com_commit', 'Com_rollback', 'Questions', 'Innodb_os_log_fsyncs'] as const;

export interface BackendSnapshot {
  mariadb: Record<string, number>;
  /** Calls per command (`get`, `client|setname`), from `cmdstat_<name>:calls=`. */
  redis: Record<string, number>;
}

export interface BackendCost {
  delivered: number;
  /** Com_insert + Com_update + Com_select + Com_delete (+ their _multi / insert_select / replace forms) per message. */
  sqlStatementsPerMessage: number | null;
  /** Each MariaDB counter's delta per message (Com_begin, Com_commit, … included). */
  mariadbPerMessage: Record<string, number | null>;
  mariadbDeltas: Record<string, number>;
  /** Redis commands per message, every command but our own INFO. */
  redisCommandsPerMessage: number | null;
  redisPerMessageByCommand: Record<string, number | null>;
  redisDeltas: Record<string, number>;
}

export interface BackendCounters {
  snapshot(): Promise<BackendSnapshot>;
  close(): Promise<void>;
}

/** One connection to each server for the whole benchmark (connecting would count statements); undefined without MYSQL_URL / REDIS_URL. */
export async function openBackendCounters(servers = realServers()): Promise<BackendCounters | undefined> {
  if (!servers) return undefined;
  const mysql = await createConnection({ uri: servers.mysqlUrl });
  const redis = new Redis(servers.redisUrl, { lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 1 });
  await redis.connect();
  return {
    async snapshot() {
      const [rows] = (await mysql.query('SHOW GLOBAL STATUS WHERE Variable_name IN (?)', [MARIADB_COUNTERS])) as unknown as [Array<{ Variable_name: string; Value: string }>];
      return { mariadb: Object.fromEntries(rows.map((row) => [row.Variable_name, Number(row.Value)])), redis: parseCommandStats(await redis.info('commandstats')) };
    },
    async close() {
      await mysql.end();
      redis.disconnect();
    },
  };
}

export function parseCommandStats(info: string): Record<string, number> {
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[match[1]!] = Number(match[2]);
  return calls;
}

const perMessage = (delta: number, delivered: number): number | null => (delivered > 0 ? delta / delivered : null);

export function backendCost(before: BackendSnapshot, after: BackendSnapshot, delivered: number): BackendCost {
  const mariadbDeltas = Object.fromEntries(MARIADB_COUNTERS.map((name) => [name, (after.mariadb[name] ?? 0) - (before.mariadb[name] ?? 0)]));
  const statements = SQL_STATEMENT_COUNTERS.reduce((sum, name) => sum + mariadbDeltas[name]!, 0);
  const redisDeltas: Record<string, number> = {};
  for (const [command, calls] of Object.entries(after.redis)) {
    // Our own INFO (and ioredis' ready check): not the gateway's.
    if (command === 'info') continue;
    const delta = calls - (before.redis[command] ?? 0);
    if (delta > 0) redisDeltas[command] = delta;
  }
  const redisTotal = Object.values(redisDeltas).reduce((sum, calls) => sum + calls, 0);
  return {
    delivered,
    sqlStatementsPerMessage: perMessage(statements, delivered),
    mariadbPerMessage: Object.fromEntries(Object.entries(mariadbDeltas).map(([name, delta]) => [name, perMessage(delta, delivered)])),
    mariadbDeltas,
    redisCommandsPerMessage: perMessage(redisTotal, delivered),
    redisPerMessageByCommand: Object.fromEntries(
      Object.entries(redisDeltas)
        .sort(([, a], [, b]) => b - a)
        .map(([command, delta]) => [command, perMessage(delta, delivered)]),
    ),
    redisDeltas,
  };
}

/**
 * Server-side cost of the deliveries of one runBench mode (pass `hooks` to runBench): MariaDB and
 * Redis counters and the CPU seconds of the server's processes (workers included), from just
 * before the first publish to the end of the drain, so opening and closing thousands of polls is
 * not charged to the messages. `cost` is null without counters (the embedded backend).
 */
export function meterDeliveries(
  counters: BackendCounters | undefined,
  serverPid?: number,
): {
  hooks: { deliveryWindow(): { start(): Promise<void>; end(): Promise<void> } };
  cost(delivered: number): BackendCost | null;
  serverCpuSeconds(): number | null;
} {
  let before: BackendSnapshot | undefined;
  let after: BackendSnapshot | undefined;
  let cpuBefore: number | undefined;
  let cpuAfter: number | undefined;
  return {
    hooks: {
      deliveryWindow: () => ({
        async start() {
          before = await counters?.snapshot();
          if (serverPid !== undefined) cpuBefore = cpuSecondsOfTree(serverPid);
        },
        async end() {
          if (serverPid !== undefined) cpuAfter = cpuSecondsOfTree(serverPid);
          after = await counters?.snapshot();
        },
      }),
    },
    cost: (delivered) => (before && after ? backendCost(before, after, delivered) : null),
    serverCpuSeconds: () => (cpuBefore !== undefined && cpuAfter !== undefined ? cpuAfter - cpuBefore : null),
  };
}

/** The per-message counter table printed by throughput.ts and latency-under-load.ts. */
export function formatBackendCostTable(rows: Array<{ what: string; cost: BackendCost | null }>): string {
  const counters = ['Com_insert', 'Com_update', 'Com_select', 'Com_delete', 'Com_begin', 'Com_commit', 'Com_rollback'];
  const header = ['per delivered message', 'SQL stmts', ...counters, 'Redis cmds', 'Redis by command'];
  const body = rows.map(({ what, cost }) => [
    what,
    fmt(cost?.sqlStatementsPerMessage, 2),
    ...counters.map((name) => fmt(cost?.mariadbPerMessage[name], 2)),
    fmt(cost?.redisCommandsPerMessage, 2),
    cost
      ? Object.entries(cost.redisPerMessageByCommand)
          .slice(0, 4)
          .map(([command, value]) => `${command} ${fmt(value, 2)}`)
          .join(', ') || '-'
      : '-',
  ]);
  return [
    formatTable([header, ...body]),
    'SQL stmts = Com_insert + Com_update + Com_select + Com_delete (+ _multi, insert_select, replace); Redis cmds = every command but INFO.',
    'Server-wide counters (SHOW GLOBAL STATUS, INFO commandstats): other clients of the same MariaDB / Redis add to them; holder rows (no database, no Redis) show that background.',
  ].join('\n');
}
