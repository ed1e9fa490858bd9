import { describe, expect, it } from 'vitest';
import { listeningSocketInodes } from '../../src/bench/proc.js';
import { formatModeTable, warningsFor } from '../../src/bench/report.js';
import type { ModeResult } from '../../src/bench/runner.js';
import { renderChart } from '../../src/bench/svg.js';

function result(overrides: Partial<ModeResult>): ModeResult {
  return {
    mode: 'short 1s',
    kind: 'short',
    intervalMs: 1000,
    waitS: null,
    clients: 10,
    rate: 5,
    durationS: 2,
    wallSeconds: 3,
    publishSeconds: 2,
    deliverySeconds: 2.5,
    truncated: null,
    published: 10,
    publishFailed: 0,
    delivered: 10,
    lost: 0,
    duplicated: 0,
    redelivered: 0,
    misrouted: 0,
    unknown: 0,
    latencyMs: { count: 10, p50: 480, p95: 950, p99: 990, max: 995, mean: 500 },
    pollRequests: 30,
    emptyResponses: 20,
    supersededResponses: 0,
    errors: 0,
    errorsByLabel: {},
    publishErrors: 0,
    publishBatch: 1,
    publishRequests: 10,
    responseBytes: 9000,
    requestsPerMessage: 3,
    bytesPerMessage: 900,
    publishLagMaxMs: 1,
    backpressureWaits: 0,
    server: null,
    loadGenerator: { cpuSeconds: 0.3, cpuShareOfOneCore: 0.1, eventLoopDelayP99Ms: 2 },
    loadGeneratorBound: false,
    ...overrides,
  };
}

describe('bench output', () => {
  const results = [
    result({}),
    result({ mode: 'long wait=25s', kind: 'long', intervalMs: null, waitS: 25, latencyMs: { count: 10, p50: 2.5, p95: 4, p99: 6, max: 7, mean: 3 }, requestsPerMessage: 1 }),
  ];

  it('prints one table row per mode with latency percentiles and requests per message', () => {
    const lines = formatModeTable(results).split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^mode\s+delivered\s+p50 ms/);
    expect(lines[2]).toMatch(/^short 1s\s+10\s+480\.0\s+950\.0\s+990\.0\s+995\.0\s+3\.00\s+900/);
    expect(lines[3]).toContain('long wait=25s');
  });

  it('warns about lost and duplicated messages, truncation and a saturated load generator', () => {
    expect(warningsFor(results)).toEqual([]);
    const warnings = warningsFor([result({ lost: 2, duplicated: 1, truncated: 'drain timeout', loadGeneratorBound: true })]);
    expect(warnings.join('\n')).toMatch(/2 messages LOST/);
    expect(warnings.join('\n')).toMatch(/1 messages DUPLICATED/);
    expect(warnings.join('\n')).toMatch(/stopped early: drain timeout/);
    expect(warnings.join('\n')).toMatch(/load generator was the bottleneck/);
  });

  it('draws an SVG with a row per mode, a log latency axis and escaped labels', () => {
    const svg = renderChart([...results, result({ mode: 'a<b&c' })], { title: 'T', subtitle: 'S' });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('>short 1s<');
    expect(svg).toContain('>long wait=25s<');
    expect(svg).toContain('a&#60;b&#38;c');
    expect(svg).toContain('log scale');
    expect(svg.match(/<rect [^>]*fill="#2f855a"\/>/g)).toHaveLength(3 + 1);
  });

  it('finds the inode of a listening socket in /proc/net/tcp text', () => {
    const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
    const tcp = `${header}   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1\n`;
    expect([...listeningSocketInodes(8080, { tcp, tcp6: '' })]).toEqual(['4242']);
    expect(listeningSocketInodes(8081, { tcp, tcp6: '' }).size).toBe(0);
  });
});
