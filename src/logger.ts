import { pino, type DestinationStream, type Logger } from 'pino';
import type { RuntimeConfig } from './config.js';

/**
 * @example
 * const logger = createLogger({ logLevel: 'info' });
 */
export function createLogger(config: Pick<RuntimeConfig, 'logLevel'>, destination?: DestinationStream): Logger {
  return pino(
    {
      level: config.logLevel,
      // Belt and braces: tokens and bodies are never logged on purpose, but redact them if they are.
      // An ioredis reply error carries the command it answered: for AUTH (a password in REDIS_URL)
      // that is the password itself, in `err.command.args`.
      redact: ['req.headers.authorization', 'authorization', 'token', 'body', 'err.command.args', 'err.cause.command.args'],
    },
    ...(destination ? [destination] : []),
  );
}
