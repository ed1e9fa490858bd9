import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('configuration from the environment', () => {
  it('has documented defaults', () => {
    expect(loadConfig({})).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
      mysqlUrl: undefined,
      redisUrl: undefined,
      pollWaitDefaultSeconds: 25,
      pollWaitMaxSeconds: 25,
      pollLimitDefault: 100,
      maxMessageBytes: 65536,
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
    [{ PUBLISH_DEFAULT: 'all' }, 'PUBLISH_DEFAULT must be one of any, none, self, got "all"'],
  ])('rejects %o naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('lets tokens without a `pub` claim publish anywhere by default, but nowhere when NODE_ENV=production', () => {
    expect(loadConfig({}).publishDefault).toBe('any');
    expect(loadConfig({ NODE_ENV: 'development' }).publishDefault).toBe('any');
    expect(loadConfig({ NODE_ENV: 'production' }).publishDefault).toBe('none');
    expect(loadConfig({ NODE_ENV: 'production', PUBLISH_DEFAULT: 'any' }).publishDefault).toBe('any');
    expect(loadConfig({ PUBLISH_DEFAULT: 'self' }).publishDefault).toBe('self');
    expect(loadConfig({ NODE_ENV: 'production', PUBLISH_DEFAULT: '' }).publishDefault).toBe('none');
  });

  it('lets an unset default follow a lowered maximum', () => {
    expect(loadConfig({ POLL_WAIT_MAX_S: '10' }).pollWaitDefaultSeconds).toBe(10);
  });
});
