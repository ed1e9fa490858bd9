import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { RECIPIENT_PATTERN, TOKEN_SCOPES, USER_ID_PATTERN, createTokenIssuer, type TokenIssueOptions, type TokenScope, type TopicGrants, type TopicRight } from './auth/tokens.js';
import { MAX_TOPIC_GRANTS, TOPIC_PATTERN, TOPIC_RIGHTS } from './auth/claims.js';
import { ConfigError, loadConfig, type GatewayConfig } from './config.js';
import { checkBusConnection, resolveJwtSecret, startGateway } from './start-from-env.js';
import { WorkersConfigError } from './cluster/plan.js';
import { startClustered } from './cluster/start.js';
import { createKnex } from './store/knex/index.js';
import { migrateToLatest } from './store/migrations.js';
import { BENCH_USAGE, BenchUsageError } from './bench/options.js';
import { describeStartupFailure } from './startup-errors.js';

// Help: each command's text is written once, here (bench's in ./bench/options.ts), and printed by
// `<command> --help`, `<command> -h` and `help <command>` alike; the overall usage is built from
// each command's usage line and summary.

interface CommandHelp {
  /** The usage line after `longpoll-gateway `. */
  usage: string;
  /** One line for the overall usage. */
  summary: string;
  /** The whole `--help` text. */
  help: string;
}

function commandHelp(usage: string, summary: string, body: string): CommandHelp {
  return { usage, summary, help: `longpoll-gateway ${usage}\n\n${body}` };
}

const START = commandHelp(
  'start [--workers N|auto]',
  'run the gateway (configuration from environment variables; see README)',
  `Runs the gateway until SIGTERM or SIGINT (then drains: held polls are answered empty). Configured
by environment variables (README "Configuration"): MYSQL_URL (else SQLite at SQLITE_FILE), REDIS_URL
or REDIS_CLUSTER_NODES (else in-process wake-ups), PORT, HOST, GATEWAY_JWT_SECRET (unset: a
development secret kept next to SQLITE_FILE). Brings the schema up to date first, like \`migrate\`.

Options:
  --workers N|auto   processes sharing the port (default GATEWAY_WORKERS, else auto = one per core
                     with MYSQL_URL + REDIS_URL/REDIS_CLUSTER_NODES, else 1)
  -h, --help         print this help

Example:
  MYSQL_URL=mysql://gateway:secret@127.0.0.1:3306/longpoll REDIS_URL=redis://127.0.0.1:6379 \\
    PORT=8080 longpoll-gateway start --workers 2
`,
);

const TOKEN = commandHelp(
  'token <user> [--pub <recipients>] [--scope poll,publish] [--topic <pattern>=<rights>] [--ttl <duration>]',
  "print a JWT for <user> signed with this gateway's secret",
  `Prints a JWT for <user> signed with this gateway's secret: GATEWAY_JWT_SECRET, or when unset the
development secret \`start\` keeps next to SQLITE_FILE.

Options:
  --pub <recipients>   whom it may publish to, comma-separated or repeated: user ids, prefix*
                       patterns, '*' for anyone (omitted: PUBLISH_DEFAULT decides)
  --scope <scopes>     poll, publish, presence, comma-separated (omitted: poll,publish)
  --topic <pattern>=<rights>
                       topics it may use, repeated for more patterns: a topic name, prefix* or
                       '*', then read, publish and/or presence, comma-separated, like
                       'room:42=read,publish' (omitted: no topic)
  --ttl <duration>     lifetime like 3600, 90s, 15m, 1h, 7d (omitted: no expiry);
                       --expires <seconds> also works
  -h, --help           print this help

Example:
  TOKEN=$(longpoll-gateway token alice --pub 'bob,team-*' --topic 'room:42=read,publish' --ttl 1h)
`,
);

const MIGRATE = commandHelp(
  'migrate',
  'bring the database schema up to date and exit',
  `Brings the database schema up to date and exits: MySQL/MariaDB when MYSQL_URL is set, else the
SQLite file SQLITE_FILE. \`start\` does this too; run it alone to migrate ahead of a deploy.

Options:
  -h, --help   print this help

Example:
  MYSQL_URL=mysql://gateway:secret@127.0.0.1:3306/longpoll longpoll-gateway migrate
`,
);

const BENCH: CommandHelp = {
  usage: 'bench [options]',
  summary: 'load-test a gateway: short vs long polling',
  help: BENCH_USAGE,
};

const HELP = commandHelp(
  'help [command]',
  "print this usage, or a command's help",
  `Prints the overall usage, or the help of <command> (the same as \`longpoll-gateway <command> --help\`).

Options:
  -h, --help   print this help

Example:
  longpoll-gateway help token
`,
);

const COMMANDS: Readonly<Record<string, CommandHelp>> = { start: START, token: TOKEN, migrate: MIGRATE, bench: BENCH, help: HELP };
const COMMAND_NAMES = Object.keys(COMMANDS).join(', ');

const USAGE = `longpoll-gateway <command>

Commands:
${Object.values(COMMANDS)
  .map(({ usage, summary }) => (usage.length <= 20 ? `  ${usage.padEnd(22)}${summary}` : `  ${usage}\n${' '.repeat(24)}${summary}`))
  .join('\n')}

Run \`longpoll-gateway help <command>\` (or \`longpoll-gateway <command> --help\`) for its options and an example.
`;

/** `--help` or `-h` among a command's arguments (before a `--` that ends the options). */
function wantsHelp(args: string[]): boolean {
  const separator = args.indexOf('--');
  return (separator === -1 ? args : args.slice(0, separator)).some((arg) => arg === '--help' || arg === '-h');
}

function runHelp(args: string[]): void {
  if (args.length === 0) {
    process.stdout.write(USAGE);
    return;
  }
  if (args.length > 1) throw new UsageError(`help takes one command, got ${args.length}: ${args.map((arg) => JSON.stringify(arg)).join(' ')}`);
  const name = args[0]!;
  const command = name === '--help' || name === '-h' ? HELP : Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}; the commands are ${COMMAND_NAMES}`);
  process.stdout.write(command.help);
}

type RawMysqlConnection = { query(sql: string, callback: (error: Error | null) => void): void };

/**
 * Opens one connection to MYSQL_URL's database and closes it (SQLite: nothing to check), so that a
 * server that is down, a wrong password or a missing database fails at once with the driver's own
 * error — not after knex has printed "Acquire connection error" and its stack for every query the
 * migrations had queued.
 */
async function checkStoreConnection(config: GatewayConfig['store']): Promise<void> {
  if (!config.mysqlUrl) return;
  const knex = createKnex(config);
  try {
    const connection = (await knex.client.acquireRawConnection()) as RawMysqlConnection;
    try {
      // ER_NO_DB_ERROR when the URL names no database (the login alone succeeds without one).
      await new Promise<void>((resolve, reject) => connection.query('SHOW TABLES', (error) => (error ? reject(error) : resolve())));
    } finally {
      await knex.client.destroyRawConnection(connection);
    }
  } finally {
    await knex.destroy();
  }
}

async function runStart(args: string[]): Promise<void> {
  if (cluster.isPrimary) {
    // Once, before anything starts: with MySQL + Redis, `start` may fork workers, and each would
    // otherwise fail on a Redis that is down in turn (and be restarted) instead of the start failing.
    const config = loadConfig(process.env);
    await checkStoreConnection(config.store);
    if (config.store.mysqlUrl) await checkBusConnection(config.redis);
  }
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

/** `--scope poll,publish` (or space-separated): at least one of poll, publish, presence. */
export function parseScope(raw: string): TokenScope[] {
  const names = raw.split(/[\s,]+/).filter((name) => name !== '');
  if (names.length === 0 || !names.every((name) => (TOKEN_SCOPES as readonly string[]).includes(name))) {
    throw new UsageError(`--scope must be one or more of poll, publish, presence (comma-separated); got ${JSON.stringify(raw)}`);
  }
  return [...new Set(names as TokenScope[])];
}

/**
 * `--topic 'room:42=read,publish' --topic 'announce=read'`: the `topics` claim, pattern → rights.
 * A pattern named twice gets the rights of both (rights of matching patterns add up anyway).
 */
export function parseTopics(values: string[]): TopicGrants {
  const grants = new Map<string, Set<TopicRight>>();
  for (const value of values) {
    const separator = value.indexOf('=');
    if (separator === -1) throw new UsageError(`--topic must be <pattern>=<rights>, like 'room:42=read,publish'; got ${JSON.stringify(value)}`);
    const pattern = value.slice(0, separator).trim();
    if (!TOPIC_PATTERN.test(pattern)) {
      throw new UsageError(
        `--topic pattern must be a topic name (1-128 characters of A-Z a-z 0-9 . _ : -), a prefix followed by * or '*' alone; got ${JSON.stringify(pattern)} in ${JSON.stringify(value)}`,
      );
    }
    const rights = value.slice(separator + 1).split(',').map((right) => right.trim());
    const unknown = rights.find((right) => !(TOPIC_RIGHTS as readonly string[]).includes(right));
    if (unknown !== undefined) {
      throw new UsageError(`--topic rights must be ${TOPIC_RIGHTS.join(', ')}, comma-separated; got ${JSON.stringify(unknown)} in ${JSON.stringify(value)}`);
    }
    let known = grants.get(pattern);
    if (!known) grants.set(pattern, (known = new Set()));
    for (const right of rights as TopicRight[]) known.add(right);
  }
  if (grants.size > MAX_TOPIC_GRANTS) throw new UsageError(`--topic takes at most ${MAX_TOPIC_GRANTS} patterns; got ${grants.size}`);
  // fromEntries, not assignment: a pattern such as `__proto__` stays an own property of the claim.
  return Object.fromEntries([...grants].map(([pattern, rights]) => [pattern, [...rights]]));
}

async function runToken(args: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { expires: { type: 'string' }, ttl: { type: 'string' }, pub: { type: 'string', multiple: true }, scope: { type: 'string' }, topic: { type: 'string', multiple: true } },
      allowPositionals: true,
    });
  } catch (error) {
    // parseArgs names the unknown option or the missing value; say how the command is used too.
    throw new UsageError(`${(error as Error).message}\n\n${TOKEN.help}`);
  }
  const { values, positionals } = parsed;
  const userId = positionals[0];
  if (!userId) throw new UsageError(`token needs a user id: longpoll-gateway ${TOKEN.usage}`);
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
  if (values.topic !== undefined) options.topics = parseTopics(values.topic);
  const secret = resolveJwtSecret(loadConfig(process.env), process.env);
  const token = await createTokenIssuer({ secret }).issue(userId, options);
  process.stdout.write(`${token}\n`);
}

async function runMigrate(args: string[]): Promise<void> {
  if (args.length > 0) throw new UsageError(`migrate takes no arguments, got ${args.map((arg) => JSON.stringify(arg)).join(' ')}\n\n${MIGRATE.help}`);
  const { store } = loadConfig(process.env);
  await checkStoreConnection(store);
  const knex = createKnex(store);
  try {
    await migrateToLatest(knex);
    process.stdout.write('schema is up to date\n');
  } finally {
    await knex.destroy();
  }
}

async function runBench(args: string[]): Promise<void> {
  // Loaded on demand: the gateway itself never needs the load tester's modules.
  const { runBenchCommand } = await import('./bench/command.js');
  process.exitCode = await runBenchCommand(args, process.env, { stdout: process.stdout, stderr: process.stderr });
}

class UsageError extends Error {}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  try {
    if (command !== undefined && command !== 'help' && Object.hasOwn(COMMANDS, command) && wantsHelp(rest)) {
      process.stdout.write(COMMANDS[command]!.help);
      return;
    }
    switch (command) {
      case 'start':
        return await runStart(rest);
      case 'token':
        return await runToken(rest);
      case 'migrate':
        return await runMigrate(rest);
      case 'bench':
        return await runBench(rest);
      case 'help':
        return runHelp(rest);
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
    // A database, Redis, SQLite file or port the configuration names but that cannot be used: what
    // to fix, in one line, like a configuration error. Anything else is a bug or unforeseen: its
    // stack, exit 1.
    const problem = command === 'start' || command === 'migrate' ? describeStartupFailure(error, process.env) : undefined;
    if (problem) {
      process.stderr.write(`longpoll-gateway: ${problem}\n`);
      process.exit(2);
    }
    throw error;
  }
}
