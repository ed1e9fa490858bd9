/**
 * The public API of `longpoll-gateway`, as a library. Every export is listed by name: anything not
 * here is internal and may change between releases. Each entry's `@example` is on its declaration.
 *
 * @example
 * import { createServer } from 'node:http';
 * import { createGateway } from 'longpoll-gateway';
 *
 * const gateway = await createGateway({}, { auth: { jwtSecret: process.env.GATEWAY_JWT_SECRET } });
 * createServer(gateway.callback).listen(8080);
 */

// Building a gateway: from parts (embedding) or from the environment (what the CLI runs).
export { createGateway, type Gateway, type GatewayLogger, type GatewayOptions, type GatewayParts } from './gateway.js';
export { BusConnectError, selectBus, selectStore, startGateway, type RunningGateway } from './start-from-env.js';

// Configuration from environment variables, grouped by concern.
export {
  ConfigError,
  ENV_VARIABLES,
  loadConfig,
  type AuthConfig,
  type GatewayConfig,
  type HttpConfig,
  type MessagesConfig,
  type PollConfig,
  type RateLimitConfig,
  type RedisConfig,
  type RetentionConfig,
  type RuntimeConfig,
  type StoreConfig,
} from './config.js';

// Message stores.
export { createKnex, createKnexStore, openKnexStore, type KnexConnectionOptions, type KnexStore, type KnexStoreOptions } from './store/knex/index.js';
export type { Clock } from './core/model.js';
export type { MessageStore, RetentionStore } from './store/types.js';

// Wake-up buses.
export { createMemoryBus } from './bus/memory-bus.js';
export { createRedisBus, type RedisBusOptions } from './bus/redis-bus.js';
export { createRedisClusterBus, type ClusterNode, type RedisClusterBusOptions } from './bus/redis-cluster-bus.js';
export type { Bus } from './bus/types.js';

// Authentication: the gateway's own tokens, or the host's sessions through a verifyToken hook.
export { createTokenIssuer, createTokenVerifier, type TokenIssueOptions, type TokenIssuer, type TokenVerifier } from './auth/tokens.js';
export type { AuthRequest, CallerClaims, TokenClaims, TokenScope, VerifyToken } from './auth/claims.js';
export type { PublishDefault } from './auth/publish-policy.js';

// Errors: one table of codes and statuses, one error class.
export { ERROR_STATUS, type ErrorCode } from './error-codes.js';
export { GatewayError, IdempotencyConflictError, isGatewayError, StoreUnavailableError, type GatewayErrorOptions } from './errors.js';

export type { Engine } from './core/engine.js';
