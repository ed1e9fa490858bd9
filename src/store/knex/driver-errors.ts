import { StoreUnavailableError } from '../../errors.js';

// What a driver error means to a caller: a connection-level failure is worth retrying (503
// store_unavailable with Retry-After); anything else is a bug and stays a logged 500.

export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ER_DUP_ENTRY' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_LOCK_WAIT_TIMEOUT',
  // Two batches inserting overlapping idempotency keys in opposite orders: retrying is safe.
  'ER_LOCK_DEADLOCK',
  'SQLITE_BUSY',
  // MYSQL_STATEMENT_TIMEOUT_MS ran out (MySQL's name; MariaDB's 1969 has none in mysql2).
  'ER_QUERY_TIMEOUT',
]);
const MARIADB_STATEMENT_TIMEOUT_ERRNO = 1969;

/** Connection-level failures are retryable (503); anything else is a bug and stays a 500. */
export function classifyStoreError(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  const name = (error as { name?: unknown } | null)?.name;
  const fatal = (error as { fatal?: unknown } | null)?.fatal;
  const errno = (error as { errno?: unknown } | null)?.errno;
  if ((typeof code === 'string' && UNAVAILABLE_CODES.has(code)) || errno === MARIADB_STATEMENT_TIMEOUT_ERRNO || name === 'KnexTimeoutError' || fatal === true) {
    return new StoreUnavailableError(error);
  }
  return error;
}

/**
 * InnoDB picks a victim when two publishes lock the same idempotency keys crosswise; the victim's
 * transaction was rolled back whole, so running it again is safe.
 */
export async function withDeadlockRetry<T>(transaction: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await transaction();
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'ER_LOCK_DEADLOCK' || attempt >= attempts) throw error;
    }
  }
}

/**
 * Runs a store operation and rethrows a connection-level failure as StoreUnavailableError, so the
 * caller answers 503 + Retry-After instead of a 500.
 */
export async function withUnavailableAsRetryable<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw classifyStoreError(error);
  }
}
