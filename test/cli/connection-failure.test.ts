import { describe, expect, it } from 'vitest';
import { describeStartupFailure } from '../../src/startup-errors.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { BusConnectError } from '../../src/start-from-env.js';

/**
 * The one line `start` / `migrate` print for a database or Redis they cannot use, for the driver
 * errors the end-to-end tests (startup-errors.test.ts) cannot provoke on demand.
 */
const PASSWORD = 'hunter2-Do-Not-Print';
const MYSQL = { MYSQL_URL: `mysql://app%40prod:${PASSWORD}@db.internal/longpoll` };
const REDIS = { REDIS_URL: `redis://:${PASSWORD}@cache.internal:6380` };

function driverError(message: string, fields: Record<string, unknown>): Error {
  return Object.assign(new Error(message), fields);
}

describe('describeStartupFailure', () => {
  it.each([
    [
      'a pool that got no connection in time (StoreUnavailableError ← KnexTimeoutError)',
      new StoreUnavailableError(driverError('Knex: Timeout acquiring a connection.', { name: 'KnexTimeoutError' })),
      MYSQL,
      'cannot reach MySQL at db.internal:3306 (no connection within 5 s): is it running? Check MYSQL_URL.',
    ],
    [
      'a refused connection wrapped by the store (default port)',
      new StoreUnavailableError(driverError('connect ECONNREFUSED', { code: 'ECONNREFUSED', fatal: true })),
      MYSQL,
      'cannot reach MySQL at db.internal:3306 (ECONNREFUSED): is it running? Check MYSQL_URL.',
    ],
    [
      'a user without rights on the database',
      driverError("Access denied for user 'app@prod'@'%' to database 'longpoll'", { code: 'ER_DBACCESS_DENIED_ERROR', errno: 1044 }),
      MYSQL,
      'MySQL user "app@prod" may not use database "longpoll" (ER_DBACCESS_DENIED_ERROR): grant it access, or fix the database name in MYSQL_URL.',
    ],
    [
      'a host the server does not accept logins from',
      driverError("Host '10.0.0.9' is not allowed to connect", { code: 'ER_HOST_NOT_PRIVILEGED', errno: 1130 }),
      MYSQL,
      'MySQL at db.internal:3306 does not accept logins from this host (ER_HOST_NOT_PRIVILEGED): allow it for user "app@prod", or check MYSQL_URL.',
    ],
    [
      'a Redis that wants a password',
      new BusConnectError('REDIS_URL', driverError('NOAUTH Authentication required.', { name: 'ReplyError' })),
      REDIS,
      'Redis wants a password (NOAUTH): put it in REDIS_URL, like redis://:password@host:6379.',
    ],
    [
      'a Redis host that does not resolve',
      new BusConnectError('REDIS_URL', driverError('getaddrinfo ENOTFOUND cache.internal', { code: 'ENOTFOUND' })),
      REDIS,
      'cannot resolve the host of Redis at cache.internal:6380 (ENOTFOUND): check the host in REDIS_URL.',
    ],
  ])('%s', (_, error, env, line) => {
    const described = describeStartupFailure(error, env);
    expect(described).toBe(line);
    expect(described).not.toContain(PASSWORD);
  });

  it('names a port in use and the SQLite file it cannot open, with the settings to change', () => {
    expect(describeStartupFailure(driverError('listen EADDRINUSE', { code: 'EADDRINUSE', syscall: 'listen' }), { PORT: '9090' })).toBe(
      '127.0.0.1:9090 is already in use (EADDRINUSE): stop what listens there, or set PORT (or HOST) to another.',
    );
    expect(describeStartupFailure(driverError('unable to open database file', { code: 'SQLITE_CANTOPEN' }), { SQLITE_FILE: '/data/x.sqlite' })).toBe(
      'cannot open the SQLite file /data/x.sqlite (SQLITE_CANTOPEN): check SQLITE_FILE; its folder must be a directory this user can write.',
    );
  });

  it.each([
    ['a refused connection with no MYSQL_URL (SQLite: not a server)', driverError('connect ECONNREFUSED', { code: 'ECONNREFUSED' }), {}],
    ['a migration error', new Error('The migration directory is corrupt'), MYSQL],
    ['a Redis error it does not know', new BusConnectError('REDIS_URL', driverError('LOADING Redis is loading', { name: 'ReplyError' })), REDIS],
    ['not an error at all', undefined, MYSQL],
  ])('leaves %s to the stack trace (undefined)', (_, error, env) => {
    expect(describeStartupFailure(error, env)).toBeUndefined();
  });
});
