import { parseArgs } from 'node:util';
import { RECIPIENT_PATTERN, TOKEN_SCOPES, USER_ID_PATTERN, createTokenIssuer, type TokenIssueOptions, type TokenScope } from './auth/tokens.js';
import { ConfigError, loadConfig } from './config.js';
import { resolveJwtSecret, startGateway } from './start-from-env.js';
import { WorkersConfigError } from './cluster/plan.js';
import { startClustered } from './cluster/start.js';
import { createKnex } from './store/knex/index.js';
import { migrateToLatest } from './store/migrations.js';
import { BENCH_USAGE, BenchUsageError } from './bench/options.js';

const USAGE = `longpoll-gateway <command>

Commands:
  start [--workers N|auto]
                        run the gateway (configuration from environment variables; see README);
                        --workers: processes sharing the port (default auto = one per core with
                        MYSQL_URL + REDIS_URL/REDIS_CLUSTER_NODES, else 1)
  token <user> [--pub <recipients>] [--scope poll,publish] [--ttl <duration>]
                        print a JWT for <user> signed with this gateway's secret;
                        --pub: whom it may publish to, comma-separated or repeated: user ids,
                        prefix* patterns, '*' for anyone (omitted: PUBLISH_DEFAULT decides);
                        --scope: poll, publish or both (omitted: both);
                        --ttl: lifetime like 3600, 90s, 15m, 1h, 7d (--expires <seconds> also works)
  migrate               bring the database schema up to date and exit
  bench [options]       load-test a gateway: short vs long polling (longpoll-gateway bench --help)
`;

async function runStart(args: string[]): Promise<void> {
  if (await startClustered(args)) return;
  const gateway = await startGateway(process.env);
  const { config, logger } = gateway;
  logger.info(
    {
      url: gateway.url,
      store: config.store.mysqlUrl ? 'mysql' : `sqlite (${config.store.sqliteFile})`,
      bus: config.redis.clusterNodes ? 'redis-cluster' : config.redis.url ? 'redis' : 'in-process',
    },
    `longpoll-gateway listening on ${gateway.url}`,
  );
  process.stdout.write(`\nlongpoll-gateway listening on ${gateway.url}\n  token:  npm run token -- alice\n  poll:   curl "${gateway.url}/v1/poll?wait=25" -H "Authorization: Bearer $TOKEN"\n${config.http.demo ? `  demo:   ${gateway.url}/demo/\n` : ''}\n`);
  let signals = 0;
  const shutdown = (signal: string) => {
    signals += 1;
    if (signals > 1) process.exit(1);
    logger.info({ signal }, 'draining');
    gateway.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

const TTL_UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };
const MAX_TTL_SECONDS = 3650 * 86_400;

/** `--ttl`: a positive whole number of seconds, or of minutes / hours / days with an m / h / d suffix. */
export function parseTtl(raw: string): number {
  const match = /^(\d{1,10})([smhd]?)$/.exec(raw.trim());
  const seconds = match ? Number(match[1]) * TTL_UNITS[match[2] || 's']! : NaN;
  if (!(seconds > 0 && seconds <= MAX_TTL_SECONDS)) {
    throw new UsageError(`--ttl must be a positive duration of at most 3650d, like 3600, 90s, 15m, 1h or 7d; got ${JSON.stringify(raw)}`);
  }
  return seconds;
}

/** `--pub a,b --pub 'agent:*'`: every entry a user id or a prefix* pattern. */
export function parsePub(values: string[]): string[] {
  const entries = values.flatMap((value) => value.split(',')).map((entry) => entry.trim());
  for (const entry of entries) {
    if (!RECIPIENT_PATTERN.test(entry)) {
      throw new UsageError(
        `--pub takes user ids and prefix* patterns (the * only at the end; '*' alone = anyone), comma-separated; got ${JSON.stringify(entry)}`,
      );
    }
  }
  return entries;
}

/** `--scope poll,publish` (or space-separated): at least one of poll, publish. */
export function parseScope(raw: string): TokenScope[] {
  const names = raw.split(/[\s,]+/).filter((name) => name !== '');
  if (names.length === 0 || !names.every((name) => (TOKEN_SCOPES as readonly string[]).includes(name))) {
    throw new UsageError(`--scope must be poll, publish or poll,publish; got ${JSON.stringify(raw)}`);
  }
  return [...new Set(names as TokenScope[])];
}

async function runToken(args: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { expires: { type: 'string' }, ttl: { type: 'string' }, pub: { type: 'string', multiple: true }, scope: { type: 'string' } },
      allowPositionals: true,
    });
  } catch (error) {
    // parseArgs names the unknown option or the missing value; say how the command is used too.
    throw new UsageError(`${(error as Error).message}\n\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  const userId = positionals[0];
  if (!userId) throw new UsageError('token needs a user id: longpoll-gateway token <user> [--pub <recipients>] [--scope poll,publish] [--ttl 1h]');
  if (positionals.length > 1) throw new UsageError(`token takes one user id, got ${positionals.length}: ${positionals.map((p) => JSON.stringify(p)).join(' ')}`);
  if (!USER_ID_PATTERN.test(userId)) throw new UsageError(`user id must be 1-128 characters of A-Z a-z 0-9 . _ : @ -; got ${JSON.stringify(userId)}`);
  if (values.expires !== undefined && values.ttl !== undefined) throw new UsageError('give either --ttl or --expires, not both');
  const options: TokenIssueOptions = {};
  if (values.expires !== undefined) {
    const expiresInSeconds = Number(values.expires);
    if (!(Number.isInteger(expiresInSeconds) && expiresInSeconds > 0)) throw new UsageError('--expires must be a positive number of seconds');
    options.expiresInSeconds = expiresInSeconds;
  }
  if (values.ttl !== undefined) options.expiresInSeconds = parseTtl(values.ttl);
  if (values.pub !== undefined) options.pub = parsePub(values.pub);
  if (values.scope !== undefined) options.scope = parseScope(values.scope);
  const secret = resolveJwtSecret(loadConfig(process.env), process.env);
  const token = await createTokenIssuer({ secret }).issue(userId, options);
  process.stdout.write(`${token}\n`);
}

async function runMigrate(): Promise<void> {
  const knex = createKnex(loadConfig(process.env).store);
  try {
    await migrateToLatest(knex);
    process.stdout.write('schema is up to date\n');
  } finally {
    await knex.destroy();
  }
}

async function runBench(args: string[]): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(BENCH_USAGE);
    return;
  }
  // Loaded on demand: the gateway itself never needs the load tester's modules.
  const { runBenchCommand } = await import('./bench/command.js');
  process.exitCode = await runBenchCommand(args, process.env, { stdout: process.stdout, stderr: process.stderr });
}

class UsageError extends Error {}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'start':
        return await runStart(rest);
      case 'token':
        return await runToken(rest);
      case 'migrate':
        return await runMigrate();
      case 'bench':
        return await runBench(rest);
      case undefined:
      case '-h':
      case '--help':
        process.stdout.write(USAGE);
        return;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    }
  } catch (error) {
    if (error instanceof ConfigError || error instanceof UsageError || error instanceof WorkersConfigError || error instanceof BenchUsageError) {
      process.stderr.write(`longpoll-gateway: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}
