import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import knexFactory, { type Knex } from 'knex';

// Opening the connection pool: MySQL/MariaDB from a URL (production) or a SQLite file (the
// embedded default), with the session settings the store's statements rely on.

export type DatabaseDialect = 'mysql' | 'sqlite';

export interface KnexConnectionOptions {
  mysqlUrl?: string | undefined;
  mysqlPoolMax?: number;
  /** 0 = no limit. MariaDB's max_statement_time is in seconds (fractions allowed); MySQL's max_execution_time in ms. */
  mysqlStatementTimeoutMs?: number;
  mysqlAcquireTimeoutMs?: number;
  mysqlConnectTimeoutMs?: number;
  mysqlReconnectIntervalMs?: number;
  sqliteFile?: string;
}

/**
 * The URL as knex itself reads it (query parameters become driver options, JSON-decoded), plus
 * a connect timeout unless the URL gives one.
 */
function mysqlConnectionFromUrl(mysqlUrl: string, connectTimeoutMs: number): Knex.MySql2ConnectionConfig {
  const url = new URL(mysqlUrl);
  // multipleStatements: the store sends a whole publish transaction as one script (one round
  // trip). Every value still goes through placeholders.
  const connection: Record<string, unknown> = {
    host: url.hostname,
    database: url.pathname.replace(/^\//, ''),
    connectTimeout: connectTimeoutMs,
    multipleStatements: true,
  };
  if (url.port) connection.port = Number(url.port);
  if (url.username || url.password) connection.user = decodeURIComponent(url.username);
  if (url.password) connection.password = decodeURIComponent(url.password);
  for (const [key, value] of url.searchParams) {
    try {
      connection[key] = JSON.parse(value);
    } catch {
      connection[key] = value;
    }
  }
  return connection as Knex.MySql2ConnectionConfig;
}

/**
 * MariaDB limits every statement with max_statement_time (seconds); MySQL has no such variable and
 * limits SELECTs with max_execution_time (milliseconds). Try MariaDB's first, fall back on
 * "unknown system variable".
 */
function setStatementTimeout(
  connection: { query(sql: string, callback: (error: (Error & { errno?: number }) | null) => void): void },
  timeoutMs: number,
  done: (error: Error | null) => void,
): void {
  if (timeoutMs <= 0) return done(null);
  connection.query(`SET SESSION max_statement_time = ${(timeoutMs / 1000).toFixed(3)}`, (error) => {
    if (error?.errno !== 1193) return done(error);
    connection.query(`SET SESSION max_execution_time = ${Math.round(timeoutMs)}`, done);
  });
}

/**
 * @example
 * const knex = createKnex({ mysqlUrl: process.env.MYSQL_URL, sqliteFile: './data/gateway.sqlite' });
 */
export function createKnex(options: KnexConnectionOptions): Knex {
  if (options.mysqlUrl) {
    return knexFactory({
      client: 'mysql2',
      connection: mysqlConnectionFromUrl(options.mysqlUrl, options.mysqlConnectTimeoutMs ?? 10_000),
      pool: {
        min: 0,
        max: options.mysqlPoolMax ?? 20,
        // A connection that broke (server restart, network cut) is discarded by knex; the next
        // acquire opens a new one, retrying this often until the acquire timeout runs out.
        createRetryIntervalMillis: options.mysqlReconnectIntervalMs ?? 200,
        // READ COMMITTED: under REPEATABLE READ every poll's UPDATE takes next-key (gap) locks on
        // the (user_id, status) index, and publishes to neighbouring user ids queue behind them.
        // A short lock wait turns any remaining contention into a fast, retryable 503.
        afterCreate: (
          connection: { query(sql: string, callback: (error: Error | null) => void): void },
          done: (error: Error | null, connection: unknown) => void,
        ) => {
          connection.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', (isolationError) => {
            if (isolationError) return done(isolationError, connection);
            connection.query('SET SESSION innodb_lock_wait_timeout = 5', (timeoutError) => {
              if (timeoutError) return done(timeoutError, connection);
              setStatementTimeout(connection, options.mysqlStatementTimeoutMs ?? 0, (statementError) => done(statementError, connection));
            });
          });
        },
      },
      // Fail fast instead of queueing behind a dead server: callers answer 503 + Retry-After.
      acquireConnectionTimeout: options.mysqlAcquireTimeoutMs ?? 5_000,
    });
  }
  const filename = options.sqliteFile ?? ':memory:';
  if (filename !== ':memory:') mkdirSync(dirname(filename), { recursive: true });
  return knexFactory({
    client: 'better-sqlite3',
    connection: { filename },
    useNullAsDefault: true,
    pool: {
      // WAL lets readers proceed during a write; busy_timeout waits for another process's lock.
      afterCreate: (connection: { pragma(sql: string): unknown }, done: (error: Error | null, connection: unknown) => void) => {
        try {
          if (filename !== ':memory:') connection.pragma('journal_mode = WAL');
          connection.pragma('busy_timeout = 5000');
          done(null, connection);
        } catch (error) {
          done(error as Error, connection);
        }
      },
    },
  });
}

export function dialectOf(knex: Knex): DatabaseDialect {
  return knex.client.config.client === 'mysql2' ? 'mysql' : 'sqlite';
}
