import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('configuration from the environment', () => {
  it('has documented defaults', () => {
    expect(loadConfig({})).toMatchObject({
      http: { port: 8080, host: '127.0.0.1' },
      store: { mysqlUrl: undefined, sqliteFile: './data/gateway.sqlite' },
      redis: { url: undefined, prefix: 'lpg:' },
      poll: { waitDefaultSeconds: 25, waitMaxSeconds: 25, limitDefault: 100, limitMax: 500 },
      messages: { maxBytes: 65536 },
    });
  });

  it.each([
    [{ PORT: '70000' }, 'PORT must be between 0 and 65535'],
    [{ PORT: '8o8o' }, 'PORT must be an integer'],
    [{ MYSQL_URL: 'postgres://x' }, 'MYSQL_URL must use mysql:'],
    [{ REDIS_URL: 'not a url' }, 'REDIS_URL is not a valid URL'],
    [{ GATEWAY_JWT_SECRET: 'short' }, 'GATEWAY_JWT_SECRET must be at least 32 characters'],
    [{ POLL_WAIT_DEFAULT_S: '30', POLL_WAIT_MAX_S: '20' }, 'POLL_WAIT_DEFAULT_S (30) must not exceed POLL_WAIT_MAX_S (20)'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ TRUST_PROXY: '  ' }, 'TRUST_PROXY must be one of 1, 0, true, false, yes, no, got "  "'],
    [{ LOG_LEVEL: ' debug ' }, 'LOG_LEVEL must be one of'],
    [{ TRUST_PROXY: 'constructor' }, 'TRUST_PROXY must be one of 1, 0, true, false, yes, no, got "constructor"'],
    [{ PUBLISH_DEFAULT: 'all' }, 'PUBLISH_DEFAULT must be one of any, none, self, got "all"'],
  ])('rejects %o naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('lets tokens without a `pub` claim publish anywhere by default, but nowhere when NODE_ENV=production', () => {
    expect(loadConfig({}).auth.publishDefault).toBe('any');
    expect(loadConfig({ NODE_ENV: 'development' }).auth.publishDefault).toBe('any');
    expect(loadConfig({ NODE_ENV: 'production' }).auth.publishDefault).toBe('none');
    expect(loadConfig({ NODE_ENV: 'production', PUBLISH_DEFAULT: 'any' }).auth.publishDefault).toBe('any');
    expect(loadConfig({ PUBLISH_DEFAULT: 'self' }).auth.publishDefault).toBe('self');
    expect(loadConfig({ NODE_ENV: 'production', PUBLISH_DEFAULT: '' }).auth.publishDefault).toBe('none');
  });

  it('lets an unset default follow a lowered maximum', () => {
    expect(loadConfig({ POLL_WAIT_MAX_S: '10' }).poll.waitDefaultSeconds).toBe(10);
    expect(loadConfig({ POLL_LIMIT_MAX: '50' }).poll.limitDefault).toBe(50);
  });

  it('groups the settings by concern, so each part can be handed only its own', () => {
    expect(Object.keys(loadConfig({})).sort()).toEqual(['auth', 'http', 'messages', 'poll', 'presence', 'rateLimit', 'redis', 'retention', 'runtime', 'store', 'stream']);
    const config = loadConfig({ GATEWAY_JWT_SECRET: 's'.repeat(32), MYSQL_URL: 'mysql://u:p@h/db', REDIS_URL: 'redis://h:6379' });
    expect(config.auth.jwtSecret).toBe('s'.repeat(32));
    expect(JSON.stringify(config.http)).not.toContain('s'.repeat(32));
    expect(config.store.mysqlUrl).toBe('mysql://u:p@h/db');
    expect(config.redis.url).toBe('redis://h:6379');
  });

  it('reports every bad variable at once, across groups', () => {
    expect(() => loadConfig({ PORT: 'x', REDIS_PREFIX: 'a b', RETENTION_BATCH_SIZE: '0' })).toThrow(
      /PORT must be an integer[\s\S]*REDIS_PREFIX may contain only[\s\S]*RETENTION_BATCH_SIZE must be between/,
    );
  });
});
