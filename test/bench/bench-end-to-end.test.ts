import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBench, type BenchReport } from '../../src/bench/command.js';
import { parseBenchArgs } from '../../src/bench/options.js';
import { backendCases, TEST_SECRET, useBackend } from '../support/backends.js';
import { startTestGateway } from '../support/gateway.js';
import { runCli, spawnGateway, type GatewayProcess } from '../support/process.js';

const quiet = { stdout: { write: () => true }, stderr: { write: () => true } };

describe.each(backendCases('bench end to end'))('longpoll-gateway bench against a real gateway on $name', ({ make }) => {
  const backend = useBackend(make);
  let gateway: GatewayProcess;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lpg-bench-'));
    gateway = await spawnGateway({ ...(await backend.gatewayEnv()), LOG_LEVEL: 'warn' });
  });
  afterAll(async () => {
    await gateway?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a short and a long polling mode with nothing lost or duplicated, and writes JSON and SVG', async () => {
    const out = join(dir, 'run');
    const result = await runCli(
      ['bench', '--url', gateway.url, '--secret', TEST_SECRET, '--clients', '20', '--rate', '20', '--duration', '2', '--short', '500', '--long', '2', '--out', out, '--no-progress'],
      {},
    );
    expect(result.stderr).not.toMatch(/LOST|DUPLICATED|wrong mailbox/);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/short 500ms\s+40\s/);
    expect(result.stdout).toMatch(/long wait=2s\s+40\s/);
    const report = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as BenchReport;
    expect(report.modes.map((mode) => mode.mode)).toEqual(['short 500ms', 'long wait=2s']);
    for (const mode of report.modes) {
      expect(mode).toMatchObject({ published: 40, delivered: 40, lost: 0, duplicated: 0, misrouted: 0, unknown: 0, truncated: null });
      expect(mode.latencyMs.count).toBe(40);
      expect(mode.latencyMs.p50).toBeGreaterThan(0);
      expect(mode.latencyMs.max).toBeGreaterThanOrEqual(mode.latencyMs.p99);
      // The server was found by its listening port: the spawned gateway, not this process.
      expect(mode.server?.pid).toBe(gateway.child.pid);
      expect(mode.server?.peakRssMiB).toBeGreaterThan(10);
    }
    const [short, long] = report.modes;
    // Polling every 500 ms costs empty answers; a held poll answers when there is something.
    expect(short!.emptyResponses).toBeGreaterThan(long!.emptyResponses);
    expect(readFileSync(`${out}.svg`, 'utf8')).toContain('long wait=2s');
  });

  it('compares long polling, SSE and WebSocket on one schedule: nothing lost or duplicated, fewer requests per message on the streams', async () => {
    const out = join(dir, 'streams');
    const result = await runCli(
      ['bench', '--url', gateway.url, '--secret', TEST_SECRET, '--clients', '20', '--rate', '20', '--duration', '2', '--short', 'none', '--long', '2', '--sse', '--ws', '--out', out, '--no-progress'],
      {},
    );
    expect(result.stderr).not.toMatch(/LOST|DUPLICATED|wrong mailbox/);
    expect(result.code).toBe(0);
    const report = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as BenchReport;
    expect(report.modes.map((mode) => [mode.mode, mode.kind])).toEqual([
      ['long wait=2s', 'long'],
      ['sse', 'sse'],
      ['websocket', 'ws'],
    ]);
    for (const mode of report.modes) {
      expect(mode).toMatchObject({ published: 40, delivered: 40, lost: 0, duplicated: 0, misrouted: 0, unknown: 0, truncated: null });
      expect(mode.bytesSent).toBeGreaterThan(0);
    }
    const [long, sse, ws] = report.modes;
    // A held poll costs a request per answer; a stream one connection (and, for SSE, its acks).
    expect(ws!.requestsPerMessage!).toBeLessThan(long!.requestsPerMessage!);
    expect(ws!.requestsPerMessage!).toBeLessThan(sse!.requestsPerMessage!);
    // The acks were sent: nothing is left pending in the mailboxes after the streams.
    expect(result.stdout).toMatch(/\nsse\s+40\s/);
  });

  it('ramps up, reports rates, a latency series and the server it measured, and fails a threshold with exit code 3', async () => {
    const out = join(dir, 'habits');
    const result = await runCli(
      [
        ...['bench', '--url', gateway.url, '--secret', TEST_SECRET, '--clients', '10', '--rate', '10', '--duration', '2', '--short', 'none', '--long', '2'],
        ...['--ramp', '1', '--max-p99-ms', '0.001', '--max-errors', '0', '--out', out, '--no-progress'],
      ],
      {},
    );
    expect(result.stderr).not.toMatch(/LOST|DUPLICATED|wrong mailbox/);
    expect(result.code).toBe(3);
    expect(result.stdout).toMatch(/threshold failed: --max-p99-ms 0\.001: long wait=2s p99 [\d.]+ ms/);
    expect(result.stdout).not.toMatch(/threshold failed: --max-errors/);
    expect(result.stdout).toMatch(/req\/s\s+sent KiB\/s\s+recv KiB\/s/);
    const store = backend.real ? 'mysql' : 'sqlite';
    const bus = backend.real ? 'redis' : 'in-process';
    expect(result.stdout).toContain(`server: store ${store}, bus ${bus}, 1 worker`);
    const report = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as BenchReport;
    expect(report.server).toMatchObject({ pid: gateway.child.pid, process: 'node', store, bus, workers: 1, workerIdsSeen: [] });
    expect(report.thresholds).toEqual({ maxP99Ms: 0.001, maxErrors: 0, failed: [expect.stringMatching(/^--max-p99-ms 0\.001: long wait=2s/)] });
    expect(report.options).toMatchObject({ rampS: 1, maxP99Ms: 0.001, maxErrors: 0 });
    const mode = report.modes[0]!;
    expect(mode).toMatchObject({ rampS: 1, published: 20, delivered: 20, lost: 0, errors: 0 });
    expect(mode.requestsPerSecond).toBeCloseTo((mode.pollRequests + mode.publishRequests) / mode.wallSeconds, 6);
    // 20 publishes of a JSON body each and 10+ polls with a bearer token: well over 5 KB each way.
    expect(mode.bytesSent).toBeGreaterThan(5_000);
    expect(mode.bytesReceived).toBeGreaterThan(5_000);
    expect(mode.bytesSentPerSecond).toBeGreaterThan(0);
    expect(mode.bytesReceivedPerSecond).toBeGreaterThan(0);
    expect(mode.latencySeries.reduce((sum, point) => sum + point.count, 0)).toBe(20);
    const svg = readFileSync(`${out}.svg`, 'utf8');
    expect(svg).toContain('Delivery latency over time');
    expect(svg).toContain(`store ${store}, bus ${bus}, 1 worker`);
  });

  it('publishes in batches (--publish-batch) with nothing lost or duplicated', async () => {
    const out = join(dir, 'batch');
    // 50 messages in batches of 8: six full batches and a last one of 2.
    const result = await runCli(
      ['bench', '--url', gateway.url, '--secret', TEST_SECRET, '--clients', '10', '--rate', '25', '--duration', '2', '--short', 'none', '--long', '2', '--publish-batch', '8', '--out', out, '--no-progress'],
      {},
    );
    expect(result.stderr).not.toMatch(/LOST|DUPLICATED|wrong mailbox/);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('8 messages per POST /v1/messages/batch');
    const report = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as BenchReport;
    expect(report.options.publishBatch).toBe(8);
    expect(report.modes[0]).toMatchObject({ published: 50, delivered: 50, lost: 0, duplicated: 0, misrouted: 0, unknown: 0, publishFailed: 0, errors: 0, truncated: null });
    expect(report.modes[0]).toMatchObject({ publishBatch: 8, publishRequests: 7 });
    expect(report.modes[0]!.latencyMs.count).toBe(50);
  });

  it('reads tokens from a file (publisher first) and refuses a file with too few', async () => {
    const users = ['tf-publisher', 'tf-0', 'tf-1', 'tf-2'];
    const issuer = await startTestGateway(backend);
    let tokensFile: string;
    try {
      tokensFile = join(dir, 'tokens.txt');
      writeFileSync(tokensFile, `${(await Promise.all(users.map((user) => issuer.tokenFor(user)))).join('\n')}\n`);
    } finally {
      await issuer.close();
    }
    const options = parseBenchArgs(['--url', gateway.url, '--tokens', tokensFile, '--clients', '3', '--rate', '10', '--duration', '1', '--short', 'none', '--long', '1', '--no-progress', '--server-pid', 'none']);
    const report = await runBench(options, quiet);
    expect(report.modes[0]).toMatchObject({ published: 10, delivered: 10, lost: 0, duplicated: 0, server: null });
    await expect(runBench({ ...options, clients: 4 }, quiet)).rejects.toThrow(/has 4 tokens; 4 clients need 5/);
  });
});

describe('bench safety', () => {
  it('refuses a non-loopback target without --allow-remote (exit 2, nothing sent)', async () => {
    const result = await runCli(['bench', '--url', 'http://192.0.2.1:8080', '--secret', TEST_SECRET, '--no-progress'], {});
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/Refusing to load-test 192\.0\.2\.1:8080.*--allow-remote/);
  });

  it('prints its usage with --help', async () => {
    const result = await runCli(['bench', '--help'], {});
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('--allow-remote');
  });
});
