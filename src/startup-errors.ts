import { loadConfig, type GatewayConfig } from './config.js';
import { BusConnectError } from './start-from-env.js';

// What a failed start says: a database or Redis that cannot be reached or refuses the login, a port
// in use or a SQLite file that cannot be opened is one line naming what failed and how to fix it
// (never a password), instead of a driver's stack.

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE', 'PROTOCOL_CONNECTION_LOST']);
const UNRESOLVED_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN']);

/** The error and its causes, outermost first (StoreUnavailableError, BusConnectError and knex wrap the driver's). */
function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = error; current !== undefined && current !== null && chain.length < 8 && !chain.includes(current); current = (current as { cause?: unknown }).cause) {
    chain.push(current);
  }
  return chain;
}

/** A driver error's code: `code` (ECONNREFUSED, ER_ACCESS_DENIED_ERROR, …), or a Redis reply's first word (WRONGPASS, NOAUTH). */
function codeOf(error: unknown): string | undefined {
  const { code, name, message } = (error ?? {}) as { code?: unknown; name?: unknown; message?: unknown };
  if (typeof code === 'string') return code;
  if (name === 'KnexTimeoutError') return 'KnexTimeoutError';
  if (name === 'ReplyError' && typeof message === 'string') return /^[A-Z]+/.exec(message)?.[0];
  return undefined;
}

function hostAndPort(url: URL, defaultPort: number): string {
  return `${url.hostname}:${url.port || defaultPort}`;
}

function describeMysqlFailure(code: string, mysqlUrl: string, acquireTimeoutMs: number): string | undefined {
  const url = new URL(mysqlUrl);
  const at = hostAndPort(url, 3306);
  const user = decodeURIComponent(url.username);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (UNREACHABLE_CODES.has(code)) return `cannot reach MySQL at ${at} (${code}): is it running? Check MYSQL_URL.`;
  if (code === 'KnexTimeoutError') return `cannot reach MySQL at ${at} (no connection within ${acquireTimeoutMs / 1000} s): is it running? Check MYSQL_URL.`;
  if (UNRESOLVED_CODES.has(code)) return `cannot resolve the MySQL host ${JSON.stringify(url.hostname)} (${code}): check the host in MYSQL_URL.`;
  switch (code) {
    case 'ER_ACCESS_DENIED_ERROR':
      return `MySQL refused the login for user ${JSON.stringify(user)} (${code}): check the user and password in MYSQL_URL.`;
    case 'ER_HOST_NOT_PRIVILEGED':
      return `MySQL at ${at} does not accept logins from this host (${code}): allow it for user ${JSON.stringify(user)}, or check MYSQL_URL.`;
    case 'ER_BAD_DB_ERROR':
      return `MySQL has no database ${JSON.stringify(database)} (${code}): create it (CREATE DATABASE \`${database}\`) or fix the database name in MYSQL_URL.`;
    case 'ER_DBACCESS_DENIED_ERROR':
      return `MySQL user ${JSON.stringify(user)} may not use database ${JSON.stringify(database)} (${code}): grant it access, or fix the database name in MYSQL_URL.`;
    case 'ER_NO_DB_ERROR':
      return `MYSQL_URL names no database (${code}): end it with one, like mysql://user:password@${at}/longpoll.`;
    default:
      return undefined;
  }
}

function describeRedisFailure(code: string | undefined, error: BusConnectError, config: Pick<GatewayConfig, 'redis'>): string | undefined {
  const variable = error.variable;
  const cluster = variable === 'REDIS_CLUSTER_NODES';
  const url = !cluster && config.redis.url ? new URL(config.redis.url) : undefined;
  const what = cluster ? `the Redis Cluster at ${(config.redis.clusterNodes ?? []).map(({ host, port }) => `${host}:${port}`).join(',')}` : `Redis at ${url ? hostAndPort(url, 6379) : '?'}`;
  // ioredis's Cluster names no code when none of its nodes answers.
  if (cluster && code === undefined) return `cannot reach ${what} (no node answered): is it running? Check ${variable}.`;
  if (code === undefined) return undefined;
  if (UNREACHABLE_CODES.has(code)) return `cannot reach ${what} (${code}): is it running? Check ${variable}.`;
  if (UNRESOLVED_CODES.has(code)) return `cannot resolve the host of ${what} (${code}): check the host in ${variable}.`;
  // REDIS_CLUSTER_NODES carries no credentials, so only REDIS_URL's can be wrong.
  if (code === 'WRONGPASS' && !cluster) return `Redis refused the login (${code}): check the user and password in REDIS_URL.`;
  if (code === 'NOAUTH' && !cluster) return `Redis wants a password (${code}): put it in REDIS_URL, like redis://:password@host:6379.`;
  return undefined;
}

/** What keeps the embedded store from opening its file: a folder that is not one, or not writable. */
const SQLITE_FILE_CODES = new Set(['ENOTDIR', 'EEXIST', 'EACCES', 'EPERM', 'EROFS', 'ENOENT', 'SQLITE_CANTOPEN', 'SQLITE_READONLY', 'SQLITE_PERM']);

/**
 * One line saying what `start` / `migrate` could not use — a configured server, the SQLite file,
 * the port — and what to fix, or undefined when the failure is something else. Names hosts, users
 * and databases from the URLs, never their passwords.
 *
 * @example
 * describeStartupFailure(error, process.env); // 'cannot reach MySQL at 127.0.0.1:3399 (ECONNREFUSED): is it running? Check MYSQL_URL.'
 */
export function describeStartupFailure(error: unknown, env: Record<string, string | undefined>): string | undefined {
  let config: GatewayConfig;
  try {
    config = loadConfig(env);
  } catch {
    return undefined;
  }
  const chain = causeChain(error);
  const codes = chain.map(codeOf);
  if (codes.includes('EADDRINUSE')) {
    return `${config.http.host}:${config.http.port} is already in use (EADDRINUSE): stop what listens there, or set PORT (or HOST) to another.`;
  }
  const bus = chain.find((link): link is BusConnectError => link instanceof BusConnectError);
  if (bus) {
    const below = causeChain(bus.cause).map(codeOf).find((code) => code !== undefined);
    return describeRedisFailure(below, bus, config);
  }
  // The store opens first and is the only other server: its driver's errors come unwrapped or as
  // the cause of StoreUnavailableError / KnexTimeoutError.
  const { mysqlUrl, mysqlAcquireTimeoutMs, sqliteFile } = config.store;
  if (!mysqlUrl) {
    const code = codes.find((candidate) => candidate !== undefined && SQLITE_FILE_CODES.has(candidate));
    return code === undefined ? undefined : `cannot open the SQLite file ${sqliteFile} (${code}): check SQLITE_FILE; its folder must be a directory this user can write.`;
  }
  for (const code of codes) {
    if (code === undefined) continue;
    const line = describeMysqlFailure(code, mysqlUrl, mysqlAcquireTimeoutMs);
    if (line) return line;
  }
  return undefined;
}
