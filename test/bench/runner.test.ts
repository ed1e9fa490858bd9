import { describe, expect, it } from 'vitest';
import { benchExitCode, runBench } from '../../src/bench/command.js';
import { parseBenchArgs } from '../../src/bench/options.js';
import { runMode } from '../../src/bench/runner.js';
import { longPoll, memoryTarget, modeOptions } from './memory-target.js';

const quiet = { stdout: { write: () => true }, stderr: { write: () => true } };

describe('k6 / Artillery habits', () => {
  it('--ramp opens the clients gradually over that time, and publishes once every client polls', async () => {
    const target = memoryTarget({ clients: 6 });
    const started = performance.now();
    const result = await runMode(target, longPoll, 'run', new Array(6).fill(0), modeOptions({ clients: 6, rampS: 0.6 }));
    const firstPolls = target.firstPollAt.map((at) => at! - started);
    // Client i opens at i / 6 of the ramp: 0, 100, …, 500 ms.
    for (let client = 1; client < 6; client += 1) expect(firstPolls[client]!).toBeGreaterThan(firstPolls[client - 1]!);
    expect(firstPolls[5]! - firstPolls[0]!).toBeGreaterThanOrEqual(400);
    expect(Math.min(...target.publishedAt)).toBeGreaterThanOrEqual(started + 600);
    expect(result).toMatchObject({ rampS: 0.6, published: 25, delivered: 25, lost: 0 });
  });

  it('reports requests per second and the bytes sent and received per second over the mode', async () => {
    const target = memoryTarget({ clients: 5, traffic: true });
    const result = await runMode(target, longPoll, 'run', new Array(5).fill(0), modeOptions({}));
    const requests = result.pollRequests + result.publishRequests;
    expect(result.requestsPerSecond).toBeCloseTo(requests / result.wallSeconds, 6);
    // The memory target counts 100 B sent / 200 B received per poll, 300 / 50 per publish.
    expect(result.bytesSent).toBe(result.pollRequests * 100 + result.publishRequests * 300);
    expect(result.bytesReceived).toBe(result.pollRequests * 200 + result.publishRequests * 50);
    expect(result.bytesSentPerSecond).toBeCloseTo(result.bytesSent! / result.wallSeconds, 6);
    expect(result.bytesReceivedPerSecond).toBeCloseTo(result.bytesReceived! / result.wallSeconds, 6);
    // A target that does not count bytes reports null, not 0.
    const uncounted = await runMode(memoryTarget({ clients: 5 }), longPoll, 'run', new Array(5).fill(0), modeOptions({}));
    expect(uncounted).toMatchObject({ bytesSent: null, bytesReceived: null, bytesSentPerSecond: null, bytesReceivedPerSecond: null });
  });

  it('reports latency over time: p50, p99 and count per second since the first publish', async () => {
    const target = memoryTarget({ clients: 5 });
    const result = await runMode(target, longPoll, 'run', new Array(5).fill(0), modeOptions({ rate: 20, durationS: 2.5 }));
    expect(result.delivered).toBe(50);
    const series = result.latencySeries;
    expect(series.map((point) => point.second)).toEqual(series.map((_, index) => index));
    expect(series.length).toBeGreaterThanOrEqual(3);
    expect(series.reduce((sum, point) => sum + point.count, 0)).toBe(50);
    for (const point of series) {
      if (point.count === 0) expect(point).toMatchObject({ p50: null, p99: null });
      else expect(point.p99!).toBeGreaterThanOrEqual(point.p50!);
    }
    // JSON-safe: no NaN anywhere.
    expect(JSON.stringify(series)).not.toMatch(/NaN/);
  });

  it('fails --max-errors and --max-p99-ms with exit code 3, naming the threshold', async () => {
    const options = parseBenchArgs([
      ...['--url', 'http://127.0.0.1:1', '--secret', 's'.repeat(32), '--clients', '3', '--rate', '20', '--duration', '0.5'],
      ...['--short', 'none', '--long', '1', '--server-pid', 'none', '--no-progress', '--max-errors', '1', '--max-p99-ms', '0.000001'],
    ]);
    const report = await runBench(options, quiet, () => memoryTarget({ clients: 3, failFirstPolls: 2 }));
    expect(report.modes[0]).toMatchObject({ errors: 2, lost: 0, delivered: 10 });
    expect(report.thresholds).toEqual({
      maxP99Ms: 0.000001,
      maxErrors: 1,
      failed: [expect.stringMatching(/^--max-p99-ms 0\.000001: long wait=1s p99 [\d.]+ ms$/), '--max-errors 1: long wait=1s had 2 failed requests'],
    });
    expect(benchExitCode(report)).toBe(3);
    // Within the thresholds: 0. Lost messages outrank thresholds: 1.
    const passing = await runBench({ ...options, maxErrors: 2, maxP99Ms: 60_000 }, quiet, () => memoryTarget({ clients: 3, failFirstPolls: 2 }));
    expect(passing.thresholds.failed).toEqual([]);
    expect(benchExitCode(passing)).toBe(0);
    expect(benchExitCode({ ...report, modes: [{ ...report.modes[0]!, lost: 1 }] })).toBe(1);
  });

  it('says store, bus and workers are unknown when it measures no server process', async () => {
    const options = parseBenchArgs(['--url', 'http://127.0.0.1:1', '--secret', 's'.repeat(32), '--clients', '2', '--rate', '4', '--duration', '0.5', '--short', 'none', '--long', '1', '--server-pid', 'none', '--no-progress']);
    const report = await runBench(options, quiet, () => memoryTarget({ clients: 2 }));
    expect(report.server).toMatchObject({ pid: null, store: 'unknown', bus: 'unknown', workers: 'unknown', workerIdsSeen: [] });
    expect(report.thresholds).toEqual({ maxP99Ms: null, maxErrors: null, failed: [] });
  });
});
