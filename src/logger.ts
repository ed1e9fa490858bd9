import { pino, type Logger } from 'pino';
import type { RuntimeConfig } from './config.js';

/**
 * @example
 * const logger = createLogger({ logLevel: 'info' });
 */
export function createLogger(config: Pick<RuntimeConfig, 'logLevel'>): Logger {
  return pino({
    level: config.logLevel,
    // Belt and braces: tokens and bodies are never logged on purpose, but redact them if they are.
    redact: ['req.headers.authorization', 'authorization', 'token', 'body'],
  });
}
