import { parseArgs } from 'node:util';
import { createTokenIssuer } from './auth/tokens.js';
import { ConfigError, loadConfig } from './config.js';
import { resolveJwtSecret, startGateway } from './main.js';
import { WorkersConfigError } from './cluster/plan.js';
import { startClustered } from './cluster/start.js';
import { createKnex } from './store/knex-store.js';
import { migrateToLatest } from './store/migrations.js';
import { BENCH_USAGE, BenchUsageError } from './bench/options.js';

const USAGE = `longpoll-gateway <command>

Commands:
  start [--workers N|auto]
                        run the gateway (configuration from environment variables; see README);
                        --workers: processes sharing the port (default auto = one per core with
                        MYSQL_URL + REDIS_URL/REDIS_CLUSTER_NODES, else 1)
  token <user> [--expires <seconds>]
                        print a JWT for <user> signed with this gateway's secret
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
      store: config.mysqlUrl ? 'mysql' : `sqlite (${config.sqliteFile})`,
      bus: config.redisClusterNodes ? 'redis-cluster' : config.redisUrl ? 'redis' : 'in-process',
    },
    `longpoll-gateway listening on ${gateway.url}`,
  );
  process.stdout.write(`\nlongpoll-gateway listening on ${gateway.url}\n  token:  npm run token -- alice\n  poll:   curl "${gateway.url}/v1/poll?wait=25" -H "Authorization: Bearer $TOKEN"\n${config.demo ? `  demo:   ${gateway.url}/demo/\n` : ''}\n`);
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

async function runToken(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, options: { expires: { type: 'string' } }, allowPositionals: true });
  const userId = positionals[0];
  if (!userId) throw new UsageError('token needs a user id: longpoll-gateway token <user>');
  const expiresInSeconds = values.expires === undefined ? undefined : Number(values.expires);
  if (expiresInSeconds !== undefined && !(Number.isInteger(expiresInSeconds) && expiresInSeconds > 0)) {
    throw new UsageError('--expires must be a positive number of seconds');
  }
  const secret = resolveJwtSecret(loadConfig(process.env));
  const token = await createTokenIssuer({ secret }).issue(userId, expiresInSeconds === undefined ? {} : { expiresInSeconds });
  process.stdout.write(`${token}\n`);
}

async function runMigrate(): Promise<void> {
  const knex = createKnex(loadConfig(process.env));
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
