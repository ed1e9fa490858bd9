import { describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/errors.js';
import { classifyStoreError, isUniqueViolation, withDeadlockRetry, withUnavailableAsRetryable } from '../../src/store/knex/driver-errors.js';

const driverError = (fields: Record<string, unknown>) => Object.assign(new Error('driver'), fields);

describe('driver errors', () => {
  it.each([
    ['a refused connection', { code: 'ECONNREFUSED' }],
    ['a lost connection', { code: 'PROTOCOL_CONNECTION_LOST' }],
    ['a lock wait timeout', { code: 'ER_LOCK_WAIT_TIMEOUT' }],
    ['a deadlock that outlived its retries', { code: 'ER_LOCK_DEADLOCK' }],
    ['a busy SQLite file', { code: 'SQLITE_BUSY' }],
    ['MariaDB’s statement timeout', { errno: 1969 }],
    ['an empty pool', { name: 'KnexTimeoutError' }],
    ['any fatal driver error', { fatal: true }],
  ])('makes %s a retryable 503 (store_unavailable), keeping the cause', (_what, fields) => {
    const cause = driverError(fields);
    const classified = classifyStoreError(cause);
    expect(classified).toBeInstanceOf(StoreUnavailableError);
    expect(classified).toMatchObject({ code: 'store_unavailable', status: 503, cause });
  });

  it('leaves anything else as it is: a bug stays a logged 500', () => {
    for (const error of [driverError({ code: 'ER_PARSE_ERROR' }), driverError({ code: 'ER_DUP_ENTRY' }), new TypeError('x'), 'a string']) {
      expect(classifyStoreError(error)).toBe(error);
    }
  });

  it('tells unique violations of both drivers', () => {
    expect(isUniqueViolation(driverError({ code: 'ER_DUP_ENTRY' }))).toBe(true);
    expect(isUniqueViolation(driverError({ code: 'SQLITE_CONSTRAINT_UNIQUE' }))).toBe(true);
    expect(isUniqueViolation(driverError({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' }))).toBe(true);
    expect(isUniqueViolation(driverError({ code: 'ER_LOCK_DEADLOCK' }))).toBe(false);
    expect(isUniqueViolation(null)).toBe(false);
  });

  it('rethrows through withUnavailableAsRetryable as classified, and passes results through', async () => {
    await expect(withUnavailableAsRetryable(async () => 7)).resolves.toBe(7);
    await expect(withUnavailableAsRetryable(() => Promise.reject(driverError({ code: 'ECONNRESET' })))).rejects.toBeInstanceOf(StoreUnavailableError);
    const bug = new RangeError('bug');
    await expect(withUnavailableAsRetryable(() => Promise.reject(bug))).rejects.toBe(bug);
  });

  it('runs a deadlock victim’s transaction again, up to the attempts given, and nothing else', async () => {
    let calls = 0;
    await expect(
      withDeadlockRetry(async () => {
        calls += 1;
        if (calls < 3) throw driverError({ code: 'ER_LOCK_DEADLOCK' });
        return 'committed';
      }),
    ).resolves.toBe('committed');
    expect(calls).toBe(3);

    calls = 0;
    const deadlock = driverError({ code: 'ER_LOCK_DEADLOCK' });
    await expect(
      withDeadlockRetry(async () => {
        calls += 1;
        throw deadlock;
      }, 2),
    ).rejects.toBe(deadlock);
    expect(calls).toBe(2);

    calls = 0;
    await expect(
      withDeadlockRetry(async () => {
        calls += 1;
        throw driverError({ code: 'ER_DUP_ENTRY' });
      }),
    ).rejects.toMatchObject({ code: 'ER_DUP_ENTRY' });
    expect(calls).toBe(1);
  });
});
