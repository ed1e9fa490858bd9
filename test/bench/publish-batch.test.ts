import { describe, expect, it } from 'vitest';
import { runBench } from '../../src/bench/command.js';
import { BenchUsageError, parseBenchArgs } from '../../src/bench/options.js';
import { runMode } from '../../src/bench/runner.js';
import { longPoll, memoryTarget, modeOptions } from './memory-target.js';


describe('--publish-batch', () => {
  it('groups consecutive scheduled messages into one request each, the last one shorter', async () => {
    const target = memoryTarget({ clients: 5 });
    const result = await runMode(target, longPoll, 'run', new Array(5).fill(0), modeOptions({ publishBatch: 10 }));
    expect(target.batchSizes).toEqual([10, 10, 5]);
    expect(result).toMatchObject({ published: 25, delivered: 25, lost: 0, duplicated: 0, misrouted: 0, publishBatch: 10, publishRequests: 3 });
    expect(result.latencyMs.count).toBe(25);
  });

  it('resends a batch whose answer was lost, and counts each of its messages once', async () => {
    const target = memoryTarget({ clients: 5, loseAnswersOfFirstBatches: 2 });
    const result = await runMode(target, longPoll, 'run', new Array(5).fill(0), modeOptions({ publishBatch: 10 }));
    // Two answers were lost after their batch was stored: those batches went out again, same keys
    // (in whatever order the retries and the next scheduled batches interleave).
    expect([...target.batchSizes].sort((a, b) => a - b)).toEqual([5, 10, 10, 10, 10]);
    expect(target.stored).toBe(25);
    expect(result).toMatchObject({ published: 25, publishFailed: 0, delivered: 25, lost: 0, duplicated: 0, publishErrors: 2, publishRequests: 5 });
    expect(result.errorsByLabel).toEqual({ 'publish 502': 2 });
  });

  it('keeps one request per message by default', async () => {
    const target = memoryTarget({ clients: 5 });
    const result = await runMode(target, longPoll, 'run', new Array(5).fill(0), modeOptions({}));
    expect(target.batchSizes).toEqual([]);
    expect(result).toMatchObject({ published: 25, delivered: 25, publishBatch: 1, publishRequests: 25 });
  });

  it('refuses to run against a target without batch publish', async () => {
    const options = parseBenchArgs(['--url', 'http://127.0.0.1:1', '--secret', 's'.repeat(32), '--clients', '2', '--short', 'none', '--long', '1', '--publish-batch', '5', '--server-pid', 'none', '--no-progress']);
    const quiet = { stdout: { write: () => true }, stderr: { write: () => true } };
    await expect(runBench(options, quiet, () => memoryTarget({ clients: 2, batch: false }))).rejects.toThrow(BenchUsageError);
    await expect(runBench(options, quiet, () => memoryTarget({ clients: 2, batch: false }))).rejects.toThrow(/--publish-batch 5: this target has no batch publish/);
  });
});
