import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/bench/command.js';
import { mysqlRedisCases, TEST_SECRET, useBackend } from '../support/backends.js';
import { assertBuilt, childPids, ROOT, runCli, spawnNodeUntilListening, type GatewayProcess } from '../support/process.js';

// With CI=true and no MYSQL_URL / REDIS_URL this throws instead of skipping (requireRealServersOrWarn).
const realCases = mysqlRedisCases('bench against start --workers 2');

describe.skipIf(realCases.length === 0)('bench against `start --workers 2` on MariaDB + Redis', () => {
  const backend = useBackend(() => realCases[0]!.make());
  let gateway: GatewayProcess;
  let dir: string;

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'lpg-bench-workers-'));
    // As `npm start` runs it: `node bin/longpoll-gateway.js start`, a path relative to the package
    // (node:cluster forks the workers with the absolute one).
    expect(process.cwd()).toBe(ROOT.replace(/\/$/, ''));
    gateway = await spawnNodeUntilListening(
      ['bin/longpoll-gateway.js', 'start', '--workers', '2'],
      { ...(await backend.gatewayEnv()), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', SHUTDOWN_GRACE_MS: '3000', PUBLISH_RATE_PER_USER: '0' },
      { listening: /listening on (http:\/\/[\d.:]+) \(\d+ workers/, timeoutMs: 30_000, label: 'gateway' },
    );
  });
  afterAll(async () => {
    await gateway?.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('measures server CPU and RSS over the primary and both workers, and names store, bus and 2 workers', async () => {
    const workerPids = childPids(gateway.child.pid!);
    expect(workerPids).toHaveLength(2);
    const out = join(dir, 'workers');
    const result = await runCli(
      ['bench', '--url', gateway.url, '--secret', TEST_SECRET, '--clients', '20', '--rate', '20', '--duration', '2', '--short', '500', '--long', 'none', '--out', out, '--no-progress'],
      {},
    );
    expect(result.stderr).not.toMatch(/LOST|DUPLICATED|wrong mailbox/);
    expect(result.code).toBe(0);
    const report = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as BenchReport;
    // The primary listens on the port; its workers do the work.
    expect(report.server).toMatchObject({ pid: gateway.child.pid, workers: 2, store: 'mysql', bus: 'redis' });
    expect([...report.server.workerIdsSeen].sort()).toEqual(['1', '2']);
    const [mode] = report.modes;
    expect(mode!.server!.cpuSeconds).toBeGreaterThan(0);
    expect([...mode!.server!.pids].sort()).toEqual([gateway.child.pid!, ...workerPids].sort());
    expect(mode!.server!.error).toBeUndefined();
    expect(report.warnings.join('\n')).not.toMatch(/server/i);
    // The table, the JSON and the chart say what was measured.
    expect(result.stdout).toMatch(/store mysql, bus redis, 2 workers/);
    expect(readFileSync(`${out}.svg`, 'utf8')).toMatch(/<text [^>]*>[^<]*store mysql, bus redis, 2 workers[^<]*<\/text>/);
  }, 60_000);
});
