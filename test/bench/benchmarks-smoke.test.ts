import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { requireRealServersOrWarn } from '../support/backends.js';
import { assertBuilt, ROOT } from '../support/process.js';

/**
 * Every benchmark keeps working: each runs its `--smoke` variant (seconds, tiny counts) and must
 * exit 0 and end with its JSON line. No figure is checked: timings belong to benchmarks/RESULTS.md.
 */
function runBenchmark(script: string, args: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `benchmarks/${script}`, '--smoke', ...args], {
      cwd: ROOT,
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 110_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function lastJson(stdout: string): Record<string, unknown> {
  const line = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as Record<string, unknown>;
}

const real = requireRealServersOrWarn('benchmark smoke runs');

describe('benchmarks still run (--smoke)', () => {
  it.each([
    ['capacity.ts', 'capacity', []],
    // --pin moves this run's processes to CPUs 0 and 1 (or warns and carries on without taskset).
    ['latency-under-load.ts', 'latency-under-load', ['--pin']],
    ['short-vs-long.ts', 'short-vs-long', []],
    ['side-by-side.ts', 'side-by-side', ['--peers', 'gateway,socketio,bare']],
    ['heap-per-poll.ts', 'heap-per-poll', []],
    ['cpu-profile.ts', 'cpu-profile', []],
    ['broadcast.ts', 'broadcast', ['--pin']],
    ['presence.ts', 'presence', ['--pin']],
    ['transports.ts', 'transports', ['--pin']],
  ])('%s', async (script, name, args) => {
    assertBuilt();
    const result = await runBenchmark(script, args);
    expect(result.stderr).not.toMatch(/Error: |LOST|DUPLICATED/);
    expect(result.code).toBe(0);
    const json = lastJson(result.stdout);
    expect(json.benchmark).toBe(name);
    expect(JSON.stringify(json)).not.toContain('"lost":1');
  }, 120_000);

  it.runIf(real)('throughput.ts (needs MariaDB)', async () => {
    assertBuilt();
    const result = await runBenchmark('throughput.ts');
    expect(result.code).toBe(0);
    const json = lastJson(result.stdout) as {
      benchmark: string;
      results: Array<{ kind: string; publishBatch: number; receipts?: boolean; counters: { sqlStatementsPerMessage: number } | null; result: { delivered: number; lost: number } }>;
      targets: Record<string, unknown>;
    };
    expect(json.benchmark).toBe('throughput');
    // Bare and Koa holders, the gateway with single publishes (receipts off and on), batched
    // publishes, and the gateway's workers.
    expect(json.results.map((row) => [row.kind, row.publishBatch, row.receipts === true])).toEqual([
      ['bare', 1, false],
      ['koa', 1, false],
      ['gateway', 1, false],
      ['gateway', 1, true],
      ['gateway', 100, false],
      ['gateway', 1, false],
    ]);
    expect(json.results.map((row) => row.result.lost)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(json.results.every((row) => row.result.delivered === 200)).toBe(true);
    expect(json.results.every((row) => row.counters !== null)).toBe(true);
    expect(Object.keys(json.targets)).toEqual(['singlePublishVsKoaCeiling', 'receiptsCpuVsWithout', 'batchPublishMsgPerS', 'sqlStatementsPerMessage', 'redisCommandsPerMessage']);
  }, 120_000);
});
