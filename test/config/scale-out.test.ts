import { describe, expect, it } from 'vitest';
import { parseWorkersFlag, planWorkers, WorkersConfigError } from '../../src/cluster/plan.js';
import { ConfigError, loadConfig, parseClusterNodes } from '../../src/config.js';

const mysql = 'mysql://u:p@127.0.0.1:3306/db';

describe('scale-out configuration', () => {
  it('parses REDIS_CLUSTER_NODES, including bracketed IPv6 hosts', () => {
    expect(parseClusterNodes(' 127.0.0.1:7001, localhost:7002 ,[::1]:7003')).toEqual([
      { host: '127.0.0.1', port: 7001 },
      { host: 'localhost', port: 7002 },
      { host: '::1', port: 7003 },
    ]);
    expect(loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7001' }).redis.clusterNodes).toEqual([{ host: '127.0.0.1', port: 7001 }]);
    expect(loadConfig({}).redis.clusterNodes).toBeUndefined();
  });

  it('names the bad REDIS_CLUSTER_NODES entry', () => {
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7001,nohost' })).toThrow(/REDIS_CLUSTER_NODES: expected host:port, got "nohost"/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'h:70000' })).toThrow(ConfigError);
  });

  it('refuses REDIS_URL and REDIS_CLUSTER_NODES together', () => {
    expect(() => loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_CLUSTER_NODES: '127.0.0.1:7001' })).toThrow(/not both/);
  });

  it('reads the MySQL pool, timeout and reconnect settings with their defaults', () => {
    expect(loadConfig({}).store).toMatchObject({
      mysqlStatementTimeoutMs: 0,
      mysqlAcquireTimeoutMs: 5_000,
      mysqlConnectTimeoutMs: 10_000,
      mysqlReconnectIntervalMs: 200,
    });
    expect(loadConfig({ MYSQL_STATEMENT_TIMEOUT_MS: '2500', MYSQL_ACQUIRE_TIMEOUT_MS: '1000' }).store).toMatchObject({
      mysqlStatementTimeoutMs: 2_500,
      mysqlAcquireTimeoutMs: 1_000,
    });
    expect(() => loadConfig({ MYSQL_STATEMENT_TIMEOUT_MS: '-1' })).toThrow(/MYSQL_STATEMENT_TIMEOUT_MS must be between/);
  });

  it('plans one worker per core only when store and bus can be shared', () => {
    expect(planWorkers(loadConfig({}), undefined, 4)).toBe(1);
    expect(planWorkers(loadConfig({ MYSQL_URL: mysql }), undefined, 4)).toBe(1);
    expect(planWorkers(loadConfig({ MYSQL_URL: mysql, REDIS_URL: 'redis://127.0.0.1:6379' }), undefined, 4)).toBe(4);
    expect(planWorkers(loadConfig({ MYSQL_URL: mysql, REDIS_CLUSTER_NODES: '127.0.0.1:7001' }), undefined, 2)).toBe(2);
    expect(planWorkers(loadConfig({ MYSQL_URL: mysql, REDIS_URL: 'redis://h:6379', GATEWAY_WORKERS: '3' }), undefined, 8)).toBe(3);
    // The flag wins over GATEWAY_WORKERS; 1 always works.
    expect(planWorkers(loadConfig({ GATEWAY_WORKERS: '3' }), 1, 8)).toBe(1);
  });

  it('refuses several workers without MySQL and Redis, and bad --workers values', () => {
    expect(() => planWorkers(loadConfig({ REDIS_URL: 'redis://h:6379' }), 2, 2)).toThrow(WorkersConfigError);
    expect(() => planWorkers(loadConfig({ GATEWAY_WORKERS: '2' }), undefined, 2)).toThrow(/MYSQL_URL and REDIS_URL/);
    expect(parseWorkersFlag('auto')).toBe(0);
    expect(parseWorkersFlag('3')).toBe(3);
    for (const bad of ['0', '-1', '1.5', 'x', '2000']) expect(() => parseWorkersFlag(bad)).toThrow(WorkersConfigError);
  });
});
